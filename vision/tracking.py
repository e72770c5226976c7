"""Camera tracking (stage ``tracking``): where the camera is on every analysed frame.

Sources, in priority order:

1. ``device``: the headset's own head pose from telemetry, taken as is.
2. ``markers``: the world is the frame of the first marker seen; markers seen together with a
   mapped one join the map, so the world stays the same while the view moves across markers.
3. ``planar``: Lucas-Kanade flow (forward-backward checked) from the previous analysed frame,
   RANSAC homography from a fixed plane chart to the image. The plane's frame is the marker's
   when one is visible as tracking starts, else a plane facing the first camera at
   ``plane_depth_m`` (scale and tilt assumed). Features are re-detected as they thin out.

Lost tracking gives no pose (``camera_pose`` None) rather than a wrong one; a new plane (new
``plane:<n>``) starts on the next frame. The per-frame :class:`FrameState` (pose, markers, plane
homography) goes to a sink, normally :meth:`vision.anchors.AnchorBook.record`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.geometry import (
    Mat,
    apply_homography,
    invert_pose,
    pose_from_plane_homography,
    pose_matrix,
    px_to_uv_matrix,
)
from vision.results import CameraPose, PoseSource
from vision.rgbd import DepthSampler
from vision.stages import FrameContext
from vision.types import Intrinsics, MarkerPose

__all__ = ["CameraTracker", "FrameState", "TrackerOptions"]

logger = logging.getLogger(__name__)

_LK: dict[str, Any] = {"winSize": (15, 15), "maxLevel": 3}


@dataclass(frozen=True, eq=False)
class FrameState:
    """What anchoring needs to know about one analysed frame."""

    pts: int
    intrinsics: Intrinsics
    world_from_camera: Mat | None = None
    reference: str | None = None
    """What ``world`` is: "device", "marker:<id>" or "plane:<n>" (None without a pose)."""
    markers: Mapping[int, Mat] = field(default_factory=dict)
    """camera_from_marker of the markers detected on this frame."""
    mapped_markers: Mapping[int, Mat] = field(default_factory=dict)
    """camera_from_marker of every marker in the marker map (detected or not)."""
    plane_id: int | None = None
    plane_to_uv: Mat | None = None
    """Homography from the tracked plane's (X, Y) metres to this frame's uv."""
    marker_sizes: Mapping[int, float] = field(default_factory=dict)
    """Printed side (metres) of each detected marker."""
    depth: DepthSampler | None = None
    """Measured depth at this frame's uv (an RGB-D headset), for lifting ink to the world."""


@dataclass
class TrackerOptions:
    """Planar tracking knobs; the defaults suit 480p-720p at 10-15 analysed fps."""

    max_features: int = 200
    """Features kept on the plane; re-detected below 60 % of this."""
    min_inliers: int = 25
    """Fewer homography inliers than this means tracking is lost."""
    min_inlier_ratio: float = 0.5
    ransac_px: float = 2.5
    plane_depth_m: float = 1.0
    """Assumed distance of a plane that starts without a marker in view."""
    check_flow_backwards: bool = False
    """Also track back and drop points that do not return (doubles the flow cost; RANSAC
    already rejects most bad tracks)."""
    max_flow_error_px: float = 1.0
    """Forward-backward flow disagreement above which a point is dropped."""


@dataclass
class _Plane:
    plane_id: int
    gray: npt.NDArray[np.uint8]
    px: npt.NDArray[np.float32]  # N x 2 feature positions on ``gray``
    xy: Mat  # N x 2 plane coordinates of the same features
    to_px: Mat  # plane (X, Y) -> pixels of ``gray``
    marker: int | None = None  # the marker whose frame the plane's is, if it started on one


