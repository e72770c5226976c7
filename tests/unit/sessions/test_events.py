"""EventLog on SQLite and PostgreSQL: sequence numbers, concurrency, validation, durability."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import func, literal, select
from sqlalchemy.sql.expression import ColumnElement

from sessions import (
    MAX_PAYLOAD_BYTES,
    Database,
    Event,
    EventLog,
    EventRecord,
    NotFoundError,
    StorageError,
)
from sessions.models import utcnow


async def _count_events(db: Database) -> int:
    async with db.session() as session:
        return (await session.scalar(select(func.count()).select_from(Event))) or 0


async def test_open_get_close_session(database: Database) -> None:
    log = EventLog(database)
    opened = await log.open_session("bay-3")

    assert len(opened.id) == 32
    assert opened.room == "bay-3"
    assert opened.ended_at is None
    assert opened.started_at.tzinfo == UTC
    assert await log.get_session(opened.id) == opened

    closed = await log.close_session(opened.id)
    assert closed.ended_at is not None and closed.ended_at >= opened.started_at
    assert closed.ended_at.tzinfo == UTC
    assert await log.get_session(opened.id) == closed
    # Closing again keeps the first end time.
    assert await log.close_session(opened.id) == closed


async def test_unknown_session(database: Database) -> None:
    log = EventLog(database)
    assert await log.get_session("0" * 32) is None
    with pytest.raises(NotFoundError, match="no session"):
        await log.close_session("0" * 32)
    with pytest.raises(NotFoundError, match="no session"):
        await log.append("0" * 32, "note", {})
    with pytest.raises(NotFoundError, match="no session"):
        await log.events("0" * 32)
    assert await _count_events(database) == 0


async def test_sessions_for_room_lists_oldest_first(database: Database) -> None:
    log = EventLog(database)
    first = await log.open_session("bay-3")
    await log.open_session("bay-4")
    second = await log.open_session("bay-3")
    assert await log.sessions_for_room("bay-3") == [first, second]
    assert await log.sessions_for_room("empty") == []


async def test_append_numbers_events_one_to_n_and_reads_them_back(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    before = utcnow()

    appended = [
        await log.append(s.id, "ink", {"i": i, "uv": [0.5, 0.25]}, actor="ana", media_pts=i * 3000)
        for i in range(10)
    ]

    assert [e.seq for e in appended] == list(range(1, 11))
    assert await log.events(s.id) == appended
    first = appended[0]
    assert (first.session_id, first.type, first.actor, first.media_pts) == (s.id, "ink", "ana", 0)
    assert first.payload == {"i": 0, "uv": [0.5, 0.25]}
    assert first.wall_time.tzinfo == UTC
    assert before - timedelta(seconds=5) <= first.wall_time <= appended[-1].wall_time <= utcnow()


async def test_fifty_concurrent_appends_get_seq_one_to_fifty(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")

    records = await asyncio.gather(*(log.append(s.id, "tick", {"n": n}) for n in range(50)))

    assert sorted(r.seq for r in records) == list(range(1, 51))
    stored = await log.events(s.id, limit=1000)
    assert [e.seq for e in stored] == list(range(1, 51))
    assert {e.seq: e.payload["n"] for e in stored} == {r.seq: r.payload["n"] for r in records}


async def test_two_sessions_are_numbered_independently(database: Database) -> None:
    log = EventLog(database)
    a, b = await log.open_session("room-a"), await log.open_session("room-b")

    await asyncio.gather(
        *(log.append(sid, "tick", {"n": n}) for n in range(20) for sid in (a.id, b.id))
    )

    for sid in (a.id, b.id):
        stored = await log.events(sid)
        assert [e.seq for e in stored] == list(range(1, 21))
        assert {e.session_id for e in stored} == {sid}
        assert sorted(e.payload["n"] for e in stored) == list(range(20))


async def test_two_event_logs_on_one_database_never_duplicate_seq(database: Database) -> None:
    # Two EventLogs do not share locks, like two processes: the database must keep them apart.
    logs = [EventLog(database), EventLog(database)]
    s = await logs[0].open_session("bay-3")

    await asyncio.gather(*(logs[n % 2].append(s.id, "tick", {"n": n}) for n in range(40)))

    stored = await logs[1].events(s.id)
    assert [e.seq for e in stored] == list(range(1, 41))
    assert sorted(e.payload["n"] for e in stored) == list(range(40))


async def test_append_gives_up_with_storage_error_when_seq_always_collides(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    await log.append(s.id, "first", {})

    def always_one(session_id: str) -> ColumnElement[int]:
        return literal(1)

    monkeypatch.setattr(EventLog, "_next_seq", staticmethod(always_one))
    with pytest.raises(StorageError, match="after 5 attempts"):
        await log.append(s.id, "second", {})
    monkeypatch.undo()

    assert [e.type for e in await log.events(s.id)] == ["first"]
    assert (await log.append(s.id, "third", {})).seq == 2


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([1, 2], id="list"),
        pytest.param("text", id="str"),
        pytest.param(None, id="none"),
        pytest.param({"x": "a" * MAX_PAYLOAD_BYTES}, id="oversize"),
        pytest.param({"x": object()}, id="not-json"),
        pytest.param({"x": float("nan")}, id="nan"),
    ],
)
async def test_bad_payload_raises_value_error_and_stores_nothing(
    database: Database, payload: Any
) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    await log.append(s.id, "ok", {})
    count = await _count_events(database)

    with pytest.raises(ValueError, match="payload"):
        await log.append(s.id, "bad", payload)

    assert await _count_events(database) == count
    assert (await log.append(s.id, "ok", {})).seq == 2


async def test_payload_at_the_limit_is_accepted(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    overhead = len(json.dumps({"x": ""}, separators=(",", ":")))
    payload = {"x": "a" * (MAX_PAYLOAD_BYTES - overhead)}

    record = await log.append(s.id, "big", payload)

    assert (await log.events(s.id))[0].payload == payload
    assert record.payload == payload


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"type": ""}, "event type"),
        ({"type": "t" * 33}, "event type"),
        ({"actor": "a" * 65}, "actor"),
        ({"media_pts": -1}, "media_pts"),
        ({"media_pts": 1.5}, "media_pts"),
    ],
)
async def test_bad_fields_raise_value_error(
    database: Database, kwargs: dict[str, Any], match: str
) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    args: dict[str, Any] = {"type": "note", "payload": {}} | kwargs
    with pytest.raises(ValueError, match=match):
        await log.append(s.id, **args)
    assert await _count_events(database) == 0


async def test_large_media_pts_round_trips(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    pts = 90_000 * 3600 * 24 * 400  # 400 days of 90 kHz ticks, past 32 bits
    await log.append(s.id, "frame", {}, media_pts=pts)
    assert (await log.events(s.id))[0].media_pts == pts


async def test_events_paging_with_after_seq_and_limit(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    for n in range(25):
        await log.append(s.id, "tick", {"n": n})

    pages: list[list[EventRecord]] = []
    after = 0
    while page := await log.events(s.id, after_seq=after, limit=10):
        pages.append(page)
        after = page[-1].seq

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [e.seq for p in pages for e in p] == list(range(1, 26))
    assert [e.seq for e in await log.events(s.id, after_seq=23)] == [24, 25]
    with pytest.raises(ValueError, match="limit"):
        await log.events(s.id, limit=0)
    with pytest.raises(ValueError, match="after_seq"):
        await log.events(s.id, after_seq=-1)
