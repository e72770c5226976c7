"""Fieldsight vision: pure numpy/OpenCV frame analysis behind one pipeline object.

No asyncio and no web imports: the server runs :meth:`Pipeline.process` in a thread executor on
the latest video frame. ``vision.synthetic`` (ground-truth scene rendering for tests and
benchmarks) is imported explicitly, not re-exported here.
"""

from vision.anchors import AnchorBook, AnchorStage
from vision.detector import DetectorLoadError, OnnxDetector
from vision.equipment import EquipmentError, EquipmentLibrary, EquipmentStage, ReferenceImageError
from vision.ergonomics import ErgonomicsStage, RebaSettings, SessionErgonomics
from vision.errors import InvalidFrameError, InvalidIntrinsicsError, VisionError
from vision.markers import MARKER_FAMILIES, MarkerDetector
from vision.pipeline import (
    Pipeline,
    PipelineOptions,
    StageFactory,
    available_stages,
    register_stage,
    validate_frame,
)
from vision.pose import PoseEstimator, PoseOptions, PoseStage
from vision.qr import QrStage
from vision.results import (
    Anchor,
    CameraPose,
    DetectedObject,
    ErgonomicRisk,
    Person,
    PoseSource,
    SafetyEvent,
)
from vision.safety import SafetyOptions, SafetyStage, WorldZone, Zone
from vision.stages import FrameContext, MarkerStage, Stage
from vision.tracking import CameraTracker, FrameState, TrackerOptions
from vision.types import (
    CameraSource,
    FrameResult,
    Intrinsics,
    MarkerPose,
    Telemetry,
    pixel_to_uv,
    uv_to_pixel,
)

__all__ = [
    "AnchorBook",
    "AnchorStage",
    "CameraTracker",
    "FrameState",
    "TrackerOptions",
    "ErgonomicsStage",
    "PoseEstimator",
    "PoseOptions",
    "PoseStage",
    "RebaSettings",
    "SafetyOptions",
    "SafetyStage",
    "SessionErgonomics",
    "WorldZone",
    "Zone",
    "DetectorLoadError",
    "EquipmentError",
    "EquipmentLibrary",
    "EquipmentStage",
    "OnnxDetector",
    "QrStage",
    "ReferenceImageError",
    "Anchor",
    "CameraPose",
    "DetectedObject",
    "ErgonomicRisk",
    "Person",
    "PoseSource",
    "SafetyEvent",
    "MARKER_FAMILIES",
    "CameraSource",
    "FrameContext",
    "FrameResult",
    "Intrinsics",
    "InvalidFrameError",
    "InvalidIntrinsicsError",
    "MarkerDetector",
    "MarkerPose",
    "MarkerStage",
    "Pipeline",
    "PipelineOptions",
    "Stage",
    "StageFactory",
    "Telemetry",
    "VisionError",
    "available_stages",
    "pixel_to_uv",
    "register_stage",
    "uv_to_pixel",
    "validate_frame",
]
