"""The digital twin of a session (TSDF mesh + markers) over REST: live, or saved at its end."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from server.deps import AppServices, CurrentUser
from server.rtc.hub import twin_paths
from server.rtc.room import Room
from vision import VisionError

router = APIRouter(tags=["twins"])

RoomName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
Format = Literal["glb", "ply"]

MEDIA_TYPES = {"glb": "model/gltf-binary", "ply": "application/octet-stream"}
NOTHING_FUSED = (
    "no depth has been fused in this session yet: the room needs the 'rgbd' stage "
    "(PUT /api/rooms/{room}/settings) and a headset that sends depth images"
)


def _live_room(services: AppServices, room: str) -> Room:
    live = services.hub.rooms.get(room)
    if live is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"room {room!r} has no live session")
    return live


async def _export(live: Room, fmt: str) -> Response:
    twin = live.twin
    if not twin.keyframes:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOTHING_FUSED)
    summary = await run_in_threadpool(twin.summary)  # the child process extracts the mesh
    if not summary["triangles"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOTHING_FUSED)
    export = twin.glb_bytes if fmt == "glb" else twin.ply_bytes
    try:
        data = await run_in_threadpool(export)
    except VisionError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    name = f"twin-{live.session_id}.{fmt}"
    return Response(
        data,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/api/rooms/{room}/twin")
async def live_twin_summary(room: RoomName, services: AppServices, _: CurrentUser) -> Any:
    """What the live session's twin holds: keyframes, triangles, bounds, markers."""
    live = _live_room(services, room)
    return {"session_id": live.session_id, "live": True, **await _summary(live)}


@router.get("/api/rooms/{room}/twin.{fmt}")
async def live_twin(room: RoomName, fmt: Format, services: AppServices, _: CurrentUser) -> Response:
    """The live session's twin as it is now (GLB: mesh + one node per marker; PLY: mesh)."""
    return await _export(_live_room(services, room), fmt)


@router.get("/api/sessions/{session_id}/twin")
async def session_twin_summary(session_id: SessionId, services: AppServices, _: CurrentUser) -> Any:
    for live in services.hub.rooms.values():
        if live.session_id == session_id:
            return {"session_id": session_id, "live": True, **await _summary(live)}
    path = _saved(services, session_id)["json"]
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this session has no digital twin")
    return {"session_id": session_id, "live": False, **json.loads(path.read_text())}


@router.get("/api/sessions/{session_id}/twin.{fmt}")
async def session_twin(
    session_id: SessionId, fmt: Format, services: AppServices, _: CurrentUser
) -> Response:
    """A session's twin: saved when its room closed, or exported now while it is live."""
    for live in services.hub.rooms.values():
        if live.session_id == session_id:
            return await _export(live, fmt)
    path = _saved(services, session_id)[fmt]
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this session has no digital twin")
    return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"twin-{session_id}.{fmt}")


async def _summary(live: Room) -> dict[str, Any]:
    try:
        summary: dict[str, Any] = await run_in_threadpool(live.twin.summary)
    except VisionError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return summary


def _saved(services: AppServices, session_id: str) -> dict[str, Any]:
    folder = services.hub.twin_dir
    if folder is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "twins are not saved on this server")
    return twin_paths(folder, session_id)
