"""How sessions end (closed, or abandoned by a crashed server), continuations and consent."""

from __future__ import annotations

import pytest

from sessions import Database, EventLog, NotFoundError


async def test_close_records_the_reason_and_the_first_close_wins(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    assert (s.end_reason, s.ended_abnormally, s.previous_session_id) == (None, False, None)

    closed = await log.close_session(s.id)
    assert (closed.end_reason, closed.ended_abnormally) == ("closed", False)
    again = await log.close_session(s.id, reason="server_restart", abnormal=True)
    assert again == closed

    t = await log.open_session("bay-3")
    lost = await log.close_session(t.id, reason="media_failure", abnormal=True)
    assert (lost.end_reason, lost.ended_abnormally) == ("media_failure", True)
    assert await log.get_session(t.id) == lost


async def test_bad_end_reason_is_refused(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    with pytest.raises(ValueError, match="end reason"):
        await log.close_session(s.id, reason="")
    with pytest.raises(ValueError, match="end reason"):
        await log.close_session(s.id, reason="x" * 33)
    assert (await log.get_session(s.id)) == s


async def test_end_abandoned_sessions_ends_only_the_open_ones(database: Database) -> None:
    log = EventLog(database)
    done = await log.close_session((await log.open_session("bay-1")).id)
    open_a = await log.open_session("bay-2")
    open_b = await log.open_session("bay-3")

    ended = await log.end_abandoned_sessions()

    assert [r.id for r in ended] == [open_a.id, open_b.id]
    for record in ended:
        assert record.end_reason == "server_restart"
        assert record.ended_abnormally is True
        assert record.ended_at is not None and record.ended_at >= record.started_at
        assert await log.get_session(record.id) == record
    assert await log.get_session(done.id) == done
    assert await log.end_abandoned_sessions(reason="crash") == []


async def test_a_session_can_continue_an_earlier_one(database: Database) -> None:
    log = EventLog(database)
    first = await log.open_session("bay-3")
    (ended,) = await log.end_abandoned_sessions()
    assert ended.id == first.id

    second = await log.open_session("bay-3", previous_session_id=first.id)

    assert second.previous_session_id == first.id
    assert await log.get_session(second.id) == second
    assert [s.id for s in await log.sessions_for_room("bay-3")] == [first.id, second.id]
    with pytest.raises(NotFoundError, match="no session"):
        await log.open_session("bay-3", previous_session_id="0" * 32)
    assert len(await log.sessions_for_room("bay-3")) == 2


async def test_recording_consent_is_stored(database: Database) -> None:
    log = EventLog(database)
    s = await log.open_session("bay-3")
    assert s.recording_consent is None

    assert (await log.set_recording_consent(s.id, True)).recording_consent is True
    assert (await log.get_session(s.id)) == s.__class__(
        s.id, s.room, s.started_at, None, recording_consent=True
    )
    assert (await log.set_recording_consent(s.id, False)).recording_consent is False
    assert (await log.set_recording_consent(s.id, None)).recording_consent is None
    with pytest.raises(NotFoundError, match="no session"):
        await log.set_recording_consent("0" * 32, True)
