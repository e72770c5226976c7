"""The trainer's review of a recorded session: its overlays by pts range, and one call with
everything the review page needs to start (facts, the worker's video, timeline, steps, risk).

``overlays.jsonl`` holds every overlay of a session (a 30-minute session: ~27k lines at 15
analysed frames a second). A range query must not scan it: :class:`OverlayIndex` reads the file
once into a small pts -> (byte offset, length) table, kept per file and refreshed when the file's
size or mtime changes (a session still recording only has its new tail indexed), so a query is a
binary search and one seek. All file work runs off the event loop.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import hashlib
import hmac
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse

from server.deps import AppServices, CurrentUser
from server.routes.sessions import SessionId, event_dict, get_session
from sessions import NotFoundError
from sessions.events import MAX_PAGE, EventRecord

__all__ = ["OverlayIndex", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/sessions", tags=["review"])

CLOCK_HZ = 90_000
MAX_OVERLAYS = 2000
"""Most overlays one request returns (about two minutes at 15 analysed frames a second)."""
MAX_REVIEW_EVENTS = 20_000
"""Events the review call reads at most; a longer session's tail is left off (and said so)."""
ACTIVITY_BIN_S = 10
VIDEO_FILE = "worker-video.mp4"
MEDIA_URL_TTL_S = 6 * 3600
"""How long a video URL of the review call stays valid (a long session, watched slowly)."""
_PTS = re.compile(rb'"pts":\s*(\d+)')
_CACHED_FILES = 32


@dataclass
class _FileIndex:
    mtime_ns: int
    size: int
    end: int = 0
    """Byte offset after the last complete (newline-terminated) line indexed."""
    # 8 bytes a line each (a 30-minute session: ~650 KB in all), not a Python int per entry
    pts: array.array[int] = field(default_factory=lambda: array.array("q"))
    offsets: array.array[int] = field(default_factory=lambda: array.array("q"))
    lengths: array.array[int] = field(default_factory=lambda: array.array("q"))
    ordered: bool = True
    resorted: bool = False
    """The lines were not in pts order in the file, so pts order is not file order."""


