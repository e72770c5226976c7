"""Safety zones: polygons in uv, events when visible keypoints enter them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vision import Intrinsics, Telemetry
from vision.results import Person, SafetyEvent
from vision.safety import (
    SafetyOptions,
    SafetyStage,
    Zone,
    points_in_polygon,
    zone_events,
)
from vision.stages import FrameContext

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
