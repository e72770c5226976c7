"""Drawing a ``FrameResult`` onto its frame: what ``python -m vision annotate`` writes.

The mentor page draws the same things in the browser from the overlay JSON; this module is the
offline twin, for trainers and developers checking footage.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from vision.types import FrameResult, uv_to_pixel

__all__ = ["POSE_CONNECTIONS", "draw_result"]

#: BlazePose's 33-landmark skeleton (pairs of landmark indices).
POSE_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip

_RISK_COLOURS = {
    "negligible": (120, 200, 80),
    "low": (80, 200, 120),
    "medium": (0, 200, 255),
    "high": (0, 120, 255),
    "very high": (0, 0, 230),
}


def _px(uv: tuple[float, float] | list[float], w: int, h: int) -> tuple[int, int]:
    x, y = uv_to_pixel(float(uv[0]), float(uv[1]), w, h)
    return round(x), round(y)


def draw_result(image: npt.NDArray[np.uint8], result: FrameResult) -> npt.NDArray[np.uint8]:
    """A BGR copy of ``image`` with markers, people, objects and anchors drawn on it."""
    if image.ndim == 2:
        out = np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    elif image.shape[2] == 4:
        out = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    else:
        out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(w / 400))
    font = 0.4 + w / 2000
    for marker in result.markers:
        corners = np.array([_px(c, w, h) for c in marker.corners], np.int32)
        cv2.polylines(out, [corners], True, (255, 200, 0), thick, cv2.LINE_AA)
        origin = _px(marker.axes[0], w, h)
        for tip, colour in zip(
            marker.axes[1:], ((0, 0, 255), (0, 200, 0), (255, 0, 0)), strict=True
        ):
            cv2.line(out, origin, _px(tip, w, h), colour, thick + 1, cv2.LINE_AA)
        label = f"#{marker.id} {float(np.linalg.norm(marker.tvec)):.2f} m"
        cv2.putText(out, label, (int(corners[:, 0].min()), int(corners[:, 1].min()) - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, font, (255, 200, 0), thick, cv2.LINE_AA)  # fmt: skip
    for person in result.persons:
        colour = _RISK_COLOURS.get(person.risk.level if person.risk else "", (255, 255, 255))
        points = [(_px(k[:2], w, h), k[2]) for k in person.keypoints]
        for a, b in POSE_CONNECTIONS:
            if a < len(points) and b < len(points) and min(points[a][1], points[b][1]) > 0.5:
                cv2.line(out, points[a][0], points[b][0], colour, thick + 1, cv2.LINE_AA)
        for point, visibility in points:
            if visibility > 0.5:
                cv2.circle(out, point, thick + 2, colour, -1, cv2.LINE_AA)
        if person.risk is not None:
            x0, y0 = _px(person.bbox[:2], w, h)
            cv2.putText(out, f"REBA {person.risk.score}", (x0, max(12, y0 - 6)),
                        cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA)  # fmt: skip
    for obj in result.objects:
        x0, y0 = _px(obj.bbox[:2], w, h)
        x1, y1 = _px(obj.bbox[2:], w, h)
        if obj.corners:
            quad = np.array([_px(c, w, h) for c in obj.corners], np.int32)
            cv2.polylines(out, [quad], True, (0, 220, 255), thick, cv2.LINE_AA)
        else:
            cv2.rectangle(out, (x0, y0), (x1, y1), (0, 220, 255), thick, cv2.LINE_AA)
        cv2.putText(out, f"{obj.label} {obj.score:.2f}", (x0, max(12, y0 - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX, font, (0, 220, 255), thick, cv2.LINE_AA)  # fmt: skip
    for anchor in result.anchors:
        if anchor.visible and len(anchor.points_uv) >= 2:
            line = np.array([_px(p, w, h) for p in anchor.points_uv], np.int32)
            cv2.polylines(out, [line], False, (48, 59, 255), thick + 2, cv2.LINE_AA)
    return out
