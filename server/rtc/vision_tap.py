"""The vision tap: samples the worker's video and runs the pipeline off the event loop.

The tap reads a one-frame relay subscription at full rate (so nothing queues up anywhere), picks
at most ``fps`` frames a second (plus the frames ``wanted`` asks for, e.g. those that came with a
depth image), and hands the newest one to a thread executor. While a frame is
being analysed, frames that arrive are dropped, not queued. The event loop never touches pixels:
the conversion to an ndarray happens in the executor too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.rtc.clock import pts90k
from vision import FrameResult, Pipeline, Telemetry

__all__ = ["VisionStats", "VisionTap"]

RECENT_FRAMES = 8  # ~270 ms at 30 fps

logger = logging.getLogger(__name__)


@dataclass
class VisionStats:
    frames_seen: int = 0
    frames_analysed: int = 0
    frames_skipped_busy: int = 0
    errors: int = 0
    last_ms: float = 0.0


class VisionTap:
    def __init__(
        self,
        track: MediaStreamTrack,
        pipeline: Pipeline,
        executor: Executor,
        *,
        fps: float,
        telemetry_for: Callable[[int], Telemetry | Callable[[], Telemetry]],
        on_result: Callable[[FrameResult, float], None],
        name: str = "vision",
        wanted: Callable[[int], bool] | None = None,
    ) -> None:
        self._track = track
        self._pipeline = pipeline
        self._executor = executor
        self._interval = 1.0 / fps
        self._telemetry_for = telemetry_for
        self._on_result = on_result
        self._wanted = wanted
        self._name = name
        self.stats = VisionStats()
        self.latest_pts: int | None = None
        self._recent: OrderedDict[int, av.VideoFrame] = OrderedDict()
        """The last few frames by pts: a depth image that arrives after its frame (it travels
        on the data channel, which can be slower than the video) still meets it."""
        self._last_analysed = -1
        self._task: asyncio.Task[None] | None = None
        self._busy: asyncio.Task[None] | None = None
        self._last_warning = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        next_due = 0.0
        try:
            while True:
                frame = await self._track.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                self.stats.frames_seen += 1
                pts = self.latest_pts = pts90k(frame)
                self._recent[pts] = frame
                while len(self._recent) > RECENT_FRAMES:
                    self._recent.popitem(last=False)
                now = time.monotonic()
                if self._busy is not None and not self._busy.done():
                    self.stats.frames_skipped_busy += 1
                    continue
                pick = self._wanted_frame()
                if pick is None:
                    if now < next_due:
                        continue
                    pick = frame
                    next_due = now + self._interval
                self._last_analysed = pts90k(pick)
                self._busy = asyncio.create_task(self._analyse(pick), name=f"{self._name}-frame")
        except MediaStreamError:
            pass

    def _wanted_frame(self) -> av.VideoFrame | None:
        """The newest recent frame ``wanted`` asks for, newer than the last one analysed."""
        if self._wanted is None:
            return None
        for pts, frame in reversed(self._recent.items()):
            if pts <= self._last_analysed:
                break
            if self._wanted(pts):
                return frame
        return None

    async def _analyse(self, frame: av.VideoFrame) -> None:
        pts = pts90k(frame)
        telemetry = self._telemetry_for(pts)
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, _process, self._pipeline, frame, telemetry
            )
        except Exception:
            self.stats.errors += 1
            logger.exception("vision pipeline failed on frame pts=%d", pts)
            return
        elapsed = time.monotonic() - started
        self.stats.frames_analysed += 1
        self.stats.last_ms = elapsed * 1000
        if elapsed > self._interval and started - self._last_warning > 10:
            self._last_warning = started
            logger.warning(
                "vision falls behind: %.0f ms per frame for a %.0f ms budget; frames are dropped",
                elapsed * 1000,
                self._interval * 1000,
            )
        self._on_result(result, time.time() * 1000)

    async def aclose(self) -> None:
        self._track.stop()
        self._recent.clear()
        for task in (self._task, self._busy):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._task, self._busy) if t is not None), return_exceptions=True
        )


def _process(
    pipeline: Pipeline, frame: av.VideoFrame, telemetry: Telemetry | Callable[[], Telemetry]
) -> FrameResult:
    image = cast("np.ndarray[Any, np.dtype[np.uint8]]", frame.to_ndarray(format="bgr24"))
    if not isinstance(telemetry, Telemetry):
        telemetry = telemetry()  # e.g. decodes a depth image, here off the event loop
    return pipeline.process(image, telemetry)
