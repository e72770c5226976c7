from __future__ import annotations

import os
import resource
import time
from typing import Any

from fastapi import APIRouter

from server.deps import AppServices, CurrentUser

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


@router.get("")
async def metrics(services: AppServices, _: CurrentUser) -> dict[str, Any]:
    """Health figures of this node: event-loop lag, CPU time, rooms and their vision stages."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "pid": os.getpid(),
        "time": time.time(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "loop_lag": services.loop_monitor.summary(),
        "rooms": {
            name: {"participants": len(room.participants), "vision": room.vision_stats}
            for name, room in services.hub.rooms.items()
        },
    }


@router.post("/reset", status_code=204)
async def reset(services: AppServices, _: CurrentUser) -> None:
    """Start a new measurement window for the loop-lag figures."""
    services.loop_monitor.reset()
