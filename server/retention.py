"""Removing recorded media: the retention sweep (CLI and a task of the running server) and the
admin's erasure of a whole session. Files are only ever touched inside ``<data_dir>/recordings/``.

Retention deletes expired recordings outright: their files and their rows of the recordings index
go, and a ``retention`` event in the session's log keeps what was deleted ({deleted: [...],
bytes}). Events, overlays and the session itself stay. The database changes are committed before
any file is deleted, so a crash in between leaves orphan files (deleted again by an erasure of the
session), never an index row pointing at nothing.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sessions import EventLog, RecordingRecord, RecordingStore, RetentionStore
from sessions.models import utcnow

__all__ = [
    "ErasureReport",
    "ExpiredRecording",
    "RetentionReport",
    "RetentionTask",
    "STORED",
    "apply_retention",
    "describe",
    "erase_session",
    "recording_file",
    "recordings_root",
]

logger = logging.getLogger(__name__)


class _Stored(enum.Enum):
    STORED = "stored"


STORED = _Stored.STORED
"""Apply the retention period stored in the database (the default of :func:`apply_retention`)."""


def recordings_root(data_dir: Path) -> Path:
    return (data_dir / "recordings").resolve()


def recording_file(data_dir: Path, relative: str, *, follow_links: bool = True) -> Path | None:
    """The file a recordings index row points at, or ``None`` when it lies outside
    ``<data_dir>/recordings/`` (a tampered row): never open or delete that.

    ``follow_links``: resolve a symlink to its target (to read it); otherwise only the folders
    are resolved, so that deleting removes the link itself, never what it points at.
    """
    root = recordings_root(data_dir)
    raw = data_dir / relative
    if follow_links:
        path = raw.resolve()
    elif raw.name in ("", ".", ".."):
        return None
    else:
        path = raw.parent.resolve() / raw.name
    return path if path != root and path.is_relative_to(root) else None


def _size(path: Path | None) -> int | None:
    try:
        return None if path is None else path.lstat().st_size  # a link: the link, not its target
    except OSError:
        return None


def _unlink(paths: Iterable[Path], session_id: str) -> list[str]:
    """Delete the files; return the ones that could not be deleted (logged)."""
    failed = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            failed.append(path.name)
            logger.error("could not delete %s: %s", path, exc, extra={"session_id": session_id})
    return failed


@dataclass(frozen=True, slots=True)
class ExpiredRecording:
    recording: RecordingRecord
    age: timedelta
    size_bytes: int
    """The file's size on disk (0 when it is missing)."""
    path: Path | None
    """``None``: the row points outside the recordings folder; the row goes, no file is touched."""

    def to_dict(self) -> dict[str, Any]:
        r = self.recording
        return {
            "recording_id": r.id,
            "track": r.track,
            "participant": r.participant,
            "size_bytes": self.size_bytes,
            "sha256": r.sha256,
            "ended_at": None if r.ended_at is None else r.ended_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class RetentionReport:
    days: int | None
    """The retention period applied; ``None``: recordings are kept forever (nothing deleted)."""
    cutoff: datetime | None
    dry_run: bool
    expired: tuple[ExpiredRecording, ...] = ()
    """Deleted (or, in a dry run, would be), oldest first."""
    failed_files: tuple[str, ...] = field(default=())

    @property
    def bytes(self) -> int:
        return sum(e.size_bytes for e in self.expired)


def _measure(
    data_dir: Path, records: list[RecordingRecord], now: datetime
) -> list[ExpiredRecording]:
    out = []
    for r in records:
        path = recording_file(data_dir, r.path, follow_links=False)
        out.append(ExpiredRecording(r, now - (r.ended_at or r.started_at), _size(path) or 0, path))
    return out


async def apply_retention(
    *,
    events: EventLog,
    recordings: RecordingStore,
    retention: RetentionStore,
    data_dir: Path,
    days: int | None | Literal[_Stored.STORED] = STORED,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetentionReport:
    """Delete every recording that ended more than the retention period ago (``days``, or the
    stored period when not given): per session, its rows go and a ``retention`` event is
    appended in one transaction, then its files are deleted. ``dry_run`` only reports."""
    if days is STORED:
        days = await retention.get()
    now = now or utcnow()
    if days is None:
        return RetentionReport(None, None, dry_run)
    cutoff = now - timedelta(days=days)
    records = await recordings.expired(cutoff)
    expired = await asyncio.to_thread(_measure, data_dir, records, now)
    if dry_run:
        return RetentionReport(days, cutoff, True, tuple(expired))
    by_session: dict[str, list[ExpiredRecording]] = {}
    for item in expired:
        by_session.setdefault(item.recording.session_id, []).append(item)
    done: list[ExpiredRecording] = []
    failed: list[str] = []
    for session_id, items in by_session.items():
        payload = {
            "deleted": [i.to_dict() for i in items],
            "bytes": sum(i.size_bytes for i in items),
            "retention_days": days,
        }
        try:
            _, removed = await events.remove_recordings(
                session_id, [i.recording.id for i in items], "retention", payload
            )
        except Exception:
            logger.exception("retention failed", extra={"session_id": session_id})
            continue
        gone = {r.id for r in removed}
        kept = [i for i in items if i.recording.id in gone]
        for i in kept:
            if i.path is None:
                logger.warning(
                    "recording %s pointed outside the recordings folder (%r): row removed, "
                    "no file touched",
                    i.recording.id,
                    i.recording.path,
                    extra={"session_id": session_id},
                )
        paths = [i.path for i in kept if i.path is not None]
        failed += await asyncio.to_thread(_unlink, paths, session_id)
        done += kept
        logger.info(
            "retention deleted %d recording(s), %d bytes",
            len(kept),
            payload["bytes"],
            extra={"session_id": session_id},
        )
    return RetentionReport(days, cutoff, False, tuple(done), tuple(failed))


@dataclass(frozen=True, slots=True)
class ErasureReport:
    session_id: str
    events_removed: int
    recordings_removed: int
    bytes_removed: int
    audit_seq: int
    failed_files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "events_removed": self.events_removed,
            "recordings_removed": self.recordings_removed,
            "bytes_removed": self.bytes_removed,
            "audit_seq": self.audit_seq,
            "failed_files": list(self.failed_files),
        }


def _session_files(data_dir: Path, session_id: str, rows: list[RecordingRecord]) -> list[Path]:
    """Every file to delete with the session: its indexed recordings and whatever else (overlays,
    unindexed tracks) lies in its folder; only paths inside the recordings folder."""
    files = {
        p for r in rows if (p := recording_file(data_dir, r.path, follow_links=False)) is not None
    }
    folder = recording_file(data_dir, f"recordings/{session_id}")
    if folder is not None and folder.is_dir():
        files |= {p for p in folder.iterdir() if p.is_file() and not p.is_symlink()}
    if all(c in "0123456789abcdef" for c in session_id):  # the session's digital twin, if any
        twins = data_dir / "twins"
        files |= {twins / f"{session_id}.{ext}" for ext in ("glb", "ply", "json")}
    return sorted(f for f in files if f.is_file() or f.is_symlink())  # is_file follows links


def _remove_files(data_dir: Path, session_id: str, files: list[Path]) -> list[str]:
    failed = _unlink(files, session_id)
    folder = recording_file(data_dir, f"recordings/{session_id}")
    if folder is not None and folder.is_dir() and not any(folder.iterdir()):
        try:
            folder.rmdir()
        except OSError as exc:
            logger.warning("could not remove %s: %s", folder, exc, extra={"session_id": session_id})
    return failed


async def erase_session(
    *,
    events: EventLog,
    recordings: RecordingStore,
    data_dir: Path,
    session_id: str,
    actor: str,
    reason: str | None = None,
) -> ErasureReport:
    """An admin's erasure of an ended session: events and index rows go in one transaction that
    leaves a ``session_deleted`` audit event, then the files (failures are logged and reported).

    Raises what :meth:`EventLog.purge_session` raises (not found, live).
    """
    rows = await recordings.list_for_session(session_id)
    files = await asyncio.to_thread(_session_files, data_dir, session_id, rows)
    size = sum(await asyncio.to_thread(lambda: [_size(f) or 0 for f in files]))
    result = await events.purge_session(session_id, actor=actor, reason=reason, bytes_removed=size)
    # Rows added between the listing and the purge (none for an ended session) go as well.
    late = [r for r in result.recordings if r.id not in {row.id for row in rows}]
    files += [
        p for r in late if (p := recording_file(data_dir, r.path, follow_links=False)) is not None
    ]
    failed = await asyncio.to_thread(_remove_files, data_dir, session_id, files)
    return ErasureReport(
        session_id,
        result.events_removed,
        len(result.recordings),
        size,
        result.audit.seq,
        tuple(failed),
    )


class RetentionTask:
    """Runs ``sweep`` now and then every ``interval_s`` seconds until :meth:`aclose`."""

    def __init__(self, sweep: Callable[[], Awaitable[RetentionReport]], interval_s: float) -> None:
        self._sweep = sweep
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def _run(self) -> None:
        while True:
            try:
                report = await self._sweep()
                if report.expired:
                    logger.info(
                        "retention (%s days): deleted %d recording(s), %d bytes",
                        report.days,
                        len(report.expired),
                        report.bytes,
                    )
            except Exception:
                logger.exception("the retention sweep failed; retrying in %.0f s", self._interval_s)
            self.runs += 1
            await asyncio.sleep(self._interval_s)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():  # pragma: no cover - we were cancelled ourselves
                raise


def describe(item: ExpiredRecording) -> str:
    """One line of the CLI's report: session, track, size, age."""
    r = item.recording
    return f"{r.session_id}  {r.track:<28} {_human(item.size_bytes):>9}  {item.age.days} days old"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover
