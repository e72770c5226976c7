"""Latency figures from the raw samples the session clients record.

Every sample carries wall-clock milliseconds (``time.time() * 1000``) taken on this machine, so
samples from different processes (headset, mentor, server, Chromium) compare directly. A frame is
named by its index ``i`` at the headset: its pixels carry ``i mod 2**16`` (the code strip) and its
pts is ``i * 3000``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CODE_MOD",
    "FRAME_TICKS",
    "Latencies",
    "percentile",
    "summary",
    "window_summaries",
]

CODE_MOD = 2**16
FRAME_TICKS = 3000  # 90 kHz / 30 fps


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile ``q`` in [0, 100]; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    value = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return round(value, 1)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": round(max(values), 1) if values else None,
    }


@dataclass
class Latencies:
    """Latency samples of one run, each as ``(capture_or_send_ms, latency_ms)``."""

    glass: list[tuple[float, float]]
    """Headset capture -> frame decoded at the mentor."""
    overlay: list[tuple[float, float]]
    """Headset capture -> that frame's overlay received at the mentor."""
    overlay_headset: list[tuple[float, float]]
    """Headset capture -> that frame's overlay back at the headset."""
    ink: list[tuple[float, float]]
    """Mentor sends a stroke -> the headset receives it."""
    frames_produced: int
    frames_delivered: int
    to_analysed: list[tuple[float, float]]
    """Headset capture -> the server's vision result (clock of the server process)."""
    vision: list[tuple[float, float]]
    """Time the server's vision stage reports for the frame."""

    @classmethod
    def merge(cls, parts: Iterable[Latencies]) -> Latencies:
        out = cls([], [], [], [], 0, 0, [], [])
        for part in parts:
            out.glass += part.glass
            out.overlay += part.overlay
            out.overlay_headset += part.overlay_headset
            out.ink += part.ink
            out.frames_produced += part.frames_produced
            out.frames_delivered += part.frames_delivered
            out.to_analysed += part.to_analysed
            out.vision += part.vision
        return out

    def between(self, start_ms: float, end_ms: float) -> Latencies:
        def keep(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
            return [s for s in samples if start_ms <= s[0] < end_ms]

        glass = keep(self.glass)
        span_s = max(0.0, (end_ms - start_ms) / 1000)
        return Latencies(
            glass=glass,
            overlay=keep(self.overlay),
            overlay_headset=keep(self.overlay_headset),
            ink=keep(self.ink),
            frames_produced=round(span_s * 30),
            frames_delivered=len(glass),
            to_analysed=keep(self.to_analysed),
            vision=keep(self.vision),
        )

    def figures(self, seconds: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "glass_to_glass_ms": summary([v for _, v in self.glass]),
            "overlay_ms": summary([v for _, v in self.overlay]),
            "overlay_at_headset_ms": summary([v for _, v in self.overlay_headset]),
            "ink_ms": summary([v for _, v in self.ink]),
            "overlay_capture_to_analysed_ms": summary([v for _, v in self.to_analysed]),
            "vision_stage_ms": summary([v for _, v in self.vision]),
        }
        if seconds:
            out["delivered_fps"] = round(self.frames_delivered / seconds, 1)
            out["overlays_per_s"] = round(len(self.overlay) / seconds, 1)
        return out


def _index_for_code(code: int, received_ms: float, captured: dict[int, float]) -> int | None:
    """The latest frame index carrying ``code`` that was captured before ``received_ms``."""
    best = None
    index = code
    while index in captured:
        if captured[index] <= received_ms:
            best = index
        index += CODE_MOD
    return best


def session_latencies(raw: dict[str, Any]) -> Latencies:
    """Turn one session client's raw JSON (see ``tests.bench.session``) into latencies."""
    captured = {int(i): float(t) for i, t in raw["captured"]}
    glass = []
    for code, received in raw["mentor_frames"]:
        index = _index_for_code(int(code), received, captured)
        if index is not None:
            glass.append((captured[index], received - captured[index]))
    overlay, to_analysed, vision = [], [], []
    for pts, received, analysed, vision_ms in raw["mentor_overlays"]:
        t = captured.get(round(pts / FRAME_TICKS))
        if t is not None:
            overlay.append((t, received - t))
            to_analysed.append((t, analysed - t))
            vision.append((t, vision_ms))
    overlay_headset = []
    for pts, received in raw["headset_overlays"]:
        t = captured.get(round(pts / FRAME_TICKS))
        if t is not None:
            overlay_headset.append((t, received - t))
    ink = [(sent, received - sent) for sent, received in raw["ink"]]
    return Latencies(
        glass, overlay, overlay_headset, ink, len(captured), len(glass), to_analysed, vision
    )


def window_summaries(
    latencies: Latencies, start_ms: float, end_ms: float, window_s: float
) -> list[dict[str, Any]]:
    """Figures per consecutive window of ``window_s`` (the last one may be shorter, >= half)."""
    out = []
    t = start_ms
    step = window_s * 1000
    while t < end_ms:
        stop = min(t + step, end_ms)
        if stop - t < step / 2 and out:
            break
        part = latencies.between(t, stop)
        out.append(
            {
                "from_s": round((t - start_ms) / 1000, 1),
                "to_s": round((stop - start_ms) / 1000, 1),
                **part.figures((stop - t) / 1000),
            }
        )
        t = stop
    return out
