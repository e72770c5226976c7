"""What the later stages find on a frame: people, objects, the camera's pose, anchors, risks.

All coordinates on the image are normalized uv (see :mod:`vision.types`); 3D quantities are in
metres. Every type is frozen and turns into JSON-ready data with ``to_dict()``; the overlay sent
to mentors and the ``annotate`` JSON are built from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Anchor",
    "CameraPose",
    "DetectedObject",
    "ErgonomicRisk",
    "Person",
    "PoseSource",
    "SafetyEvent",
    "ZoneOutline",
]

PoseSource = Literal["device", "markers", "planar", "rgbd"]
"""Where a camera pose came from: the headset's own tracking, fiducials, a tracked plane, or
RGB-D odometry."""


def _r(values: tuple[float, ...] | list[float], digits: int = 5) -> list[float]:
    return [round(float(v), digits) for v in values]


@dataclass(frozen=True, slots=True)
class ErgonomicRisk:
    """A REBA-style score for one person on one frame."""

    score: int
    """REBA final score, 1 (negligible) to 15 (very high)."""
    level: Literal["negligible", "low", "medium", "high", "very high"]
    parts: tuple[tuple[str, float], ...] = ()
    """(body part or angle name, value) pairs behind the score, e.g. ("trunk_flexion", 34.0)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "level": self.level,
            "parts": {name: round(value, 2) for name, value in self.parts},
        }


@dataclass(frozen=True, slots=True)
class Person:
    """One person: 33 BlazePose landmarks as normalized ``(x, y, visibility)``."""

    id: int
    """Track id, stable across frames while the person stays in view."""
    keypoints: tuple[tuple[float, float, float], ...]
    bbox: tuple[float, float, float, float]
    """(u0, v0, u1, v1)."""
    score: float
    world: tuple[tuple[float, float, float], ...] = ()
    """Optional metric 3D landmarks (hip-centred, metres), when the model gives them."""
    risk: ErgonomicRisk | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "keypoints": [_r(k, 4) for k in self.keypoints],
            "bbox": _r(self.bbox, 4),
            "score": round(self.score, 3),
        }
        if self.risk is not None:
            out["risk"] = self.risk.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class DetectedObject:
    """A labelled thing in the frame: registered equipment, a QR asset tag, a detector's box."""

    label: str
    score: float
    bbox: tuple[float, float, float, float]
    """(u0, v0, u1, v1)."""
    source: Literal["equipment", "qr", "detector", "person-detector"]
    corners: tuple[tuple[float, float], ...] = ()
    """Outline in uv where known (equipment: the reference image's corners; QR: the code's)."""
    rvec: tuple[float, float, float] | None = None
    tvec: tuple[float, float, float] | None = None
    """6-DoF pose (camera frame, metres) where the physical size is known."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "score": round(self.score, 3),
            "bbox": _r(self.bbox, 4),
            "source": self.source,
        }
        if self.corners:
            out["corners"] = [_r(c, 4) for c in self.corners]
        if self.rvec is not None and self.tvec is not None:
            out["rvec"], out["tvec"] = _r(self.rvec, 6), _r(self.tvec, 5)
        return out


@dataclass(frozen=True, slots=True)
class CameraPose:
    """Where the camera is: ``world_from_camera`` as a row-major 4x4 (OpenCV camera axes)."""

    world_from_camera: tuple[float, ...]
    source: PoseSource
    quality: float = 1.0
    """0..1: inlier ratio or the tracker's own confidence."""
    reference: str = "world"
    """The frame ``world`` means: "device", "marker:<id>", "plane:<n>" or "rgbd"."""
    age: int = 0
    """90 kHz ticks since the pose was measured: 0 on the frame it was measured on; RGB-D
    odometry repeats the pose of the last depth frame on the colour frames in between."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "world_from_camera": _r(self.world_from_camera, 6),
            "source": self.source,
            "quality": round(self.quality, 3),
            "reference": self.reference,
            "age": self.age,
        }


@dataclass(frozen=True, slots=True)
class Anchor:
    """Ink lifted off the image: where it is in the world, and where it shows on this frame."""

    id: str
    """The stroke id the anchor belongs to."""
    frame: str
    """What it is fixed to: "marker:<id>", "plane:<n>", "world" (device/RGB-D) or "image"."""
    points_uv: tuple[tuple[float, float], ...]
    """The stroke's points reprojected into this frame (empty when out of view)."""
    points_xyz: tuple[tuple[float, float, float], ...] = ()
    """The stroke's points in the anchor's frame, metres (for a headset that renders natively)."""
    visible: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "frame": self.frame,
            "uv": [_r(p, 4) for p in self.points_uv],
            "xyz": [_r(p, 4) for p in self.points_xyz],
            "visible": self.visible,
        }


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    """A person's keypoints entered a safety zone on this frame."""

    zone: str
    person_id: int
    keypoints: tuple[int, ...] = field(default_factory=tuple)
    """Indices of the landmarks inside the zone."""

    def to_dict(self) -> dict[str, Any]:
        return {"zone": self.zone, "person_id": self.person_id, "keypoints": list(self.keypoints)}


@dataclass(frozen=True, slots=True)
class ZoneOutline:
    """A safety zone as checked on this frame: its polygon in normalized uv (world zones
    projected with this frame's camera), so viewers can draw it."""

    name: str
    polygon: tuple[tuple[float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "polygon": [_r(p, 4) for p in self.polygon]}
