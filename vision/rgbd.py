"""Depth frames from the headset: the value type, its PNG wire form, and a sampler for anchoring.

A :class:`DepthFrame` is a uint16 z-depth image (``value * scale_m`` metres; 0 = no reading)
registered to the colour camera: same viewpoint and axes, possibly a lower resolution. Its
intrinsics are the depth image's; when omitted they are the colour camera's scaled to the depth
size. It reaches the pipeline on :class:`vision.types.Telemetry` (``depth=``), usually on fewer
frames than the colour: the ``rgbd`` stage (:mod:`vision.odometry`) runs only when a new one
arrives.

Open3D is imported lazily by :func:`load_open3d` (``import open3d`` needs the system library
libusb-1.0), so importing ``vision`` or running a pipeline without the ``rgbd`` stage never
loads it.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import DepthError, Open3DUnavailableError
from vision.types import Intrinsics

__all__ = [
    "MAX_DEPTH_SIDE",
    "DepthFrame",
    "DepthSampler",
    "decode_depth_png",
    "encode_depth_png",
    "load_open3d",
]

MAX_DEPTH_SIDE = 4096
"""Depth images with a side longer than this are refused (no headset sends one; a hostile PNG
header can claim 65535 x 65535)."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> channels (3 = palette)
_SAMPLER_SIDE = 160  # longest side of the depth copy an anchor sampler keeps


@dataclass(frozen=True, eq=False)
class DepthSampler:
    """A small copy of one depth frame, for lifting ink at normalized uv to metric depth.

    Cheap to keep around (``AnchorBook`` remembers the states of 150 analysed frames).
    """

    depth_m: npt.NDArray[np.float32]
    """(h, w) z-depth in metres, 0 where there is no reading."""

    def sample(self, points_uv: npt.ArrayLike, radius: int = 2) -> npt.NDArray[np.float64]:
        """Depth (metres) at each uv point: the median of the readings in a (2 radius + 1)^2
        window, zeros ignored; NaN where the window holds none or the point is off the image."""
        uv = np.asarray(points_uv, np.float64).reshape(-1, 2)
        h, w = self.depth_m.shape
        out = np.full(len(uv), np.nan)
        for i, (u, v) in enumerate(uv):
            if not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0):
                continue
            x, y = round(u * w - 0.5), round(v * h - 0.5)
            window = self.depth_m[
                max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1
            ]
            readings = window[window > 0]
            if readings.size:
                out[i] = float(np.median(readings))
        return out


