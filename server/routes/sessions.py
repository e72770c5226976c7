"""Recorded sessions over REST: the list (filters, cursor paging), one session, its timeline,
its recordings (download with HTTP Range), an export as a zip, and an admin's erasure.

Range requests (RFC 9110 section 14) are answered by our own parser rather than starlette's
``FileResponse``, which answers a malformed header or an unknown range unit with 400 where the
RFC says to ignore the header: one range (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``) gets 206
with ``Content-Range``; one that starts past the end (or ``bytes=-0``) gets 416 with
``Content-Range: bytes */<size>``; a malformed header, another unit, a range whose end is before
its start and any request for several ranges are ignored (200, the whole file), as are ranges
under an ``If-Range`` that no longer matches the file. Browsers' ``<video>`` sends one range.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path as FilePath
from stat import S_ISREG
from typing import IO, Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse

from server.deps import AdminUser, AppServices, CurrentUser
from server.retention import erase_session, recording_file
from sessions import NotFoundError, SessionLiveError
from sessions.catalog import MAX_SESSIONS_PAGE, SessionSummary
from sessions.events import MAX_PAGE, MAX_REASON, EventRecord

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
RecordingId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
MEDIA_TYPES = {"video": "video/mp4", "audio": "audio/mp4"}
CHUNK = 256 * 1024
EXPORT_FORMAT_VERSION = 1
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
    has_recording: bool | None = None,
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
        has_recording=has_recording,
        before=_cursor(cursor),
        limit=limit,
    )
    last = page[-1] if len(page) == limit else None
    return {
        "sessions": [s.to_dict() for s in page],
        "next": None if last is None else _next(last.started_at, last.id),
    }


async def _visible(session_id: str, services: AppServices, user: CurrentUser) -> SessionSummary:
    """The session, or 404 when there is none or the user (a worker) did not take part in it."""
    try:
        summary = await services.catalog.get(session_id)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session") from None
    if user.role not in REVIEWERS and user.username not in summary.participants:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
    return summary


@router.get("/{session_id}")
async def get_session(session_id: SessionId, services: AppServices, user: CurrentUser) -> Any:
    return (await _visible(session_id, services, user)).to_dict()


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
        "events": [event_dict(e) for e in events],
        "next_after_seq": page_end,
        "more": more,
    }


def event_dict(e: EventRecord) -> dict[str, Any]:
    """One event as the API shows it (timeline pages, the export, the review page)."""
    return {
        "seq": e.seq,
        "wall_time": e.wall_time.isoformat(),
        "media_pts": e.media_pts,
        "actor": e.actor,
        "type": e.type,
        "payload": e.payload,
    }


def _recording_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "track": r.track,
        "kind": r.kind.value,
        "participant": r.participant,
        "codec": r.codec,
        "started_at": r.started_at.isoformat(),
        "ended_at": None if r.ended_at is None else r.ended_at.isoformat(),
        "duration_s": r.duration_s,
        "size_bytes": r.size_bytes,
        "sha256": r.sha256,
        "status": r.status.value,
        "error": r.error,
        "url": f"/api/sessions/{r.session_id}/recordings/{r.id}",
    }


@router.get("/{session_id}/recordings")
async def session_recordings(
    session_id: SessionId, services: AppServices, user: CurrentUser
) -> dict[str, Any]:
    """The session's recorded tracks (the recordings index), in the order they started."""
    await _visible(session_id, services, user)
    records = await services.recordings.list_for_session(session_id)
    return {"session_id": session_id, "recordings": [_recording_dict(r) for r in records]}


