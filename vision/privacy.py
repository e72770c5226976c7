"""Privacy filters for stored video: faces blurred where the pose stage found people.

:func:`blur_faces` takes a frame and the people found on a recent frame (normalized BlazePose
keypoints) and blurs a disc around each face (landmarks 0-10: nose, eyes, ears, mouth), sized
from the face's own landmarks and padded for motion since that analysis. It only knows the
faces the pose stage found: a face it missed stays visible (see the README's privacy note).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from vision.results import Person

__all__ = ["FACE", "blur_faces", "face_boxes"]

FACE = tuple(range(11))
"""BlazePose's face landmarks."""


def face_boxes(
    persons: Sequence[Person], width: int, height: int, *, pad: float = 0.6
) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1) around each person's face, clipped to the frame."""
    boxes = []
    for person in persons:
        if len(person.keypoints) < len(FACE):
            continue
        kp = np.asarray([person.keypoints[i] for i in FACE], np.float64)
        seen = kp[kp[:, 2] >= 0.3]
        if len(seen) == 0:
            continue
        xy = seen[:, :2] * (width, height)
        centre = xy.mean(axis=0)
        span = float(np.max(np.ptp(xy, axis=0))) if len(xy) > 1 else 0.0
        # the face is wider than its landmarks (ears to chin): 1.5x, plus the motion pad
        half = max(12.0, 0.5 * span * 1.5 * (1.0 + pad), 0.04 * max(width, height))
        x0, y0 = int(max(0, centre[0] - half)), int(max(0, centre[1] - 1.2 * half))
        x1, y1 = int(min(width, centre[0] + half)), int(min(height, centre[1] + half))
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return boxes


def blur_faces(
    image: npt.NDArray[np.uint8], persons: Sequence[Person], *, pad: float = 0.6
) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` (BGR) with every known face blurred beyond recognition (shrunk to
    1/16 and smoothly enlarged: no detail survives, and no block edges draw the eye)."""
    height, width = image.shape[:2]
    boxes = face_boxes(persons, width, height, pad=pad)
    if not boxes:
        return image
    out = image.copy()
    for x0, y0, x1, y1 in boxes:
        region = out[y0:y1, x0:x1]
        small = cv2.resize(
            region,
            (max(1, (x1 - x0) // 16), max(1, (y1 - y0) // 16)),
            interpolation=cv2.INTER_AREA,
        )
        smooth = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(smooth, (0, 0), 3.0)
    return out
