"""Fieldsight vision: pure numpy/OpenCV frame analysis behind one pipeline object.

No asyncio and no web imports: the server runs :meth:`Pipeline.process` in a thread executor on
the latest video frame. ``vision.synthetic`` (ground-truth scene rendering for tests and
benchmarks) and ``vision.synthetic_rgbd`` (a rendered RGB-D room) are imported explicitly, not
re-exported here. Open3D (the ``rgbd`` stage, the digital twin) is imported only when used.
"""

from vision.anchors import AnchorBook, AnchorStage
from vision.detector import DetectorLoadError, OnnxDetector
from vision.equipment import EquipmentError, EquipmentLibrary, EquipmentStage, ReferenceImageError
from vision.ergonomics import ErgonomicsStage, RebaSettings, SessionErgonomics
from vision.errors import (
    DepthError,
    InvalidFrameError,
    InvalidIntrinsicsError,
    Open3DUnavailableError,
    VisionError,
)
from vision.markers import MARKER_FAMILIES, MarkerDetector, MarkerTracker, MarkerTracking
from vision.odometry import RgbdOdometry, RgbdOptions, RgbdStage
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
from vision.rgbd import DepthFrame, decode_depth_png, encode_depth_png
from vision.safety import SafetyOptions, SafetyStage, WorldZone, Zone
from vision.stages import FrameContext, MarkerStage, Stage
from vision.tracking import CameraTracker, FrameState, TrackerOptions
from vision.twin import TwinBuilder, TwinMesh, TwinOptions
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
    "DepthError",
    "DepthFrame",
    "Open3DUnavailableError",
    "RgbdOdometry",
    "RgbdOptions",
    "RgbdStage",
    "TwinBuilder",
    "TwinMesh",
    "TwinOptions",
    "decode_depth_png",
    "encode_depth_png",
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
    "MarkerTracker",
    "MarkerTracking",
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
