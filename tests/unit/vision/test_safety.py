"""Safety zones: polygons in uv, events when visible keypoints enter them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vision import Intrinsics, Telemetry
from vision.results import CameraPose, Person, SafetyEvent
from vision.safety import (
    SafetyOptions,
    SafetyStage,
    WorldZone,
    Zone,
    points_in_polygon,
    zone_events,
)
from vision.stages import FrameContext
from vision.types import MarkerPose

SQUARE = ((0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9))
L_WRIST, R_WRIST = 15, 16


def person(pid: int, moves: dict[int, tuple[float, float, float]] | None = None) -> Person:
    """Everyone at (0.2, 0.3), fully visible, except the landmarks in ``moves``."""
    kp = [(0.2, 0.3, 1.0)] * 33
    for i, value in (moves or {}).items():
        kp[i] = value
    return Person(pid, tuple(kp), (0.1, 0.1, 0.5, 0.9), 0.95)


def frame_with(persons: Sequence[Person]) -> FrameContext:
    frame = FrameContext(
        np.zeros((480, 640), np.uint8),
        Telemetry(pts=0),
        Intrinsics.from_fov(640, 480),
        "fov-default",
    )
    frame.persons = tuple(persons)
    return frame


def test_points_in_polygon_convex_and_concave() -> None:
    pts = np.array([[0.7, 0.7], [0.5, 0.7], [0.95, 0.95], [0.6 + 1e-6, 0.75]])
    assert points_in_polygon(pts, SQUARE).tolist() == [True, False, False, True]
    # an L shape: the notch is outside; clockwise winding works as well
    ell = ((0, 0), (0, 1), (1, 1), (1, 0.5), (0.5, 0.5), (0.5, 0))
    inside = points_in_polygon(np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75]]), ell)
    assert inside.tolist() == [True, False, True]


def test_event_names_the_keypoints_inside() -> None:
    p = person(7, {L_WRIST: (0.7, 0.7, 0.9), R_WRIST: (0.8, 0.8, 0.2)})
    events = zone_events([p, person(8)], [Zone("press", SQUARE)])
    assert events == (SafetyEvent("press", 7, (L_WRIST,)),)  # R wrist not visible enough
    assert events[0].to_dict() == {"zone": "press", "person_id": 7, "keypoints": [L_WRIST]}


def test_zone_limited_to_some_keypoints_and_min_count() -> None:
    p = person(1, {0: (0.7, 0.7, 1.0), L_WRIST: (0.75, 0.7, 1.0)})
    hands_only = Zone("blade", SQUARE, keypoints=(L_WRIST, R_WRIST))
    assert zone_events([p], [hands_only]) == (SafetyEvent("blade", 1, (L_WRIST,)),)
    assert zone_events([p], [Zone("z", SQUARE)], min_keypoints=3) == ()
    assert len(zone_events([p], [Zone("z", SQUARE)], min_keypoints=2)) == 1


def test_stage_appends_events() -> None:
    earlier = SafetyEvent("other", 0)
    frame = frame_with([person(2, {L_WRIST: (0.7, 0.7, 1.0)})])
    frame.events = (earlier,)
    stage = SafetyStage(
        SafetyOptions(zones=(Zone("press", SQUARE), Zone("far", ((0, 0), (0.1, 0), (0, 0.1)))))
    )
    stage.run(frame)
    stage.close()
    assert list(frame.events) == [earlier, SafetyEvent("press", 2, (L_WRIST,))]
    empty = frame_with([])
    stage.run(empty)
    assert empty.events == ()


def test_world_zones_plug_in_through_a_resolver() -> None:
    class Moving:
        def zones_for(self, frame: FrameContext) -> Sequence[Zone]:
            return [Zone("moved", ((0.1, 0.2), (0.3, 0.2), (0.3, 0.4), (0.1, 0.4)))]

    frame = frame_with([person(5)])
    SafetyStage(SafetyOptions(), resolver=Moving()).run(frame)
    assert [e.zone for e in frame.events] == ["moved"] and len(frame.events[0].keypoints) == 33


def test_bad_zones_are_refused() -> None:
    with pytest.raises(ValueError, match="3 vertices"):
        Zone("line", ((0, 0), (1, 1)))
    with pytest.raises(ValueError, match="name"):
        Zone("", SQUARE)
    with pytest.raises(ValueError, match="finite"):
        Zone("nan", ((0, 0), (1, float("nan")), (0, 1)))
    with pytest.raises(ValueError, match="unique"):
        SafetyStage(SafetyOptions(zones=(Zone("a", SQUARE), Zone("a", SQUARE))))


# --- world zones ------------------------------------------------------------------------------

FLOOR = ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, 0.0), (0.0, 1.0, 0.0))
"""A 1 m square on the floor marker's plane, starting at the marker's centre."""
L_ANKLE = 27


def floor_view() -> tuple[FrameContext, np.ndarray]:
    """A camera 2 m above a floor marker, looking straight down; returns the frame and
    camera_from_marker."""
    frame = frame_with([])
    camera_from_marker = np.eye(4)
    camera_from_marker[:3, 3] = (-0.5, -0.5, 2.0)  # the square's centre on the optical axis
    return frame, camera_from_marker


def project(frame: FrameContext, camera_from_world: np.ndarray, xyz: tuple[float, ...]) -> tuple:
    k = frame.intrinsics
    p = camera_from_world[:3, :3] @ np.asarray(xyz) + camera_from_world[:3, 3]
    return (
        (k.fx * p[0] / p[2] + k.cx) / frame.width,
        (k.fy * p[1] / p[2] + k.cy) / frame.height,
    )


def marker_pose(camera_from_marker: np.ndarray, marker_id: int = 3) -> MarkerPose:
    import cv2

    rvec, _ = cv2.Rodrigues(camera_from_marker[:3, :3])
    return MarkerPose(
        marker_id,
        "aruco_4x4_50",
        ((0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)),
        tuple(float(x) for x in rvec.ravel()),
        tuple(float(x) for x in camera_from_marker[:3, 3]),
        0.1,
        ((0.5, 0.5),) * 4,
        0.1,
    )


@pytest.mark.parametrize("source", ["marker", "camera_pose"])
def test_world_zone_follows_the_reference_frame(source: str) -> None:
    frame, camera_from_marker = floor_view()
    if source == "marker":
        frame.markers = (marker_pose(camera_from_marker),)
    else:
        world_from_camera = np.linalg.inv(camera_from_marker)
        frame.camera_pose = CameraPose(
            tuple(float(x) for x in world_from_camera.ravel()), "markers", reference="marker:3"
        )
    inside = project(frame, camera_from_marker, (0.5, 0.5, 0.0))
    outside = project(frame, camera_from_marker, (1.5, 0.5, 0.0))
    zone = WorldZone("forklift lane", "marker:3", FLOOR)
    stage = SafetyStage(SafetyOptions(world_zones=(zone,)))
    frame.persons = (
        person(1, {L_ANKLE: (*inside, 1.0)}),
        person(2, {L_ANKLE: (*outside, 1.0)}),
        # a hand over the zone is not a foot in it
        person(3, {L_WRIST: (*inside, 1.0)}),
    )
    stage.run(frame)
    assert frame.events == (SafetyEvent("forklift lane", 1, (L_ANKLE,)),)
    # The zone as checked on this frame goes out with the overlay, to be drawn.
    (outline,) = frame.zones
    corners = [project(frame, camera_from_marker, p) for p in FLOOR]
    assert outline.name == "forklift lane"
    np.testing.assert_allclose(outline.polygon, corners, atol=1e-9)


def test_world_zone_unchecked_without_its_reference_and_clipped_behind_the_camera() -> None:
    frame, camera_from_marker = floor_view()
    frame.persons = (person(1, {L_ANKLE: (0.5, 0.5, 1.0)}),)
    stage = SafetyStage(SafetyOptions(world_zones=(WorldZone("lane", "marker:3", FLOOR),)))
    stage.run(frame)  # the marker is not in view and no camera pose: nothing is known
    assert frame.events == ()
    # A floor zone that reaches behind a camera looking ahead 1 m above the floor: only the
    # part in front of the camera is projected, and a foot on it is in the zone.
    big = ((-5.0, -5.0, 0.0), (5.0, -5.0, 0.0), (5.0, 5.0, 0.0), (-5.0, 5.0, 0.0))
    level = np.eye(4)
    level[:3, :3] = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])  # floor y ahead, z up
    level[:3, 3] = (0.0, 1.0, 0.0)
    frame.markers = (marker_pose(level),)
    foot = project(frame, level, (0.3, 2.0, 0.0))
    frame.persons = (person(1, {L_ANKLE: (*foot, 1.0)}),)
    stage = SafetyStage(SafetyOptions(world_zones=(WorldZone("hall", "marker:3", big),)))
    (zone,) = stage.resolver.zones_for(frame)
    assert np.isfinite(np.asarray(zone.polygon)).all()
    stage.run(frame)
    assert frame.events == (SafetyEvent("hall", 1, (L_ANKLE,)),)


def test_world_zone_validation() -> None:
    with pytest.raises(ValueError, match="reference"):
        WorldZone("a", "", FLOOR)
    with pytest.raises(ValueError, match="vertices"):
        WorldZone("a", "marker:1", ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match="finite"):
        WorldZone("a", "marker:1", ((0.0, 0.0, float("nan")),) * 3)
    with pytest.raises(ValueError, match="unique"):
        SafetyStage(
            SafetyOptions(
                zones=(Zone("a", SQUARE),), world_zones=(WorldZone("a", "marker:1", FLOOR),)
            )
        )
