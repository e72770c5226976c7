"""Administration over REST: the retention period of recordings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from server.deps import AdminUser, AppServices
from sessions.retention import MAX_RETENTION_DAYS

router = APIRouter(prefix="/api/admin", tags=["admin"])


class RetentionPeriod(BaseModel):
    """Days recordings are kept after they end; ``null``: forever."""

    model_config = ConfigDict(extra="forbid")

    days: Annotated[int, Field(ge=1, le=MAX_RETENTION_DAYS, strict=True)] | None


def _period(days: int | None, interval_s: float) -> dict[str, Any]:
    return {"days": days, "forever": days is None, "sweep_interval_s": interval_s}


@router.get("/retention")
async def get_retention(services: AppServices, _admin: AdminUser) -> dict[str, Any]:
    """The retention period; the server deletes older recordings every ``sweep_interval_s``."""
    return _period(await services.retention.get(), services.settings.retention_interval_s)


@router.put("/retention")
async def set_retention(
    body: RetentionPeriod, services: AppServices, admin: AdminUser
) -> dict[str, Any]:
    """Set the period (``{"days": 30}``, or ``{"days": null}`` to keep recordings forever).
    Recordings already older are deleted by the next sweep."""
    days = await services.retention.set(body.days, actor=admin.username)
    return _period(days, services.settings.retention_interval_s)
