"""The recordings index: one row per recorded track of a session, pointing at its media file.

The server writes the files (under its data dir) and tells this store when a track starts and how
it ended; retention asks it which recordings have outlived their keep period.
"""

from __future__ import annotations

import builtins
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import TypeVar

from sqlalchemy import delete, func, select, update

from sessions.db import Database
from sessions.errors import NotFoundError
from sessions.models import (
    CODEC_MAX,
    CONTAINER_MAX,
    PATH_MAX,
    TRACK_MAX,
    USERNAME_MAX,
    Recording,
    RecordingKind,
    RecordingStatus,
    utcnow,
)
from sessions.models import Session as SessionRow

__all__ = ["RecordingRecord", "RecordingStore"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    """A stored recording; ``path`` is relative to the data dir."""

    id: str
    session_id: str
    track: str
    kind: RecordingKind
    participant: str
    codec: str
    container: str
    path: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    size_bytes: int | None
    sha256: str | None
    status: RecordingStatus
    error: str | None

    @classmethod
    def _from_row(cls, row: Recording) -> RecordingRecord:
        return cls(
            id=row.id,
            session_id=row.session_id,
            track=row.track,
            kind=RecordingKind(row.kind),
            participant=row.participant,
            codec=row.codec,
            container=row.container,
            path=row.path,
            started_at=row.started_at,
            ended_at=row.ended_at,
            duration_s=row.duration_s,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            status=RecordingStatus(row.status),
            error=row.error,
        )


def _check_text(name: str, value: str, max_len: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ValueError(f"{name} must be 1-{max_len} characters, got {value!r}")


def _check_path(path: str) -> None:
    _check_text("path", path, PATH_MAX)
    pure = PurePosixPath(path)
    if "\\" in path or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(
            f"recording path {path!r} must be relative to the data dir, with '/' separators and "
            "no '..'"
        )


_Choice = TypeVar("_Choice", RecordingKind, RecordingStatus)


def _choice(kind: type[_Choice], value: _Choice | str) -> _Choice:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ValueError(f"unknown {kind.__name__} {value!r}; use one of: {known}") from None


class RecordingStore:
    """Recordings of sessions stored in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        session_id: str,
        track: str,
        kind: RecordingKind | str,
        participant: str,
        codec: str,
        container: str,
        path: str,
        *,
        started_at: datetime | None = None,
    ) -> RecordingRecord:
        """Register a track that is being recorded now (status ``recording``) and return it.

        Raises :class:`NotFoundError` for an unknown session and :class:`ValueError` for a bad
        kind, an empty or too long field, or a path that is absolute or climbs out with ``..``.
        """
        kind = _choice(RecordingKind, kind)
        _check_text("track", track, TRACK_MAX)
        _check_text("participant", participant, USERNAME_MAX)
        _check_text("codec", codec, CODEC_MAX)
        _check_text("container", container, CONTAINER_MAX)
        _check_path(path)
        row = Recording(
            session_id=session_id,
            track=track,
            kind=kind,
            participant=participant,
            codec=codec,
            container=container,
            path=path,
            started_at=started_at or utcnow(),
            status=RecordingStatus.RECORDING,
        )
        async with self._db.session() as session, session.begin():
            if await session.get(SessionRow, session_id) is None:
                raise NotFoundError("session", session_id)
            session.add(row)
        return RecordingRecord._from_row(row)

    async def finish(
        self,
        recording_id: str,
        *,
        size_bytes: int | None,
        sha256: str | None,
        duration_s: float | None,
        status: RecordingStatus | str = RecordingStatus.COMPLETE,
        error: str | None = None,
        ended_at: datetime | None = None,
    ) -> RecordingRecord:
        """Record how a track ended: its file's size and SHA-256, its duration and final status.

        A recording is finished once: finishing it again raises :class:`ValueError`, as do a
        status of ``recording``, a negative size or duration and a malformed digest (64 lowercase
        hex digits). :class:`NotFoundError` for an unknown recording.
        """
        status = _choice(RecordingStatus, status)
        if status is RecordingStatus.RECORDING:
            raise ValueError("finish() needs a final status: complete, interrupted or failed")
        if size_bytes is not None and (
            isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0
        ):
            raise ValueError(f"size_bytes must be a non-negative int, got {size_bytes!r}")
        if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
            raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
        if sha256 is not None and not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        async with self._db.session() as session, session.begin():
            row = await session.get(Recording, recording_id, with_for_update=True)
            if row is None:
                raise NotFoundError("recording", recording_id)
            if row.status is not RecordingStatus.RECORDING:
                raise ValueError(
                    f"recording {recording_id!r} was already finished ({row.status.value})"
                )
            row.size_bytes, row.sha256, row.duration_s = size_bytes, sha256, duration_s
            row.status, row.error, row.ended_at = status, error, ended_at or utcnow()
            record = RecordingRecord._from_row(row)
        return record

    async def interrupt_unfinished(
        self, error: str = "the server stopped while recording"
    ) -> builtins.list[RecordingRecord]:
        """Mark every recording still ``recording`` as ``interrupted``; return them, oldest first.

        For the server's start, next to :meth:`EventLog.end_abandoned_sessions`: a recording left
        open then was cut off by the last run (size and digest stay unknown; its file may hold
        the fragments written before).
        """
        async with self._db.session() as session, session.begin():
            rows = (
                await session.scalars(
                    update(Recording)
                    .where(Recording.status == RecordingStatus.RECORDING)
                    .values(status=RecordingStatus.INTERRUPTED, ended_at=utcnow(), error=error)
                    .returning(Recording),
                    execution_options={"populate_existing": True},
                )
            ).all()
            records = [RecordingRecord._from_row(row) for row in rows]
        return sorted(records, key=lambda record: (record.started_at, record.id))

    async def get(self, recording_id: str) -> RecordingRecord | None:
        """The recording with this id, or ``None``."""
        async with self._db.session() as session:
            row = await session.get(Recording, recording_id)
            return None if row is None else RecordingRecord._from_row(row)

    async def list_for_session(self, session_id: str) -> builtins.list[RecordingRecord]:
        """Every recording of the session, in the order they started."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Recording)
                .where(Recording.session_id == session_id)
                .order_by(Recording.started_at, Recording.id)
            )
            return [RecordingRecord._from_row(row) for row in rows]

    async def expired(self, before: datetime) -> builtins.list[RecordingRecord]:
        """Finished recordings that ended (or, with no end time, started) before ``before``.

        Recordings still being written are never expired. Oldest first.
        """
        if before.tzinfo is None or before.utcoffset() is None:
            raise ValueError("before must be a tz-aware datetime")
        end = func.coalesce(Recording.ended_at, Recording.started_at)
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Recording)
                .where(Recording.status != RecordingStatus.RECORDING, end < before)
                .order_by(end, Recording.id)
            )
            return [RecordingRecord._from_row(row) for row in rows]

    async def delete(self, recording_id: str) -> RecordingRecord:
        """Remove the recording's row and return it (the caller deletes its file)."""
        async with self._db.session() as session, session.begin():
            row = await session.get(Recording, recording_id)
            if row is None:
                raise NotFoundError("recording", recording_id)
            record = RecordingRecord._from_row(row)
            await session.execute(delete(Recording).where(Recording.id == recording_id))
        return record
