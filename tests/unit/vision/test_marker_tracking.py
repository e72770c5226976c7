"""Markers in a video stream: full scans every n-th frame, windowed re-detection in between.

Sequences are rendered with known poses along a moving path (``render_marker_scene`` on the
cluttered test background, fresh sensor noise on every frame), so every frame, tracked or
scanned, is checked against ground truth with the same bounds as a single detection.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from tests.unit.vision.conftest import CAMERA, add_sensor_noise
from vision import MarkerDetector, MarkerPose, MarkerStage, Telemetry
from vision.markers import MarkerTracker, MarkerTracking
from vision.stages import FrameContext
from vision.synthetic import (
    facing_rvec,
    marker_corners_px,
    render_marker_scene,
    rotation_error_deg,
)

Frame = npt.NDArray[np.uint8]
Pose = tuple[tuple[float, float, float], tuple[float, float, float]]
EVERY = 5  # full_detect_every of these tests: a new marker must be found within 5 frames

MAX_TRANSLATION_ERROR_M = 0.010
MAX_ROTATION_ERROR_DEG = 1.5
MAX_FRONTAL_ROTATION_ERROR_DEG = 3.0
MAX_CORNER_ERROR_PX = 0.5


def gray(image: Frame) -> Frame:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def path_pose(i: int, count: int, distance: float = 1.0) -> tuple[Pose, float]:
    """A hand-held sweep: across the view, tilting 0 -> 45 -> 10 deg about a turning axis."""
    f = i / (count - 1)
    tilt = 45.0 * math.sin(math.pi * f) + 10.0 * f
    rvec = facing_rvec(tilt, 360.0 * f)
    tvec = (-0.18 + 0.36 * f, 0.08 * math.sin(2 * math.pi * f), distance + 0.1 * math.sin(3 * f))
    return (rvec, tvec), tilt


def frame(background: Frame, marker_id: int, pose: Pose, seed: int, size_m: float = 0.10) -> Frame:
    image = render_marker_scene(background, marker_id, "aruco_4x4_50", size_m, *pose, CAMERA)
    return add_sensor_noise(image, seed=seed)


def check(marker: MarkerPose, pose: Pose, tilt: float, what: str) -> float:
    rvec, tvec = pose
    corners = np.asarray(marker.corners) * [640, 480] - 0.5
    corner_error = float(np.abs(corners - marker_corners_px(marker.size_m, *pose, CAMERA)).max())
    assert corner_error <= MAX_CORNER_ERROR_PX, what
    assert np.linalg.norm(np.subtract(marker.tvec, tvec)) <= MAX_TRANSLATION_ERROR_M, what
    limit = MAX_FRONTAL_ROTATION_ERROR_DEG if tilt < 10 else MAX_ROTATION_ERROR_DEG
    assert rotation_error_deg(marker.rvec, rvec) <= limit, what
    return corner_error


def test_tracked_sequence_keeps_the_accuracy_of_a_full_detection(background: Frame) -> None:
    detector = MarkerDetector()
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    count, scans = 40, 0
    for i in range(count):
        pose, tilt = path_pose(i, count)
        image = gray(frame(background, 7, pose, seed=i))

        markers = tracker.detect(image, CAMERA)

        scans += tracker.last_was_full_scan
        what = f"frame {i} ({'scanned' if tracker.last_was_full_scan else 'tracked'})"
        assert [m.id for m in markers] == [7], what
        check(markers[0], pose, tilt, what)
        # Tracking only decides where the detector looks: the corners are the detector's own.
        (reference,) = detector.detect(image, CAMERA)
        np.testing.assert_allclose(markers[0].corners, reference.corners, atol=1e-4 / 640)
    assert scans == count // EVERY  # the other frames really were tracked


def test_close_up_marker_is_searched_at_reduced_resolution_and_refined(
    background: Frame,
) -> None:
    """A 10 cm marker at 0.35-0.4 m is ~150 px wide: its window is searched at half size, then
    the corners are refined on the full frame to the detector's standard."""
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    count = 15
    for i in range(count):
        (rvec, tvec), tilt = path_pose(i, count, distance=0.35)
        pose = (rvec, (tvec[0] * 0.35, tvec[1] * 0.35, tvec[2]))
        markers = tracker.detect(gray(frame(background, 3, pose, seed=i)), CAMERA)
        assert [m.id for m in markers] == [3], f"frame {i}"
        check(markers[0], pose, tilt, f"frame {i}")


def test_marker_leaving_the_view_is_dropped_on_that_frame(background: Frame) -> None:
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    rvec = facing_rvec(20.0, 30.0)
    seen = []
    # Slides right 24 px a frame until it is half out of the 640 px frame, then is gone.
    for i in range(14):
        pose: Pose = (rvec, (0.05 + 0.043 * i, 0.0, 1.0))
        centre_u = marker_corners_px(0.10, *pose, CAMERA)[:, 0].mean()
        markers = tracker.detect(gray(frame(background, 7, pose, seed=i)), CAMERA)
        seen.append((centre_u, [m.id for m in markers]))
        if markers:
            check(markers[0], pose, 20.0, f"frame {i}")
    fully_inside = [ids for u, ids in seen if u < 640 - 45]
    half_out = [ids for u, ids in seen if u > 640]
    assert all(ids == [7] for ids in fully_inside)
    assert half_out and all(ids == [] for ids in half_out)  # no ghost of the last position
    # Out of view entirely: nothing, on every later frame.
    empty = gray(add_sensor_noise(background, seed=99))
    assert [tracker.detect(empty, CAMERA) for _ in range(2 * EVERY)] == [()] * 2 * EVERY


