"""Event-loop health: how late the loop wakes up, measured continuously in the server itself.

A task sleeps for ``interval`` and records how much later than asked it woke. Anything that blocks
the loop (pixel work, a synchronous call) shows up here at once. The figures are served at
``/api/metrics`` and a warning is logged when a stall passes ``warn_ms``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

__all__ = ["LoopMonitor"]

logger = logging.getLogger(__name__)


class LoopMonitor:
    def __init__(self, interval: float = 0.01, window: int = 3000, warn_ms: float = 50.0) -> None:
        self._interval = interval
        self._lags: deque[float] = deque(maxlen=window)
        self._warn_ms = warn_ms
        self._task: asyncio.Task[None] | None = None
        self._last_warning = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-monitor")

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self._interval)
            lag_ms = (time.perf_counter() - before - self._interval) * 1000
            self._lags.append(lag_ms)
            if lag_ms > self._warn_ms and before - self._last_warning > 10:
                self._last_warning = before
                logger.warning("event loop stalled for %.0f ms", lag_ms)

    def reset(self) -> None:
        self._lags.clear()

    def summary(self) -> dict[str, Any]:
        lags = sorted(self._lags)
        if not lags:
            return {"samples": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}

        def at(q: float) -> float:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))], 2)

        return {"samples": len(lags), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
