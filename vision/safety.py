"""Safety zones: a person's visible keypoints inside a polygon raise a :class:`SafetyEvent`.

Zones are polygons in normalized image uv (a fixed camera, or a zone drawn on the live view).
World-frame zones (a floor area fixed to a marker or the device's world) plug in through
:class:`ZoneResolver`: on every frame it maps each zone to a uv polygon, e.g. by projecting a
3D polygon with ``frame.camera_pose`` and ``frame.intrinsics``; :class:`ImageZones` is the
identity resolver for uv zones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from vision.results import Person, SafetyEvent
from vision.stages import FrameContext

__all__ = [
    "ImageZones",
    "SafetyOptions",
    "SafetyStage",
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


@dataclass
class SafetyOptions:
    """Zones checked on every frame, and what counts as a keypoint being there."""

    zones: tuple[Zone, ...] = ()
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


class SafetyStage:
    """Appends zone events to ``frame.events`` (run after the pose stage)."""

    def __init__(self, options: SafetyOptions, resolver: ZoneResolver | None = None) -> None:
        names = [z.name for z in options.zones]
        if len(set(names)) != len(names):
            raise ValueError(f"safety zone names must be unique, got {names}")
        self.options = options
        self.resolver: ZoneResolver = (
            resolver if resolver is not None else ImageZones(options.zones)
        )

    def run(self, frame: FrameContext) -> None:
        zones = self.resolver.zones_for(frame)
        if not zones or not frame.persons:
            return
        opts = self.options
        frame.events = frame.events + zone_events(
            frame.persons, zones, opts.min_visibility, opts.min_keypoints
        )

    def close(self) -> None:
        pass
