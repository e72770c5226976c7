"""World-anchored ink: lift a stroke off the frame it was drawn on, re-project it every frame.

A stroke arrives as normalized uv points on the frame ``pts``. :class:`AnchorBook` lifts it with
the state of that analysed frame, or of the nearest analysed one (ink drawn on a frame the
server skipped), choosing, in order:

1. ``marker:<id>``: every point's ray hits the plane of a marker detected on that frame within
   ``marker_reach`` marker sizes of its centre; points kept in the marker frame.
2. ``world`` with measured depth: the frame has a camera pose and a depth frame (an RGB-D
   headset); each point is lifted with the depth at its uv (median of a small window, holes
   ignored). This beats the plane, whose depth is assumed.
3. ``plane:<n>``: the planar tracker's plane; points kept in its (X, Y) chart, re-projected by
   the tracked homography (exact for a plane, whatever its assumed depth).
4. ``world``: the frame has a camera pose and a depth is given (or ``default_depth_m``).
5. ``image``: not anchored: the ink stays where it was drawn on every frame.

:class:`AnchorStage` (stage ``anchors``) re-projects every anchor into the current frame. An
anchor whose frame is not seen (marker out of view, plane lost, other world) is ``visible=False``
with no points, never a guess.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import cv2
import numpy as np

from vision.geometry import Mat, apply_homography, invert_pose, project_uv, uv_rays
from vision.results import Anchor
from vision.stages import FrameContext
from vision.tracking import FrameState

__all__ = ["AnchorBook", "AnchorStage", "state_from_frame"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class _Lifted:
    id: str
    frame: str
    xyz: Mat  # N x 3 in the anchor's frame (for "image": uv in the first two columns)
    world: tuple[str, Mat] | None = None  # (pose reference, reference_from_anchor)
    plane: tuple[int, Mat] | None = None  # (plane id, N x 2 chart points) for marker anchors

    @cached_property
    def xyz_tuple(self) -> tuple[tuple[float, float, float], ...]:
        if self.frame == "image":
            return ()
        return tuple((x, y, z) for x, y, z in self.xyz.tolist())


def state_from_frame(frame: FrameContext) -> FrameState:
    """A :class:`FrameState` from what earlier stages left on the frame (no planar tracking)."""
    detected = {m.id: m.camera_from_marker() for m in frame.markers}
    pose = frame.camera_pose
    world = None if pose is None else np.asarray(pose.world_from_camera).reshape(4, 4)
    return FrameState(
        frame.telemetry.pts,
        frame.intrinsics,
        world,
        None if pose is None else pose.reference,
        detected,
        detected,
        marker_sizes={m.id: m.size_m for m in frame.markers},
        depth=None if frame.depth is None else frame.depth.sampler,
    )


class AnchorBook:
    """The strokes of one stream and the recent analysed-frame states. Thread-safe: the server
    adds strokes from its event loop while the pipeline reads them in the executor.

    ``max_anchors`` strokes are kept (the oldest dropped), each of at most ``max_points``;
    ``history`` analysed-frame states are remembered for ink that arrives late; ``marker_reach``
    is how far (in marker sizes) from a marker ink still counts as on it; ``default_depth_m``
    lifts ink to the world with an assumed depth when none is given; a stroke whose pts is more
    than ``max_pts_gap`` ticks (90 kHz RTP clock: 2 s) from any analysed frame is not anchored.
    """

    def __init__(
        self,
        *,
        max_anchors: int = 256,
        max_points: int = 1024,
        history: int = 150,
        marker_reach: float = 5.0,
        default_depth_m: float | None = None,
        max_pts_gap: int = 180_000,
    ) -> None:
        self.max_anchors = max_anchors
        self.max_points = max_points
        self.marker_reach = marker_reach
        self.default_depth_m = default_depth_m
        self.max_pts_gap = max_pts_gap
        self._lock = threading.Lock()
        self._states: deque[FrameState] = deque(maxlen=history)
        self._anchors: OrderedDict[str, _Lifted] = OrderedDict()

    def record(self, state: FrameState) -> None:
        """Remember an analysed frame's state (the tracker calls this on every frame)."""
        with self._lock:
            self._states.append(state)

    def state_near(self, pts: int, *, interpolate: bool = False) -> FrameState | None:
        """The state of analysed frame ``pts``, else of the analysed frame nearest to it; with
        ``interpolate``, a frame between two analysed ones gets their motion interpolated."""
        with self._lock:
            states = list(self._states)
        if not states:
            return None
        nearest = min(states, key=lambda s: (abs(s.pts - pts), -s.pts))
        if not interpolate or nearest.pts == pts:
            return nearest
        before = [s for s in states if s.pts < pts]
        after = [s for s in states if s.pts > pts]
        if not before or not after:
            return nearest
        a, b = max(before, key=lambda s: s.pts), min(after, key=lambda s: s.pts)
        return _interpolate(a, b, (pts - a.pts) / (b.pts - a.pts), nearest)

    def add_stroke(
        self,
        stroke_id: str,
        pts: int,
        points_uv: Sequence[Sequence[float]],
        *,
        depth_m: float | Sequence[float] | None = None,
        state: FrameState | None = None,
    ) -> Anchor:
        """Lift a stroke drawn on frame ``pts``; returns its anchor as drawn (``frame`` says what
        it is fixed to). Replaces a stroke with the same id; drops the oldest past
        ``max_anchors``. Raises ValueError for points that are not finite uv pairs."""
        uv = np.asarray(points_uv, dtype=np.float64)
        if uv.ndim != 2 or uv.shape[1] != 2 or len(uv) == 0 or not np.isfinite(uv).all():
            raise ValueError("points_uv must be a non-empty list of finite [u, v] pairs")
        if len(uv) > self.max_points:
            raise ValueError(f"a stroke has at most {self.max_points} points, got {len(uv)}")
        if state is None:
            state = self.state_near(pts, interpolate=True)
            if state is not None and abs(state.pts - pts) > self.max_pts_gap:
                logger.warning(
                    "stroke %r: no analysed frame within %d ticks of pts %d; not anchored",
                    stroke_id,
                    self.max_pts_gap,
                    pts,
                )
                state = None
        lifted = self._lift(stroke_id, uv, state, depth_m)
        with self._lock:
            self._anchors.pop(stroke_id, None)
            self._anchors[stroke_id] = lifted
            while len(self._anchors) > self.max_anchors:
                dropped, _ = self._anchors.popitem(last=False)
                logger.warning("anchor limit %d: dropped stroke %r", self.max_anchors, dropped)
        return _anchor(lifted, uv, True)

    def remove(self, stroke_id: str) -> bool:
        with self._lock:
            return self._anchors.pop(stroke_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._anchors.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._anchors)

    def project(self, state: FrameState) -> tuple[Anchor, ...]:
        """Every anchor as seen on the frame described by ``state``."""
        with self._lock:
            anchors = list(self._anchors.values())
        out = []
        for lifted in anchors:
            uv = _reproject(lifted, state)
            out.append(_anchor(lifted, np.empty((0, 2)) if uv is None else uv, uv is not None))
        return tuple(out)

    # -- lifting -------------------------------------------------------------------------------

    def _lift(self, stroke_id: str, uv: Mat, state: FrameState | None, depth_m: object) -> _Lifted:
        image = _Lifted(stroke_id, "image", np.concatenate([uv, np.zeros((len(uv), 1))], axis=1))
        if state is None:
            return image
        rays = uv_rays(uv, state.intrinsics)
        world = state.world_from_camera
        best: tuple[float, int, Mat] | None = None
        for marker_id, camera_from_marker in state.markers.items():
            local = _hit_plane(rays, camera_from_marker)
            if local is None:
                continue
            size = _marker_size(state, marker_id)
            spread = float(np.max(np.linalg.norm(local[:, :2], axis=1))) / size
            if spread <= self.marker_reach and (best is None or spread < best[0]):
                best = (spread, marker_id, local)
        plane = None
        if state.plane_to_uv is not None and state.plane_id is not None:
            xy = apply_homography(np.asarray(np.linalg.inv(state.plane_to_uv), np.float64), uv)
            plane = (state.plane_id, xy) if np.isfinite(xy).all() else None
        if best is not None:
            alt = None
            if world is not None and state.reference is not None:
                alt = (state.reference, world @ state.markers[best[1]])
            # The tracked plane carries the ink while the marker is out of sight.
            return _Lifted(stroke_id, f"marker:{best[1]}", best[2], alt, plane)
        metric = state.reference is not None and not state.reference.startswith("plane:")
        if depth_m is None and state.depth is not None and world is not None and metric:
            # (A plane's pose has an assumed scale: metric depth would not fit it.)
            measured = state.depth.sample(uv)
            found = np.isfinite(measured)
            if found.any() and state.reference is not None:
                # Measured depth beats a plane of assumed depth; holes take the stroke's median.
                z = np.where(found, measured, float(np.median(measured[found])))
                xyz = (rays * z[:, None]) @ world[:3, :3].T + world[:3, 3]
                return _Lifted(stroke_id, "world", xyz, (state.reference, np.eye(4)))
        if plane is not None:
            xyz = np.concatenate([plane[1], np.zeros((len(plane[1]), 1))], axis=1)
            return _Lifted(stroke_id, f"plane:{plane[0]}", xyz)
        depth = self.default_depth_m if depth_m is None else depth_m
        if world is not None and state.reference is not None and depth is not None:
            z = np.broadcast_to(np.asarray(depth, dtype=np.float64).reshape(-1), (len(uv),))
            if np.isfinite(z).all() and (z > 0).all():
                cam = rays * z[:, None]
                xyz = cam @ world[:3, :3].T + world[:3, 3]
                return _Lifted(stroke_id, "world", xyz, (state.reference, np.eye(4)))
        return image


