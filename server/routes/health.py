from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from server.deps import AppServices

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(services: AppServices) -> dict[str, Any]:
    """Liveness and readiness: the database answers and the media hub is up."""
    async with services.db.session() as session:
        await session.execute(text("SELECT 1"))
    return {"status": "ok", "rooms": len(services.hub.rooms)}
