"""Video (and audio) sources of the reference headset.

``synthetic`` draws, at 640x480@30, a frame counter into the pixels (a 16-bit code strip a page or
a test can read back after compression) and an ArUco marker (4x4_50, id 7) moving in a circle over
a textured background, so detection and latency can be checked end to end. ``file:PATH`` plays a
video file (with its audio), ``rgbd:FOLDER`` an RGB-D sequence (colour as video, depth on the
telemetry channel; see :mod:`headset_client.rgbd`), ``webcam:N`` opens ``/dev/videoN``.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import cv2
import numpy as np
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from headset_client.rgbd import DepthImage, RgbdSequence, RgbdTrack

__all__ = [
    "CODE_BITS",
    "CODE_BLOCK",
    "MARKER_ID",
    "Source",
    "SyntheticVideoTrack",
    "decode_frame_code",
    "open_source",
]

VIDEO_RATE = 90_000
CODE_BITS = 16
CODE_BLOCK = 32  # px; bits are drawn as CODE_BLOCK x CODE_BLOCK/2 blocks on the top row
MARKER_ID = 7


@dataclass
class Source:
    video: MediaStreamTrack | None
    audio: MediaStreamTrack | None
    description: str
    hfov_deg: float = 60.0
    intrinsics: dict[str, Any] | None = None
    """Calibrated camera (fx, fy, cx, cy, width, height) when the source knows it."""
    depth_for: Callable[[int], DepthImage | None] | None = None
    """The depth image of the frame sent with this pts, for RGB-D sources."""

    def stop(self) -> None:
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()


def draw_frame_code(image: np.ndarray, index: int) -> None:
    """Draw ``index`` (mod 2**16) as black/white blocks, LSB first, with white guard blocks."""
    h = CODE_BLOCK // 2
    image[:h, : CODE_BLOCK * (CODE_BITS + 2)] = 255
    for bit in range(CODE_BITS):
        x = CODE_BLOCK * (bit + 1)
        image[:h, x : x + CODE_BLOCK] = 255 if (index >> bit) & 1 else 0


def decode_frame_code(image: np.ndarray) -> int:
    """Read the code back from a (possibly scaled, compressed) BGR or gray frame."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = gray.shape[1] / 640.0
    y = int(CODE_BLOCK / 4 * scale)
    value = 0
    for bit in range(CODE_BITS):
        x = int((CODE_BLOCK * (bit + 1) + CODE_BLOCK / 2) * scale)
        if gray[y, x] > 127:
            value |= 1 << bit
    return value


