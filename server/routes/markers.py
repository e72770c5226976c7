from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from server.auth import Identity
from server.deps import AppServices, CurrentUser
from sessions import NotFoundError
from vision import MARKER_FAMILIES

router = APIRouter(prefix="/api/markers", tags=["markers"])


async def _trainer_or_admin(user: CurrentUser) -> Identity:
    if user.role not in ("trainer", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only trainers and admins edit markers")
    return user


Editor = Annotated[Identity, Depends(_trainer_or_admin)]
MarkerId = Annotated[int, Path(ge=0, le=100_000)]


class MarkerIn(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="the equipment it marks")
    size_m: float = Field(gt=0, le=10, description="printed side of the black square, metres")


class MarkerOut(MarkerIn):
    family: str
    marker_id: int


def _family(family: str) -> str:
    if family not in MARKER_FAMILIES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"unknown marker family {family!r}; known: {', '.join(MARKER_FAMILIES)}",
        )
    return family


@router.get("")
async def list_markers(services: AppServices, _: CurrentUser) -> list[MarkerOut]:
    """Every registered marker: which equipment it marks and its printed size."""
    return [
        MarkerOut(family=m.family, marker_id=m.marker_id, name=m.name, size_m=m.size_m)
        for m in await services.markers.list()
    ]


@router.put("/{family}/{marker_id}")
async def put_marker(
    family: str, marker_id: MarkerId, body: MarkerIn, services: AppServices, _: Editor
) -> MarkerOut:
    """Register or update a marker. Rooms opened from now on use the new size and name."""
    record = await services.markers.put(_family(family), marker_id, body.name, body.size_m)
    await services.refresh_markers()
    return MarkerOut(family=record.family, marker_id=record.marker_id, name=record.name,
                     size_m=record.size_m)  # fmt: skip


@router.delete("/{family}/{marker_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_marker(family: str, marker_id: MarkerId, services: AppServices, _: Editor) -> None:
    try:
        await services.markers.remove(_family(family), marker_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    await services.refresh_markers()