def _lerp_pose(a: Mat, b: Mat, w: float) -> Mat:
    """Pose a moved a fraction w of the way to b (rotation about the relative axis)."""
    relative = np.asarray(cv2.Rodrigues(b[:3, :3] @ a[:3, :3].T)[0], np.float64)
    out = np.eye(4)
    out[:3, :3] = np.asarray(cv2.Rodrigues(relative * w)[0], np.float64) @ a[:3, :3]
    out[:3, 3] = (1.0 - w) * a[:3, 3] + w * b[:3, 3]
    return out


def _interpolate(a: FrameState, b: FrameState, w: float, nearest: FrameState) -> FrameState:
    """The state between analysed frames a and b (w in 0..1), where both agree on what they
    see; the nearest one's otherwise."""
    world, reference = nearest.world_from_camera, nearest.reference
    if a.world_from_camera is not None and b.world_from_camera is not None:
        if a.reference == b.reference:
            world = _lerp_pose(a.world_from_camera, b.world_from_camera, w)
    markers = {
        i: _lerp_pose(a.markers[i], b.markers[i], w) if i in b.markers else m
        for i, m in nearest.markers.items()
        if i in a.markers
    } | {i: m for i, m in nearest.markers.items() if i not in a.markers}
    to_uv = nearest.plane_to_uv
    if a.plane_to_uv is not None and b.plane_to_uv is not None and a.plane_id == b.plane_id:
        to_uv = (1.0 - w) * a.plane_to_uv / a.plane_to_uv[2, 2] + w * (
            b.plane_to_uv / b.plane_to_uv[2, 2]
        )
    return replace(
        nearest,
        world_from_camera=world,
        reference=reference,
        markers=markers,
        mapped_markers={**nearest.mapped_markers, **markers},
        plane_to_uv=to_uv,
    )