class OverlayIndex:
    """pts -> byte range of each line of ``overlays.jsonl`` files, cached by (path, mtime, size)."""

    def __init__(self, max_files: int = _CACHED_FILES) -> None:
        self._files: OrderedDict[FsPath, _FileIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._max_files = max_files
        self.builds = 0
        """Full or partial reads of a file (for tests: a repeated query reads nothing)."""

    def _index(self, path: FsPath) -> _FileIndex:
        stat = path.stat()
        with self._lock:
            index = self._files.get(path)
            if index is not None and (index.mtime_ns, index.size) == (
                stat.st_mtime_ns,
                stat.st_size,
            ):
                self._files.move_to_end(path)
                return index
            if index is None or stat.st_size < index.end:  # new or rewritten: from the start
                index = _FileIndex(stat.st_mtime_ns, stat.st_size)
            self._extend(path, index)
            index.mtime_ns, index.size = stat.st_mtime_ns, stat.st_size
            self._files[path] = index
            self._files.move_to_end(path)
            while len(self._files) > self._max_files:
                self._files.popitem(last=False)
            return index

    def _extend(self, path: FsPath, index: _FileIndex) -> None:
        self.builds += 1
        with path.open("rb") as file:
            file.seek(index.end)
            offset = index.end
            for line in file:
                if not line.endswith(b"\n"):
                    break  # a line still being written: indexed once it is complete
                match = _PTS.search(line, 0, 200) or _PTS.search(line)
                if match is not None:
                    pts = int(match.group(1))
                    if index.pts and pts < index.pts[-1]:
                        index.ordered = False
                    index.pts.append(pts)
                    index.offsets.append(offset)
                    index.lengths.append(len(line) - 1)
                offset += len(line)
            index.end = offset
        if not index.ordered:  # never expected (the room's pts only grow), but stay correct
            rows = sorted(zip(index.pts, index.offsets, index.lengths, strict=True))
            index.pts = array.array("q", (r[0] for r in rows))
            index.offsets = array.array("q", (r[1] for r in rows))
            index.lengths = array.array("q", (r[2] for r in rows))
            index.ordered, index.resorted = True, True

    def query(
        self, path: FsPath, from_pts: int, to_pts: int | None, limit: int
    ) -> tuple[list[bytes], bytes | None, int | None]:
        """Lines with ``from_pts <= pts < to_pts`` (at most ``limit``), the last line before
        ``from_pts`` (the overlay still on screen at ``from_pts``) and the pts to continue from
        when the limit cut the range short."""
        index = self._index(path)
        first = bisect.bisect_left(index.pts, from_pts)
        last = len(index.pts) if to_pts is None else bisect.bisect_left(index.pts, to_pts)
        more = last - first > limit
        last = min(last, first + limit)
        lines: list[bytes] = []
        previous: bytes | None = None
        with path.open("rb") as file:
            if first > 0:
                file.seek(index.offsets[first - 1])
                previous = file.read(index.lengths[first - 1])
            if index.resorted:
                for i in range(first, last):
                    file.seek(index.offsets[i])
                    lines.append(file.read(index.lengths[i]))
            elif last > first:  # the lines are contiguous in the file: one read
                start = index.offsets[first]
                file.seek(start)
                block = file.read(index.offsets[last - 1] + index.lengths[last - 1] - start)
                for i in range(first, last):
                    at = index.offsets[i] - start
                    lines.append(block[at : at + index.lengths[i]])
        return lines, previous, index.pts[last] if more else None


_overlay_index = OverlayIndex()


def _folder(request: Request, session_id: str) -> FsPath:
    data_dir: FsPath = request.app.state.settings.data_dir
    return data_dir / "recordings" / session_id


@router.get("/{session_id}/overlays")
async def session_overlays(
    request: Request,
    session_id: SessionId,
    services: AppServices,
    user: CurrentUser,
    from_pts: Annotated[int, Query(ge=0)] = 0,
    to_pts: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_OVERLAYS)] = 500,
) -> Response:
    """The recorded overlays with ``from_pts <= pts < to_pts``, in pts order, plus ``previous``
    (the last one before ``from_pts``); ``next_from_pts`` continues a range cut by ``limit``."""
    await get_session(session_id, services, user)  # 404 unknown, or a worker's not own
    if to_pts is not None and to_pts <= from_pts:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"to_pts ({to_pts}) must be greater than from_pts ({from_pts})",
        )
    path = _folder(request, session_id) / "overlays.jsonl"
    try:
        lines, previous, next_from = await asyncio.to_thread(
            _overlay_index.query, path, from_pts, to_pts, limit
        )
    except FileNotFoundError:
        lines, previous, next_from = [], None, None
    # The lines are JSON objects already: no need to parse and re-serialise thousands of them.
    body = b"".join(
        [
            b'{"session_id":"',
            session_id.encode(),
            b'","overlays":[',
            b",".join(lines),
            b'],"previous":',
            previous or b"null",
            b',"next_from_pts":',
            b"null" if next_from is None else str(next_from).encode(),
            b"}",
        ]
    )
    return Response(body, media_type="application/json")


async def _all_events(services: Any, session_id: str) -> tuple[list[EventRecord], bool]:
    events: list[EventRecord] = []
    after = 0
    while len(events) < MAX_REVIEW_EVENTS:
        page = await services.events.events(session_id, after_seq=after, limit=MAX_PAGE)
        events.extend(page)
        if len(page) < MAX_PAGE:
            return events, False
        after = page[-1].seq
    return events, True


def _video(
    url: str, events: list[EventRecord], recordings: list[Any], folder: FsPath
) -> dict[str, Any] | None:
    """The worker's video: the newest recording row of it and the timing its stop event gave."""
    rows = [r for r in recordings if r.kind == "video" and r.path.endswith(VIDEO_FILE)]
    stopped = [
        f
        for e in events
        if e.type == "recording_stopped"
        for f in e.payload.get("files", [])
        if isinstance(f, dict) and f.get("file") == VIDEO_FILE
    ]
    if not rows and not stopped:
        return None
    if not (folder / VIDEO_FILE).is_file():
        return None
    row = rows[-1] if rows else None
    facts = stopped[-1] if stopped else {}
    status_ = facts.get("status") or (row.status.value if row is not None else "recording")
    duration = facts.get("duration_s", row.duration_s if row is not None else None)
    return {
        "recording_id": None if row is None else row.id,
        "url": url,
        # the recordings download (bearer header; ``url`` is the same file for ``<video>``)
        "download_url": None
        if row is None
        else f"/api/sessions/{row.session_id}/recordings/{row.id}",
        "first_pts": facts.get("first_pts"),
        "duration_s": duration,
        "status": status_,
        "size_bytes": None if row is None else row.size_bytes,
    }


