"""RGB-D odometry (stage ``rgbd``): metric camera poses from colour + depth, frame to frame.

:class:`RgbdOdometry` aligns each new depth frame (with the colour frame resized to the depth
size) to the previous one with Open3D's tensor pipeline
(``t.pipelines.odometry.rgbd_odometry_multi_scale``, the Hybrid photometric + point-to-plane
loss: point-to-plane alone drifts along walls and floors, which constrain only their normal).
Poses accumulate into ``world_from_camera``; ``world`` is the first depth frame's camera (OpenCV
axes) unless ``RgbdOptions.world_from_first`` is given.

A step is refused, and the frame gets no pose rather than a wrong one, when the depth has too
few readings, Open3D finds no solution, the share of matched pixels (fitness) is low, or the
step is more than a person moves between two depth frames. The last good frame stays the
target, so tracking resumes when the view comes back; after ``max_lost`` refused depth frames a
new world starts (reference ``rgbd:<n>``; the first one is ``rgbd``).

:class:`RgbdStage` runs the odometry only on frames that carry a new depth frame and reports
the last pose on the colour frames in between (while it is at most ``max_pose_age`` old). It
feeds the stream's :class:`vision.twin.TwinBuilder`, when there is one: keyframes and the
markers seen on frames with a fresh pose (their range corrected by the measured depth).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from vision.geometry import Mat, pose_matrix
from vision.results import CameraPose
from vision.rgbd import DepthFrame, load_open3d
from vision.stages import FrameContext
from vision.twin import Twin
from vision.types import Intrinsics, MarkerPose

__all__ = ["OdometryStep", "RgbdOdometry", "RgbdOptions", "RgbdStage"]

logger = logging.getLogger(__name__)


@dataclass
class RgbdOptions:
    """Settings of the ``rgbd`` stage; the defaults suit a headset depth camera at 5-15 fps."""

    method: Literal["hybrid", "point_to_plane"] = "hybrid"
    """Open3D's loss: ``hybrid`` (photometric + geometric) drifts far less on flat rooms."""
    depth_max_m: float = 5.0
    """Readings beyond this are ignored."""
    min_valid_fraction: float = 0.1
    """A depth frame with fewer readings than this share of pixels is not used."""
    min_fitness: float = 0.7
    """Least share of pixels that must find a match for a step to be trusted. Measured on the
    rendered walk: right steps 0.74-0.98, steps that converged to a wrong pose 0.50-0.65
    (depth frames 0.27 s apart at walking speed)."""
    max_step_m: float = 0.3
    """Largest believable camera move between two depth frames (3 m/s at 10 fps)."""
    max_step_deg: float = 30.0
    """Largest believable turn between two depth frames."""
    max_lost: int = 10
    """Refused depth frames in a row before a new world starts."""
    max_pose_age: int = 45_000
    """Ticks (90 kHz: 0.5 s) the last pose is reported for colour frames without depth."""
    iterations: tuple[int, ...] = (20, 10, 5, 3)
    """Gauss-Newton iterations per pyramid level, coarse to fine (one level each): four levels
    converge from ~15 cm / 12 deg away, which depth at 5 Hz of a walking person needs."""
    outlier_trunc_m: float = 0.2
    """Depth differences beyond this are outliers (Open3D's default 7 cm loses steps larger
    than a few cm before they converge)."""
    max_width: int | None = 320
    """Wider depth is subsampled to at most this width for odometry (4x cheaper at 640x480,
    as accurate on the rendered room); None uses every pixel. The twin still fuses it all."""
    threads: int | None = 1
    """Open3D worker threads (process-wide); None keeps Open3D's default."""
    world_from_first: tuple[float, ...] | None = None
    """16 row-major floats: where the first depth frame's camera is in the world (default:
    it is the world)."""

    def validate(self) -> None:
        if self.method not in ("hybrid", "point_to_plane"):
            raise ValueError(f"rgbd method must be 'hybrid' or 'point_to_plane': {self.method!r}")
        if not self.depth_max_m > 0:
            raise ValueError(f"depth_max_m must be > 0, got {self.depth_max_m}")
        if not 0.0 <= self.min_fitness <= 1.0:
            raise ValueError(f"min_fitness must be in [0, 1], got {self.min_fitness}")
        if self.max_step_m <= 0 or self.max_step_deg <= 0 or self.max_lost < 0:
            raise ValueError("max_step_m and max_step_deg must be > 0 and max_lost >= 0")
        if not self.iterations or any(n < 1 for n in self.iterations):
            raise ValueError(f"iterations must be >= 1 per pyramid level, got {self.iterations}")
        if not self.outlier_trunc_m > 0:
            raise ValueError(f"outlier_trunc_m must be > 0, got {self.outlier_trunc_m}")
        if self.world_from_first is not None and len(self.world_from_first) != 16:
            raise ValueError("world_from_first must be 16 floats (row-major 4x4)")


