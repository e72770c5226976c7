"""Pipeline: input checks, changing frame sizes, intrinsics priority, stage registry, output."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

import vision.pipeline
from vision import (
    FrameContext,
    FrameResult,
    Intrinsics,
    InvalidFrameError,
    Pipeline,
    PipelineOptions,
    Stage,
    Telemetry,
    VisionError,
    available_stages,
    register_stage,
)
from vision.synthetic import facing_rvec, rotation_error_deg

Frame = npt.NDArray[np.uint8]
Render = Callable[..., Frame]

RVEC = facing_rvec(30.0, 30.0)
TVEC = (0.06, -0.04, 1.0)


def pose_error(result: FrameResult) -> tuple[float, float]:
    (marker,) = result.markers
    return float(np.linalg.norm(np.subtract(marker.tvec, TVEC))), rotation_error_deg(
        marker.rvec, RVEC
    )


def test_frame_size_changes_between_calls(render: Render, camera: Intrinsics) -> None:
    """A browser drops 640x480 to 480x360 mid-call; the telemetry still says 640x480."""
    small_camera = camera.scaled_to(480, 360)
    frames = [
        render(7, RVEC, TVEC),
        render(7, RVEC, TVEC, intrinsics=small_camera),
        render(7, RVEC, TVEC),
    ]
    telemetry = Telemetry(pts=90_000, intrinsics=camera)
    with Pipeline() as pipeline:
        results = [pipeline.process(frame, telemetry) for frame in frames]

    assert [(r.width, r.height) for r in results] == [(640, 480), (480, 360), (640, 480)]
    assert results[1].intrinsics == small_camera
    for result in results:
        translation, rotation = pose_error(result)
        assert translation <= 0.010
        assert rotation <= 1.5
        assert result.camera == "telemetry"
    # The same scene point has the same uv at both sizes (within a pixel of the small frame).
    uv_big = np.asarray(results[0].markers[0].corners)
    uv_small = np.asarray(results[1].markers[0].corners)
    assert np.abs(uv_big - uv_small).max() < 1.0 / 480


def test_intrinsics_priority(render: Render, camera: Intrinsics) -> None:
    image = render(7, RVEC, TVEC)
    wrong = Intrinsics(700.0, 700.0, 300.0, 250.0, 640, 480)
    settings_camera = camera.scaled_to(1280, 960)  # settings calibrated at another size

    from_telemetry = Pipeline(PipelineOptions(intrinsics=wrong)).process(
        image, Telemetry(pts=1, intrinsics=camera)
    )
    from_settings = Pipeline(PipelineOptions(intrinsics=settings_camera)).process(
        image, Telemetry(pts=2)
    )
    from_fov = Pipeline(PipelineOptions(hfov_deg=60.0)).process(image, Telemetry(pts=3))

    assert from_telemetry.camera == "telemetry"
    assert from_settings.camera == "settings"
    assert from_fov.camera == "fov-default"
    assert pose_error(from_telemetry)[0] <= 0.010
    assert pose_error(from_settings)[0] <= 0.010
    assert from_settings.intrinsics is not None
    assert from_settings.intrinsics.fx == pytest.approx(camera.fx)
    assert from_fov.intrinsics == Intrinsics.from_fov(640, 480, 60.0)
    # The centred 60 deg default differs from the real camera, and it shows in the pose.
    assert pose_error(from_fov)[0] > 0.010


@pytest.mark.parametrize(
    "convert",
    [
        lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
        lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None],
        lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
        lambda bgr: np.asfortranarray(bgr),
        lambda bgr: np.pad(bgr, ((0, 0), (0, 8), (0, 0)))[:, :640],
    ],
    ids=["gray", "gray-hw1", "bgra", "fortran-order", "strided-view"],
)
def test_accepted_layouts_give_the_bgr_pose(
    render: Render, camera: Intrinsics, convert: Callable[[Frame], Frame]
) -> None:
    bgr = render(7, RVEC, TVEC)
    pipeline = Pipeline(PipelineOptions(intrinsics=camera))
    reference = pipeline.process(bgr, Telemetry(pts=1))
    result = pipeline.process(convert(bgr), Telemetry(pts=2))
    assert len(result.markers) == 1
    np.testing.assert_allclose(result.markers[0].tvec, reference.markers[0].tvec, atol=1e-9)
    assert (result.width, result.height) == (640, 480)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "got NoneType"),
        ([[0, 1], [2, 3]], "got list"),
        (np.zeros((0, 640, 3), np.uint8), "empty"),
        (np.zeros((480, 0), np.uint8), "empty"),
        (np.zeros((480, 640, 3), np.float32), "dtype float32"),
        (np.zeros((480, 640), np.uint16), "dtype uint16"),
        (np.zeros((480, 640, 5), np.uint8), r"shape \(480, 640, 5\)"),
        (np.zeros((480, 640, 2), np.uint8), r"shape \(480, 640, 2\)"),
        (np.zeros((2, 480, 640, 3), np.uint8), "shape"),
        (np.zeros(640, np.uint8), "shape"),
    ],
    ids=["none", "list", "zero-rows", "zero-cols", "float32", "uint16", "5ch", "2ch", "4d", "1d"],
)
def test_invalid_frames_are_refused(image: Any, message: str) -> None:
    with pytest.raises(InvalidFrameError, match=message):
        Pipeline().process(image, Telemetry(pts=0))


def test_unknown_stage_lists_valid_names() -> None:
    with pytest.raises(
        ValueError, match=r"unknown vision stage\(s\) 'telepathy'.*valid stages: .*markers"
    ):
        Pipeline(PipelineOptions(stages=("markers", "telepathy")))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PipelineOptions(stages=("markers", "markers")), "more than once"),
        (PipelineOptions(stages="markers"), "tuple of names"),  # type: ignore[arg-type]
        (PipelineOptions(hfov_deg=0.0), "hfov_deg"),
        (PipelineOptions(marker_family="aruco_9x9"), "unknown marker family"),
        (PipelineOptions(marker_size_m=-1.0), "> 0 metres"),
    ],
)
def test_bad_options_are_refused(options: PipelineOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pipeline(options)


def test_no_marker_gives_empty_markers(background: Frame) -> None:
    result = Pipeline().process(background, Telemetry(pts=5))
    assert result.markers == ()
    assert result.to_dict()["markers"] == []


def test_to_dict_round_trips_through_json(render: Render, camera: Intrinsics) -> None:
    result = Pipeline().process(render(7, RVEC, TVEC), Telemetry(pts=123, intrinsics=camera))
    data = result.to_dict()

    text = json.dumps(data, allow_nan=False)

    assert json.loads(text) == data
    assert set(data) == {
        "pts", "width", "height", "markers", "persons", "objects", "camera_pose", "anchors",
        "events", "zones", "timings_ms", "camera",
    }  # fmt: skip
    assert (data["pts"], data["width"], data["height"], data["camera"]) == (
        123,
        640,
        480,
        "telemetry",
    )
    (marker,) = data["markers"]
    assert marker["id"] == 7
    assert len(marker["corners"]) == 4 and len(marker["axes"]) == 4
    assert marker["tvec"] == pytest.approx(list(TVEC), abs=0.01)
    assert marker["corners"][0] == [round(c, 5) for c in result.markers[0].corners[0]]
    assert list(data["timings_ms"]) == ["prepare", "markers", "total"]


def test_timings_are_measured(render: Render) -> None:
    result = Pipeline().process(render(7, RVEC, TVEC), Telemetry(pts=1))
    timings = dict(result.timings_ms)
    assert [name for name, _ in result.timings_ms] == ["prepare", "markers", "total"]
    assert timings["markers"] > 0.0
    assert timings["total"] >= timings["prepare"] + timings["markers"]


class RecordingStage:
    """A later stage: sees earlier output on the context and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []
        self.closed = 0

    def run(self, frame: FrameContext) -> None:
        self.seen.append(tuple(m.id for m in frame.markers))
        assert frame.bgr.shape == (frame.height, frame.width, 3)

    def close(self) -> None:
        self.closed += 1


