"""The real-time frame pipeline: one object per video stream, run in a thread executor.

``Pipeline.process`` takes the latest decoded frame and its telemetry and returns a frozen
``FrameResult``. It accepts any frame size, and sizes that change between calls (browsers drop
resolution under load); intrinsics are rescaled to every frame. Stages are looked up by name in
a registry, so later stages plug in with :func:`register_stage` without touching this module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.anchors import AnchorBook
from vision.catalog import REQUIRES, builtin_stages
from vision.detector import OutputFormat
from vision.equipment_library import EquipmentLibrary
from vision.ergonomics import RebaSettings
from vision.errors import InvalidFrameError, VisionError
from vision.markers import MarkerTracking
from vision.odometry import RgbdOptions
from vision.pose import PoseOptions
from vision.safety import SafetyOptions
from vision.stages import FrameContext, Stage
from vision.tracking import TrackerOptions
from vision.twin import Twin
from vision.types import CameraSource, FrameResult, Intrinsics, Telemetry

__all__ = [
    "Pipeline",
    "PipelineOptions",
    "StageFactory",
    "available_stages",
    "register_stage",
    "validate_frame",
]

logger = logging.getLogger(__name__)


@dataclass
class PipelineOptions:
    """How a :class:`Pipeline` is built. Validated when the pipeline is constructed."""

    stages: tuple[str, ...] = ("markers",)
    """Stage names, run in this order on every frame (see :func:`available_stages`)."""

    marker_family: str = "aruco_4x4_50"
    """Fiducial family of the ``markers`` stage, e.g. ``aruco_5x5_100`` or ``apriltag_36h11``."""

    marker_size_m: float = 0.10
    """Printed side of the outer black square of a marker, metres (ids not in ``marker_sizes``)."""

    marker_sizes: dict[int, float] = field(default_factory=dict)
    """Per-id printed side in metres, overriding ``marker_size_m``."""

    marker_tracking: MarkerTracking | None = field(default_factory=MarkerTracking)
    """How the ``markers`` stage follows markers between full scans of the frame (None: scan
    every frame). Stills (``annotate`` on an image) always get a full scan."""

    intrinsics: Intrinsics | None = None
    """Calibrated intrinsics from settings, used when telemetry carries none; rescaled to
    every frame's size."""

    hfov_deg: float = 60.0
    """Horizontal field of view assumed when neither telemetry nor settings give intrinsics."""

    equipment_library: EquipmentLibrary | None = None
    """Registered reference images, shared by the pipelines of a process (REST adds to it)."""

    equipment_detect_every: int = 1
    """Full feature matching every n-th frame, optical-flow tracking in between (1 = always)."""

    qr_asset_names: dict[str, str] = field(default_factory=dict)
    """QR asset-tag text -> equipment name; unmapped texts are shown as they are."""

    detector_model: str | None = None
    """An ONNX detector for the ``detector`` stage (layouts: see :mod:`vision.detector`)."""

    detector_labels: str | None = None
    """Its labels file, one label a line; a ``person`` label marks person boxes."""

    detector_input_size: tuple[int, int] = (640, 640)
    detector_score_threshold: float = 0.5
    detector_nms_threshold: float = 0.45
    detector_output_format: OutputFormat = "yolo"

    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    """Planar-tracking settings of the ``tracking`` stage."""

    anchor_book: AnchorBook | None = None
    """The stream's ink: ``tracking`` records frame states into it, ``anchors`` re-projects its
    strokes into every analysed frame. One per video stream."""

    rgbd: RgbdOptions = field(default_factory=RgbdOptions)
    """Options of the ``rgbd`` stage (RGB-D odometry; depth arrives on ``Telemetry.depth``)."""

    twin: Twin | None = None
    """The stream's digital twin: the ``rgbd`` stage fuses keyframes and places markers into
    it; the server exports it (thread-safe). One per video stream."""

    pose: PoseOptions = field(default_factory=PoseOptions)
    """Options of the ``pose`` stage (multi-person BlazePose, tracking mode)."""

    reba: RebaSettings = field(default_factory=RebaSettings)
    """REBA inputs pose cannot see (load, coupling, activity) for the ``ergonomics`` stage."""

    safety: SafetyOptions = field(default_factory=SafetyOptions)
    """Zones of the ``safety`` stage."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming what is wrong, without building any stage."""
        _check_options(self)


StageFactory = Callable[[PipelineOptions], Stage]
"""Builds a stage from the pipeline options."""


_REGISTRY: dict[str, StageFactory] = builtin_stages()
_REGISTRY_LOCK = threading.Lock()


def register_stage(name: str, factory: StageFactory, *, replace: bool = False) -> None:
    """Make stage ``name`` available to ``PipelineOptions.stages``.

    Registering a name twice is refused unless ``replace`` is set (tests swap in fakes that way).
    Pipelines built earlier keep the stages they were built with.
    """
    if not name or not name.isidentifier():
        raise ValueError(f"stage names must be identifiers, got {name!r}")
    with _REGISTRY_LOCK:
        if name in _REGISTRY and not replace:
            raise ValueError(f"stage {name!r} is already registered; pass replace=True to swap it")
        _REGISTRY[name] = factory


def available_stages() -> tuple[str, ...]:
    """Names accepted in ``PipelineOptions.stages``, sorted."""
    with _REGISTRY_LOCK:
        return tuple(sorted(_REGISTRY))