@dataclass(frozen=True, eq=False)
class OdometryStep:
    """The outcome of one depth frame."""

    world_from_camera: Mat | None
    """None when the step was refused (see ``reason``)."""
    reference: str | None
    fitness: float = 0.0
    reason: str = "ok"


def _rotation_deg(rotation: Mat) -> float:
    cosine = (float(np.trace(rotation)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


class RgbdOdometry:
    """Frame-to-frame RGB-D odometry; see the module docstring. Not thread-safe (one stream)."""

    def __init__(self, options: RgbdOptions | None = None) -> None:
        self.options = options if options is not None else RgbdOptions()
        self.options.validate()
        self._o3d = load_open3d(self.options.threads)
        odometry = self._o3d.t.pipelines.odometry
        self._method = (
            odometry.Method.Hybrid
            if self.options.method == "hybrid"
            else odometry.Method.PointToPlane
        )
        self._target: Any = None  # the last good frame's tensor RGBDImage
        self._target_key: tuple[int, int, float, float, float, float] | None = None
        self._world_from_target: Mat | None = None
        self._velocity = np.eye(4)
        self._velocity_dt = 0  # ticks the velocity step spans (0: no prior)
        self._target_pts = 0
        self._lost = 0
        self._worlds = 0
        self.reference: str | None = None

    def reset(self) -> None:
        """Forget the world; the next depth frame starts a new one."""
        self._target, self._world_from_target, self.reference = None, None, None
        self._velocity, self._velocity_dt, self._lost = np.eye(4), 0, 0

    def update(
        self, color: npt.NDArray[np.uint8], depth: DepthFrame, camera: Intrinsics
    ) -> OdometryStep:
        """Align ``depth`` (with ``color``, BGR of any size) to the last good frame.

        ``camera`` is the depth image's intrinsics (``DepthFrame.camera(colour intrinsics)``).
        """
        opts = self.options
        if depth.valid_fraction() < opts.min_valid_fraction:
            return self._refuse(f"only {depth.valid_fraction():.0%} of the depth has readings")
        image, camera = self._rgbd_image(color, depth, camera)
        key = (camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy)
        if self._target is None or self._world_from_target is None:
            return self._start(image, key, depth.pts)
        if key != self._target_key:  # the depth stream changed size or calibration
            logger.info("rgbd: depth camera changed (%s -> %s); new world", self._target_key, key)
            return self._start(image, key, depth.pts)
        o3d = self._o3d
        k = o3d.core.Tensor(camera.matrix())
        # Constant-velocity prior, scaled to the time since the target (depth may be irregular).
        init = np.eye(4)
        if self._lost == 0 and self._velocity_dt > 0 and depth.pts > self._target_pts:
            init = _scale_motion(self._velocity, (depth.pts - self._target_pts) / self._velocity_dt)
        odometry = o3d.t.pipelines.odometry
        try:
            result = odometry.rgbd_odometry_multi_scale(
                image,
                self._target,
                k,
                o3d.core.Tensor(init),
                1.0 / depth.scale_m,
                opts.depth_max_m,
                [odometry.OdometryConvergenceCriteria(n) for n in opts.iterations],
                self._method,
                odometry.OdometryLossParams(opts.outlier_trunc_m, 0.1, 0.1),
            )
        except RuntimeError as exc:  # "Singular 6x6 linear system": nothing to align
            return self._refuse(f"no solution ({str(exc).strip().splitlines()[-1][-80:]})")
        step = np.asarray(result.transformation.numpy(), np.float64)  # target_from_source
        fitness = float(result.fitness)
        moved = float(np.linalg.norm(step[:3, 3]))
        turned = _rotation_deg(step[:3, :3])
        if not np.isfinite(step).all():
            return self._refuse("no finite solution", fitness)
        if fitness < opts.min_fitness:
            return self._refuse(f"fitness {fitness:.2f} < {opts.min_fitness}", fitness)
        if moved > opts.max_step_m or turned > opts.max_step_deg:
            return self._refuse(f"implausible step {moved:.2f} m / {turned:.1f} deg", fitness)
        world = self._world_from_target @ step
        dt = depth.pts - self._target_pts
        self._velocity, self._velocity_dt = (
            (step, dt)
            if self._lost == 0 and dt > 0
            else (
                np.eye(4),
                0,
            )
        )
        self._target, self._world_from_target, self._lost = image, world, 0
        self._target_pts = depth.pts
        return OdometryStep(world, self.reference, fitness)

    def _start(
        self, image: Any, key: tuple[int, int, float, float, float, float], pts: int
    ) -> OdometryStep:
        first = self.options.world_from_first
        world = pose_matrix(first) if first is not None and self._worlds == 0 else np.eye(4)
        self.reference = "rgbd" if self._worlds == 0 else f"rgbd:{self._worlds}"
        self._worlds += 1
        self._target, self._target_key, self._world_from_target = image, key, world
        self._velocity, self._velocity_dt, self._lost = np.eye(4), 0, 0
        self._target_pts = pts
        return OdometryStep(world, self.reference, 1.0, "new world")

    def _refuse(self, reason: str, fitness: float = 0.0) -> OdometryStep:
        self._lost += 1
        logger.debug("rgbd odometry refused a step: %s", reason)
        if self._lost > self.options.max_lost and self._target is not None:
            logger.info("rgbd odometry lost for %d depth frames; a new world starts", self._lost)
            self._target, self._world_from_target = None, None
        return OdometryStep(None, None, fitness, reason)

    def _rgbd_image(
        self, color: npt.NDArray[np.uint8], depth: DepthFrame, camera: Intrinsics
    ) -> tuple[Any, Intrinsics]:
        """Open3D's RGBDImage (colour resized to the depth), subsampled to ``max_width``: every
        step-th pixel (no depths mixed across edges), the colour blurred first and sampled at
        the very same pixels, so colour and depth stay registered."""
        o3d = self._o3d
        if color.ndim == 2:
            color = np.asarray(cv2.cvtColor(color, cv2.COLOR_GRAY2BGR), np.uint8)
        if color.shape[:2] != depth.depth.shape:
            color = np.asarray(
                cv2.resize(color, (depth.width, depth.height), interpolation=cv2.INTER_AREA)
            )
        values = depth.depth
        limit = self.options.max_width
        if limit is not None and depth.width > limit:
            step = -(-depth.width // limit)
            offset = step // 2
            blurred = cv2.GaussianBlur(color, (0, 0), 0.5 * step)
            color = np.asarray(blurred, np.uint8)[offset::step, offset::step]
            values = values[offset::step, offset::step]
            camera = Intrinsics(
                camera.fx / step,
                camera.fy / step,
                (camera.cx - offset) / step,
                (camera.cy - offset) / step,
                values.shape[1],
                values.shape[0],
            )
        rgb = np.ascontiguousarray(color[:, :, 2::-1], dtype=np.float32) * np.float32(1 / 255)
        image = o3d.t.geometry.RGBDImage(
            o3d.t.geometry.Image(o3d.core.Tensor(rgb)),
            o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(values))),
        )
        return image, camera


def _scale_motion(step: Mat, factor: float) -> Mat:
    """``step`` (a rigid motion) stretched to ``factor`` times its duration: the rotation
    angle and the translation scaled (first order; enough for a prior)."""
    factor = min(max(factor, 0.0), 10.0)
    rvec, _ = cv2.Rodrigues(np.asarray(step[:3, :3], np.float64))
    rotation, _ = cv2.Rodrigues(np.asarray(rvec, np.float64) * factor)
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = step[:3, 3] * factor
    return out


def _with_measured_depth(marker: MarkerPose, depth: DepthFrame) -> Mat:
    """camera_from_marker with its distance taken from the depth at the marker's centre: a
    marker's pose from its corners is good in direction but poor in range far away."""
    pose = marker.camera_from_marker()
    centre = np.mean(np.asarray(marker.corners, np.float64), axis=0)
    z = float(depth.sampler.sample(centre[None], radius=1)[0])
    tz = float(pose[2, 3])
    if math.isfinite(z) and tz > 0 and abs(z / tz - 1.0) < 0.2:
        pose[:3, 3] *= z / tz
    return pose


class RgbdStage:
    """The ``rgbd`` stage; see the module docstring. Run it before ``tracking``."""

    def __init__(self, options: RgbdOptions | None = None, twin: Twin | None = None) -> None:
        self.odometry = RgbdOdometry(options)
        self.options = self.odometry.options
        self.twin = twin
        self.last_step: OdometryStep | None = None
        self._last_depth: DepthFrame | None = None
        self._pose: CameraPose | None = None

    def run(self, frame: FrameContext) -> None:
        depth = frame.telemetry.depth
        if depth is not None and depth is not self._last_depth:
            self._last_depth = depth
            camera = depth.camera(frame.intrinsics)
            step = self.odometry.update(frame.bgr, depth, camera)
            self.last_step = step
            self._pose = None
            if step.world_from_camera is not None and step.reference is not None:
                pose = step.world_from_camera
                self._pose = CameraPose(
                    tuple(float(x) for x in pose.ravel()),
                    "rgbd",
                    quality=step.fitness,
                    reference=step.reference,
                )
                if self.twin is not None:
                    self.twin.integrate(frame.bgr, depth, camera, pose, step.reference)
                    for marker in frame.markers:
                        world_from_marker = pose @ _with_measured_depth(marker, depth)
                        self.twin.place_marker(marker.id, world_from_marker, step.reference)
        elif self._last_depth is not None and frame.depth is None:
            age = abs(frame.telemetry.pts - self._last_depth.pts)
            if age > self.options.max_pose_age:
                self._pose = None  # depth stopped coming: the old pose is no longer where we are
            else:
                frame.depth = self._last_depth  # the depth the reported pose belongs to
        if self._pose is not None:
            age = 0 if self._last_depth is None else frame.telemetry.pts - self._last_depth.pts
            frame.camera_pose = self._pose if age == 0 else replace(self._pose, age=max(0, age))

    def close(self) -> None:
        self._last_depth, self._pose = None, None