@dataclass(frozen=True, eq=False)
class DepthFrame:
    """One depth image; see the module docstring."""

    depth: npt.NDArray[np.uint16]
    """(H, W) uint16 z-depth, ``value * scale_m`` metres, 0 = no reading."""
    pts: int = 0
    """Presentation time (90 kHz RTP clock) of the colour frame the depth was taken with."""
    intrinsics: Intrinsics | None = None
    """The depth camera's intrinsics (any calibrated size of it; rescaled to the depth size).
    None: the colour camera's, scaled to the depth size (depth registered to colour)."""
    scale_m: float = 0.001
    """Metres per depth unit (0.001: millimetres)."""

    def __post_init__(self) -> None:
        depth = self.depth
        if not isinstance(depth, np.ndarray) or depth.dtype != np.uint16 or depth.ndim != 2:
            got = (
                f"{depth.dtype} {depth.shape}"
                if isinstance(depth, np.ndarray)
                else type(depth).__name__
            )
            raise DepthError(f"depth must be a uint16 (H, W) numpy array; got {got}")
        _check_size(depth.shape[1], depth.shape[0])
        if not (isinstance(self.scale_m, int | float) and 0.0 < self.scale_m < 1.0):
            raise DepthError(f"scale_m must be in (0, 1) metres per unit, got {self.scale_m!r}")
        if self.intrinsics is not None:
            if not isinstance(self.intrinsics, Intrinsics):
                raise DepthError("DepthFrame.intrinsics must be a vision.Intrinsics or None")
            scaled = self.intrinsics.scaled_to(depth.shape[1], depth.shape[0])
            object.__setattr__(self, "intrinsics", scaled)

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    def camera(self, color: Intrinsics) -> Intrinsics:
        """The depth image's intrinsics, given the colour frame's (used when none were sent)."""
        if self.intrinsics is not None:
            return self.intrinsics
        return color.scaled_to(self.width, self.height)

    def valid_fraction(self) -> float:
        """Share of pixels with a reading."""
        return float(np.count_nonzero(self.depth)) / self.depth.size

    @cached_property
    def sampler(self) -> DepthSampler:
        """A downsampled copy for anchoring (made once per frame, on first use)."""
        step = max(1, -(-max(self.width, self.height) // _SAMPLER_SIDE))
        small = self.depth[step // 2 :: step, step // 2 :: step].astype(np.float32)
        return DepthSampler(small * np.float32(self.scale_m))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (not the pixels)."""
        return {
            "pts": self.pts,
            "width": self.width,
            "height": self.height,
            "scale_m": self.scale_m,
            "intrinsics": None if self.intrinsics is None else self.intrinsics.to_dict(),
        }


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise DepthError(f"depth image is empty ({width}x{height} pixels)")
    if max(width, height) > MAX_DEPTH_SIDE:
        raise DepthError(
            f"depth image is {width}x{height} pixels; at most {MAX_DEPTH_SIDE} a side is accepted"
        )


def decode_depth_png(
    data: bytes | bytearray | memoryview,
    *,
    pts: int = 0,
    intrinsics: Intrinsics | None = None,
    scale_m: float = 0.001,
) -> DepthFrame:
    """A :class:`DepthFrame` from a 16-bit single-channel (grayscale) PNG.

    The header is checked before anything is decompressed. Raises :class:`DepthError` naming
    the problem: not a PNG, truncated or corrupt data, 8-bit or multi-channel images, zero or
    absurd sizes (more than :data:`MAX_DEPTH_SIDE` a side).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DepthError(f"depth PNG must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < 33 or raw[:8] != _PNG_SIGNATURE or raw[12:16] != b"IHDR":
        raise DepthError(
            f"depth data is not a PNG ({len(raw)} bytes); send a 16-bit grayscale PNG in mm"
        )
    width, height, bit_depth, color_type = struct.unpack(">IIBB", raw[16:26])
    _check_size(width, height)
    channels = _PNG_CHANNELS.get(color_type)
    if channels is None:
        raise DepthError(f"depth PNG has an invalid colour type {color_type}")
    if channels != 1 or color_type == 3:
        kind = "a palette" if color_type == 3 else f"{channels} channels"
        raise DepthError(
            f"depth PNG has {kind}; expected one grayscale channel of 16-bit depth units"
        )
    if bit_depth != 16:
        raise DepthError(
            f"depth PNG is {bit_depth}-bit; expected 16-bit (uint16 depth in units of "
            f"{scale_m} m); an 8-bit image cannot hold metric depth"
        )
    decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise DepthError(f"depth PNG is truncated or corrupt ({len(raw)} bytes, {width}x{height})")
    depth = np.asarray(decoded)
    if depth.dtype != np.uint16 or depth.ndim != 2 or depth.shape != (height, width):
        raise DepthError(f"depth PNG decoded to {depth.dtype} {depth.shape}; expected uint16 2D")
    return DepthFrame(np.ascontiguousarray(depth), pts, intrinsics, scale_m)


def encode_depth_png(depth: npt.NDArray[np.uint16], *, compression: int = 1) -> bytes:
    """A uint16 (H, W) depth image as a 16-bit grayscale PNG (fast compression by default)."""
    if not isinstance(depth, np.ndarray) or depth.dtype != np.uint16 or depth.ndim != 2:
        raise DepthError("encode_depth_png needs a uint16 (H, W) numpy array")
    _check_size(depth.shape[1], depth.shape[0])
    ok, buffer = cv2.imencode(".png", depth, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover - OpenCV encodes any uint16 2D array
        raise DepthError("OpenCV could not encode the depth image")
    return bytes(buffer.tobytes())


_O3D_LOCK = threading.Lock()


def load_open3d(threads: int | None = 1) -> Any:
    """Import Open3D (once) and cap its worker threads (``None`` leaves Open3D's default).

    Raises :class:`Open3DUnavailableError` saying what to install when it cannot be imported.
    """
    with _O3D_LOCK:
        try:
            import open3d
        except (ImportError, OSError) as exc:
            raise Open3DUnavailableError(
                f"RGB-D odometry and the digital twin need Open3D, which failed to import "
                f"({exc}). Install the system library with `apt-get install libusb-1.0-0` "
                "and the package with `pip install open3d-cpu`."
            ) from exc
        if threads is not None and threads > 0:
            open3d.utility.set_max_threads(int(threads))
        open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
        return open3d
