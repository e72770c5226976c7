from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.deps import AppServices, CurrentUser
from server.rtc.hub import RoomVision
from vision import PipelineOptions, available_stages

router = APIRouter(prefix="/api/rooms", tags=["rooms"])

RoomName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


@router.get("")
async def live_rooms(services: AppServices, _: CurrentUser) -> list[dict[str, Any]]:
    """Rooms with a live session now, with who is in them."""
    return [
        {
            "room": room.name,
            "session_id": room.session_id,
            "has_worker": room.worker is not None,
            "participants": [p.info.model_dump() for p in room.participants.values()],
            "vision": room.vision_stats,
        }
        for room in services.hub.rooms.values()
    ]


class ZoneBody(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=64)
    polygon: list[Annotated[list[float], Field(min_length=2, max_length=3)]] = Field(
        min_length=3,
        max_length=64,
        description="vertices: (u, v) in normalized image uv, or (x, y, z) metres in the "
        "frame `reference` names",
    )
    reference: str | None = Field(
        default=None,
        pattern=r"^(marker:\d{1,6}|device|rgbd|plane:\d{1,6})$",
        description="a world zone's frame, e.g. 'marker:7' (a floor marker); none = image zone",
    )
    keypoints: list[Annotated[int, Field(ge=0, le=32)]] | None = Field(
        default=None,
        max_length=33,
        description="landmarks that count (default: all for image zones, feet for world zones)",
    )

    @model_validator(mode="after")
    def _dimensions(self) -> ZoneBody:
        want = 2 if self.reference is None else 3
        if any(len(p) != want for p in self.polygon):
            raise ValueError(
                "image zone vertices are (u, v) pairs"
                if want == 2
                else "world zone vertices are (x, y, z) metres"
            )
        return self


class RoomSettingsBody(BaseModel):
    stages: list[str] = Field(
        max_length=16, description="vision stages, in order (GET /api/vision/stages lists them)"
    )
    fps: float | None = Field(default=None, gt=0, le=60, description="analysed frames a second")
    safety_zones: list[ZoneBody] = Field(default_factory=list, max_length=32)
    blur_faces: bool = Field(
        default=False,
        description="blur the faces the 'pose' stage finds in the stored video (needs 'pose')",
    )


@router.get("/{room}/settings")
async def get_room_settings(
    room: RoomName, services: AppServices, _: CurrentUser
) -> dict[str, Any]:
    record = await services.room_settings.get(room)
    default = {"stages": list(services.settings_stages()), "fps": services.settings.vision_fps}
    return {"room": room, "custom": record is not None, **(record.settings if record else default)}


@router.put("/{room}/settings")
async def put_room_settings(
    room: RoomName, body: RoomSettingsBody, services: AppServices, user: CurrentUser
) -> dict[str, Any]:
    """Choose the room's vision stages. A live room switches at once."""
    if user.role not in ("mentor", "trainer", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only mentors, trainers and admins may")
    unknown = [s for s in body.stages if s not in available_stages()]
    if unknown or len(set(body.stages)) != len(body.stages):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"unknown or repeated stages {unknown or body.stages}; "
            f"available: {', '.join(available_stages())}",
        )
    if body.blur_faces and "pose" not in body.stages:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "blur_faces needs the 'pose' stage in stages: faces are found from people's landmarks",
        )
    if body.safety_zones and "safety" not in body.stages:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "safety zones need the 'safety' stage (after 'pose') in stages",
        )
    try:
        vision = RoomVision.from_dict(body.model_dump())
        PipelineOptions(stages=vision.stages).validate()
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    await services.room_settings.put(room, vision.to_dict(), user.username)
    services.hub.set_room_settings(room, vision)
    live = services.hub.rooms.get(room)
    if live is not None:
        await live.restart_vision()
    return {"room": room, "custom": True, **vision.to_dict()}


vision_router = APIRouter(prefix="/api/vision", tags=["rooms"])


@vision_router.get("/stages")
async def stages(_: CurrentUser) -> list[str]:
    """The vision stages this server can run."""
    return list(available_stages())
