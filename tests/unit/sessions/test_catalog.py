"""Finding sessions on SQLite and PostgreSQL: filters, newest first, cursor paging, facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sessions import Database, EventLog, NotFoundError
from sessions.catalog import SessionCatalog


async def test_filters_paging_and_facts(database: Database) -> None:
    events, catalog = EventLog(database), SessionCatalog(database)
    ids = []
    for i, room in enumerate(["a", "b", "a", "b", "a"]):
        record = await events.open_session(room)
        await events.append(record.id, "join", {}, actor="mentor")
        if i % 2 == 0:
            await events.append(record.id, "join", {}, actor="worker")
        await events.append(record.id, "chat", {"text": "hi"}, actor="mentor")
        ids.append(record.id)
    newest_first = [s.id for s in await catalog.list()]
    assert newest_first == ids[::-1]
    assert [s.id for s in await catalog.list(room="a")] == [ids[4], ids[2], ids[0]]
    assert [s.id for s in await catalog.list(participant="worker")] == [ids[4], ids[2], ids[0]]
    assert await catalog.list(participant="nobody") == []
    pages, before = [], None
    while True:
        page = await catalog.list(limit=2, before=before)
        pages.append([s.id for s in page])
        if len(page) < 2:
            break
        before = (page[-1].started_at, page[-1].id)
    assert sum(pages, []) == ids[::-1]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await catalog.list(since=later) == []
    assert len(await catalog.list(until=later)) == 5
    from sessions import RecordingStore

    await RecordingStore(database).add(
        ids[1], "worker-video", "video", "worker", "h264", "mp4", f"recordings/{ids[1]}/v.mp4"
    )
    assert [s.id for s in await catalog.list(has_recording=True)] == [ids[1]]
    assert ids[1] not in [s.id for s in await catalog.list(has_recording=False)]
    assert len(await catalog.list(has_recording=False)) == 4
    facts = await catalog.get(ids[0])
    assert facts.participants == ("mentor", "worker")
    assert facts.event_types == {"join": 2, "chat": 1} and facts.events == 3
    with pytest.raises(NotFoundError):
        await catalog.get("0" * 32)
    with pytest.raises(ValueError, match="limit"):
        await catalog.list(limit=0)


async def test_an_ended_session_takes_no_more_events(database: Database) -> None:
    from sessions import SessionEndedError

    events = EventLog(database)
    record = await events.open_session("a")
    await events.append(record.id, "join", {}, actor="mentor")
    await events.close_session(record.id)
    with pytest.raises(SessionEndedError, match="has ended"):
        await events.append(record.id, "chat", {"text": "too late"}, actor="mentor")
    assert [e.type for e in await events.events(record.id)] == ["join"]
