"""The sampler: at most ``fps`` analyses a second, newest frame only, nothing queued."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections.abc import Callable
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


async def test_wanted_frames_are_analysed_even_when_they_arrived_earlier() -> None:
    """A frame whose depth image arrives late (after newer frames) is still analysed, with the
    telemetry built off the loop; analysed pts never go backwards."""
    results: list[int] = []
    built_in: set[str] = set()
    wanted = {30 * 3000}
    executor = ThreadPoolExecutor(1, thread_name_prefix="test-vision")

    def telemetry_for(pts: int) -> Telemetry | Callable[[], Telemetry]:
        if pts not in wanted:
            return Telemetry(pts=pts)

        def build() -> Telemetry:
            built_in.add(threading.current_thread().name)
            return Telemetry(pts=pts)

        return build

    track = FastTrack(60, 100)
    tap = VisionTap(
        track,
        SlowPipeline(0.0),
        executor,
        fps=1,  # the sampler alone would analyse only the first frame
        telemetry_for=telemetry_for,
        on_result=lambda result, _: results.append(result.pts),
        wanted=lambda pts: pts in wanted and track.index > 33,  # "arrives" 3 frames late
    )
    tap.start()
    await eventually(lambda: tap.stats.frames_seen >= 60, 10, "all frames")
    await asyncio.sleep(0.05)
    await tap.aclose()
    executor.shutdown()
    assert 30 * 3000 in results, results
    assert results == sorted(results)
    assert built_in and all(name.startswith("test-vision") for name in built_in)
