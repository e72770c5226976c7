from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel

from server.deps import AppServices, CurrentUser
from sessions import NotFoundError
from vision import EquipmentError

router = APIRouter(prefix="/api/equipment", tags=["equipment"])

Name = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^/\x00-\x1f]+$")]


class EquipmentOut(BaseModel):
    name: str
    width_m: float
    sha256: str
    created_by: str | None


@router.get("")
async def list_equipment(services: AppServices, _: CurrentUser) -> list[EquipmentOut]:
    return [
        EquipmentOut(name=r.name, width_m=r.width_m, sha256=r.sha256, created_by=r.created_by)
        for r in await services.equipment.store.list()
    ]


@router.put(
    "/{name}",
    openapi_extra={
        "requestBody": {"content": {"image/png": {}, "image/jpeg": {}}, "required": True}
    },
)
async def put_equipment(
    name: Name,
    request: Request,
    services: AppServices,
    user: CurrentUser,
    width_m: Annotated[float, Query(gt=0, le=50, description="physical width, metres")],
) -> EquipmentOut:
    """Register a piece of equipment from a reference photo (the request body, PNG or JPEG).

    Live frames are matched against it (local features → homography → 6-DoF pose). A photo with
    too few features (flat, blurred) is refused and nothing is stored.
    """
    if user.role not in ("trainer", "admin"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only trainers and admins register equipment"
        )
    data = await request.body()
    try:
        record = await services.equipment.put(name, width_m, data, user.username)
    except EquipmentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return EquipmentOut(name=record.name, width_m=record.width_m, sha256=record.sha256,
                        created_by=record.created_by)  # fmt: skip


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_equipment(name: Name, services: AppServices, user: CurrentUser) -> None:
    if user.role not in ("trainer", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only trainers and admins remove equipment")
    try:
        await services.equipment.remove(name)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
