"""RGB-D sequences for the reference headset: ``rgbd:FOLDER`` in the TUM RGB-D layout.

A folder holds ``rgb.txt`` and ``depth.txt`` (lines ``timestamp path``, ``#`` comments), the
images they name (colour: any format OpenCV reads; depth: 16-bit PNG) and optionally
``camera.json``::

    {"fx": 525.0, "fy": 525.0, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480,
     "depth_scale_m": 0.0002}

(without it: the TUM defaults, 525 px focal length at 640x480 and 5000 depth units a metre).
The colour images are played in real time at their timestamps, looping as one continuous
stream; each frame's depth is the depth image nearest in time (within 20 ms, else none). The
client sends the depth of at most ``depth_fps`` frames a second on the ``telemetry`` channel as
binary messages (see :func:`pack_depth`), so the server can run RGB-D odometry and build the
digital twin.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

__all__ = ["DEPTH_MAGIC", "DepthImage", "RgbdSequence", "RgbdTrack", "pack_depth"]

VIDEO_RATE = 90_000
DEPTH_MAGIC = b"FSD1"
MAX_GAP_S = 0.02
TUM_CAMERA = {"fx": 525.0, "fy": 525.0, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480}
TUM_DEPTH_SCALE_M = 1 / 5000


@dataclass(frozen=True)
class DepthImage:
    png: bytes
    scale_m: float


def pack_depth(pts: int, image: DepthImage, intrinsics: dict[str, Any] | None = None) -> bytes:
    """The wire form of a depth message: magic, header length, JSON header, 16-bit PNG."""
    header: dict[str, Any] = {
        "v": 1,
        "type": "depth",
        "pts": pts,
        "format": "png16",
        "scale_m": image.scale_m,
    }
    if intrinsics is not None:
        header["intrinsics"] = intrinsics
    head = json.dumps(header).encode()
    return DEPTH_MAGIC + len(head).to_bytes(4, "big") + head + image.png


def _listing(path: Path) -> list[tuple[float, Path]]:
    if not path.is_file():
        raise ValueError(f"{path} is missing (an RGB-D folder needs rgb.txt and depth.txt)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            stamp = float(parts[0])
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{number}: expected 'timestamp filename'") from None
        if len(parts) < 2:
            raise ValueError(f"{path}:{number}: expected 'timestamp filename'")
        rows.append((stamp, path.parent / parts[1]))
    if not rows:
        raise ValueError(f"{path} lists no images")
    return sorted(rows, key=lambda r: r[0])


class RgbdSequence:
    """A TUM-layout RGB-D folder: colour frames with their nearest depth images."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"{self.folder} is not a folder")
        self.colour = _listing(self.folder / "rgb.txt")
        self.depth = _listing(self.folder / "depth.txt")
        camera: dict[str, Any] = dict(TUM_CAMERA)
        scale = TUM_DEPTH_SCALE_M
        config = self.folder / "camera.json"
        if config.is_file():
            try:
                data = json.loads(config.read_text())
                scale = float(data.pop("depth_scale_m", scale))
                camera.update({k: data[k] for k in TUM_CAMERA if k in data})
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"{config}: not a camera description: {exc}") from None
        self.camera = camera
        self.depth_scale_m = scale
        stamps = np.array([t for t, _ in self.depth])
        self._depth_stamps = stamps

    def depth_near(self, stamp: float) -> Path | None:
        i = int(np.searchsorted(self._depth_stamps, stamp))
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(self.depth):
                gap = abs(self.depth[j][0] - stamp)
                if gap <= MAX_GAP_S and (best is None or gap < best[0]):
                    best = (gap, self.depth[j][1])
        return None if best is None else best[1]


class RgbdTrack(MediaStreamTrack):
    """The colour images in real time (looping); remembers which pts carries which depth."""

    kind = "video"

    def __init__(self, sequence: RgbdSequence) -> None:
        super().__init__()
        self.sequence = sequence
        stamps = [t for t, _ in sequence.colour]
        steps = np.diff(stamps) if len(stamps) > 1 else np.array([1 / 30])
        self._period = float(np.median(steps)) if len(steps) else 1 / 30
        self._index = 0
        self._pts = 0
        self._start: float | None = None
        self._elapsed = 0.0
        self._depth: OrderedDict[int, Path] = OrderedDict()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        colour = self.sequence.colour
        i = self._index % len(colour)
        stamp, path = colour[i]
        if self._start is None:
            self._start = time.monotonic()
        elif i == 0:
            self._elapsed += self._period  # next pass: continue one period after the last frame
        else:
            self._elapsed += max(stamp - colour[i - 1][0], 1e-3)
        wait = self._start + self._elapsed - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaStreamError
        pts = round(self._elapsed * VIDEO_RATE)
        depth = self.sequence.depth_near(stamp)
        if depth is not None:
            self._depth[pts] = depth
            while len(self._depth) > 120:
                self._depth.popitem(last=False)
        self._index += 1
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, np.uint8), format="bgr24")
        frame.pts, frame.time_base = pts, fractions.Fraction(1, VIDEO_RATE)
        return frame

    def depth_for(self, pts: int) -> DepthImage | None:
        path = self._depth.pop(pts, None)
        if path is None:
            return None
        try:
            return DepthImage(path.read_bytes(), self.sequence.depth_scale_m)
        except OSError:
            return None
