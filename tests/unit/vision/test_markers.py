"""MarkerDetector accuracy against rendered ground truth, and its argument checks.

Scenes: a 10 cm marker on a cluttered background, rendered with a known pose through known
intrinsics (``vision.synthetic``), plus sensor noise. Errors are measured against that pose.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from vision import Intrinsics, InvalidFrameError, MarkerDetector, MarkerPose
from vision.synthetic import facing_rvec, marker_corners_px, rotation_error_deg

Frame = npt.NDArray[np.uint8]
Render = Callable[..., Frame]

MAX_TRANSLATION_ERROR_M = 0.010  # at ~1 m
MAX_ROTATION_ERROR_DEG = 1.5
# Facing the camera squarely, a ~55 px marker's tilt is weakly observable (the IPPE ambiguity):
# 0.2 px of corner noise moves it by ~1.5 deg, so the frontal case gets a looser bound.
MAX_FRONTAL_ROTATION_ERROR_DEG = 3.0
MAX_CORNER_ERROR_PX = 0.5


def gray(image: Frame) -> Frame:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def corners_px(marker: MarkerPose, width: int, height: int) -> npt.NDArray[np.float64]:
    uv = np.asarray(marker.corners, dtype=np.float64)
    return uv * [width, height] - 0.5


def translation_error(marker: MarkerPose, tvec: tuple[float, float, float]) -> float:
    return float(np.linalg.norm(np.subtract(marker.tvec, tvec)))


@pytest.mark.parametrize("axis_deg", [0.0, 45.0, 90.0, 135.0])
@pytest.mark.parametrize("tilt_deg", [0.0, 15.0, 30.0, 45.0])
def test_pose_matches_ground_truth_at_one_metre(
    render: Render, camera: Intrinsics, tilt_deg: float, axis_deg: float
) -> None:
    rvec = facing_rvec(tilt_deg, axis_deg)
    offset = math.radians(axis_deg)
    tvec = (0.12 * math.cos(offset), 0.08 * math.sin(offset), 1.0)
    image = render(7, rvec, tvec)

    markers = MarkerDetector("aruco_4x4_50", 0.10).detect(gray(image), camera)

    assert [m.id for m in markers] == [7]
    marker = markers[0]
    assert marker.family == "aruco_4x4_50"
    assert marker.size_m == 0.10
    assert translation_error(marker, tvec) <= MAX_TRANSLATION_ERROR_M
    limit = MAX_FRONTAL_ROTATION_ERROR_DEG if tilt_deg < 10 else MAX_ROTATION_ERROR_DEG
    assert rotation_error_deg(marker.rvec, rvec) <= limit
    truth = marker_corners_px(0.10, rvec, tvec, camera)
    assert np.abs(corners_px(marker, 640, 480) - truth).max() <= MAX_CORNER_ERROR_PX
    assert all(0.0 <= c <= 1.0 for corner in marker.corners for c in corner)
    assert 0.0 <= marker.reprojection_error_px < 0.5
    # The drawn axes start at the marker centre and the x tip points to the right of the image.
    centre = marker_corners_px(0.10, rvec, tvec, camera).mean(axis=0)
    origin = np.asarray(marker.axes[0]) * [640, 480] - 0.5
    assert np.linalg.norm(origin - centre) < 1.0
    assert len(marker.axes) == 4
    assert marker.axes[1][0] > marker.axes[0][0]


def test_pose_error_summary_stays_well_inside_the_budget(
    render: Render, camera: Intrinsics
) -> None:
    """Mean errors over many poses, so that a small systematic bias cannot hide behind the max."""
    detector = MarkerDetector()
    t_errors, r_errors = [], []
    for i, (tilt, axis) in enumerate([(t, a) for t in (5, 20, 35, 45) for a in (10, 70, 130)]):
        rvec = facing_rvec(tilt, axis)
        tvec = (0.1 * math.sin(i), 0.07 * math.cos(i), 0.9 + 0.02 * i)
        (marker,) = detector.detect(gray(render(3, rvec, tvec)), camera)
        t_errors.append(translation_error(marker, tvec))
        r_errors.append(rotation_error_deg(marker.rvec, rvec))
    assert float(np.mean(t_errors)) <= 0.006
    assert float(np.mean(r_errors)) <= 1.0


@pytest.mark.parametrize("family", ["apriltag_36h11", "aruco_6x6_250", "aruco_5x5_100"])
def test_other_families(render: Render, camera: Intrinsics, family: str) -> None:
    rvec, tvec = facing_rvec(25.0, 60.0), (-0.05, 0.04, 0.8)
    image = render(21, rvec, tvec, family=family, size_m=0.12)

    markers = MarkerDetector(family, 0.12).detect(gray(image), camera)

    assert [m.id for m in markers] == [21]
    assert markers[0].family == family
    assert translation_error(markers[0], tvec) <= MAX_TRANSLATION_ERROR_M


def test_per_id_sizes_give_each_marker_its_own_scale(render: Render, camera: Intrinsics) -> None:
    big_t, small_t = (-0.15, 0.0, 1.0), (0.12, 0.05, 0.6)
    image = render(1, facing_rvec(20.0, 0.0), big_t, noise=False)
    image = render(2, facing_rvec(30.0, 90.0), small_t, size_m=0.05, base=image)

    sized = MarkerDetector(size_m=0.10, sizes={2: 0.05}).detect(gray(image), camera)
    unsized = MarkerDetector(size_m=0.10).detect(gray(image), camera)

    assert [m.id for m in sized] == [1, 2]
    assert [m.size_m for m in sized] == [0.10, 0.05]
    assert translation_error(sized[0], big_t) <= MAX_TRANSLATION_ERROR_M
    assert translation_error(sized[1], small_t) <= MAX_TRANSLATION_ERROR_M
    # Solving the small marker with the default size puts it twice as far away.
    assert unsized[1].tvec[2] == pytest.approx(2 * sized[1].tvec[2], rel=1e-6)


def test_lens_distortion_is_used(render: Render) -> None:
    camera = Intrinsics(560.0, 558.0, 326.4, 236.9, 640, 480, dist=(-0.28, 0.09, 0.0, 0.0, 0.0))
    rvec, tvec = facing_rvec(20.0, 45.0), (0.30, 0.20, 1.0)  # near a corner, where it bends most
    image = gray(render(9, rvec, tvec, intrinsics=camera))
    pinhole = Intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, 640, 480)

    (with_dist,) = MarkerDetector().detect(image, camera)
    (without,) = MarkerDetector().detect(image, pinhole)

    assert translation_error(with_dist, tvec) <= MAX_TRANSLATION_ERROR_M
    assert rotation_error_deg(with_dist.rvec, rvec) <= MAX_ROTATION_ERROR_DEG
    assert translation_error(without, tvec) > 3 * translation_error(with_dist, tvec)
    # Corners are reported where they are in the (distorted) image.
    truth = marker_corners_px(0.10, rvec, tvec, camera)
    assert np.abs(corners_px(with_dist, 640, 480) - truth).max() <= MAX_CORNER_ERROR_PX


def test_no_marker_no_detection(background: Frame, camera: Intrinsics) -> None:
    assert MarkerDetector().detect(gray(background), camera) == ()


def test_marker_of_another_family_is_not_reported(render: Render, camera: Intrinsics) -> None:
    image = render(5, facing_rvec(10.0), (0.0, 0.0, 0.7), family="aruco_6x6_250")
    assert MarkerDetector("aruco_4x4_50").detect(gray(image), camera) == ()
    assert len(MarkerDetector("aruco_6x6_250").detect(gray(image), camera)) == 1


def test_camera_from_marker_maps_the_origin_to_tvec(render: Render, camera: Intrinsics) -> None:
    rvec, tvec = facing_rvec(30.0, 20.0), (0.02, -0.03, 0.9)
    (marker,) = MarkerDetector().detect(gray(render(4, rvec, tvec)), camera)
    transform = marker.camera_from_marker()
    expected_rotation = np.asarray(cv2.Rodrigues(np.asarray(marker.rvec))[0])
    np.testing.assert_allclose(transform[:3, :3], expected_rotation, atol=1e-9)
    np.testing.assert_allclose(transform[:3, 3], marker.tvec)
    # The marker's +z (out of the printed face) points back at the camera.
    assert transform[2, 2] < -0.5


def test_unknown_family_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown marker family 'qr'.*aruco_4x4_50"):
        MarkerDetector("qr")


@pytest.mark.parametrize(
    ("size_m", "sizes"),
    [(0.0, None), (-0.1, None), (float("nan"), None), (0.1, {3: 0.0}), (0.1, {-1: 0.05})],
)
def test_bad_sizes_are_refused(size_m: float, sizes: dict[int, float] | None) -> None:
    with pytest.raises(ValueError, match="marker"):
        MarkerDetector(size_m=size_m, sizes=sizes)


def test_intrinsics_of_another_size_are_refused(background: Frame, camera: Intrinsics) -> None:
    with pytest.raises(InvalidFrameError, match=r"scaled_to\(320, 240\)"):
        MarkerDetector().detect(gray(background)[::2, ::2].copy(), camera)
