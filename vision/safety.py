"""Safety zones: a person's visible keypoints inside a polygon raise a :class:`SafetyEvent`.

Zones are polygons in normalized image uv (a fixed camera, or a zone drawn on the live view), or
in a world frame (:class:`WorldZone`: e.g. a floor area fixed to a marker, metres in the
marker's frame, or in the device's own world). A :class:`ZoneResolver` maps every zone to a uv
polygon on each frame: :class:`ImageZones` keeps uv zones as they are; :class:`WorldZones`
projects world zones with the frame's camera pose (or the marker itself, when the zone's
reference marker is in view), clipped at the camera's near plane. A world zone whose reference
is not tracked on a frame is not checked on that frame (no event rather than a wrong one).
World zones count the feet (ankles, heels, toes) unless they name their own keypoints: a
person standing behind a floor zone is in the zone's image polygon only with the upper body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from vision.geometry import invert_pose, pose_matrix
from vision.results import Person, SafetyEvent, ZoneOutline
from vision.stages import FrameContext

FEET = (27, 28, 29, 30, 31, 32)
"""BlazePose ankles, heels and foot tips: what a floor zone checks by default."""
NEAR_M = 0.05

__all__ = [
    "FEET",
    "ImageZones",
    "SafetyOptions",
    "SafetyStage",
    "WorldZone",
    "WorldZones",
    "Zone",
    "ZoneResolver",
    "points_in_polygon",
    "zone_events",
]


@dataclass(frozen=True, slots=True)
class Zone:
    """A named polygon in normalized uv (at least 3 vertices, either winding)."""

    name: str
    polygon: tuple[tuple[float, float], ...]
    keypoints: tuple[int, ...] = ()
    """Only these landmark indices count (e.g. wrists for a 'hands off' zone); empty = all."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a safety zone needs a name")
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r} needs >= 3 vertices, got {len(self.polygon)}")
        if not all(len(p) == 2 and all(np.isfinite(p)) for p in self.polygon):
            raise ValueError(f"zone {self.name!r} vertices must be finite (u, v) pairs")


@dataclass(frozen=True, slots=True)
class WorldZone:
    """A named planar polygon in metres in a world frame.

    ``reference`` names the frame like ``CameraPose.reference``: ``marker:<id>`` (the marker's
    own frame: x right, y down the printed sheet, z out of it; a floor marker makes a floor
    zone), ``device`` (the headset's world), ``rgbd``... Vertices are (x, y, z) points.
    """

    name: str
    reference: str
    polygon: tuple[tuple[float, float, float], ...]
    keypoints: tuple[int, ...] = FEET

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a safety zone needs a name")
        if not self.reference:
            raise ValueError(f"world zone {self.name!r} needs a reference frame, e.g. 'marker:7'")
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r} needs >= 3 vertices, got {len(self.polygon)}")
        if not all(len(p) == 3 and all(np.isfinite(p)) for p in self.polygon):
            raise ValueError(f"zone {self.name!r} vertices must be finite (x, y, z) metres")
        if max(abs(c) for p in self.polygon for c in p) > 1000:
            raise ValueError(f"zone {self.name!r} vertices must lie within 1 km of the origin")


@dataclass
class SafetyOptions:
    """Zones checked on every frame, and what counts as a keypoint being there."""

    zones: tuple[Zone, ...] = ()
    world_zones: tuple[WorldZone, ...] = ()
    min_visibility: float = 0.5
    """Landmarks less visible than this are ignored."""
    min_keypoints: int = 1
    """Landmarks that must be inside a zone to raise an event."""


def points_in_polygon(
    points: npt.NDArray[np.float64], polygon: Sequence[tuple[float, float]]
) -> npt.NDArray[np.bool_]:
    """Even-odd rule, vectorized: (N, 2) points -> (N,) inside mask."""
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    hits = crosses & (x < x_at)
    return np.asarray(hits.sum(axis=1) % 2 == 1)


