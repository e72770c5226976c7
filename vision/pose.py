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
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.pose_blaze import LANDMARK_VARIANTS, BlazePose, Roi
from vision.results import Person
from vision.stages import FrameContext

__all__ = ["PoseEstimator", "PoseOptions", "PoseStage"]

logger = logging.getLogger(__name__)

NUM_KEYPOINTS = 33
F32 = npt.NDArray[np.float32]
_LK: dict[str, Any] = {"winSize": (21, 21), "maxLevel": 3}


@dataclass
class PoseOptions:
    """How the pose stage finds and tracks people."""

    num_poses: int = 4
    """Most people reported per frame."""
    min_detection_confidence: float = 0.5
    """Detector score needed to start tracking someone."""
    min_presence_confidence: float = 0.5
    """Landmark model's person-presence score needed to keep a person (new or tracked)."""
    redetect_interval: int = 10
    """While fewer than ``num_poses`` people are tracked, run the detector every N frames
    (1 = every frame), so a newcomer is found within N frames. Nobody tracked: the detector
    runs on every frame."""
    tracking: bool = True
    """False: detect on every frame (still images, ``annotate`` on photos)."""
    duplicate_iou: float = 0.5
    """Two people whose boxes overlap more than this are one person."""
    model: str = "full"
    """Landmark model: ``full`` or ``lite`` (faster, a little less precise; see
    ``assets/pose/README.md``)."""
    landmarks_per_frame: int = 0
    """Tracking mode: run the landmark model on at most this many people per frame, the ones
    refreshed longest ago; the others' landmarks follow the image by optical flow until their
    turn. 0 = everybody on every frame. On a frame where the detector runs, nobody is refreshed
    (it costs about one landmark pass), which keeps the per-frame cost flat."""
    landmark_every: int = 1
    """Tracking mode: run the landmark model on each person every N-th frame; in between the
    landmarks follow the image by optical flow (~1 ms instead of ~10-15 ms a person)."""
    smoothing: bool = True
    """Tracking mode: One Euro filter on the landmarks (MediaPipe's parameters), which removes
    the model's frame-to-frame jitter while following fast moves."""
    smoothing_min_cutoff: float = 0.05
    """One Euro filter: cutoff (Hz) at rest; lower = steadier."""
    smoothing_beta: float = 80.0
    """One Euro filter: how fast the cutoff rises with speed (speed in body sizes per second)."""
    model_dir: Path | None = None
    """Folder with ``pose_detection.tflite`` and the landmark models; default ``assets/pose``."""
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
        if self.landmark_every < 1:
            raise ValueError(f"landmark_every must be >= 1, got {self.landmark_every}")
        if self.landmarks_per_frame < 0:
            raise ValueError(f"landmarks_per_frame must be >= 0, got {self.landmarks_per_frame}")
        if self.model not in LANDMARK_VARIANTS:
            raise ValueError(
                f"model must be one of {sorted(LANDMARK_VARIANTS)}, got {self.model!r}"
            )
        if self.smoothing_min_cutoff <= 0 or self.smoothing_beta < 0:
            raise ValueError("smoothing_min_cutoff must be > 0 and smoothing_beta >= 0")


