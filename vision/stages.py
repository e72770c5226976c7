"""The stage contract of the frame pipeline, and the stages that exist so far.

A stage is an object with ``run(frame)`` and ``close()``. ``run`` reads what it needs from the
:class:`FrameContext` (pixels, intrinsics, telemetry, outputs of earlier stages) and writes its own
output there; the pipeline turns the context into a frozen ``FrameResult``. Later stages (pose,
equipment, camera tracking, anchors) add an output attribute here and a field to ``FrameResult``.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from vision.markers import MarkerDetector, MarkerTracker, MarkerTracking
from vision.results import Anchor, CameraPose, DetectedObject, Person, SafetyEvent, ZoneOutline
from vision.rgbd import DepthFrame
from vision.types import CameraSource, Intrinsics, MarkerPose, Telemetry

__all__ = ["FrameContext", "MarkerStage", "Stage"]


class FrameContext:
    """Per-frame scratch space shared by the stages of one ``Pipeline.process`` call.

    ``depth`` is the telemetry's depth frame; the ``rgbd`` stage keeps the latest one there on
    the colour frames in between (its pose is the one reported for them).
    ``image`` is the validated input: uint8, (H, W) gray, (H, W, 3) BGR or (H, W, 4) BGRA.
    ``gray`` and ``bgr`` are converted on first use and cached, so a stage that needs neither
    costs nothing, and two stages that need the same one convert once.
    """

    __slots__ = (
        "_bgr",
        "_gray",
        "anchors",
        "camera",
        "camera_pose",
        "depth",
        "events",
        "image",
        "intrinsics",
        "markers",
        "objects",
        "persons",
        "telemetry",
        "zones",
    )

    def __init__(
        self,
        image: npt.NDArray[np.uint8],
        telemetry: Telemetry,
        intrinsics: Intrinsics,
        camera: CameraSource,
    ) -> None:
        self.image = image
        self.telemetry = telemetry
        self.intrinsics = intrinsics
        self.camera: CameraSource = camera
        self.depth: DepthFrame | None = telemetry.depth
        self.markers: tuple[MarkerPose, ...] = ()
        self.persons: tuple[Person, ...] = ()
        self.objects: tuple[DetectedObject, ...] = ()
        self.camera_pose: CameraPose | None = None
        self.anchors: tuple[Anchor, ...] = ()
        self.events: tuple[SafetyEvent, ...] = ()
        self.zones: tuple[ZoneOutline, ...] = ()
        self._gray: npt.NDArray[np.uint8] | None = None
        self._bgr: npt.NDArray[np.uint8] | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def gray(self) -> npt.NDArray[np.uint8]:
        if self._gray is None:
            image = self.image
            if image.ndim == 2:
                gray = image
            else:
                code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
                gray = np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)
            self._gray = gray
            return gray
        return self._gray

    @property
    def bgr(self) -> npt.NDArray[np.uint8]:
        if self._bgr is None:
            image = self.image
            if image.ndim == 3 and image.shape[2] == 3:
                bgr = image
            else:
                code = cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_BGRA2BGR
                bgr = np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)
            self._bgr = bgr
            return bgr
        return self._bgr


class Stage(Protocol):
    """One step of the pipeline. Built once per pipeline, run on one frame at a time."""

    def run(self, frame: FrameContext) -> None:
        """Analyse ``frame`` and store the output on it."""

    def close(self) -> None:
        """Release what the stage holds (models, threads). Called once."""


_DEFAULT_TRACKING = MarkerTracking()


class MarkerStage:
    """Fiducial markers with 6-DoF poses -> ``frame.markers``.

    One stage per video stream: with ``tracking`` (the default) the stage scans the whole frame
    every ``tracking.full_detect_every`` frames and re-detects known markers in small windows in
    between (see :class:`MarkerTracking`); ``tracking=None`` scans every frame.
    """

    def __init__(
        self, detector: MarkerDetector, tracking: MarkerTracking | None = _DEFAULT_TRACKING
    ) -> None:
        self.detector = detector
        self.tracker = None if tracking is None else MarkerTracker(detector, tracking)

    def run(self, frame: FrameContext) -> None:
        if self.tracker is None:
            frame.markers = self.detector.detect(frame.gray, frame.intrinsics)
        else:
            frame.markers = self.tracker.detect(frame.gray, frame.intrinsics)

    def close(self) -> None:
        pass