def zone_events(
    persons: Sequence[Person],
    zones: Sequence[Zone],
    min_visibility: float = 0.5,
    min_keypoints: int = 1,
) -> tuple[SafetyEvent, ...]:
    """One event per (zone, person) with at least ``min_keypoints`` visible landmarks inside."""
    events: list[SafetyEvent] = []
    for person in persons:
        if not person.keypoints:
            continue
        kp = np.asarray(person.keypoints, dtype=np.float64)
        visible = kp[:, 2] >= min_visibility
        for zone in zones:
            mask = visible.copy()
            if zone.keypoints:
                allowed = np.zeros(len(kp), bool)
                allowed[[i for i in zone.keypoints if 0 <= i < len(kp)]] = True
                mask &= allowed
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                continue
            inside = idx[points_in_polygon(kp[idx, :2], zone.polygon)]
            if inside.size >= max(1, min_keypoints):
                events.append(SafetyEvent(zone.name, person.id, tuple(int(i) for i in inside)))
    return tuple(events)


class ZoneResolver(Protocol):
    """Maps the configured zones to uv polygons on one frame (extension point for world zones)."""

    def zones_for(self, frame: FrameContext) -> Sequence[Zone]:
        """Zones in this frame's uv; a zone out of view is left out."""


class ImageZones:
    """Zones fixed in the image: the same uv polygons on every frame."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        self.zones = tuple(zones)

    def zones_for(self, frame: FrameContext) -> Sequence[Zone]:
        return self.zones


def _clip_near(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The polygon (camera coordinates) cut at z = NEAR_M (Sutherland-Hodgman, one plane)."""
    out: list[npt.NDArray[np.float64]] = []
    for i, cur in enumerate(points):
        prev = points[i - 1]
        cur_in, prev_in = cur[2] >= NEAR_M, prev[2] >= NEAR_M
        if cur_in != prev_in:
            t = (NEAR_M - prev[2]) / (cur[2] - prev[2])
            out.append(prev + t * (cur - prev))
        if cur_in:
            out.append(cur)
    return np.asarray(out, np.float64).reshape(-1, 3)


class WorldZones:
    """Image zones as they are, plus world zones projected with each frame's camera."""

    def __init__(self, zones: Sequence[Zone], world_zones: Sequence[WorldZone]) -> None:
        self.zones = tuple(zones)
        self.world_zones = tuple(world_zones)

    def zones_for(self, frame: FrameContext) -> Sequence[Zone]:
        out = list(self.zones)
        for zone in self.world_zones:
            camera_from_zone = self._camera_from(zone.reference, frame)
            if camera_from_zone is None:
                continue
            local = np.asarray(zone.polygon, np.float64)
            cam = _clip_near(local @ camera_from_zone[:3, :3].T + camera_from_zone[:3, 3])
            if len(cam) < 3:
                continue  # behind the camera
            k = frame.intrinsics
            u = (k.fx * cam[:, 0] / cam[:, 2] + k.cx) / frame.width
            v = (k.fy * cam[:, 1] / cam[:, 2] + k.cy) / frame.height
            uv = tuple((float(a), float(b)) for a, b in zip(u, v, strict=True))
            out.append(Zone(zone.name, uv, zone.keypoints))
        return out

    @staticmethod
    def _camera_from(reference: str, frame: FrameContext) -> npt.NDArray[np.float64] | None:
        if reference.startswith("marker:"):
            for marker in frame.markers:
                if reference == f"marker:{marker.id}":
                    return marker.camera_from_marker()
        pose = frame.camera_pose
        if pose is not None and pose.reference == reference:
            return invert_pose(pose_matrix(pose.world_from_camera))
        return None


class SafetyStage:
    """Appends zone events to ``frame.events`` (run after the pose stage)."""

    def __init__(self, options: SafetyOptions, resolver: ZoneResolver | None = None) -> None:
        names = [z.name for z in options.zones] + [z.name for z in options.world_zones]
        if len(set(names)) != len(names):
            raise ValueError(f"safety zone names must be unique, got {names}")
        self.options = options
        if resolver is None:
            resolver = (
                WorldZones(options.zones, options.world_zones)
                if options.world_zones
                else ImageZones(options.zones)
            )
        self.resolver: ZoneResolver = resolver

    def run(self, frame: FrameContext) -> None:
        zones = self.resolver.zones_for(frame)
        frame.zones = frame.zones + tuple(ZoneOutline(z.name, z.polygon) for z in zones)
        if not zones or not frame.persons:
            return
        opts = self.options
        frame.events = frame.events + zone_events(
            frame.persons, zones, opts.min_visibility, opts.min_keypoints
        )

    def close(self) -> None:
        pass