class _OneEuro:
    """One Euro filter (Casiez et al. 2012) over an array of values, in body-size units."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: F32 | None = None
        self._dx: F32 | None = None
        self._t = 0.0

    @staticmethod
    def _alpha(cutoff: npt.ArrayLike, dt: float) -> F32:
        tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, np.float32))
        return np.asarray(1.0 / (1.0 + tau / dt), np.float32)

    def __call__(self, x: F32, t: float, scale: float) -> F32:
        v = x / scale
        if self._x is None or self._dx is None or t <= self._t:
            self._x, self._dx, self._t = v, np.zeros_like(v), t
            return x
        dt = t - self._t
        dx = (v - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(np.float32(self.min_cutoff) + np.float32(self.beta) * np.abs(self._dx), dt)
        self._x = a * v + (1 - a) * self._x
        self._t = t
        return np.asarray(self._x * scale, np.float32)


@dataclass
class _Track:
    id: int
    roi: Roi
    person: Person
    points: F32
    """(39, 4) landmarks in pixels as last estimated (model or flow)."""
    world: F32
    presence: float
    age: int = 0
    """Frames since the landmark model last ran on this person."""
    smoother: _OneEuro | None = None


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _person(
    track_id: int, points: F32, world: F32, presence: float, width: int, height: int
) -> Person:
    pts = points[:NUM_KEYPOINTS]
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
    world_t = tuple((float(x), float(y), float(z)) for x, y, z in world[:NUM_KEYPOINTS])
    return Person(track_id, keypoints, bbox, presence, world_t)


def _flow(prev: npt.NDArray[np.uint8], gray: npt.NDArray[np.uint8], points: F32) -> F32 | None:
    """``points`` (N, 4) moved by Lucas-Kanade flow (forward-backward checked); points whose
    flow fails follow the similarity fitted to the others. None when too few points move."""
    xy = np.ascontiguousarray(points[:, :2], np.float32)
    flow = cv2.calcOpticalFlowPyrLK
    raw, st1, _ = flow(prev, gray, xy, xy.copy(), **_LK)
    fwd = np.asarray(raw, np.float32)
    raw_back, st2, _ = flow(gray, prev, fwd, fwd.copy(), **_LK)
    back = np.asarray(raw_back, np.float32)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1)
    ok &= np.linalg.norm(back - xy, axis=1) < 1.0
    if ok.sum() < 4:
        return None
    src, dst = xy[ok], fwd[ok]
    similarity, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC)
    if similarity is None:
        return None
    moved = points.copy()
    moved[:, :2] = xy @ similarity[:, :2].T + similarity[:, 2]
    moved[ok, :2] = dst
    return moved


class PoseEstimator:
    """Stateful multi-person pose on consecutive frames of one stream. Not thread-safe."""

    def __init__(self, options: PoseOptions | None = None) -> None:
        self.options = options if options is not None else PoseOptions()
        self.options.validate()
        opts = self.options
        self._model = BlazePose(opts.model_dir, opts.num_threads, opts.model)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._since_detect = 0
        self._size: tuple[int, int] | None = None
        self._prev_gray: npt.NDArray[np.uint8] | None = None
        self._frames = 0
        self._rejected: list[tuple[int, tuple[float, float, float, float]]] = []
        """Detector boxes the landmark model found nobody in: (frame, box), kept a second."""
        self.landmark_runs = 0
        """Landmark model passes so far (for benchmarks and tests)."""

    def reset(self) -> None:
        """Forget every tracked person (a cut in the video, a new stream)."""
        self._tracks = []
        self._since_detect = 0
        self._prev_gray = None
        self._rejected = []

    def process(
        self,
        bgr: npt.NDArray[np.uint8],
        t_s: float | None = None,
        gray: npt.NDArray[np.uint8] | None = None,
    ) -> tuple[Person, ...]:
        """People in this BGR frame, ids stable across calls.

        ``t_s``: the frame's time in seconds (for smoothing; default: 30 frames per second).
        ``gray``: the frame in grayscale when the caller has it (flow propagation needs it).
        """
        opts = self.options
        height, width = bgr.shape[:2]
        self._frames += 1
        t = t_s if t_s is not None else self._frames / 30.0
        resized = self._size is not None and self._size != (width, height)
        if resized and self._size is not None:
            sx, sy = width / self._size[0], height / self._size[1]
            for tr in self._tracks:
                tr.roi = tr.roi.scaled(sx, sy)
                tr.points[:, 0] *= sx
                tr.points[:, 1] *= sy
                tr.age = 1 << 20  # refresh first
            self._prev_gray = None
        self._size = (width, height)
        rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        budget = opts.landmarks_per_frame
        flowing = bool(budget) or opts.landmark_every > 1
        if flowing and gray is None:
            gray = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        previous = self._tracks if opts.tracking else []
        self._since_detect += 1
        detect_now = not opts.tracking or (
            len(previous) < opts.num_poses
            and (not previous or self._since_detect >= opts.redetect_interval)
        )
        due = [i for i, tr in enumerate(previous) if tr.age + 1 >= opts.landmark_every]
        refresh = set(due)
        if flowing and detect_now:
            refresh = set()  # the detector costs about one landmark pass: flow everybody
        elif budget:
            due.sort(key=lambda i: -previous[i].age)
            refresh = set(due[:budget])
        kept: list[_Track] = []
        for i, track in enumerate(previous):
            if i in refresh or self._prev_gray is None or gray is None:
                if not self._infer(rgb, track, width, height):
                    continue
            else:
                moved = _flow(self._prev_gray, gray, track.points)
                if moved is None:
                    if not self._infer(rgb, track, width, height):
                        continue
                else:
                    track.points, track.age = moved, track.age + 1
                    track.roi = BlazePose.next_roi(moved)
            kept.append(self._dedupe(kept, track))
        kept = [tr for tr in kept if tr.id >= 0]
        if detect_now or (not kept and previous):
            self._since_detect = 0
            lost = [tr for tr in self._tracks if all(k.id != tr.id for k in kept)]
            kept = self._detect(rgb, kept, lost, width, height)
        for tr in kept:
            self._publish(tr, t, width, height)
        self._tracks = kept
        self._prev_gray = gray
        return tuple(tr.person for tr in kept)

    def _infer(self, rgb: npt.NDArray[np.uint8], track: _Track, w: int, h: int) -> bool:
        """Run the landmark model on the track's crop; False when the person is gone."""
        lm = self._model.landmarks(rgb, track.roi)
        self.landmark_runs += 1
        if lm.presence < self.options.min_presence_confidence:
            return False
        track.points, track.world, track.presence, track.age = lm.points, lm.world, lm.presence, 0
        track.roi = BlazePose.next_roi(lm.points)
        track.person = _person(track.id, lm.points, lm.world, lm.presence, w, h)
        return True

    def _publish(self, track: _Track, t: float, w: int, h: int) -> None:
        points = track.points
        opts = self.options
        if opts.smoothing and opts.tracking:
            if track.smoother is None:
                track.smoother = _OneEuro(opts.smoothing_min_cutoff, opts.smoothing_beta)
            x0, y0, x1, y1 = track.roi.box()
            scale = max(1.0, 0.5 * ((x1 - x0) + (y1 - y0)) / 1.25)
            points = points.copy()
            points[:NUM_KEYPOINTS, :2] = track.smoother(points[:NUM_KEYPOINTS, :2], t, scale)
        track.person = _person(track.id, points, track.world, track.presence, w, h)

    def _dedupe(self, kept: list[_Track], track: _Track) -> _Track:
        """Two tracks that converged on one person: keep the older id."""
        w, h = self._size if self._size is not None else (1, 1)
        box = _bbox(track.points, w, h)
        for other in kept:
            if _iou(_bbox(other.points, w, h), box) > self.options.duplicate_iou:
                track.id = -1
                break
        return track

    def _detect(
        self, rgb: npt.NDArray[np.uint8], kept: list[_Track], lost: list[_Track], w: int, h: int
    ) -> list[_Track]:
        """Add detected people to ``kept``; one who overlaps a person of the previous frame
        that tracking lost (or every person, without tracking) keeps that id."""
        opts = self.options
        self._rejected = [(f, b) for f, b in self._rejected if self._frames - f < 30]
        found = self._model.detect(rgb, opts.min_detection_confidence, max_count=opts.num_poses * 2)
        for _score, roi in found:
            if len(kept) >= opts.num_poses:
                break
            if any(_iou(t.roi.box(), roi.box()) > opts.duplicate_iou for t in kept):
                continue  # somebody already tracked: no landmark pass needed to know
            if opts.tracking and any(_iou(b, roi.box()) > 0.7 for _, b in self._rejected):
                continue  # the landmark model saw nobody there a moment ago
            lm = self._model.landmarks(rgb, roi)
            self.landmark_runs += 1
            if lm.presence < opts.min_presence_confidence:
                self._rejected.append((self._frames, roi.box()))
                continue
            box = _bbox(lm.points, w, h)
            if any(_iou(t.person.bbox, box) > opts.duplicate_iou for t in kept):
                continue
            match = max(lost, key=lambda t: _iou(t.person.bbox, box), default=None)
            if match is not None and _iou(match.person.bbox, box) > 0.3:
                track_id = match.id
                lost.remove(match)
            else:
                track_id = self._next_id
                self._next_id += 1
            person = _person(track_id, lm.points, lm.world, lm.presence, w, h)
            kept.append(
                _Track(
                    track_id,
                    BlazePose.next_roi(lm.points),
                    person,
                    lm.points,
                    lm.world,
                    lm.presence,
                )
            )
        return kept


def _bbox(points: F32, w: int, h: int) -> tuple[float, float, float, float]:
    pts = points[:NUM_KEYPOINTS]
    seen = pts[:, 3] >= 0.5
    if not seen.any():
        seen = np.ones(NUM_KEYPOINTS, bool)
    u, v = pts[seen, 0] / w, pts[seen, 1] / h
    return (
        float(np.clip(u.min(), 0, 1)),
        float(np.clip(v.min(), 0, 1)),
        float(np.clip(u.max(), 0, 1)),
        float(np.clip(v.max(), 0, 1)),
    )


class PoseStage:
    """``frame.persons`` from :class:`PoseEstimator` (one per pipeline, i.e. per stream)."""

    def __init__(self, options: PoseOptions | None = None) -> None:
        self.estimator = PoseEstimator(options)

    def run(self, frame: FrameContext) -> None:
        opts = self.estimator.options
        gray = frame.gray if opts.landmarks_per_frame or opts.landmark_every > 1 else None
        frame.persons = self.estimator.process(frame.bgr, frame.telemetry.pts / 90_000.0, gray)

    def close(self) -> None:
        self.estimator.reset()