def test_registered_stage_plugs_in(
    render: Render, camera: Intrinsics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vision.pipeline, "_REGISTRY", dict(vision.pipeline._REGISTRY))
    stage = RecordingStage()

    def factory(options: PipelineOptions) -> Stage:
        return stage

    register_stage("recorder", factory)
    assert "recorder" in available_stages() and "markers" in available_stages()
    with pytest.raises(ValueError, match="already registered"):
        register_stage("recorder", factory)

    pipeline = Pipeline(PipelineOptions(stages=("markers", "recorder"), intrinsics=camera))
    result = pipeline.process(render(7, RVEC, TVEC), Telemetry(pts=1))
    pipeline.close()
    pipeline.close()

    assert stage.seen == [(7,)]
    assert [name for name, _ in result.timings_ms] == ["prepare", "markers", "recorder", "total"]
    assert stage.closed == 1
    with pytest.raises(VisionError, match="closed"):
        pipeline.process(render(7, RVEC, TVEC), Telemetry(pts=2))


def test_empty_stage_list_runs_nothing(render: Render) -> None:
    result = Pipeline(PipelineOptions(stages=())).process(render(7, RVEC, TVEC), Telemetry(pts=1))
    assert result.markers == ()
    assert [name for name, _ in result.timings_ms] == ["prepare", "total"]


def test_fov_default_follows_the_frame_size() -> None:
    pipeline = Pipeline(PipelineOptions(hfov_deg=90.0))
    for width, height in [(640, 480), (480, 360)]:
        result = pipeline.process(np.zeros((height, width, 3), np.uint8), Telemetry(pts=0))
        assert result.intrinsics is not None
        assert result.intrinsics.fx == pytest.approx(width / 2 / math.tan(math.radians(45)))
        assert (result.intrinsics.width, result.intrinsics.height) == (width, height)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (2, 3, 4), (3, 1000), (1001, 3, 3)])
def test_tiny_and_odd_frames_are_analysed(shape: tuple[int, ...]) -> None:
    result = Pipeline().process(np.full(shape, 200, np.uint8), Telemetry(pts=4))
    assert result.markers == ()
    assert (result.height, result.width) == shape[:2]