def _ergonomics(events: list[EventRecord]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    series: list[dict[str, Any]] = []
    total = None
    for e in events:
        if e.type != "vision_summary":
            continue
        kind = e.payload.get("kind")
        summary = e.payload.get("ergonomics") or {}
        if kind == "ergonomics" and e.media_pts is not None:
            series.append(
                {
                    "from_pts": e.payload.get("from_pts"),
                    "pts": e.media_pts,
                    "max": summary.get("max"),
                    "mean": summary.get("mean"),
                    "share": summary.get("share", {}),
                }
            )
        elif kind == "ergonomics_session":
            total = summary
    return series, total


@router.get("/{session_id}/review")
async def session_review(
    request: Request, session_id: SessionId, services: AppServices, user: CurrentUser
) -> dict[str, Any]:
    """Everything the review page starts from: the session's facts, the worker's video (its URL
    and ``first_pts``, the room-clock pts of file time 0), the timeline (vision summaries left
    out), step markers, the ergonomic risk series and the activity (events per 10 s)."""
    session = await get_session(session_id, services, user)
    try:
        events, truncated = await _all_events(services, session_id)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session") from None
    recordings = await services.recordings.list_for_session(session_id)
    folder = _folder(request, session_id)
    url = _media_url(request, session_id, user.username, int(time.time()) + MEDIA_URL_TTL_S)
    video = await asyncio.to_thread(_video, url, events, recordings, folder)
    series, total = _ergonomics(events)
    timeline = [event_dict(e) for e in events if e.type != "vision_summary"]
    activity: dict[int, int] = {}
    origin = events[0].wall_time if events else None
    for e in events:
        if origin is not None and e.type != "vision_summary":
            slot = int((e.wall_time - origin).total_seconds() // ACTIVITY_BIN_S)
            activity[slot] = activity.get(slot, 0) + 1
    return {
        "session": session,
        "video": video,
        "recordings": [
            {
                "id": r.id,
                "track": r.track,
                "kind": r.kind.value,
                "participant": r.participant,
                "status": r.status.value,
                "duration_s": r.duration_s,
                "size_bytes": r.size_bytes,
            }
            for r in recordings
        ],
        "events": timeline,
        "events_truncated": truncated,
        "steps": [
            {"seq": e["seq"], "media_pts": e["media_pts"], "title": e["payload"].get("title", "")}
            for e in timeline
            if e["type"] == "step"
        ],
        "ergonomics": series,
        "ergonomics_session": total,
        "activity": {
            "bin_s": ACTIVITY_BIN_S,
            "origin": None if origin is None else origin.isoformat(),
            "counts": [activity.get(i, 0) for i in range(max(activity, default=-1) + 1)],
        },
    }


def _signature(request: Request, session_id: str, username: str, expires: int) -> str:
    key: str = request.app.state.settings.secret_key
    text = f"review-video|{session_id}|{username}|{expires}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def _media_url(request: Request, session_id: str, username: str, expires: int) -> str:
    sig = _signature(request, session_id, username, expires)
    query = urlencode({"user": username, "expires": expires, "sig": sig})
    return f"/api/sessions/{session_id}/review/video?{query}"


@router.get("/{session_id}/review/video", include_in_schema=False)
async def session_video(
    request: Request,
    session_id: SessionId,
    services: AppServices,
    user: Annotated[str, Query(min_length=1, max_length=64)],
    expires: Annotated[int, Query(ge=0)],
    sig: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
) -> FileResponse:
    """The worker's video file (HTTP Range) for ``<video src>``, which cannot send a bearer
    header: the review call hands out this URL signed for one user and one session, valid
    :data:`MEDIA_URL_TTL_S` (the bearer token itself never goes into a URL, nor into logs).

    TEMPORARY, until the recordings download of routes/sessions.py takes such URLs."""
    expected = _signature(request, session_id, user, expires)
    if not hmac.compare_digest(expected, sig) or expires < time.time():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this video link is invalid or has expired: reopen the session on the review page",
        )
    account = await services.users.get(user)
    if account is None or account.disabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this account no longer exists")
    path = _folder(request, session_id) / VIDEO_FILE
    if not await asyncio.to_thread(path.is_file):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this session has no recorded video")
    return FileResponse(path, media_type="video/mp4")
