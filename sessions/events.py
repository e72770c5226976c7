"""Live sessions of a room and their append-only event log.

Every event gets the next sequence number of its session (1, 2, 3 …) inside the transaction that
stores it, and :meth:`EventLog.append` returns only after that transaction has committed: an event
that was acknowledged is durable. Appends to one session are serialized in-process by an
:class:`asyncio.Lock` per session; on PostgreSQL the session row is also locked (``FOR UPDATE``) so
other processes queue behind it, and the unique ``(session_id, seq)`` constraint catches anything
that still races (retried a few times). Events are never updated, and deleted only by
:meth:`EventLog.purge_session` (an admin erasing a session), which leaves an audit event behind.
:meth:`EventLog.remove_recordings` drops rows of the recordings index together with the event that
records why, in one transaction (retention).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from sessions.db import Database
from sessions.errors import NotFoundError, SessionEndedError, SessionLiveError, StorageError
from sessions.models import (
    END_REASON_MAX,
    EVENT_TYPE_MAX,
    ROOM_MAX,
    USERNAME_MAX,
    Event,
    Recording,
    utcnow,
)
from sessions.models import Session as SessionRow
from sessions.recordings import RecordingRecord

__all__ = [
    "MAX_PAGE",
    "MAX_PAYLOAD_BYTES",
    "EventLog",
    "EventRecord",
    "PurgeResult",
    "SessionRecord",
]

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 64 * 1024
"""Largest event payload, measured as compact UTF-8 JSON."""

MAX_PAGE = 1000
"""Most events one call to :meth:`EventLog.events` returns."""

_APPEND_ATTEMPTS = 5

MAX_REASON = 500
"""Longest reason an erasure may give."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A live session of a room; ``ended_at`` is ``None`` while it runs.

    ``end_reason`` says why it ended (``"closed"``, ``"server_restart"`` …) and
    ``ended_abnormally`` whether that was a crash or restart rather than the room closing.
    ``previous_session_id`` names the session this one continues; ``recording_consent`` is the
    worker's current consent to recording (``None``: not asked yet).
    """

    id: str
    room: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None = None
    ended_abnormally: bool = False
    previous_session_id: str | None = None
    recording_consent: bool | None = None

    @classmethod
    def _from_row(cls, row: SessionRow) -> SessionRecord:
        return cls(
            id=row.id,
            room=row.room,
            started_at=row.started_at,
            ended_at=row.ended_at,
            end_reason=row.end_reason,
            ended_abnormally=row.ended_abnormally,
            previous_session_id=row.previous_session_id,
            recording_consent=row.recording_consent,
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event. ``media_pts`` is the 90 kHz video pts it refers to, if any."""

    session_id: str
    seq: int
    wall_time: datetime
    media_pts: int | None
    actor: str | None
    type: str
    payload: dict[str, Any]

    @classmethod
    def _from_row(cls, row: Event) -> EventRecord:
        return cls(
            session_id=row.session_id,
            seq=row.seq,
            wall_time=row.wall_time,
            media_pts=row.media_pts,
            actor=row.actor,
            type=row.type,
            payload=row.payload,
        )


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What :meth:`EventLog.purge_session` removed, and the audit event it left in its place."""

    audit: EventRecord
    events_removed: int
    recordings: tuple[RecordingRecord, ...]
    """The index rows removed; the caller deletes their files (after the commit)."""


def _check_payload(payload: object) -> dict[str, Any]:
    """Return a JSON round-tripped copy of ``payload`` or raise :class:`ValueError`."""
    if not isinstance(payload, dict):
        raise ValueError(
            f"event payload must be a JSON object (dict), got {type(payload).__name__}"
        )
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event payload is not serializable as JSON: {exc}") from exc
    size = len(text.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"event payload is {size} bytes as JSON, more than the {MAX_PAYLOAD_BYTES} allowed; "
            "store large data elsewhere and put a reference in the event"
        )
    copy: dict[str, Any] = json.loads(text)
    return copy


def _check_text(name: str, value: str, max_len: int) -> None:
    if not value or len(value) > max_len:
        raise ValueError(f"{name} must be 1-{max_len} characters, got {value!r}")


class EventLog:
    """Sessions of rooms and their event logs, stored in ``db``.

    Use one instance per process and database: the per-session locks that keep appends in order
    live in the instance (other instances are still safe, through the database, but slower).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def open_session(
        self, room: str, previous_session_id: str | None = None
    ) -> SessionRecord:
        """Start a new session of ``room`` and return it.

        ``previous_session_id`` names the session this one continues (one that ended abnormally,
        e.g. with the server's restart); :class:`NotFoundError` if there is no such session.
        """
        _check_text("room", room, ROOM_MAX)
        row = SessionRow(room=room, started_at=utcnow(), previous_session_id=previous_session_id)
        async with self._db.session() as session, session.begin():
            if (
                previous_session_id is not None
                and await session.get(SessionRow, previous_session_id) is None
            ):
                raise NotFoundError("session", previous_session_id)
            session.add(row)
        logger.info("session opened", extra={"session_id": row.id, "room": room})
        return SessionRecord._from_row(row)

    async def close_session(
        self, session_id: str, reason: str = "closed", abnormal: bool = False
    ) -> SessionRecord:
        """Mark the session ended with ``reason`` (the first close wins) and return it."""
        _check_text("end reason", reason, END_REASON_MAX)
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.ended_at.is_(None))
                .values(ended_at=utcnow(), end_reason=reason, ended_abnormally=abnormal)
            )
            row = await session.get(SessionRow, session_id, populate_existing=True)
            if row is None:
                raise NotFoundError("session", session_id)
            record = SessionRecord._from_row(row)
        logger.info("session closed (%s)", record.end_reason, extra={"session_id": session_id})
        return record

    async def end_abandoned_sessions(self, reason: str = "server_restart") -> list[SessionRecord]:
        """End, as abnormal with ``reason``, every session still open; return them, oldest first.

        The server calls this when it starts, before it accepts connections: a session left open
        then belongs to a process that died. (With several server processes on one database, each
        would end the others' live sessions: this assumes one process owns the database.)
        """
        _check_text("end reason", reason, END_REASON_MAX)
        async with self._db.session() as session, session.begin():
            rows = (
                await session.scalars(
                    update(SessionRow)
                    .where(SessionRow.ended_at.is_(None))
                    .values(ended_at=utcnow(), end_reason=reason, ended_abnormally=True)
                    .returning(SessionRow),
                    execution_options={"populate_existing": True},
                )
            ).all()
            records = sorted(
                (SessionRecord._from_row(row) for row in rows),
                key=lambda record: (record.started_at, record.id),
            )
        for record in records:
            logger.warning(
                "session %s of room %s was still open: ended (%s)",
                record.id,
                record.room,
                reason,
                extra={"session_id": record.id},
            )
        return records

    async def set_recording_consent(self, session_id: str, consent: bool | None) -> SessionRecord:
        """Store the worker's current consent to recording the session; return the session."""
        async with self._db.session() as session, session.begin():
            row = await session.get(SessionRow, session_id)
            if row is None:
                raise NotFoundError("session", session_id)
            row.recording_consent = consent
            record = SessionRecord._from_row(row)
        return record

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session with this id, or ``None``."""
        async with self._db.session() as session:
            row = await session.get(SessionRow, session_id)
            return None if row is None else SessionRecord._from_row(row)

    async def sessions_for_room(self, room: str) -> list[SessionRecord]:
        """Every session of ``room``, oldest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(SessionRow)
                .where(SessionRow.room == room)
                .order_by(SessionRow.started_at, SessionRow.id)
            )
            return [SessionRecord._from_row(row) for row in rows]

    async def append(
        self,
        session_id: str,
        type: str,
        payload: dict[str, Any],
        *,
        actor: str | None = None,
        media_pts: int | None = None,
        allow_ended: bool = False,
    ) -> EventRecord:
        """Store one event with the next ``seq`` of its session; return it once committed.

        ``allow_ended``: add it even if the session has ended (system records about a closed
        session, such as retention or an import; never what a participant sends).

        Raises :class:`ValueError` for a bad payload (not a dict, not JSON, over
        :data:`MAX_PAYLOAD_BYTES`), type, actor or pts, :class:`NotFoundError` for an unknown
        session and :class:`SessionEndedError` for a session that has ended.
        """
        _check_text("event type", type, EVENT_TYPE_MAX)
        if actor is not None:
            _check_text("actor", actor, USERNAME_MAX)
        if media_pts is not None and (
            isinstance(media_pts, bool) or not isinstance(media_pts, int) or media_pts < 0
        ):
            raise ValueError(
                f"media_pts must be a non-negative int (90 kHz ticks), got {media_pts!r}"
            )
        clean = _check_payload(payload)

        conflict: IntegrityError | None = None
        async with self._lock(session_id):
            for attempt in range(1, _APPEND_ATTEMPTS + 1):
                try:
                    record = await self._append_once(
                        session_id, type, clean, actor, media_pts, allow_ended
                    )
                except IntegrityError as exc:
                    conflict = exc
                    # Another writer (another process, another EventLog) took this seq first.
                    logger.warning(
                        "seq conflict on append (attempt %d of %d): %s",
                        attempt,
                        _APPEND_ATTEMPTS,
                        exc.orig,
                        extra={"session_id": session_id},
                    )
                    continue
                return record
        raise StorageError(
            f"could not append to session {session_id!r} after {_APPEND_ATTEMPTS} attempts: "
            "other writers kept taking the same sequence number; retry, and check that a single "
            "EventLog per process writes to this session"
        ) from conflict

    async def _append_once(
        self,
        session_id: str,
        type: str,
        payload: dict[str, Any],
        actor: str | None,
        media_pts: int | None,
        allow_ended: bool = False,
    ) -> EventRecord:
        wall_time = utcnow()
        async with self._db.session() as session, session.begin():
            # FOR UPDATE queues writers of other processes on PostgreSQL; SQLite omits it.
            found = (
                await session.execute(
                    select(SessionRow.id, SessionRow.ended_at)
                    .where(SessionRow.id == session_id)
                    .with_for_update()
                )
            ).first()
            if found is None:
                raise NotFoundError("session", session_id)
            if found.ended_at is not None and not allow_ended:
                raise SessionEndedError(session_id)
            # One statement reads the last seq and inserts the next, so on SQLite (no FOR UPDATE)
            # the read happens under the write lock the INSERT holds.
            seq = await session.scalar(
                insert(Event)
                .values(
                    session_id=session_id,
                    seq=self._next_seq(session_id),
                    wall_time=wall_time,
                    media_pts=media_pts,
                    actor=actor,
                    type=type,
                    payload=payload,
                )
                .returning(Event.seq)
            )
        if seq is None:  # pragma: no cover - INSERT … RETURNING always yields the row
            raise StorageError(f"the database returned no seq for the event of {session_id!r}")
        return EventRecord(session_id, seq, wall_time, media_pts, actor, type, payload)

    @staticmethod
    def _next_seq(session_id: str) -> ColumnElement[int]:
        """SQL for the next seq of the session: one past the highest stored, or 1."""
        return (
            select(func.coalesce(func.max(Event.seq), 0) + 1)
            .where(Event.session_id == session_id)
            .scalar_subquery()
        )

    async def events(
        self, session_id: str, after_seq: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        """Up to ``limit`` events of the session with ``seq > after_seq``, in order.

        Page with ``after_seq=<seq of the last event received>``. :class:`NotFoundError` if the
        session does not exist.
        """
        if after_seq < 0:
            raise ValueError(f"after_seq must be >= 0, got {after_seq}")
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(Event)
                    .where(Event.session_id == session_id, Event.seq > after_seq)
                    .order_by(Event.seq)
                    .limit(limit)
                )
            ).all()
            if not rows and await session.get(SessionRow, session_id) is None:
                raise NotFoundError("session", session_id)
            return [EventRecord._from_row(row) for row in rows]

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    async def purge_session(
        self,
        session_id: str,
        *,
        actor: str,
        reason: str | None = None,
        bytes_removed: int = 0,
    ) -> PurgeResult:
        """Erase an ended session's events and recordings index rows, in one transaction, and
        leave one ``session_deleted`` event (by, at, events_removed, recordings_removed,
        bytes_removed, reason) so that the erasure stays visible. The session row stays.

        The audit event continues the session's numbering (its ``seq`` is one past the last one
        removed). ``bytes_removed`` is what the caller is about to delete on disk; it deletes the
        files of the returned rows after this returns. The only way events are ever deleted.

        :class:`NotFoundError` for an unknown session, :class:`SessionLiveError` for one that
        has not ended, :class:`ValueError` for a bad actor, reason or byte count.
        """
        _check_text("actor", actor, USERNAME_MAX)
        if reason is not None and len(reason) > MAX_REASON:
            raise ValueError(f"reason must be at most {MAX_REASON} characters")
        if (
            isinstance(bytes_removed, bool)
            or not isinstance(bytes_removed, int)
            or bytes_removed < 0
        ):
            raise ValueError(f"bytes_removed must be a non-negative int, got {bytes_removed!r}")
        async with self._lock(session_id):
            wall_time = utcnow()
            async with self._db.session() as session, session.begin():
                row = await session.get(SessionRow, session_id, with_for_update=True)
                if row is None:
                    raise NotFoundError("session", session_id)
                if row.ended_at is None:
                    raise SessionLiveError(session_id)
                recordings = (
                    await session.scalars(
                        select(Recording)
                        .where(Recording.session_id == session_id)
                        .order_by(Recording.started_at, Recording.id)
                    )
                ).all()
                removed = tuple(RecordingRecord._from_row(r) for r in recordings)
                await session.execute(delete(Recording).where(Recording.session_id == session_id))
                count, last = (
                    await session.execute(
                        select(func.count(), func.coalesce(func.max(Event.seq), 0)).where(
                            Event.session_id == session_id
                        )
                    )
                ).one()
                await session.execute(delete(Event).where(Event.session_id == session_id))
                payload: dict[str, Any] = {
                    "by": actor,
                    "at": wall_time.isoformat(),
                    "events_removed": int(count),
                    "recordings_removed": len(removed),
                    "bytes_removed": bytes_removed,
                    "reason": reason,
                }
                audit = Event(
                    session_id=session_id,
                    seq=int(last) + 1,
                    wall_time=wall_time,
                    media_pts=None,
                    actor=actor,
                    type="session_deleted",
                    payload=payload,
                )
                session.add(audit)
            record = EventRecord._from_row(audit)
        logger.warning(
            "session erased by %s: %d event(s), %d recording(s), %d bytes",
            actor,
            count,
            len(removed),
            bytes_removed,
            extra={"session_id": session_id},
        )
        return PurgeResult(record, int(count), removed)

    async def remove_recordings(
        self,
        session_id: str,
        recording_ids: list[str],
        type: str,
        payload: dict[str, Any],
        *,
        actor: str | None = None,
    ) -> tuple[EventRecord, list[RecordingRecord]]:
        """Delete these rows of the session's recordings index and append the event that says
        why (e.g. ``retention``), in one transaction; return the event and the rows removed
        (ids already gone are skipped). The caller deletes the files after this returns.
        """
        _check_text("event type", type, EVENT_TYPE_MAX)
        if actor is not None:
            _check_text("actor", actor, USERNAME_MAX)
        clean = _check_payload(payload)
        async with self._lock(session_id):
            wall_time = utcnow()
            async with self._db.session() as session, session.begin():
                found = await session.scalar(
                    select(SessionRow.id).where(SessionRow.id == session_id).with_for_update()
                )
                if found is None:
                    raise NotFoundError("session", session_id)
                rows = (
                    await session.scalars(
                        delete(Recording)
                        .where(Recording.session_id == session_id, Recording.id.in_(recording_ids))
                        .returning(Recording)
                    )
                ).all()
                removed = sorted(
                    (RecordingRecord._from_row(r) for r in rows),
                    key=lambda r: (r.started_at, r.id),
                )
                seq = await session.scalar(
                    insert(Event)
                    .values(
                        session_id=session_id,
                        seq=self._next_seq(session_id),
                        wall_time=wall_time,
                        media_pts=None,
                        actor=actor,
                        type=type,
                        payload=clean,
                    )
                    .returning(Event.seq)
                )
            if seq is None:  # pragma: no cover - INSERT … RETURNING always yields the row
                raise StorageError(f"the database returned no seq for the event of {session_id!r}")
        return EventRecord(session_id, seq, wall_time, None, actor, type, clean), removed