def test_marker_covered_while_tracked_is_not_reported(background: Frame) -> None:
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    pose: Pose = (facing_rvec(15.0, 0.0), (0.0, 0.0, 0.9))
    image = frame(background, 7, pose, seed=1)
    assert [m.id for m in tracker.detect(gray(image), CAMERA)] == [7]
    covered = image.copy()
    x, y = marker_corners_px(0.10, *pose, CAMERA).mean(axis=0).astype(int)
    covered[y - 12 : y + 12, x - 40 : x + 40] = 200  # a finger across the data bits
    for i in range(2 * EVERY):
        assert tracker.detect(gray(add_sensor_noise(covered, seed=i)), CAMERA) == (), i


def test_marker_missed_on_one_frame_is_back_on_the_next(background: Frame) -> None:
    """Glare or blur on one frame: the marker is not reported there, and is found again on the
    next frame by its window (not only at the next full scan)."""
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    rvec = facing_rvec(20.0, 60.0)
    poses: list[Pose] = [(rvec, (-0.1 + 0.01 * i, 0.02, 0.9)) for i in range(6)]
    images = [frame(background, 7, pose, seed=i) for i, pose in enumerate(poses)]
    x, y = marker_corners_px(0.10, *poses[2], CAMERA).mean(axis=0).astype(int)
    images[2][y - 12 : y + 12, x - 40 : x + 40] = 200  # a finger across the data bits
    ids, scans = [], []
    for image in images:
        ids.append([m.id for m in tracker.detect(gray(image), CAMERA)])
        scans.append(tracker.last_was_full_scan)
    assert ids == [[7], [7], [], [7], [7], [7]]
    assert scans == [True, False, True, False, False, False]  # rescan on the loss, then windows
    markers = tracker.detect(gray(frame(background, 7, poses[5], seed=9)), CAMERA)
    check(markers[0], poses[5], 20.0, "after the gap")


def test_appearing_marker_is_found_within_full_detect_every_frames(background: Frame) -> None:
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    first: Pose = (facing_rvec(20.0, 10.0), (-0.15, 0.0, 1.0))
    second: Pose = (facing_rvec(25.0, 100.0), (0.15, 0.05, 0.9))
    with_one = render_marker_scene(background, 7, "aruco_4x4_50", 0.10, *first, CAMERA)
    with_two = render_marker_scene(with_one, 3, "aruco_4x4_50", 0.10, *second, CAMERA)
    for start in range(1, EVERY + 1):  # whatever the phase of the periodic scan
        tracker.reset()
        for i in range(start):
            tracker.detect(gray(add_sensor_noise(with_one, seed=i)), CAMERA)
        ids = []
        for i in range(EVERY):
            markers = tracker.detect(gray(add_sensor_noise(with_two, seed=50 + i)), CAMERA)
            ids.append([m.id for m in markers])
            for m in markers:
                check(m, first if m.id == 7 else second, 20.0, f"start {start}, frame {i}")
        assert ids[-1] == [3, 7], f"start {start}: {ids}"
        assert all(7 in found for found in ids)


def test_a_jump_faster_than_predicted_is_rescanned_at_once(background: Frame) -> None:
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    rvec = facing_rvec(20.0, 45.0)
    assert len(tracker.detect(gray(frame(background, 7, (rvec, (-0.2, 0.0, 1.0)), 0)), CAMERA))
    jumped: Pose = (rvec, (0.2, 0.1, 1.0))  # ~220 px: far outside the search window
    markers = tracker.detect(gray(frame(background, 7, jumped, 1)), CAMERA)
    assert tracker.last_was_full_scan
    assert [m.id for m in markers] == [7]
    check(markers[0], jumped, 20.0, "after the jump")


def test_stage_tracks_by_default_and_a_still_image_gets_a_full_detection(
    background: Frame,
) -> None:
    pose, _ = path_pose(3, 10)
    image = frame(background, 7, pose, seed=0)
    stage = MarkerStage(MarkerDetector())
    assert stage.tracker is not None
    assert stage.tracker.options.full_detect_every == EVERY
    ctx = FrameContext(image, Telemetry(0), CAMERA, "settings")
    stage.run(ctx)
    assert stage.tracker.last_was_full_scan
    assert ctx.markers == MarkerDetector().detect(gray(image), CAMERA)
    ctx = FrameContext(image, Telemetry(1), CAMERA, "settings")
    stage.run(ctx)
    assert not stage.tracker.last_was_full_scan and [m.id for m in ctx.markers] == [7]

    untracked = MarkerStage(MarkerDetector(), tracking=None)
    assert untracked.tracker is None
    ctx = FrameContext(image, Telemetry(0), CAMERA, "settings")
    untracked.run(ctx)
    assert ctx.markers == MarkerDetector().detect(gray(image), CAMERA)


def test_frame_size_change_starts_over(background: Frame) -> None:
    tracker = MarkerTracker(MarkerDetector(), MarkerTracking(full_detect_every=EVERY))
    pose: Pose = (facing_rvec(20.0, 45.0), (0.0, 0.0, 0.8))
    image = gray(frame(background, 7, pose, 0))
    tracker.detect(image, CAMERA)
    small = np.ascontiguousarray(cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA))
    markers = tracker.detect(small, CAMERA.scaled_to(320, 240))
    assert tracker.last_was_full_scan and [m.id for m in markers] == [7]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (MarkerTracking(full_detect_every=0), "full_detect_every"),
        (MarkerTracking(margin=-0.1), "margin"),
        (MarkerTracking(margin=math.nan), "margin"),
        (MarkerTracking(min_margin_px=2), "min_margin_px"),
        (MarkerTracking(max_window_marker_px=10), "max_window_marker_px"),
        (MarkerTracking(search_lost_frames=-1), "search_lost_frames"),
    ],
)
def test_bad_options_are_refused(options: MarkerTracking, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MarkerTracker(MarkerDetector(), options)
