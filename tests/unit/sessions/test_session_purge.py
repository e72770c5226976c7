"""EventLog.purge_session (an admin's erasure) and EventLog.remove_recordings (retention), on SQLite
and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sessions import (
    Database,
    Event,
    EventLog,
    NotFoundError,
    RecordingStore,
    SessionLiveError,
)

DIGEST = "ab" * 32


async def _recorded(db: Database, log: EventLog, events: int = 3) -> tuple[str, list[str]]:
    """An ended session with ``events`` events and two finished recordings."""
    sid = (await log.open_session("bay-3")).id
    for n in range(events):
        await log.append(sid, "chat", {"n": n}, actor="ana")
    store = RecordingStore(db)
    ids = []
    for track in ("worker-video", "audio-ana-1"):
        kind = "video" if track.endswith("video") else "audio"
        rec = await store.add(
            sid, track, kind, "ana", "h264", "mp4", f"recordings/{sid}/{track}.mp4"
        )
        await store.finish(rec.id, size_bytes=10, sha256=DIGEST, duration_s=1.0)
        ids.append(rec.id)
    await log.close_session(sid)
    return sid, ids


async def test_purge_leaves_the_session_and_one_audit_event(database: Database) -> None:
    log, store = EventLog(database), RecordingStore(database)
    sid, ids = await _recorded(database, log)
    other, other_ids = await _recorded(database, log, events=2)

    result = await log.purge_session(sid, actor="root", reason="GDPR request", bytes_removed=20)

    assert result.events_removed == 3
    assert [r.id for r in result.recordings] == ids
    assert result.audit.seq == 4  # continues the numbering
    assert result.audit.type == "session_deleted" and result.audit.actor == "root"
    payload = result.audit.payload
    assert payload["by"] == "root" and payload["reason"] == "GDPR request"
    assert (payload["events_removed"], payload["recordings_removed"]) == (3, 2)
    assert payload["bytes_removed"] == 20 and payload["at"]
    assert await log.events(sid) == [result.audit]
    assert await store.list_for_session(sid) == []
    assert (await log.get_session(sid)) is not None
    # The other session is untouched.
    assert [e.seq for e in await log.events(other)] == [1, 2]
    assert [r.id for r in await store.list_for_session(other)] == other_ids
    # The log goes on after the erasure.
    assert (await log.append(sid, "retention", {"deleted": []}, allow_ended=True)).seq == 5


async def test_purge_refuses_live_and_unknown_sessions(database: Database) -> None:
    log = EventLog(database)
    live = (await log.open_session("bay-3")).id
    await log.append(live, "chat", {})
    with pytest.raises(SessionLiveError, match="still live"):
        await log.purge_session(live, actor="root")
    assert len(await log.events(live)) == 1
    with pytest.raises(NotFoundError):
        await log.purge_session("0" * 32, actor="root")
    sid, _ = await _recorded(database, log)
    for bad in (
        {"actor": ""},
        {"actor": "root", "bytes_removed": -1},
        {"actor": "x", "reason": "r" * 501},
    ):
        with pytest.raises(ValueError):
            await log.purge_session(sid, **bad)
    assert len(await log.events(sid)) == 3


async def test_remove_recordings_deletes_rows_and_logs_why_at_once(database: Database) -> None:
    log, store = EventLog(database), RecordingStore(database)
    sid, ids = await _recorded(database, log)
    other, other_ids = await _recorded(database, log)

    event, removed = await log.remove_recordings(
        sid, [ids[0], other_ids[0], "f" * 32], "retention", {"deleted": [ids[0]], "bytes": 10}
    )

    assert [r.id for r in removed] == [ids[0]]  # not another session's row, nor unknown ids
    assert (event.seq, event.type, event.payload) == (
        4,
        "retention",
        {"deleted": [ids[0]], "bytes": 10},
    )
    assert [r.id for r in await store.list_for_session(sid)] == [ids[1]]
    assert len(await store.list_for_session(other)) == 2
    async with database.session() as s:
        assert await s.scalar(select(func.count()).select_from(Event)) == 3 + 1 + 3
    with pytest.raises(NotFoundError):
        await log.remove_recordings("0" * 32, [], "retention", {})
    with pytest.raises(ValueError):
        await log.remove_recordings(sid, [ids[1]], "retention", {"x": object()})
    assert len(await store.list_for_session(sid)) == 1  # a refused call removes nothing