def _marker_size(state: FrameState, marker_id: int) -> float:
    return state.marker_sizes.get(marker_id, 0.10)


def _hit_plane(rays: Mat, camera_from_plane: Mat) -> Mat | None:
    """Where camera rays meet the z = 0 plane of a frame, in that frame; None if any ray misses
    (parallel, or the plane is behind the camera)."""
    normal, origin = camera_from_plane[:3, 2], camera_from_plane[:3, 3]
    denom = rays @ normal
    if np.any(np.abs(denom) < 1e-9):
        return None
    t = (origin @ normal) / denom
    if np.any(t <= 0):
        return None
    hits = rays * t[:, None] - origin
    local: Mat = hits @ camera_from_plane[:3, :3]
    local[:, 2] = 0.0
    return local


def _reproject(lifted: _Lifted, state: FrameState) -> Mat | None:
    """uv of the anchor on this frame, or None where its frame is not seen."""
    kind, _, key = lifted.frame.partition(":")
    if kind == "image":
        out: Mat = lifted.xyz[:, :2].copy()
        return out
    if kind == "plane" and state.plane_id == int(key) and state.plane_to_uv is not None:
        uv = apply_homography(state.plane_to_uv, lifted.xyz[:, :2])
        return uv if np.isfinite(uv).all() else None
    camera_from_anchor: Mat | None = None
    if kind == "marker":
        camera_from_anchor = state.mapped_markers.get(int(key))
        plane = lifted.plane
        if camera_from_anchor is None and plane is not None and state.plane_id == plane[0]:
            if state.plane_to_uv is not None:
                uv = apply_homography(state.plane_to_uv, plane[1])
                return uv if np.isfinite(uv).all() else None
    if camera_from_anchor is None and lifted.world is not None:
        reference, reference_from_anchor = lifted.world
        if state.world_from_camera is not None and state.reference == reference:
            camera_from_anchor = invert_pose(state.world_from_camera) @ reference_from_anchor
    if camera_from_anchor is None:
        return None
    uv, in_front = project_uv(camera_from_anchor, lifted.xyz, state.intrinsics)
    return uv if in_front else None


def _anchor(lifted: _Lifted, uv: Mat, visible: bool) -> Anchor:
    in_view = visible and bool(np.any(np.all((uv >= 0.0) & (uv <= 1.0), axis=1)))
    points: tuple[tuple[float, float], ...] = ()
    if in_view:
        points = tuple((u, v) for u, v in uv.tolist())
    return Anchor(lifted.id, lifted.frame, points, lifted.xyz_tuple, in_view)


class AnchorStage:
    """The ``anchors`` stage: every anchor of ``book`` re-projected into ``frame.anchors``.

    Run it after ``tracking`` (whose state it uses); without it, it records a state from the
    markers and camera pose already on the frame."""

    def __init__(self, book: AnchorBook) -> None:
        self.book = book

    def run(self, frame: FrameContext) -> None:
        state = self.book.state_near(frame.telemetry.pts)
        if state is None or state.pts != frame.telemetry.pts:
            state = state_from_frame(frame)
            self.book.record(state)
        frame.anchors = self.book.project(state)

    def close(self) -> None:
        pass
