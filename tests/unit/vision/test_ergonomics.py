"""REBA on synthetic skeletons with known joint angles, checked against hand-computed tables.

Each case lists the REBA worksheet steps: trunk/neck/legs -> table A (+ load) and upper arm /
lower arm / wrist -> table B (+ coupling) -> table C (+ activity).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from vision import Intrinsics, Telemetry
from vision.ergonomics import (
    ErgonomicsStage,
    RebaSettings,
    SessionErgonomics,
    joint_angles,
    reba_from_angles,
    reba_level,
    reba_risk,
    table_a,
    table_b,
    table_c,
)
from vision.results import ErgonomicRisk, Person
from vision.stages import FrameContext

Vec = npt.NDArray[np.float64]
UP, FWD, LAT = np.array([0.0, -1, 0]), np.array([0.0, 0, -1]), np.array([1.0, 0, 0])


def unit(v: Vec) -> Vec:
    return v / np.linalg.norm(v)


def skeleton(
    trunk: float = 0,
    side: float = 0,
    neck: float = 0,
    arm: float = 0,
    arm_sideways: bool = False,
    elbow: float = 0,
    wrist: float = 0,
    knee: float = 0,
) -> Vec:
    """33 BlazePose world landmarks (metres, y down, person facing the camera at -z)."""
    r = math.radians
    p = np.zeros((33, 3))
    t = math.cos(r(side)) * (math.cos(r(trunk)) * UP + math.sin(r(trunk)) * FWD)
    t = unit(t + math.sin(r(side)) * LAT)
    tf = unit(np.cross(LAT, t))
    p[23], p[24] = 0.1 * LAT, -0.1 * LAT
    sh = 0.5 * t
    lat_t = unit(np.cross(t, tf))  # the person's left, following the trunk
    p[11], p[12] = sh + 0.18 * lat_t, sh - 0.18 * lat_t
    head = sh + 0.2 * (math.cos(r(neck)) * t + math.sin(r(neck)) * tf)
    p[7], p[8], p[0] = head + 0.07 * lat_t, head - 0.07 * lat_t, head + 0.1 * tf
    for s, e, w, pk, ix, sign in ((11, 13, 15, 17, 19, 1), (12, 14, 16, 18, 20, -1)):
        d = sign * lat_t if arm_sideways else tf
        a1, a2, a3 = r(arm), r(arm + elbow), r(arm + elbow + wrist)
        p[e] = p[s] + 0.3 * (math.cos(a1) * -t + math.sin(a1) * d)
        p[w] = p[e] + 0.25 * (math.cos(a2) * -t + math.sin(a2) * d)
        hand = p[w] + 0.08 * (math.cos(a3) * -t + math.sin(a3) * d)
        p[pk], p[ix] = hand + 0.02 * tf, hand - 0.02 * tf
    for h, k, a in ((23, 25, 27), (24, 26, 28)):
        p[k] = p[h] - 0.45 * UP
        p[a] = p[k] + 0.45 * (math.cos(r(knee)) * -UP - math.sin(r(knee)) * FWD)
    return p


def keypoints_2d(world: Vec) -> list[tuple[float, float, float]]:
    return [(0.5 + x * 0.5, 0.3 + y * 0.5, 1.0) for x, y, _ in world]


def risk(world: Vec, settings: RebaSettings | None = None) -> ErgonomicRisk:
    result = reba_risk(keypoints_2d(world), world.tolist(), settings=settings)
    assert result is not None
    return result


def test_angles_are_recovered() -> None:
    world = skeleton(trunk=30, neck=15, arm=60, elbow=80, wrist=25, knee=45)
    angles = joint_angles(keypoints_2d(world), world.tolist())
    expected = {
        "trunk_flexion": 30,
        "trunk_side_bend": 0,
        "trunk_twist": 0,
        "neck_flexion": 15,
        "left_upper_arm": 60,
        "right_upper_arm": 60,
        "left_arm_abduction": 0,
        "left_elbow_flexion": 80,
        "left_wrist": 25,
        "left_knee_flexion": 45,
    }
    for name, value in expected.items():
        assert angles[name] == pytest.approx(value, abs=0.5), name


@pytest.mark.parametrize(
    ("pose", "settings", "score", "level"),
    [
        # neutral standing, arms hanging: trunk 1 neck 1 legs 1 -> A 1; arm 1, lower arm 2 (elbow
        # < 60), wrist 1 -> B 1; C[1][1] = 1 (REBA's neutral is "negligible", below "low")
        ({}, None, 1, "negligible"),
        # working posture: trunk 30 -> 3, neck 10 -> 1, knees 45 -> legs 2 -> A[3][1][2] = 4;
        # arm 60 -> 3, elbow 80 -> 1, wrist 0 -> 1 -> B[3][1][1] = 3; C[4][3] = 4
        ({"trunk": 30, "neck": 10, "knee": 45, "arm": 60, "elbow": 80}, None, 4, "medium"),
        # trunk 10 -> 2, neck 25 -> 2 -> A[2][2][1] = 3; arm 30 -> 2, elbow 90 -> 1, wrist 30 -> 2
        # -> B[2][1][2] = 2; C[3][2] = 3
        ({"trunk": 10, "neck": 25, "arm": 30, "elbow": 90, "wrist": 30}, None, 3, "low"),
        # squat: trunk 45 -> 3, knees 90 -> legs 3 -> A[3][1][3] = 5; arm 1, elbow 0 -> 2 ->
        # B[1][2][1] = 1; C[5][1] = 4, + activity 1 = 5
        ({"trunk": 45, "knee": 90}, RebaSettings(activity=1), 5, "medium"),
        # deep trunk flexion 70 -> 4, neck 30 -> 2 -> A[4][2][1] = 5; arms raised 100 -> 4,
        # elbow 30 -> 2 -> B[4][2][1] = 5; C[5][5] = 6
        ({"trunk": 70, "neck": 30, "arm": 100, "elbow": 30}, None, 6, "medium"),
        # the same lifting 12 kg (+2): A 7; C[7][5] = 9
        ({"trunk": 70, "neck": 30, "arm": 100, "elbow": 30}, RebaSettings(load_kg=12), 9, "high"),
        # ... with a poor grip (+2) and an unstable base: legs 2 -> A[4][2][2] = 6 + 2 = 8;
        # B 5 + 2 = 7; C[8][7] = 10, + activity 2 = 12
        (
            {"trunk": 70, "neck": 30, "arm": 100, "elbow": 30},
            RebaSettings(load_kg=12, coupling=2, bilateral_support=False, activity=2),
            12,
            "very high",
        ),
        # trunk extension 25 (3D tells it from flexion) -> 3 -> A[3][1][1] = 2; arm extension 30
        # -> 2, elbow 90 -> 1 -> B[2][1][1] = 1; C[2][1] = 1
        ({"trunk": -25, "arm": -30, "elbow": 90}, None, 1, "negligible"),
        # arms raised sideways 90: 3 + abducted 1 = 4, elbow 0 -> 2 -> B[4][2][1] = 5; C[1][5] = 3
        ({"arm": 90, "arm_sideways": True}, None, 3, "low"),
    ],
)
def test_reba_cases(
    pose: dict[str, float], settings: RebaSettings | None, score: int, level: str
) -> None:
    result = risk(skeleton(**pose), settings)  # type: ignore[arg-type]
    assert (result.score, result.level) == (score, level), dict(result.parts)


def test_side_bend_adds_to_trunk() -> None:
    parts = dict(risk(skeleton(side=20)).parts)
    assert parts["trunk_side_bend"] == pytest.approx(20, abs=0.5)
    assert parts["trunk_flexion"] == pytest.approx(0, abs=0.5)
    assert parts["trunk"] == 2  # upright 1 + side flexed 1


def test_2d_frontal_view() -> None:
    world = skeleton(arm=90, arm_sideways=True)
    result = reba_risk(keypoints_2d(world), (), aspect=1.0)
    assert result is not None and result.score == 3
    angles = joint_angles(keypoints_2d(world))
    assert angles["left_arm_abduction"] == pytest.approx(90, abs=0.5)
    assert "trunk_twist" not in angles


def test_hidden_trunk_gives_no_score() -> None:
    kp = keypoints_2d(skeleton())
    kp[23] = (kp[23][0], kp[23][1], 0.1)
    assert reba_risk(kp) is None
    assert reba_risk(kp, settings=RebaSettings(min_visibility=0.05)) is not None


def test_tables_and_levels() -> None:
    assert table_a(1, 1, 1) == 1 and table_a(5, 3, 4) == 9 and table_a(3, 2, 2) == 5
    assert table_b(1, 1, 1) == 1 and table_b(6, 2, 3) == 9 and table_b(4, 2, 3) == 7
    assert table_c(1, 1) == 1 and table_c(12, 12) == 12 and table_c(6, 9) == 10
    assert table_c(15, 15) == 12  # clamped
    assert [reba_level(s) for s in (1, 2, 3, 4, 7, 8, 10, 11, 15)] == [
        "negligible", "low", "low", "medium", "medium", "high", "high", "very high", "very high",
    ]  # fmt: skip


def test_missing_angles_count_as_neutral() -> None:
    assert reba_from_angles({}).score == 1


def test_session_aggregate() -> None:
    agg = SessionErgonomics()
    low, high = ErgonomicRisk(2, "low"), ErgonomicRisk(9, "high")
    agg.add(1, low, 3.0)
    agg.add(1, high, 1.0)
    agg.add(2, low, 1.0)
    total = agg.summary()
    assert total.seconds == 5.0 and total.max_score == 9
    assert total.mean_score == pytest.approx((2 * 3 + 9 + 2) / 5)
    assert total.share["low"] == pytest.approx(0.8) and total.share["high"] == pytest.approx(0.2)
    assert set(agg.per_person()) == {1, 2} and agg.per_person()[2].max_score == 2
    assert total.to_dict()["share"]["medium"] == 0.0
    with pytest.raises(ValueError):
        agg.add(1, low, -1.0)
    assert SessionErgonomics().summary().mean_score == 0.0


def test_stage_sets_risk() -> None:
    world = skeleton(trunk=70, neck=30, arm=100, elbow=30)
    person = Person(3, tuple(keypoints_2d(world)), (0, 0, 1, 1), 0.9, tuple(map(tuple, world)))
    frame = FrameContext(
        np.zeros((480, 640), np.uint8),
        Telemetry(pts=0),
        Intrinsics.from_fov(640, 480),
        "fov-default",
    )
    frame.persons = (person,)
    stage = ErgonomicsStage()
    stage.run(frame)
    stage.close()
    assert frame.persons[0].risk is not None and frame.persons[0].risk.score == 6
