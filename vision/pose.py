"""Multi-person human pose: BlazePose landmarks with tracking across the frames of one stream.

Each tracked person carries the crop the landmark model predicted for the next frame (MediaPipe's
tracking mode), so the detector only runs when fewer than ``num_poses`` people are tracked, and
then at most every ``redetect_interval`` frames. Ids are stable while a person's crop keeps
being confirmed; a new detection that overlaps a tracked person is not a new person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from vision.pose_blaze import BlazePose, Landmarks, Roi
from vision.results import Person
from vision.stages import FrameContext

__all__ = ["PoseEstimator", "PoseOptions", "PoseStage"]

logger = logging.getLogger(__name__)

NUM_KEYPOINTS = 33


@dataclass
class PoseOptions:
    """How the pose stage finds and tracks people."""

    num_poses: int = 4
    """Most people reported per frame."""
    min_detection_confidence: float = 0.5
    """Detector score needed to start tracking someone."""
    min_presence_confidence: float = 0.5
    """Landmark model's person-presence score needed to keep a person (new or tracked)."""
    redetect_interval: int = 5
    """While fewer than ``num_poses`` people are tracked, run the detector every N frames
    (1 = every frame). Nobody tracked: the detector runs on every frame."""
    tracking: bool = True
    """False: detect on every frame (still images, ``annotate`` on photos)."""
    duplicate_iou: float = 0.5
    """Two people whose boxes overlap more than this are one person."""
    model_dir: Path | None = None
    """Folder with ``pose_detection.tflite`` and ``pose_landmark_full.tflite``; default
    ``assets/pose``."""
    num_threads: int = 1

    def validate(self) -> None:
        if self.num_poses < 1:
            raise ValueError(f"num_poses must be >= 1, got {self.num_poses}")
        for name in ("min_detection_confidence", "min_presence_confidence", "duplicate_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.redetect_interval < 1:
            raise ValueError(f"redetect_interval must be >= 1, got {self.redetect_interval}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


@dataclass
class _Track:
    id: int
    roi: Roi
    person: Person


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _person(track_id: int, lm: Landmarks, width: int, height: int) -> Person:
    pts = lm.points[:NUM_KEYPOINTS]
    u = pts[:, 0] / width
    v = pts[:, 1] / height
    keypoints = tuple(
        (float(x), float(y), float(vis)) for x, y, vis in zip(u, v, pts[:, 3], strict=True)
    )
    seen = pts[:, 3] >= 0.5
    if not seen.any():
        seen = np.ones(NUM_KEYPOINTS, bool)
    bbox = (
        float(np.clip(u[seen].min(), 0, 1)),
        float(np.clip(v[seen].min(), 0, 1)),
        float(np.clip(u[seen].max(), 0, 1)),
        float(np.clip(v[seen].max(), 0, 1)),
    )
    world = tuple((float(x), float(y), float(z)) for x, y, z in lm.world[:NUM_KEYPOINTS])
    return Person(track_id, keypoints, bbox, lm.presence, world)


class PoseEstimator:
    """Stateful multi-person pose on consecutive frames of one stream. Not thread-safe."""

    def __init__(self, options: PoseOptions | None = None) -> None:
        self.options = options if options is not None else PoseOptions()
        self.options.validate()
        self._model = BlazePose(self.options.model_dir, self.options.num_threads)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._since_detect = 0
        self._size: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget every tracked person (a cut in the video, a new stream)."""
        self._tracks = []
        self._since_detect = 0

    def process(self, bgr: npt.NDArray[np.uint8]) -> tuple[Person, ...]:
        """People in this BGR frame, ids stable across calls."""
        opts = self.options
        height, width = bgr.shape[:2]
        if self._size is not None and self._size != (width, height):
            sx, sy = width / self._size[0], height / self._size[1]
            for t in self._tracks:
                t.roi = t.roi.scaled(sx, sy)
        self._size = (width, height)
        rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        previous = self._tracks
        kept: list[_Track] = []
        for track in previous if opts.tracking else []:
            lm = self._model.landmarks(rgb, track.roi)
            if lm.presence >= opts.min_presence_confidence:
                track.person = _person(track.id, lm, width, height)
                track.roi = BlazePose.next_roi(lm.points)
                kept.append(self._dedupe(kept, track))
        kept = [t for t in kept if t.id >= 0]
        self._since_detect += 1
        want_more = len(kept) < opts.num_poses
        if want_more and (not kept or self._since_detect >= opts.redetect_interval):
            self._since_detect = 0
            lost = [t for t in previous if all(k.id != t.id for k in kept)]
            kept = self._detect(rgb, kept, lost, width, height)
        self._tracks = kept
        return tuple(t.person for t in kept)

    def _dedupe(self, kept: list[_Track], track: _Track) -> _Track:
        """Two tracks that converged on one person: keep the older id."""
        for other in kept:
            if _iou(other.person.bbox, track.person.bbox) > self.options.duplicate_iou:
                track.id = -1
                break
        return track

    def _detect(
        self, rgb: npt.NDArray[np.uint8], kept: list[_Track], lost: list[_Track], w: int, h: int
    ) -> list[_Track]:
        """Add detected people to ``kept``; one who overlaps a person of the previous frame
        that tracking lost (or every person, without tracking) keeps that id."""
        opts = self.options
        found = self._model.detect(rgb, opts.min_detection_confidence, max_count=opts.num_poses * 2)
        for _score, roi in found:
            if len(kept) >= opts.num_poses:
                break
            lm = self._model.landmarks(rgb, roi)
            if lm.presence < opts.min_presence_confidence:
                continue
            candidate = _Track(0, BlazePose.next_roi(lm.points), _person(0, lm, w, h))
            if any(_iou(t.person.bbox, candidate.person.bbox) > opts.duplicate_iou for t in kept):
                continue
            match = max(
                lost, key=lambda t: _iou(t.person.bbox, candidate.person.bbox), default=None
            )
            if match is not None and _iou(match.person.bbox, candidate.person.bbox) > 0.3:
                candidate.id = match.id
                lost.remove(match)
            else:
                candidate.id = self._next_id
                self._next_id += 1
            candidate.person = _person(candidate.id, lm, w, h)
            kept.append(candidate)
        return kept


class PoseStage:
    """``frame.persons`` from :class:`PoseEstimator` (one per pipeline, i.e. per stream)."""

    def __init__(self, options: PoseOptions | None = None) -> None:
        self.estimator = PoseEstimator(options)

    def run(self, frame: FrameContext) -> None:
        frame.persons = self.estimator.process(frame.bgr)

    def close(self) -> None:
        self.estimator.reset()
