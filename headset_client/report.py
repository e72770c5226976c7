"""What the headset measured, written as JSON with ``--report``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report", "percentiles"]


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index], 2)

    return {"p50": at(0.50), "p95": at(0.95), "count": len(ordered)}


@dataclass
class Report:
    frames_sent: int = 0
    depth_sent: int = 0
    overlays_received: int = 0
    overlays_unmatched: int = 0
    markers_seen: int = 0
    annotations_received: int = 0
    audio_frames_received: int = 0
    audio_peak: int = 0
    first_frame_ms: float | None = None
    overlay_latency: list[float] = field(default_factory=list)
    annotation_latency: list[float] = field(default_factory=list)

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        return {
            "frames_sent": self.frames_sent,
            "depth_sent": self.depth_sent,
            "overlays_received": self.overlays_received,
            "overlays_unmatched": self.overlays_unmatched,
            "markers_seen": self.markers_seen,
            "annotations_received": self.annotations_received,
            "audio_frames_received": self.audio_frames_received,
            "overlay_latency_ms": percentiles(self.overlay_latency),
            "annotation_latency_ms": percentiles(self.annotation_latency),
            **extra,
        }

    def write(self, path: Path, **extra: Any) -> None:
        path.write_text(json.dumps(self.to_dict(**extra), indent=2) + "\n")