def _check_options(options: PipelineOptions) -> list[tuple[str, StageFactory]]:
    if isinstance(options.stages, str):
        raise ValueError(f"stages must be a tuple of names, not the string {options.stages!r}")
    with _REGISTRY_LOCK:
        registry = dict(_REGISTRY)
    unknown = [name for name in options.stages if name not in registry]
    if unknown:
        raise ValueError(
            f"unknown vision stage(s) {', '.join(map(repr, unknown))}; "
            f"valid stages: {', '.join(sorted(registry))}"
        )
    duplicates = sorted({name for name in options.stages if options.stages.count(name) > 1})
    if duplicates:
        raise ValueError(f"vision stage(s) listed more than once: {', '.join(duplicates)}")
    for name, needed in REQUIRES.items():
        if name in options.stages and (
            needed not in options.stages
            or options.stages.index(needed) > options.stages.index(name)
        ):
            raise ValueError(f"the {name!r} stage needs the {needed!r} stage before it")
    if "pose" in options.stages:
        options.pose.validate()
    if "rgbd" in options.stages:
        options.rgbd.validate()
        if "tracking" in options.stages and options.stages.index("tracking") < options.stages.index(
            "rgbd"
        ):
            raise ValueError("the 'rgbd' stage must run before 'tracking' (which uses its pose)")
    if not 0.0 < options.hfov_deg < 180.0:
        raise ValueError(f"hfov_deg must be in (0, 180) degrees, got {options.hfov_deg}")
    if options.intrinsics is not None and not isinstance(options.intrinsics, Intrinsics):
        raise ValueError("options.intrinsics must be an Intrinsics (see Intrinsics.from_dict)")
    return [(name, registry[name]) for name in options.stages]


def validate_frame(image: Any) -> npt.NDArray[np.uint8]:
    """Check a frame and return it as a C-contiguous uint8 (H, W), (H, W, 3) or (H, W, 4) array.

    Raises :class:`InvalidFrameError` naming what is wrong and what is expected.
    """
    expected = "a uint8 numpy array shaped (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA"
    if not isinstance(image, np.ndarray):
        raise InvalidFrameError(f"frame must be {expected}; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidFrameError(
            f"frame must be {expected}; got dtype {image.dtype} (convert 0..1 floats with "
            "(img * 255).clip(0, 255).astype(np.uint8))"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InvalidFrameError(f"frame must be {expected}; got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidFrameError(
            f"frame is empty (shape {image.shape}); expected at least 1x1 pixels"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return np.ascontiguousarray(image)


class Pipeline:
    """Runs the configured stages on one frame at a time.

    Thread-safe: calls are serialised by a lock (the server runs one frame per stream at a time
    anyway). Build one pipeline per video stream; stages may keep state across frames.
    """

    def __init__(self, options: PipelineOptions | None = None) -> None:
        self.options = options if options is not None else PipelineOptions()
        factories = _check_options(self.options)
        self._lock = threading.Lock()
        self._closed = False
        self._fov_cache: Intrinsics | None = None
        self._stages: list[tuple[str, Stage]] = []
        try:
            for name, factory in factories:
                self._stages.append((name, factory(self.options)))
        except BaseException:
            self.close()
            raise

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._stages)

    def intrinsics_for(
        self, width: int, height: int, telemetry: Telemetry
    ) -> tuple[Intrinsics, CameraSource]:
        """Intrinsics for a frame of this size: telemetry > settings > field-of-view default."""
        if telemetry.intrinsics is not None:
            return telemetry.intrinsics.scaled_to(width, height), "telemetry"
        if self.options.intrinsics is not None:
            return self.options.intrinsics.scaled_to(width, height), "settings"
        cached = self._fov_cache
        if cached is None or (cached.width, cached.height) != (width, height):
            cached = Intrinsics.from_fov(width, height, self.options.hfov_deg)
            self._fov_cache = cached
        return cached, "fov-default"

    def process(self, image: npt.NDArray[np.uint8], telemetry: Telemetry) -> FrameResult:
        """Analyse one frame. Raises :class:`InvalidFrameError` for input it cannot use."""
        started = time.perf_counter()
        if not isinstance(telemetry, Telemetry):
            raise TypeError(f"telemetry must be a vision.Telemetry, got {type(telemetry).__name__}")
        frame = validate_frame(image)
        height, width = frame.shape[:2]
        with self._lock:
            if self._closed:
                raise VisionError("the pipeline is closed; build a new one")
            intrinsics, source = self.intrinsics_for(width, height, telemetry)
            context = FrameContext(frame, telemetry, intrinsics, source)
            now = time.perf_counter()
            timings = [("prepare", (now - started) * 1000.0)]
            for name, stage in self._stages:
                stage.run(context)
                after = time.perf_counter()
                timings.append((name, (after - now) * 1000.0))
                now = after
        timings.append(("total", (time.perf_counter() - started) * 1000.0))
        return FrameResult(
            pts=telemetry.pts,
            width=width,
            height=height,
            markers=context.markers,
            timings_ms=tuple(timings),
            camera=source,
            intrinsics=intrinsics,
            persons=context.persons,
            objects=context.objects,
            camera_pose=context.camera_pose,
            anchors=context.anchors,
            events=context.events,
            zones=context.zones,
        )

    def close(self) -> None:
        """Close every stage. Idempotent; ``process`` refuses to run afterwards."""
        with self._lock:
            self._closed = True
            stages, self._stages = self._stages, []
        for name, stage in reversed(stages):
            try:
                stage.close()
            except Exception:
                logger.exception("vision stage %r failed to close", name)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