class CameraTracker:
    """The ``tracking`` stage: writes ``frame.camera_pose`` and reports a :class:`FrameState`."""

    def __init__(
        self,
        options: TrackerOptions | None = None,
        sink: Callable[[FrameState], None] | None = None,
    ) -> None:
        self.options = options if options is not None else TrackerOptions()
        self._sink = sink
        self._plane: _Plane | None = None
        self._next_plane = 0
        self._lost = False
        self._map: dict[int, Mat] = {}  # world_from_marker; world = frame of marker _root
        self._root: int | None = None
        self._seen: dict[int, int] = {}
        self._marker_quads: list[npt.NDArray[np.int32]] = []
        self.last_state: FrameState | None = None

    def run(self, frame: FrameContext) -> None:
        intrinsics, telemetry = frame.intrinsics, frame.telemetry
        detected = {m.id: m.camera_from_marker() for m in frame.markers}
        world_from_camera: Mat | None = None
        reference: str | None = None
        source: PoseSource = "device"
        quality = 0.0
        plane: tuple[_Plane, float] | None = None
        mapped: dict[int, Mat] = dict(detected)
        if telemetry.head_pose is not None:
            world_from_camera, reference, quality = pose_matrix(telemetry.head_pose), "device", 1.0
            self._plane = None
        else:
            self._marker_quads = _marker_quads(frame.markers, frame.width, frame.height)
            by_markers = self._marker_pose(frame.markers, detected)
            plane = self._track_plane(frame.gray, intrinsics, frame.markers)
            if by_markers is not None:
                world_from_camera, quality = by_markers
                reference, source = f"marker:{self._root}", "markers"
                camera_from_world = invert_pose(world_from_camera)
                mapped = {i: camera_from_world @ m for i, m in self._map.items()} | detected
            elif plane is not None:
                camera_from_plane = pose_from_plane_homography(intrinsics.matrix(), plane[0].to_px)
                if camera_from_plane is not None:
                    world_from_camera = invert_pose(camera_from_plane)
                    reference, source, quality = f"plane:{plane[0].plane_id}", "planar", plane[1]
                    if plane[0].marker is not None and plane[0].marker == self._root:
                        reference = f"marker:{self._root}"  # the plane is the map origin's
        earlier = frame.camera_pose  # RGB-D odometry, when a stage before this one set it
        if earlier is not None and (world_from_camera is None or source == "planar"):
            # Metric odometry beats a plane of assumed depth; device and markers beat both.
            world_from_camera = pose_matrix(earlier.world_from_camera)
            reference = earlier.reference
        elif world_from_camera is not None:
            frame.camera_pose = CameraPose(
                tuple(float(x) for x in world_from_camera.ravel()),
                source,
                quality=quality,
                reference=reference or "world",
            )
        to_uv = None
        if plane is not None:
            to_uv = px_to_uv_matrix(frame.width, frame.height) @ plane[0].to_px
        state = FrameState(
            telemetry.pts,
            intrinsics,
            world_from_camera,
            reference,
            detected,
            mapped,
            None if plane is None else plane[0].plane_id,
            to_uv,
            {m.id: m.size_m for m in frame.markers},
            None if frame.depth is None else frame.depth.sampler,
        )
        self.last_state = state
        if self._sink is not None:
            self._sink(state)

    def close(self) -> None:
        self._plane = None

    # -- markers -------------------------------------------------------------------------------

    def _marker_pose(
        self, markers: tuple[MarkerPose, ...], detected: Mapping[int, Mat]
    ) -> tuple[Mat, float] | None:
        if not markers:
            return None
        known = [m for m in markers if m.id in self._map]
        if not known:  # a new, unconnected world: the lowest id seen is its origin
            root = min(markers, key=lambda m: m.id)
            self._map, self._root, self._seen = {root.id: np.eye(4)}, root.id, {root.id: 1}
            known = [root]
        # The origin marker when seen (its map entry is exact), else the best mapped one.
        best = min(known, key=lambda m: (m.id != self._root, m.reprojection_error_px))
        world_from_camera = self._map[best.id] @ invert_pose(detected[best.id])
        for marker in markers:
            seen = world_from_camera @ detected[marker.id]
            if marker.id not in self._map:
                self._map[marker.id], self._seen[marker.id] = seen, 1
            elif marker.id != best.id and best.id == self._root:
                # Average the observations: one marker's tilt is ambiguous when seen head-on.
                n = min(self._seen[marker.id], 30)
                self._map[marker.id] = _mean_pose(self._map[marker.id], seen, 1.0 / (n + 1))
                self._seen[marker.id] = n + 1
        quality = max(0.0, 1.0 - best.reprojection_error_px / 5.0)
        return world_from_camera, quality

    # -- planar --------------------------------------------------------------------------------

    def _track_plane(
        self, gray: npt.NDArray[np.uint8], intrinsics: Intrinsics, markers: tuple[MarkerPose, ...]
    ) -> tuple[_Plane, float] | None:
        plane = self._plane
        if plane is None:
            if self._lost:  # report one frame without a pose, then start a new plane
                self._lost = False
                return None
            return self._start_plane(gray, intrinsics, markers)
        if plane.gray.shape != gray.shape:  # the stream changed resolution
            sx, sy = gray.shape[1] / plane.gray.shape[1], gray.shape[0] / plane.gray.shape[0]
            scale = np.diag([sx, sy, 1.0])
            plane.gray = np.asarray(cv2.resize(plane.gray, (gray.shape[1], gray.shape[0])))
            plane.px = (plane.px * np.array([sx, sy], np.float32)).astype(np.float32)
            plane.to_px = scale @ plane.to_px
        opts = self.options
        flow = cv2.calcOpticalFlowPyrLK
        raw, status, _ = flow(plane.gray, gray, plane.px, plane.px.copy(), **_LK)
        moved = np.asarray(raw, np.float32)
        ok = status.ravel() == 1
        if opts.check_flow_backwards:
            raw_back, status_back, _ = flow(gray, plane.gray, moved, moved.copy(), **_LK)
            back = np.asarray(raw_back, np.float32)
            ok &= status_back.ravel() == 1
            ok &= np.linalg.norm(back - plane.px, axis=1) < opts.max_flow_error_px
        homography = None
        inliers = np.zeros(0, bool)
        if int(ok.sum()) >= opts.min_inliers:
            homography, mask = cv2.findHomography(
                plane.xy[ok], moved[ok].astype(np.float64), cv2.RANSAC, opts.ransac_px
            )
            inliers = np.zeros(len(ok), bool)
            if mask is not None:
                inliers[np.flatnonzero(ok)[mask.ravel() == 1]] = True
        count = int(inliers.sum())
        ratio = count / max(int(ok.sum()), 1)
        if homography is not None and not _plausible_step(plane.to_px, homography):
            homography = None  # a fold or a jump in scale between two analysed frames: a bad fit
        if homography is None or count < opts.min_inliers or ratio < opts.min_inlier_ratio:
            logger.info("planar tracking lost (%d inliers, ratio %.2f)", count, ratio)
            self._plane, self._lost = None, True
            return None
        plane.gray, plane.to_px = gray, np.asarray(homography, np.float64)
        plane.px, plane.xy = moved[inliers], plane.xy[inliers]
        if count < 0.6 * opts.max_features:
            self._add_features(plane)
        return plane, ratio * min(1.0, count / 100.0)

    def _start_plane(
        self, gray: npt.NDArray[np.uint8], intrinsics: Intrinsics, markers: tuple[MarkerPose, ...]
    ) -> tuple[_Plane, float] | None:
        k = intrinsics.matrix()
        origin = None
        if markers:
            best = min(markers, key=lambda m: (m.id != self._root, m.reprojection_error_px))
            pose, origin = best.camera_from_marker(), best.id
            to_px = k @ np.stack([pose[:3, 0], pose[:3, 1], pose[:3, 3]], axis=1)
        else:
            d = self.options.plane_depth_m
            to_px = k @ np.diag([1.0 / d, 1.0 / d, 1.0])
        empty = np.zeros((0, 2), np.float32)
        plane = _Plane(self._next_plane, gray, empty, np.zeros((0, 2)), to_px, origin)
        self._add_features(plane)
        if len(plane.px) < self.options.min_inliers:
            return None
        self._next_plane += 1
        self._plane = plane
        return plane, 1.0

    def _add_features(self, plane: _Plane) -> None:
        mask = np.full(plane.gray.shape, 255, np.uint8)
        for x, y in plane.px:
            cv2.circle(mask, (int(x), int(y)), 10, 0, -1)
        if self._marker_quads:  # their corners would crowd out the texture's
            cv2.fillPoly(mask, self._marker_quads, 0)
        wanted = self.options.max_features - len(plane.px)
        found = cv2.goodFeaturesToTrack(plane.gray, wanted, 0.01, 10, mask=mask, blockSize=7)
        if found is None:
            return
        new_px = found.reshape(-1, 2).astype(np.float32)
        inverse = np.asarray(np.linalg.inv(plane.to_px), np.float64)
        new_xy = apply_homography(inverse, new_px.astype(np.float64))
        keep = np.isfinite(new_xy).all(axis=1)
        plane.px = np.concatenate([plane.px, new_px[keep]]).astype(np.float32)
        plane.xy = np.concatenate([plane.xy, new_xy[keep]])


