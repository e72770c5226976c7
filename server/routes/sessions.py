"""Recorded sessions over REST: the list (filters, cursor paging), one session, its timeline."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from server.deps import AppServices, CurrentUser
from sessions import NotFoundError
from sessions.catalog import MAX_SESSIONS_PAGE
from sessions.events import MAX_PAGE

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
REVIEWERS = ("mentor", "trainer", "admin")


def _cursor(value: str | None) -> tuple[datetime, str] | None:
    if value is None:
        return None
    try:
        at, session_id = base64.urlsafe_b64decode(value.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), session_id
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "bad cursor: pass the `next` value of the previous page as it is",
        ) from None


def _next(started_at: datetime, session_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_at.isoformat()}|{session_id}".encode()).decode()


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{name} needs a time zone, e.g. 2026-11-25T09:00:00Z",
        )
    return value


@router.get("")
async def list_sessions(
    services: AppServices,
    user: CurrentUser,
    room: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    participant: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SESSIONS_PAGE)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Sessions, newest first. Workers see only the sessions they took part in."""
    if user.role not in REVIEWERS:
        if participant not in (None, user.username):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "workers see only their own sessions")
        participant = user.username
    page = await services.catalog.list(
        room=room,
        participant=participant,
        since=_aware(since, "since"),
        until=_aware(until, "until"),
        before=_cursor(cursor),
        limit=limit,
    )
    last = page[-1] if len(page) == limit else None
    return {
        "sessions": [s.to_dict() for s in page],
        "next": None if last is None else _next(last.started_at, last.id),
    }


@router.get("/{session_id}")
async def get_session(session_id: SessionId, services: AppServices, user: CurrentUser) -> Any:
    try:
        summary = await services.catalog.get(session_id)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session") from None
    if user.role not in REVIEWERS and user.username not in summary.participants:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
    return summary.to_dict()


@router.get("/{session_id}/events")
async def session_events(
    session_id: SessionId,
    services: AppServices,
    user: CurrentUser,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
    type: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
) -> dict[str, Any]:
    """The timeline, in order, a page at a time (``after_seq`` = the last ``seq`` received)."""
    if user.role not in REVIEWERS:
        await get_session(session_id, services, user)  # 404 unless a participant
    try:
        events = await services.events.events(session_id, after_seq=after_seq, limit=limit)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session") from None
    page_end = events[-1].seq if events else after_seq
    more = len(events) == limit
    if type is not None:
        events = [e for e in events if e.type == type]
    return {
        "session_id": session_id,
        "events": [
            {
                "seq": e.seq,
                "wall_time": e.wall_time.isoformat(),
                "media_pts": e.media_pts,
                "actor": e.actor,
                "type": e.type,
                "payload": e.payload,
            }
            for e in events
        ],
        "next_after_seq": page_end,
        "more": more,
    }
