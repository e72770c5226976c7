from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.deps import AppServices, CurrentUser

router = APIRouter(prefix="/api/rooms", tags=["rooms"])


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
