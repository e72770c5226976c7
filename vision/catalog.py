"""The stages Fieldsight ships, by name. Factories import their stage lazily, so a pipeline that
does not run a stage never loads its models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vision.markers import MarkerDetector
from vision.stages import MarkerStage, Stage

if TYPE_CHECKING:
    from collections.abc import Callable

    from vision.pipeline import PipelineOptions

__all__ = ["REQUIRES", "builtin_stages"]


def _markers(options: PipelineOptions) -> Stage:
    detector = MarkerDetector(options.marker_family, options.marker_size_m, options.marker_sizes)
    return MarkerStage(detector, options.marker_tracking)


def _equipment(options: PipelineOptions) -> Stage:
    from vision.equipment import EquipmentLibrary, EquipmentStage

    library = options.equipment_library
    return EquipmentStage(
        library if library is not None else EquipmentLibrary(),
        detect_every=options.equipment_detect_every,
    )


def _qr(options: PipelineOptions) -> Stage:
    from vision.qr import QrStage

    return QrStage(options.qr_asset_names)


def _detector(options: PipelineOptions) -> Stage:
    from vision.detector import DetectorLoadError, OnnxDetector

    if options.detector_model is None or options.detector_labels is None:
        raise DetectorLoadError(
            "the 'detector' stage needs a model and a labels file "
            "(FIELDSIGHT_DETECTOR_MODEL and FIELDSIGHT_DETECTOR_LABELS)"
        )
    return OnnxDetector(
        options.detector_model,
        options.detector_labels,
        options.detector_input_size,
        options.detector_score_threshold,
        options.detector_nms_threshold,
        options.detector_output_format,
    )


def _pose(options: PipelineOptions) -> Stage:
    from vision.pose import PoseStage

    return PoseStage(options.pose)


def _ergonomics(options: PipelineOptions) -> Stage:
    from vision.ergonomics import ErgonomicsStage

    return ErgonomicsStage(options.reba)


def _safety(options: PipelineOptions) -> Stage:
    from vision.safety import SafetyStage

    return SafetyStage(options.safety)


def _tracking(options: PipelineOptions) -> Stage:
    from vision.tracking import CameraTracker

    book = options.anchor_book
    return CameraTracker(options.tracker, sink=None if book is None else book.record)


def _rgbd(options: PipelineOptions) -> Stage:
    from vision.odometry import RgbdStage

    return RgbdStage(options.rgbd, options.twin)


def _anchors(options: PipelineOptions) -> Stage:
    from vision.anchors import AnchorStage

    if options.anchor_book is None:
        raise ValueError("the 'anchors' stage needs PipelineOptions.anchor_book (one per stream)")
    return AnchorStage(options.anchor_book)


def builtin_stages() -> dict[str, Callable[[PipelineOptions], Stage]]:
    return {
        "markers": _markers,
        "rgbd": _rgbd,
        "tracking": _tracking,
        "anchors": _anchors,
        "pose": _pose,
        "ergonomics": _ergonomics,
        "safety": _safety,
        "equipment": _equipment,
        "qr": _qr,
        "detector": _detector,
    }


#: Stages that read what an earlier stage wrote: (stage, the stage it needs before it).
REQUIRES = {"ergonomics": "pose", "safety": "pose", "anchors": "tracking"}
