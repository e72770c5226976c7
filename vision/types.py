"""Frozen value types that cross the vision package boundary.

Conventions shared by every stage and by the overlay wire format:

- Pixel coordinates follow OpenCV: the centre of pixel ``(i, j)`` is at ``(i, j)``, so a W x H
  image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
- Normalized uv covers the whole image: ``u = (x + 0.5) / W``, ``v = (y + 0.5) / H``; ``(0, 0)``
  is the top-left corner of the first pixel, ``(1, 1)`` the bottom-right corner of the last. A uv
  names the same scene point at 640x480 and at 480x360, which ink and overlays rely on.
- Camera frame: OpenCV (x right, y down, z forward), metres.
- Marker frame: origin at the marker centre, x right, y up, z out of the printed face.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vision.errors import InvalidIntrinsicsError
from vision.results import (
    Anchor,
    CameraPose,
    DetectedObject,
    Person,
    SafetyEvent,
    ZoneOutline,
)

if TYPE_CHECKING:
    from vision.rgbd import DepthFrame

__all__ = [
    "CameraSource",
    "FrameResult",
    "Intrinsics",
    "MarkerPose",
    "Telemetry",
    "pixel_to_uv",
    "uv_to_pixel",
]

CameraSource = Literal["telemetry", "settings", "fov-default"]
"""Where the intrinsics used for a frame came from."""

_DIST_LENGTHS = (0, 4, 5, 8, 12, 14)  # the distortion models OpenCV accepts


def pixel_to_uv(x: float, y: float, width: int, height: int) -> tuple[float, float]:
    """OpenCV pixel coordinates -> normalized uv (see the module docstring)."""
    return (x + 0.5) / width, (y + 0.5) / height


def uv_to_pixel(u: float, v: float, width: int, height: int) -> tuple[float, float]:
    """Normalized uv -> OpenCV pixel coordinates of a ``width`` x ``height`` frame."""
    return u * width - 0.5, v * height - 0.5


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    if key not in data:
        raise InvalidIntrinsicsError(
            f"{where}: missing {key!r}; expected fx, fy, cx, cy, width, height and optional dist"
        )
    value = data[key]
    if not _is_number(value):
        raise InvalidIntrinsicsError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)


def _rounded(values: npt.ArrayLike | tuple[float, ...], digits: int) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values, dtype=np.float64).ravel()]


@dataclass(frozen=True, slots=True)
class Intrinsics:
    """Pinhole camera intrinsics in pixels of a ``width`` x ``height`` image.

    ``dist`` holds OpenCV distortion coefficients ``(k1, k2, p1, p2[, k3[, k4, k5, k6[, ...]]])``;
    empty means an ideal pinhole. Distortion coefficients act on normalized coordinates, so they
    do not change when the image is rescaled.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    dist: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InvalidIntrinsicsError(
                    f"intrinsics: {name} must be a positive int, got {value!r}"
                )
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise InvalidIntrinsicsError(f"intrinsics: {name} must be finite, got {value!r}")
        if self.fx <= 0 or self.fy <= 0:
            raise InvalidIntrinsicsError(
                f"intrinsics: focal lengths must be > 0 pixels, got fx={self.fx}, fy={self.fy}"
            )
        if len(self.dist) not in _DIST_LENGTHS:
            raise InvalidIntrinsicsError(
                f"intrinsics: dist must have {_DIST_LENGTHS} coefficients, got {len(self.dist)}"
            )
        if not all(_is_number(d) and math.isfinite(d) for d in self.dist):
            raise InvalidIntrinsicsError(
                f"intrinsics: dist must be finite numbers, got {self.dist}"
            )

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = 60.0) -> Intrinsics:
        """A distortion-free centred camera with square pixels and this horizontal field of view."""
        if not 0.0 < hfov_deg < 180.0:
            raise InvalidIntrinsicsError(f"hfov_deg must be in (0, 180) degrees, got {hfov_deg}")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Intrinsics:
        """Parse ``to_dict()`` output (or a telemetry ``intrinsics`` object)."""
        if not isinstance(data, Mapping):
            raise InvalidIntrinsicsError(f"intrinsics must be an object, got {type(data).__name__}")
        size = {}
        for key in ("width", "height"):
            value = _number(data, key, "intrinsics")
            if not value.is_integer():
                raise InvalidIntrinsicsError(
                    f"intrinsics: {key!r} must be whole pixels, got {value}"
                )
            size[key] = int(value)
        dist = data.get("dist") or ()
        if not isinstance(dist, list | tuple) or not all(_is_number(d) for d in dist):
            raise InvalidIntrinsicsError(
                f"intrinsics: 'dist' must be a list of numbers, got {dist!r}"
            )
        fx, fy, cx, cy = (_number(data, k, "intrinsics") for k in ("fx", "fy", "cx", "cy"))
        return cls(fx, fy, cx, cy, size["width"], size["height"], tuple(float(d) for d in dist))

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera seen through a frame resized to ``width`` x ``height``.

        Use when the decoded frame is smaller or larger than the calibrated one (a browser drops
        640x480 to 480x360). Pixel centres are kept consistent: ``c' = (c + 0.5) * s - 0.5``. A
        change of aspect ratio is treated as an anisotropic resize, not a crop.
        """
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
            dist=self.dist,
        )

    def matrix(self) -> npt.NDArray[np.float64]:
        """The 3x3 camera matrix K."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    def dist_coeffs(self) -> npt.NDArray[np.float64] | None:
        """Distortion coefficients for OpenCV calls, or None for an ideal pinhole."""
        if not any(self.dist):
            return None
        return np.asarray(self.dist, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fx": round(self.fx, 4),
            "fy": round(self.fy, 4),
            "cx": round(self.cx, 4),
            "cy": round(self.cy, 4),
            "width": self.width,
            "height": self.height,
            "dist": [round(float(d), 8) for d in self.dist],
        }


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What the headset sent along with the video frame ``pts``."""

    pts: int
    head_pose: tuple[float, ...] | None = None
    """16 floats, row-major 4x4 world-from-camera pose in metres, when the device tracks itself."""
    intrinsics: Intrinsics | None = None
    """The device's calibrated intrinsics (at its own capture size), when it sends them."""
    depth: DepthFrame | None = None
    """A depth frame registered to this colour frame (see :mod:`vision.rgbd`), on the frames
    that have one; the ``rgbd`` stage reads it."""

    def __post_init__(self) -> None:
        if self.head_pose is not None and (
            len(self.head_pose) != 16 or not all(math.isfinite(x) for x in self.head_pose)
        ):
            raise ValueError("head_pose must be 16 finite floats (row-major 4x4 world-from-camera)")
        if self.depth is not None:
            from vision.rgbd import DepthFrame

            if not isinstance(self.depth, DepthFrame):
                raise TypeError(f"depth must be a vision.DepthFrame, got {type(self.depth)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "pts": self.pts,
            "head_pose": None if self.head_pose is None else _rounded(self.head_pose, 6),
            "intrinsics": None if self.intrinsics is None else self.intrinsics.to_dict(),
            "depth": None if self.depth is None else self.depth.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class MarkerPose:
    """One fiducial marker found in a frame, with its 6-DoF pose in the camera frame."""

    id: int
    family: str
    corners: tuple[tuple[float, float], ...]
    """The 4 corners in normalized uv, in the family's order (top-left, top-right,
    bottom-right, bottom-left of the printed marker)."""
    rvec: tuple[float, float, float]
    """Rodrigues rotation, camera-from-marker."""
    tvec: tuple[float, float, float]
    """Marker centre in the camera frame, metres."""
    size_m: float
    """Printed side length (outer black border) used to solve the pose."""
    axes: tuple[tuple[float, float], ...]
    """Projected origin and x, y, z axis tips (length ``size_m / 2``) in normalized uv; tips can
    fall outside [0, 1] when the marker is near the frame edge."""
    reprojection_error_px: float
    """RMS distance between detected and reprojected corners, pixels."""

    def camera_from_marker(self) -> npt.NDArray[np.float64]:
        """The 4x4 rigid transform taking marker-frame points to camera-frame points."""
        rotation, _ = _rodrigues(self.rvec)
        out = np.eye(4, dtype=np.float64)
        out[:3, :3] = rotation
        out[:3, 3] = self.tvec
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "family": self.family,
            "corners": [_rounded(c, 5) for c in self.corners],
            "rvec": _rounded(self.rvec, 6),
            "tvec": _rounded(self.tvec, 5),
            "size_m": round(self.size_m, 5),
            "axes": [_rounded(a, 5) for a in self.axes],
            "reprojection_error_px": round(self.reprojection_error_px, 3),
        }