def _mean_pose(old: Mat, new: Mat, weight: float) -> Mat:
    """(1 - weight) * old + weight * new, with the rotation projected back onto SO(3)."""
    out = (1.0 - weight) * old + weight * new
    u, _, vt = np.linalg.svd(out[:3, :3])
    out[:3, :3] = u @ vt
    out[3] = [0.0, 0.0, 0.0, 1.0]
    return np.asarray(out, np.float64)


def _plausible_step(old: Mat, new: Mat) -> bool:
    """Whether the image motion between two analysed frames keeps orientation and scales area
    by less than 2x (the camera cannot do more in ~0.1 s)."""
    step = np.asarray(new, np.float64) @ np.linalg.inv(old)
    if not np.isfinite(step).all() or abs(step[2, 2]) < 1e-12:
        return False
    step = step / step[2, 2]
    det = float(np.linalg.det(step[:2, :2]))
    return 0.5 < det < 2.0


def _marker_quads(
    markers: tuple[MarkerPose, ...], width: int, height: int
) -> list[npt.NDArray[np.int32]]:
    """Each marker's outline with its white margin (1.6x about its centre), in pixels."""
    quads = []
    for marker in markers:
        px = np.asarray(marker.corners, np.float64) * [width, height] - 0.5
        centre = px.mean(axis=0)
        quads.append(np.rint(centre + 1.6 * (px - centre)).astype(np.int32))
    return quads
