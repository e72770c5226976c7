"""Finding recorded sessions: a filtered, paged list, and one session's facts.

Read-only queries over ``sessions`` and ``events`` (participants are the actors of ``join``
events), for the trainers' review. Paging is by a cursor on ``(started_at, id)``, newest first,
so a page never repeats or skips a session while new ones start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from sessions.db import Database
from sessions.errors import NotFoundError
from sessions.models import Event, Recording
from sessions.models import Session as SessionRow

__all__ = ["MAX_SESSIONS_PAGE", "SessionCatalog", "SessionSummary"]

MAX_SESSIONS_PAGE = 200


@dataclass(frozen=True, slots=True)
class SessionSummary:
    id: str
    room: str
    started_at: datetime
    ended_at: datetime | None
    participants: tuple[str, ...]
    events: int
    event_types: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "live": self.ended_at is None,
            "participants": list(self.participants),
            "events": self.events,
            "event_types": self.event_types,
        }


class SessionCatalog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self,
        *,
        room: str | None = None,
        participant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        has_recording: bool | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[SessionSummary]:
        """Sessions newest first. ``since``/``until`` bound the start time; ``before`` is the
        cursor (``started_at``, ``id``) of the last session of the previous page."""
        if not 1 <= limit <= MAX_SESSIONS_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_SESSIONS_PAGE}, got {limit}")
        query = select(SessionRow)
        if room is not None:
            query = query.where(SessionRow.room == room)
        if participant is not None:
            query = query.where(
                exists().where(
                    and_(
                        Event.session_id == SessionRow.id,
                        Event.type == "join",
                        Event.actor == participant,
                    )
                )
            )
        if has_recording is not None:
            recorded = exists().where(Recording.session_id == SessionRow.id)
            query = query.where(recorded if has_recording else ~recorded)
        if since is not None:
            query = query.where(SessionRow.started_at >= since)
        if until is not None:
            query = query.where(SessionRow.started_at < until)
        if before is not None:
            at, session_id = before
            query = query.where(
                or_(
                    SessionRow.started_at < at,
                    and_(SessionRow.started_at == at, SessionRow.id < session_id),
                )
            )
        query = query.order_by(SessionRow.started_at.desc(), SessionRow.id.desc()).limit(limit)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
            return [await self._summary(session, row) for row in rows]

    async def get(self, session_id: str) -> SessionSummary:
        async with self._db.session() as session:
            row = await session.get(SessionRow, session_id)
            if row is None:
                raise NotFoundError("session", session_id)
            return await self._summary(session, row)

    @staticmethod
    async def _summary(session: Any, row: SessionRow) -> SessionSummary:
        counts = (
            await session.execute(
                select(Event.type, func.count())
                .where(Event.session_id == row.id)
                .group_by(Event.type)
            )
        ).all()
        people = (
            await session.scalars(
                select(Event.actor)
                .where(Event.session_id == row.id, Event.type == "join", Event.actor.is_not(None))
                .distinct()
            )
        ).all()
        types = {str(kind): int(n) for kind, n in counts}
        return SessionSummary(
            id=row.id,
            room=row.room,
            started_at=row.started_at,
            ended_at=row.ended_at,
            participants=tuple(sorted(str(p) for p in people)),
            events=sum(types.values()),
            event_types=types,
        )