class _Unsatisfiable(Exception):
    pass


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)-(\d*)\s*", re.ASCII | re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last, inclusive) to serve of a file of ``size`` bytes, or
    ``None`` to serve all of it; :class:`_Unsatisfiable` for 416 (see the module's doc)."""
    match = None if header is None else _RANGE.fullmatch(header)
    if match is None:
        return None  # none, malformed, another unit, or several ranges: ignored
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(size - suffix, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec: ignored
    if start >= size:
        raise _Unsatisfiable
    return start, size - 1 if not last else min(int(last), size - 1)


async def _stream(file: IO[bytes], start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``file`` from ``start``, read off the event loop; closes the file."""
    try:
        await asyncio.to_thread(file.seek, start)
        while length > 0:
            chunk = await asyncio.to_thread(file.read, min(CHUNK, length))
            if not chunk:
                logger.warning("%s ended %d bytes early", getattr(file, "name", "file"), length)
                break
            length -= len(chunk)
            yield chunk
    finally:
        file.close()


def _open(path: FilePath) -> tuple[IO[bytes], os.stat_result] | None:
    try:
        file = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    stat = os.fstat(file.fileno())
    if not S_ISREG(stat.st_mode):
        file.close()
        return None
    return file, stat


@router.get("/{session_id}/recordings/{recording_id}", response_model=None)
async def download_recording(
    session_id: SessionId,
    recording_id: RecordingId,
    services: AppServices,
    user: CurrentUser,
    range_: Annotated[str | None, Header(alias="range")] = None,
    if_range: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The recording's file (``video/mp4`` or ``audio/mp4``), with HTTP Range so a ``<video>``
    can seek; see the module's doc for how ranges are answered."""
    await _visible(session_id, services, user)
    record = await services.recordings.get(recording_id)
    if record is None or record.session_id != session_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such recording in this session")
    data_dir = services.settings.data_dir
    path = await asyncio.to_thread(recording_file, data_dir, record.path)
    if path is None:
        logger.error(
            "recording %s points outside the recordings folder: %r",
            record.id,
            record.path,
            extra={"session_id": session_id},
        )
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the index entry of recording {record.id} points outside the recordings folder; "
            "an admin must check it",
        )
    opened = await asyncio.to_thread(_open, path)
    if opened is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"the file of recording {record.id} ({record.track}) is missing from the data "
            "folder: retention or an admin may have deleted it",
        )
    file, stat = opened
    size = stat.st_size
    etag = f'"{size:x}-{stat.st_mtime_ns:x}"'
    last_modified = formatdate(stat.st_mtime, usegmt=True)
    headers = {
        "accept-ranges": "bytes",
        "etag": etag,
        "last-modified": last_modified,
        "content-disposition": f'inline; filename="{path.name}"',
    }
    try:
        span = parse_range(range_, size)
    except _Unsatisfiable:
        file.close()
        raise HTTPException(
            status.HTTP_416_RANGE_NOT_SATISFIABLE,
            f"the range {range_!r} lies outside the file ({size} bytes)",
            headers={"content-range": f"bytes */{size}", "accept-ranges": "bytes"},
        ) from None
    if span is not None and if_range is not None and if_range not in (etag, last_modified):
        span = None  # the file changed since the client's copy: send all of it
    if span is None:
        start, length, code = 0, size, status.HTTP_200_OK
    else:
        start, length, code = span[0], span[1] - span[0] + 1, status.HTTP_206_PARTIAL_CONTENT
        headers["content-range"] = f"bytes {span[0]}-{span[1]}/{size}"
    headers["content-length"] = str(length)
    return StreamingResponse(
        _stream(file, start, length),
        status_code=code,
        headers=headers,
        media_type=MEDIA_TYPES.get(record.kind.value, "application/octet-stream"),
    )


def _copy(zf: zipfile.ZipFile, name: str, path: FilePath, compress: int) -> dict[str, Any]:
    """Copy ``path`` into the zip as ``name``; its size and SHA-256 as written."""
    info = zipfile.ZipInfo.from_file(path, name)
    info.compress_type = compress
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    return {"file": name, "size_bytes": size, "sha256": digest.hexdigest()}


def _temporary_file(folder: FilePath) -> IO[bytes]:
    """An unnamed file in ``folder``, gone once closed."""
    return tempfile.TemporaryFile("w+b", dir=folder)


def _build_export(
    target: IO[bytes],
    data_dir: FilePath,
    manifest: dict[str, Any],
    events: list[dict[str, Any]],
    recordings: list[Any],
) -> None:
    """Write the export zip (see :func:`export_session`) to ``target``; runs on a thread."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events).encode()
        zf.writestr("events.jsonl", text)
        manifest["events"] = {
            "file": "events.jsonl",
            "count": len(events),
            "sha256": hashlib.sha256(text).hexdigest(),
        }
        entries, names = [], set()
        for record in recordings:
            entry = _recording_dict(record)
            del entry["url"]
            entry.update(file=None, exported_size_bytes=None, exported_sha256=None, problem=None)
            path = recording_file(data_dir, record.path)
            if path is None:
                entry["problem"] = "the index points outside the recordings folder: not exported"
            elif not path.is_file():
                entry["problem"] = "the file is missing"
            else:
                name = f"recordings/{path.name}"
                if name in names:
                    name = f"recordings/{record.id}-{path.name}"
                names.add(name)
                copied = _copy(zf, name, path, zipfile.ZIP_STORED)
                entry.update(
                    file=name,
                    exported_size_bytes=copied["size_bytes"],
                    exported_sha256=copied["sha256"],
                )
            entries.append(entry)
        manifest["recordings"] = entries
        overlays = recording_file(
            data_dir, f"recordings/{manifest['session']['id']}/overlays.jsonl"
        )
        manifest["overlays"] = None
        if overlays is not None and overlays.is_file():
            manifest["overlays"] = _copy(zf, "overlays.jsonl", overlays, zipfile.ZIP_DEFLATED)
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


@router.get("/{session_id}/export", response_model=None)
async def export_session(
    session_id: SessionId, services: AppServices, user: CurrentUser
) -> StreamingResponse:
    """The whole record as a zip: ``events.jsonl`` (every event in ``seq`` order),
    ``recordings/<file>``, ``overlays.jsonl`` if there is one, and ``manifest.json`` (the
    session, each recording with the size and SHA-256 of the file exported, the event count,
    the export time, ``format_version``). Built in a temporary file off the event loop."""
    summary = await _visible(session_id, services, user)
    record = await services.events.get_session(session_id)
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await services.events.events(session_id, after_seq=after, limit=MAX_PAGE)
        events += [event_dict(e) for e in page]
        if len(page) < MAX_PAGE:
            break
        after = page[-1].seq
    recordings = await services.recordings.list_for_session(session_id)
    session_facts = summary.to_dict()
    if record is not None:
        session_facts.update(
            end_reason=record.end_reason,
            ended_abnormally=record.ended_abnormally,
            previous_session_id=record.previous_session_id,
            recording_consent=record.recording_consent,
        )
    manifest: dict[str, Any] = {
        "format": "fieldsight-session-export",
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "exported_by": user.username,
        "session": session_facts,
    }
    data_dir = services.settings.data_dir
    tmp_dir = data_dir / "tmp"
    await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
    target = await asyncio.to_thread(_temporary_file, tmp_dir)
    try:
        await asyncio.to_thread(_build_export, target, data_dir, manifest, events, recordings)
        size = target.tell()
    except BaseException:
        target.close()
        raise
    return StreamingResponse(
        _stream(target, 0, size),
        media_type="application/zip",
        headers={
            "content-length": str(size),
            "content-disposition": f'attachment; filename="session-{session_id}.zip"',
        },
    )


@router.delete("/{session_id}")
async def delete_session(
    session_id: SessionId,
    services: AppServices,
    admin: AdminUser,
    reason: Annotated[str | None, Query(min_length=1, max_length=MAX_REASON)] = None,
) -> dict[str, Any]:
    """Erase an ended session's recordings (files and index rows), overlays and events; the
    session stays, with one ``session_deleted`` event saying who did it, when and how much went.
    409 while the session is live."""
    live = [room.name for room in services.hub.rooms.values() if room.session_id == session_id]
    if live:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"session {session_id} is live in room {live[0]}: wait until everyone has left "
            "(the session ends then), and try again",
        )
    try:
        report = await erase_session(
            events=services.events,
            recordings=services.recordings,
            data_dir=services.settings.data_dir,
            session_id=session_id,
            actor=admin.username,
            reason=reason,
        )
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session") from None
    except SessionLiveError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return report.to_dict()