class SyntheticVideoTrack(MediaStreamTrack):
    """Paced 30 fps frames with pts = index * 3000 (90 kHz), starting at 0."""

    kind = "video"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        backdrop: np.ndarray | None = None,
    ) -> None:
        """``backdrop``: an image (e.g. a photo of a person at work) pasted into the left part
        of the background, so the pose stage has somebody to find."""
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._index = 0
        self._start: float | None = None
        rng = np.random.default_rng(7)
        noise = rng.integers(0, 60, size=(height // 8, width // 8), dtype=np.uint8)
        texture = cv2.resize(noise, (width, height), interpolation=cv2.INTER_NEAREST)
        ramp = np.linspace(60, 160, width, dtype=np.float32)[None, :]
        base = np.clip(texture.astype(np.float32) + ramp, 0, 255).astype(np.uint8)
        self._background = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
        if backdrop is not None:
            side = int(height * 0.8)
            scale = side / max(backdrop.shape[:2])
            photo = cv2.resize(backdrop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            h, w = photo.shape[:2]
            y = (height - h) // 2
            self._background[y : y + h, 8 : 8 + w] = photo[:, : width - 8]
        dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
        marker = cv2.aruco.generateImageMarker(dictionary, MARKER_ID, 120)
        border = 20  # white quiet zone around the marker
        padded = np.full((160, 160), 255, np.uint8)
        padded[border:-border, border:-border] = marker
        self._marker = cv2.cvtColor(padded, cv2.COLOR_GRAY2BGR)
        self.start_time_ms: float | None = None

    @property
    def frames_produced(self) -> int:
        return self._index

    def marker_position(self, index: int) -> tuple[int, int]:
        """Top-left corner of the marker's quiet zone in frame ``index``."""
        t = index / self.fps
        cx = self.width / 2 + 150 * math.cos(2 * math.pi * t / 6.0)
        cy = self.height / 2 + 100 * math.sin(2 * math.pi * t / 6.0)
        return int(cx - 80), int(cy - 80)

    def render(self, index: int) -> np.ndarray:
        image: np.ndarray = self._background.copy()
        x, y = self.marker_position(index)
        image[y : y + 160, x : x + 160] = self._marker
        draw_frame_code(image, index)
        cv2.putText(
            image,
            f"{index:06d}",
            (10, self.height - 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
        return image

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
            self.start_time_ms = time.time() * 1000
        else:
            due = self._start + self._index / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        index = self._index
        self._index += 1
        frame = av.VideoFrame.from_ndarray(self.render(index), format="bgr24")
        frame.pts = index * int(VIDEO_RATE / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        return frame


class FilePlayback:
    """A video file played in real time, over and over, as one continuous stream.

    Each pass is a fresh ``MediaPlayer`` (which paces by the file's timestamps); the tracks it
    hands out shift every pass's timestamps past the previous one, because receivers drop frames
    whose RTP timestamps go backwards.
    """

    def __init__(self, path: str, *, loop: bool = True) -> None:
        self.path = path
        self.loop = loop
        self.generation = 0
        self._player = self._open()
        if self._player.video is None:
            self.stop()
            raise ValueError(f"{path!r} has no video stream")
        self.video: MediaStreamTrack = _FileTrack(self, "video")
        self.audio: MediaStreamTrack | None = (
            _FileTrack(self, "audio") if self._player.audio is not None else None
        )

    def _open(self) -> MediaPlayer:
        try:
            return MediaPlayer(self.path)
        except (av.FFmpegError, OSError) as exc:
            raise ValueError(f"cannot open video file {self.path!r}: {exc}") from None

    def track(self, kind: str) -> MediaStreamTrack | None:
        track: MediaStreamTrack | None = getattr(self._player, kind)
        return track

    def restart(self, generation: int) -> None:
        """Start the next pass, unless the other track already did."""
        if generation != self.generation:
            return
        for old in (self._player.video, self._player.audio):
            if old is not None:
                old.stop()
        self._player = self._open()
        self.generation += 1

    def stop(self) -> None:
        for old in (self._player.video, self._player.audio):
            if old is not None:
                old.stop()


class _FileTrack(MediaStreamTrack):
    def __init__(self, playback: FilePlayback, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._playback = playback
        self._generation = 0
        self._offset = 0
        self._next = 0  # the smallest pts the next frame may carry

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        while True:
            generation = self._playback.generation
            source = self._playback.track(self.kind)
            if source is None or self.readyState != "live":
                raise MediaStreamError
            try:
                frame = await source.recv()
            except MediaStreamError:
                if not self._playback.loop or self.readyState != "live":
                    raise
                self._playback.restart(generation)
                continue
            if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                continue
            if generation != self._generation:  # a new pass: continue after the last frame
                self._generation = generation
                self._offset = self._next - int(frame.pts or 0)
            pts = int(frame.pts or 0) + self._offset
            if isinstance(frame, av.AudioFrame):
                step = frame.samples
            else:  # one frame interval at 30 fps, in the frame's time base
                base = frame.time_base or fractions.Fraction(1, VIDEO_RATE)
                step = round(fractions.Fraction(1, 30) / base)
            self._next = pts + max(1, step)
            frame.pts = pts
            return frame

    def stop(self) -> None:
        super().stop()
        if self.kind == "video":
            self._playback.stop()


def open_source(spec: str) -> Source:
    """``synthetic`` (``synthetic:IMAGE`` with a photo in the background), ``file:PATH``,
    ``rgbd:FOLDER`` (TUM RGB-D layout) or ``webcam:N``."""
    if spec == "synthetic":
        return Source(video=SyntheticVideoTrack(), audio=None, description="synthetic 640x480@30")
    if spec.startswith("synthetic:"):
        path = spec[len("synthetic:") :]
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read the backdrop image {path!r}")
        synthetic = SyntheticVideoTrack(backdrop=np.asarray(image, np.uint8))
        return Source(video=synthetic, audio=None, description=f"synthetic 640x480@30 over {path}")
    if spec.startswith("file:"):
        path = spec[len("file:") :]
        playback = FilePlayback(path)
        return Source(video=playback.video, audio=playback.audio, description=f"file {path}")
    if spec.startswith("rgbd:"):
        folder = spec[len("rgbd:") :]
        track = RgbdTrack(RgbdSequence(folder))
        return Source(
            video=track,
            audio=None,
            description=f"rgbd {folder}",
            intrinsics=dict(track.sequence.camera),
            depth_for=track.depth_for,
        )
    if spec.startswith("webcam:"):
        device = spec[len("webcam:") :]
        path = device if device.startswith("/") else f"/dev/video{int(device)}"
        try:
            player = MediaPlayer(
                path, format="v4l2", options={"video_size": "640x480", "framerate": "30"}
            )
        except (av.FFmpegError, OSError) as exc:
            raise ValueError(f"cannot open webcam {path!r}: {exc}") from None
        return Source(video=player.video, audio=player.audio, description=f"webcam {path}")
    raise ValueError(f"unknown source {spec!r}: use synthetic, file:PATH, rgbd:FOLDER or webcam:N")
