"""Paced synthetic tracks for the recorder tests, and a child process that records one.

``python -m tests.unit.server.recorder_child OUT.mp4 --seconds S [--file-limit BYTES]`` records a
paced 640x480@30 video track to ``OUT.mp4`` and prints ``frame I`` (flushed) for every frame the
track produced, then ``result {json}``. ``--file-limit`` caps the size of any file the process
writes (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored): the kernel then fails the recorder's writes
(EFBIG) as a full disk would, without needing root to mount a small filesystem.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fractions
import json
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from headset_client.sources import draw_frame_code
from server.rtc.recorder import TrackRecorder

FPS = 30
TICKS = 3000  # 90 kHz / 30 fps
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms, as aiortc's Opus decoder produces


class PacedVideoTrack(MediaStreamTrack):
    """``count`` yuv420p frames (what a WebRTC decoder yields) at ``fps``, in real time.

    Frame ``i`` carries ``i`` in its code strip (drawn at 640x480, then scaled to the frame's
    size, as a browser lowering its resolution would) over a moving texture; its pts is
    ``pts_of(i)`` (default ``i * 3000``) and its size ``size_of(i)``.
    """

    kind = "video"

    def __init__(
        self,
        count: int | None,
        fps: float = FPS,
        *,
        size_of: Callable[[int], tuple[int, int]] = lambda _: (640, 480),
        pts_of: Callable[[int], int] = lambda i: i * TICKS,
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.count, self.fps, self.index = count, fps, 0
        self.size_of, self.pts_of, self.on_frame = size_of, pts_of, on_frame
        self._start: float | None = None
        rng = np.random.default_rng(3)
        noise = rng.integers(40, 200, size=(60, 80), dtype=np.uint8)
        self._texture = cv2.resize(noise, (640 + 64, 480), interpolation=cv2.INTER_LINEAR)

    async def recv(self) -> av.VideoFrame:
        if self.count is not None and self.index >= self.count:
            self.stop()
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.index / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        i = self.index
        shift = (i * 2) % 64
        luma = np.ascontiguousarray(self._texture[:, shift : shift + 640])
        draw_frame_code(luma, i)
        width, height = self.size_of(i)
        if (width, height) != (640, 480):
            luma = cv2.resize(luma, (width, height), interpolation=cv2.INTER_AREA)
        chroma = np.full((height // 2, width), 128, np.uint8)
        frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
        frame.pts, frame.time_base = self.pts_of(i), fractions.Fraction(1, 90_000)
        self.index += 1
        if self.on_frame is not None:
            self.on_frame(i)
        return frame


class PacedAudioTrack(MediaStreamTrack):
    """``count`` 20 ms s16 frames at 48 kHz (a 440 Hz tone), in real time; pts in samples.

    ``channels_of(i)`` (default: ``channels``) lets the layout change mid-stream."""

    kind = "audio"

    def __init__(
        self,
        count: int | None,
        *,
        channels: int = 2,
        pts_of: Callable[[int], int] = lambda i: i * AUDIO_SAMPLES,
        channels_of: Callable[[int], int] | None = None,
    ) -> None:
        super().__init__()
        self.count, self.pts_of, self.index = count, pts_of, 0
        self.channels_of = channels_of or (lambda _: channels)
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.count is not None and self.index >= self.count:
            self.stop()
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.index * AUDIO_SAMPLES / AUDIO_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(AUDIO_SAMPLES) + self.index * AUDIO_SAMPLES) / AUDIO_RATE
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        channels = self.channels_of(self.index)
        data = np.repeat(tone, channels).reshape(1, -1)
        layout = "mono" if channels == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.pts_of(self.index)
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.index += 1
        return frame


async def _record(out: Path, seconds: float) -> None:
    def produced(index: int) -> None:
        print(f"frame {index}", flush=True)

    track = PacedVideoTrack(None, on_frame=produced)
    errors: list[str] = []
    recorder = TrackRecorder(track, out, kind="video", on_error=errors.append)
    recorder.start()
    await asyncio.sleep(seconds)
    result = await recorder.aclose()
    summary = dataclasses.asdict(result) | {
        "path": str(result.path),
        "errors": errors,
        "produced": track.index,
        "seen": recorder.stats.frames_seen,
    }
    print("result " + json.dumps(summary), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--file-limit", type=int, default=None)
    args = parser.parse_args()
    if args.file_limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write (EFBIG), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_limit, args.file_limit))
    asyncio.run(_record(args.out, args.seconds))
    sys.exit(0)


if __name__ == "__main__":
    main()
