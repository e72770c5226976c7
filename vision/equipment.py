"""Registered equipment: reference images found in live frames by local features.

A trainer registers a flat reference image of a piece of equipment (a control panel, a label
plate, the front of a machine) with its physical width. :class:`EquipmentLibrary` computes ORB
features of it once. :class:`EquipmentStage` detects ORB features in every frame, matches them to
each reference (Hamming distance, Lowe ratio test), fits a RANSAC homography, checks that the
result is a plausible view of a flat rectangle (enough inliers, convex quad, not tiny, not
mirrored) and solves the 6-DoF pose of the reference plane with ``SOLVEPNP_IPPE``.

The reference frame follows the marker convention of :mod:`vision.types`: origin at the centre of
the reference image, x right, y up, z out of the printed face, metres.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.equipment_library import (
    EquipmentError,
    EquipmentLibrary,
    EquipmentReference,
    ReferenceImageError,
)
from vision.results import DetectedObject
from vision.stages import FrameContext

__all__ = [
    "EquipmentError",
    "EquipmentLibrary",
    "EquipmentReference",
    "EquipmentStage",
    "ReferenceImageError",
]

_F64 = npt.NDArray[np.float64]
_U8 = npt.NDArray[np.uint8]


class EquipmentStage:
    """Finds every registered reference in a frame -> ``frame.objects`` (source "equipment").

    At most one instance per reference per frame. ``min_inliers`` RANSAC inliers are required;
    ``score`` is ``min(1, inliers / (4 * min_inliers))``. Frames larger than ``max_side`` are
    analysed at a reduced size (the results are still in the frame's uv and camera).

    Features are spread over the frame. ORB proposes ``feature_pool * max_features``
    candidates; ``feature_strongest`` of the budget goes to the strongest of them as ORB itself
    picks (per pyramid level), the rest is shared out over cells of ``feature_cell_px`` pixels:
    each cell keeps its strongest remaining candidates up to one common cap, the largest that
    fits the budget, so sparse cells keep all of theirs and dense ones (the face, flag and
    insignia of a person photo) are cut down. Without it a busy frame spends the whole budget
    on its highest-contrast parts and a reference elsewhere gets too few features to be found.
    ``feature_cell_px=None`` is plain ORB (the strongest ``max_features``). Measured on 30 busy
    scenes (``tests/unit/vision/test_equipment_busy.py``), see ``tests/bench/vision.py``.

    ``detect_every`` > 1 runs the full feature detection and matching only on every n-th frame
    (and on every frame while nothing is tracked); in between, references found on the previous
    frame are tracked by optical flow from their last homography, which costs a few ms instead
    of tens. A track is dropped when fewer than half of its corners follow it.
    """

    def __init__(
        self,
        library: EquipmentLibrary,
        *,
        max_features: int = 1000,
        ratio: float = 0.8,
        min_inliers: int = 20,
        min_area_fraction: float = 0.002,
        max_side: int = 800,
        detect_every: int = 1,
        feature_cell_px: int | None = 64,
        feature_pool: float = 2.0,
        feature_strongest: float = 0.2,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if feature_cell_px is not None and feature_cell_px < 8:
            raise ValueError(f"feature_cell_px must be >= 8 pixels or None, got {feature_cell_px}")
        if not feature_pool >= 1.0:
            raise ValueError(f"feature_pool must be >= 1, got {feature_pool}")
        if not 0.0 <= feature_strongest <= 1.0:
            raise ValueError(f"feature_strongest must be in [0, 1], got {feature_strongest}")
        self.library = library
        self._detect_every = detect_every
        self._frames = 0
        self._tracks: dict[str, _F64] = {}
        self._tracks_size = (0, 0)
        self._max_features = max_features
        self._cell_px = feature_cell_px
        self._strongest = feature_strongest
        pool = max_features if feature_cell_px is None else round(max_features * feature_pool)
        # Ranking the larger candidate pool by FAST score instead of Harris saves ~1 ms at 480p
        # and measured no worse (busy and plain scenes).
        score = cv2.ORB_HARRIS_SCORE if feature_cell_px is None else cv2.ORB_FAST_SCORE
        self._orb = cv2.ORB.create(
            nfeatures=pool, scaleFactor=1.2, nlevels=8, edgeThreshold=15, patchSize=15,
            fastThreshold=12, scoreType=score,
        )  # fmt: skip
        self._index: tuple[int, tuple[EquipmentReference, ...], Any] | None = None
        self._ratio = ratio
        self._min_inliers = min_inliers
        self._min_area_fraction = min_area_fraction
        self._max_side = max_side

    def run(self, frame: FrameContext) -> None:
        version = self.library.version
        if self._index is None or self._index[0] != version:
            self._index = (version, *self._build_index())
            self._tracks = {}
        _, references, matcher = self._index
        if (frame.width, frame.height) != self._tracks_size:
            self._tracks, self._tracks_size = {}, (frame.width, frame.height)
        self._frames += 1
        found: dict[str, tuple[DetectedObject, _F64]] = {}
        tracking = self._detect_every > 1
        if not (tracking and self._tracks) or self._frames % self._detect_every == 0:
            self._detect(references, matcher, frame, found)
        for ref in references if tracking else ():
            previous = self._tracks.get(ref.name)
            if previous is not None and ref.name not in found:
                result = self._follow(ref, previous, frame)
                if result is not None:
                    found[ref.name] = result
        self._tracks = {name: homography for name, (_, homography) in found.items()}
        if found:
            frame.objects = (*frame.objects, *(obj for obj, _ in found.values()))

    def _detect(
        self,
        references: tuple[EquipmentReference, ...],
        matcher: Any,
        frame: FrameContext,
        found: dict[str, tuple[DetectedObject, _F64]],
    ) -> None:
        """Full ORB detection + matching of every reference, results into ``found``."""
        gray = frame.gray
        height, width = gray.shape
        scale = min(1.0, self._max_side / max(width, height))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), np.uint8)
        keypoints, descriptors = self._features(gray)
        if descriptors is None or len(keypoints) < self._min_inliers:
            return
        points = np.array([kp.pt for kp in keypoints], dtype=np.float32)
        # Back to full-frame pixels (pixel-centre convention).
        points = (points + 0.5) / scale - 0.5
        # Nearest two reference descriptors (over all references) per frame descriptor, LSH.
        by_ref: dict[int, list[tuple[int, int]]] = {}
        for pair in matcher.knnMatch(descriptors, k=2):
            if len(pair) == 2 and pair[0].distance < self._ratio * pair[1].distance:
                by_ref.setdefault(pair[0].imgIdx, []).append((pair[0].trainIdx, pair[0].queryIdx))
        for index, ref in enumerate(references):
            pairs = by_ref.get(index, [])
            if len(pairs) < self._min_inliers:
                continue
            ids = np.array(pairs, dtype=np.int64)
            result = self._fit(ref, ref.points[ids[:, 0]], points[ids[:, 1]], frame)
            if result is not None:
                found[ref.name] = result

    def _features(self, gray: _U8) -> tuple[Any, Any]:
        """ORB keypoints and descriptors, spread over the image (see the class docstring)."""
        if self._cell_px is None:
            return self._orb.detectAndCompute(gray, None)
        keypoints = self._orb.detect(gray, None)
        if len(keypoints) > self._max_features:
            points = np.asarray(cv2.KeyPoint.convert(keypoints), np.float32).reshape(-1, 2)
            response = np.fromiter((kp.response for kp in keypoints), np.float32, len(keypoints))
            octave = np.fromiter((kp.octave for kp in keypoints), np.int64, len(keypoints))
            chosen = spread(
                points, response, octave, gray.shape, self._cell_px, self._max_features,
                self._strongest,
            )  # fmt: skip
            keypoints = [keypoints[i] for i in chosen]
        return self._orb.compute(gray, keypoints)

    def _build_index(self) -> tuple[tuple[EquipmentReference, ...], Any]:
        references = self.library.list()
        matcher = cv2.FlannBasedMatcher(
            {"algorithm": 6, "table_number": 4, "key_size": 24, "multi_probe_level": 1},
            {"checks": 32},
        )
        if references:
            matcher.add([ref.descriptors for ref in references])
            matcher.train()
        return references, matcher

    def _fit(
        self,
        ref: EquipmentReference,
        src: npt.NDArray[np.float32],
        dst: npt.NDArray[np.float32],
        frame: FrameContext,
    ) -> tuple[DetectedObject, _F64] | None:
        """RANSAC homography from feature matches, refined by optical flow when possible."""
        found, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 3.0, maxIters=1000)
        if found is None or mask is None:
            return None
        homography: _F64 = np.asarray(found, np.float64)
        inliers = int(mask.sum())
        if inliers < self._min_inliers:
            return None
        quad = _project(_outline(ref), homography)
        if not self._plausible(quad, frame.width, frame.height):
            return None
        refined = _refine(ref, homography, quad, frame.gray)
        if refined is not None:
            homography = refined[0]
            quad = _project(_outline(ref), homography)
            if not self._plausible(quad, frame.width, frame.height):
                return None
        return self._finish(ref, quad, inliers, frame), homography

    def _follow(
        self, ref: EquipmentReference, previous: _F64, frame: FrameContext
    ) -> tuple[DetectedObject, _F64] | None:
        """Track a reference found on the previous frame from its last homography."""
        quad = _project(_outline(ref), previous)
        if not self._plausible(quad, frame.width, frame.height):
            return None
        refined = _refine(ref, previous, quad, frame.gray)
        if refined is None or refined[1] < self._min_inliers:
            return None
        homography, inliers = refined
        quad = _project(_outline(ref), homography)
        if not self._plausible(quad, frame.width, frame.height):
            return None
        return self._finish(ref, quad, inliers, frame), homography

    def _finish(
        self, ref: EquipmentReference, quad: _F64, inliers: int, frame: FrameContext
    ) -> DetectedObject:
        """The detected object for an outline in pixels: uv, bbox and the 6-DoF pose."""
        corners_3d = np.array(
            [[-ref.width_m / 2, ref.height_m / 2, 0.0], [ref.width_m / 2, ref.height_m / 2, 0.0],
             [ref.width_m / 2, -ref.height_m / 2, 0.0], [-ref.width_m / 2, -ref.height_m / 2, 0.0]],
            dtype=np.float64,
        )  # fmt: skip
        intr = frame.intrinsics
        ok, rvec, tvec = cv2.solvePnP(
            corners_3d, quad, intr.matrix(), intr.dist_coeffs(), flags=cv2.SOLVEPNP_IPPE
        )
        pose_ok = bool(ok) and bool(np.all(np.isfinite(tvec))) and float(tvec[2, 0]) > 0.0
        uv = (quad + 0.5) / np.array([frame.width, frame.height], dtype=np.float64)
        lo = np.clip(uv.min(axis=0), 0.0, 1.0)
        hi = np.clip(uv.max(axis=0), 0.0, 1.0)
        r = rvec.ravel().tolist() if pose_ok else None
        t = tvec.ravel().tolist() if pose_ok else None
        return DetectedObject(
            label=ref.name,
            score=min(1.0, inliers / (4.0 * self._min_inliers)),
            bbox=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
            source="equipment",
            corners=tuple((float(u), float(v)) for u, v in uv),
            rvec=None if r is None else (r[0], r[1], r[2]),
            tvec=None if t is None else (t[0], t[1], t[2]),
        )

    def _plausible(self, quad: _F64, width: int, height: int) -> bool:
        """A convex, not mirrored, not tiny quad that overlaps the frame."""
        if not np.all(np.isfinite(quad)):
            return False
        contour = quad.astype(np.float32).reshape(-1, 1, 2)
        if not cv2.isContourConvex(contour):
            return False
        edges = np.roll(quad, -1, axis=0) - quad
        cross = (
            edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
            - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
        )
        if not np.all(cross > 0):  # image y points down: clockwise on screen = positive
            return False
        area = float(cv2.contourArea(contour))
        if area < self._min_area_fraction * width * height:
            return False
        lengths = np.linalg.norm(edges, axis=1)
        if lengths.min() < 0.1 * lengths.max():  # a sliver: a near-degenerate homography
            return False
        inside = (quad[:, 0] > -0.5) & (quad[:, 0] < width) & (quad[:, 1] > -0.5)
        inside &= quad[:, 1] < height
        return bool(inside.any()) or area < 4.0 * width * height

    def close(self) -> None:
        pass


def spread(
    points: npt.NDArray[np.float32],
    response: npt.NDArray[np.float32],
    octave: npt.NDArray[np.int64],
    shape: tuple[int, ...],
    cell_px: int,
    budget: int,
    strongest: float,
) -> npt.NDArray[np.intp]:
    """Indices (ascending) of ``budget`` of the points (or all of them).

    First ``strongest * budget`` points are taken as ORB itself takes them: the highest
    ``response`` per pyramid ``octave``, with ORB's quota per octave (geometric, factor 1/1.2^2).
    The rest of the budget is spread: in every ``cell_px`` cell the strongest remaining points,
    up to one cap for all cells, the largest cap that fits (a cell with fewer keeps them all).
    """
    if len(points) <= budget:
        return np.arange(len(points))
    taken = np.zeros(len(points), bool)
    levels = int(octave.max()) + 1
    share = (1.0 / 1.44) ** np.arange(levels)
    quota = np.floor(strongest * budget * share / share.sum()).astype(np.int64)
    by_level = np.lexsort((-response, octave))
    sorted_levels = octave[by_level]
    rank = np.arange(len(by_level)) - np.searchsorted(sorted_levels, sorted_levels, side="left")
    taken[by_level[rank < quota[sorted_levels]]] = True
    rest = np.flatnonzero(~taken)
    left = budget - int(taken.sum())
    if left <= 0:
        return np.flatnonzero(taken)
    height, width = shape[:2]
    columns = max(1, math.ceil(width / cell_px))
    rows = max(1, math.ceil(height / cell_px))
    col = np.clip((points[rest, 0] / cell_px).astype(np.int64), 0, columns - 1)
    row = np.clip((points[rest, 1] / cell_px).astype(np.int64), 0, rows - 1)
    cell = row * columns + col
    cap = _water_level(np.bincount(cell, minlength=rows * columns), left)
    order = np.lexsort((-response[rest], cell))  # by cell, strongest first within a cell
    sorted_cells = cell[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_cells, sorted_cells, side="left")
    taken[rest[order[rank < cap]]] = True
    return np.flatnonzero(taken)


def _water_level(counts: npt.NDArray[np.int64], budget: int) -> int:
    """The largest cap c with sum(min(counts, c)) <= budget."""
    counts = np.sort(counts)
    below = np.concatenate(([0], np.cumsum(counts)[:-1]))  # points in the cells before i
    above = len(counts) - np.arange(len(counts))  # cells from i on
    fits = below + counts * above <= budget
    if fits.all():
        return int(counts[-1]) if len(counts) else 0
    first = int(np.argmin(fits))
    return int((budget - below[first]) // above[first])


def _project(points: _F64, homography: npt.NDArray[Any]) -> _F64:
    out = cv2.perspectiveTransform(points.reshape(-1, 1, 2), homography)
    return np.asarray(out, np.float64).reshape(-1, 2)


def _outline(ref: EquipmentReference) -> _F64:
    """The reference image's outer corners (TL, TR, BR, BL), reference pixels."""
    w, h = ref.size_px
    return np.array(
        [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float64
    )


def _refine(
    ref: EquipmentReference, homography: _F64, quad: _F64, gray: _U8
) -> tuple[_F64, int] | None:
    """Sub-pixel homography: track the reference's strong corners from a warped copy of the
    reference (the feature fit's prediction) into the frame by Lucas-Kanade, and refit.

    ORB keypoints from coarse pyramid levels are only good to a few pixels; this brings the
    outline to about a pixel. Returns (homography, inliers), or None when too few corners
    track.
    """
    height, width = gray.shape
    pad = 16
    x0, y0 = (max(0, int(np.floor(v)) - pad) for v in quad.min(axis=0))
    x1 = min(width, int(np.ceil(quad[:, 0].max())) + pad)
    y1 = min(height, int(np.ceil(quad[:, 1].max())) + pad)
    if x1 - x0 < 16 or y1 - y0 < 16 or len(ref.corners) < 12:
        return None
    source, points, to_ref = ref.image, ref.corners, np.eye(3)
    # Shrink the reference first when the view is much smaller, so the warp does not alias.
    scale = math.sqrt(cv2.contourArea(quad.astype(np.float32)) / (ref.size_px[0] * ref.size_px[1]))
    while scale < 0.6 and min(source.shape) > 32:
        source = np.asarray(cv2.pyrDown(source), np.uint8)
        to_ref = to_ref @ np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
        scale *= 2.0
    shift = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1]])
    warp = shift @ homography @ to_ref
    roi = np.ascontiguousarray(gray[y0:y1, x0:x1])
    warped = cv2.warpPerspective(source, warp, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    start = cv2.perspectiveTransform(points.reshape(-1, 1, 2), shift @ homography)
    start = np.asarray(start, np.float32).reshape(-1, 2)
    inside = np.all((start >= 8) & (start < [x1 - x0 - 8, y1 - y0 - 8]), axis=1)
    if int(inside.sum()) < 12:
        return None
    start = np.ascontiguousarray(start[inside])
    tracked, status, _ = cv2.calcOpticalFlowPyrLK(
        warped, roi, start, start.copy(), winSize=(15, 15), maxLevel=2,
        flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
    )  # fmt: skip
    good = status.ravel() == 1
    good &= np.linalg.norm(tracked - start, axis=1) < 8.0
    if int(good.sum()) < 12:
        return None
    src = points[inside][good]
    dst = tracked[good] + np.array([x0, y0], np.float32)
    refined, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 1.5, maxIters=500)
    inliers = 0 if mask is None else int(mask.sum())
    if refined is None or inliers < max(12, int(0.5 * good.sum())):
        return None
    return np.asarray(refined, np.float64), inliers
