"""The sampler: at most ``fps`` analyses a second, newest frame only, nothing queued."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.rtc.vision_tap import VisionTap
from tests.util import eventually
from vision import FrameResult, Pipeline, Telemetry


class FastTrack(MediaStreamTrack):
    """``count`` frames at ``fps``, then the end of the stream."""

    kind = "video"

    def __init__(self, count: int, fps: float) -> None:
        super().__init__()
        self.count, self.fps, self.index = count, fps, 0

    async def recv(self) -> av.VideoFrame:
        if self.index >= self.count:
            raise MediaStreamError
        await asyncio.sleep(1 / self.fps)
        f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
        f.pts, f.time_base = self.index * 3000, fractions.Fraction(1, 90_000)
        self.index += 1
        return f


class SlowPipeline(Pipeline):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.threads: set[str] = set()

    def process(self, image: np.ndarray, telemetry: Telemetry) -> FrameResult:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return super().process(image, telemetry)


async def run_tap(
    fps: float, delay: float, frames: int = 60
) -> tuple[VisionTap, list[int], SlowPipeline]:
    results: list[int] = []
    pipeline = SlowPipeline(delay)
    executor = ThreadPoolExecutor(1, thread_name_prefix="test-vision")
    tap = VisionTap(
        FastTrack(frames, 100),
        pipeline,
        executor,
        fps=fps,
        telemetry_for=lambda pts: Telemetry(pts=pts),
        on_result=lambda result, _: results.append(result.pts),
    )
    tap.start()
    await eventually(lambda: tap.stats.frames_seen >= frames, 10, "all frames")
    await asyncio.sleep(delay + 0.05)
    await tap.aclose()
    executor.shutdown()
    return tap, results, pipeline


async def test_sampling_rate_is_bounded() -> None:
    tap, results, _ = await run_tap(fps=10, delay=0.0, frames=60)  # 0.6 s of 100 fps video
    assert 4 <= len(results) <= 8
    assert results == sorted(results)


async def test_busy_pipeline_drops_instead_of_queueing() -> None:
    tap, results, pipeline = await run_tap(fps=100, delay=0.1, frames=60)
    assert tap.stats.frames_skipped_busy > 30
    assert len(results) <= 8  # ~0.6 s / 0.1 s, never one per frame
    assert pipeline.threads == {"test-vision_0"}  # never on the event loop's thread