def _rodrigues(rvec: tuple[float, float, float]) -> tuple[npt.NDArray[np.float64], float]:
    """Rotation matrix of a Rodrigues vector (numpy only, so types stay importable without cv2)."""
    r = np.asarray(rvec, dtype=np.float64)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3, dtype=np.float64), 0.0
    k = r / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rot = np.eye(3) + math.sin(theta) * kx + (1.0 - math.cos(theta)) * (kx @ kx)
    return rot, theta


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything the pipeline found on frame ``pts``."""

    pts: int
    width: int
    height: int
    markers: tuple[MarkerPose, ...]
    timings_ms: tuple[tuple[str, float], ...]
    """(stage, milliseconds) in run order: ``prepare``, each stage, then ``total``."""
    camera: CameraSource
    intrinsics: Intrinsics | None = None
    """The intrinsics used for this frame (scaled to it); kept in-process for anchoring and not
    part of ``to_dict()``, which is the overlay payload."""
    persons: tuple[Person, ...] = ()
    objects: tuple[DetectedObject, ...] = ()
    camera_pose: CameraPose | None = None
    anchors: tuple[Anchor, ...] = ()
    events: tuple[SafetyEvent, ...] = ()
    zones: tuple[ZoneOutline, ...] = ()
    """Safety zones checked on this frame, in this frame's uv."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "pts": self.pts,
            "width": self.width,
            "height": self.height,
            "markers": [m.to_dict() for m in self.markers],
            "persons": [p.to_dict() for p in self.persons],
            "objects": [o.to_dict() for o in self.objects],
            "camera_pose": None if self.camera_pose is None else self.camera_pose.to_dict(),
            "anchors": [a.to_dict() for a in self.anchors],
            "events": [e.to_dict() for e in self.events],
            "zones": [z.to_dict() for z in self.zones],
            "timings_ms": {stage: round(ms, 3) for stage, ms in self.timings_ms},
            "camera": self.camera,
        }
