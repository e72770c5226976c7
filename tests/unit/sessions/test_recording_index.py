"""RecordingStore and RetentionStore on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sessions import (
    Database,
    EventLog,
    NotFoundError,
    RecordingKind,
    RecordingStatus,
    RecordingStore,
    RetentionStore,
)
from sessions.models import utcnow

DIGEST = "0123456789abcdef" * 4


async def _session(db: Database) -> str:
    return (await EventLog(db).open_session("bay-3")).id


async def test_add_finish_get_list_round_trip(database: Database) -> None:
    store = RecordingStore(database)
    sid = await _session(database)
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    video = await store.add(
        sid,
        "worker-video",
        "video",
        "worker",
        "h264",
        "mp4",
        f"recordings/{sid}/v.mp4",
        started_at=t0,
    )
    audio = await store.add(
        sid,
        "mentor-audio:ana",
        RecordingKind.AUDIO,
        "ana",
        "opus",
        "mp4",
        "recordings/a.mp4",
        started_at=t0 + timedelta(seconds=2),
    )
    assert len(video.id) == 32
    assert (video.status, video.kind, video.ended_at, video.size_bytes) == (
        RecordingStatus.RECORDING,
        RecordingKind.VIDEO,
        None,
        None,
    )
    assert await store.get(video.id) == video

    done = await store.finish(
        video.id,
        size_bytes=12_345_678_901,
        sha256=DIGEST,
        duration_s=61.5,
        ended_at=t0 + timedelta(seconds=62),
    )
    assert (done.status, done.size_bytes, done.sha256, done.duration_s, done.error) == (
        RecordingStatus.COMPLETE,
        12_345_678_901,
        DIGEST,
        61.5,
        None,
    )
    assert done.ended_at == t0 + timedelta(seconds=62)
    cut = await store.finish(
        audio.id,
        size_bytes=None,
        sha256=None,
        duration_s=None,
        status="interrupted",
        error="server restarted",
    )
    assert (cut.status, cut.error) == (RecordingStatus.INTERRUPTED, "server restarted")

    assert await store.get(video.id) == done
    assert await store.list_for_session(sid) == [done, cut]
    assert await store.list_for_session("0" * 32) == []
    assert await store.get("0" * 32) is None


async def test_bad_inputs_are_refused_with_reasons(database: Database) -> None:
    store = RecordingStore(database)
    sid = await _session(database)
    args = ("worker-video", "video", "worker", "h264", "mp4", "r/v.mp4")

    with pytest.raises(NotFoundError, match="no session"):
        await store.add("0" * 32, *args)
    with pytest.raises(ValueError, match="unknown RecordingKind 'subtitles'"):
        await store.add(sid, "t", "subtitles", "worker", "h264", "mp4", "r/v.mp4")
    for path in ("/etc/passwd", "../outside.mp4", "r/../../x.mp4", "r\\v.mp4", ""):
        with pytest.raises(ValueError, match="path"):
            await store.add(sid, "t", "video", "worker", "h264", "mp4", path)
    with pytest.raises(ValueError, match="track"):
        await store.add(sid, "x" * 129, "video", "worker", "h264", "mp4", "r/v.mp4")
    assert await store.list_for_session(sid) == []

    rec = await store.add(sid, *args)
    with pytest.raises(NotFoundError, match="no recording"):
        await store.finish("0" * 32, size_bytes=1, sha256=DIGEST, duration_s=1.0)
    bad = [
        ({"size_bytes": -1}, "size_bytes"),
        ({"duration_s": -0.5}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"sha256": "ABC"}, "sha256"),
        ({"status": "recording"}, "final status"),
        ({"status": "lost"}, "unknown RecordingStatus"),
    ]
    for override, message in bad:
        kwargs = {"size_bytes": 1, "sha256": DIGEST, "duration_s": 1.0, **override}
        with pytest.raises(ValueError, match=message):
            await store.finish(rec.id, **kwargs)  # type: ignore[arg-type]
    assert await store.get(rec.id) == rec

    await store.finish(rec.id, size_bytes=1, sha256=DIGEST, duration_s=1.0, status="failed")
    with pytest.raises(ValueError, match="already finished"):
        await store.finish(rec.id, size_bytes=1, sha256=DIGEST, duration_s=1.0)

    with pytest.raises(NotFoundError, match="no recording"):
        await store.delete("0" * 32)


async def test_expired_and_delete(database: Database) -> None:
    store = RecordingStore(database)
    sid = await _session(database)
    now = utcnow()
    args = ("worker", "h264", "mp4", "r/x.mp4")

    old = await store.add(sid, "a", "video", *args, started_at=now - timedelta(days=40))
    old = await store.finish(
        old.id, size_bytes=1, sha256=DIGEST, duration_s=1.0, ended_at=now - timedelta(days=39)
    )
    older_cut = await store.add(sid, "b", "audio", *args, started_at=now - timedelta(days=50))
    older_cut = await store.finish(
        older_cut.id,
        size_bytes=None,
        sha256=None,
        duration_s=None,
        status="interrupted",
        ended_at=None,
    )
    recent = await store.add(sid, "c", "video", *args, started_at=now - timedelta(days=2))
    await store.finish(recent.id, size_bytes=1, sha256=DIGEST, duration_s=1.0)
    await store.add(sid, "d", "video", *args, started_at=now - timedelta(days=60))  # still going

    cutoff = now - timedelta(days=30)
    # An interrupted recording with no end counts from its finish call (now): not expired yet.
    assert [r.id for r in await store.expired(cutoff)] == [old.id]
    assert [r.id for r in await store.expired(now + timedelta(minutes=1))] == [
        old.id,
        older_cut.id,
        recent.id,
    ]
    with pytest.raises(ValueError, match="tz-aware"):
        await store.expired(datetime(2026, 1, 1))

    assert await store.delete(old.id) == old
    assert await store.get(old.id) is None
    assert [r.track for r in await store.list_for_session(sid)] == ["d", "b", "c"]


async def test_interrupt_unfinished_marks_only_recordings_in_progress(database: Database) -> None:
    store = RecordingStore(database)
    sid = await _session(database)
    args = ("worker", "opus", "mp4", "r/a.mp4")
    done = await store.add(sid, "a", "audio", *args)
    done = await store.finish(done.id, size_bytes=3, sha256=DIGEST, duration_s=0.5)
    going = await store.add(sid, "b", "audio", *args)

    (cut,) = await store.interrupt_unfinished()

    assert (cut.id, cut.status, cut.error) == (
        going.id,
        RecordingStatus.INTERRUPTED,
        "the server stopped while recording",
    )
    assert cut.ended_at is not None and cut.ended_at >= going.started_at
    assert await store.get(going.id) == cut
    assert await store.get(done.id) == done
    assert await store.interrupt_unfinished() == []


async def test_retention_round_trip(database: Database) -> None:
    retention = RetentionStore(database)
    assert await retention.get() is None
    assert await retention.cutoff() is None

    assert await retention.set(30, actor="admin") == 30
    assert await retention.get() == 30
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert await retention.cutoff(now=now) == now - timedelta(days=30)
    # A second organisation has its own period.
    await retention.set(7, "acme")
    assert (await retention.get("acme"), await retention.get()) == (7, 30)
    assert await retention.set(None) is None
    assert await retention.get() is None
    assert await retention.get("acme") == 7


@pytest.mark.parametrize("days", [-1, 0, 36_501, True, 1.5])
async def test_bad_retention_is_refused(database: Database, days: object) -> None:
    retention = RetentionStore(database)
    await retention.set(90)
    with pytest.raises(ValueError, match="retention must be a whole number of days"):
        await retention.set(days)  # type: ignore[arg-type]
    assert await retention.get() == 90
    with pytest.raises(ValueError, match="organisation"):
        await retention.set(1, "")
