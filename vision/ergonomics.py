"""REBA (Rapid Entire Body Assessment, Hignett & McAtamney 2000) from BlazePose landmarks.

Pure functions: landmarks -> joint angles (degrees) -> REBA tables A, B, C -> ErgonomicRisk.
Angles come from the metric 3D world landmarks when given (x right, y down, z away from the
camera, as BlazePose gives them), else from the 2D landmarks with z = 0.

What pose alone can estimate: trunk flexion, side bend and (3D only) twist; neck flexion and side
bend; upper-arm elevation, its sign (flexion vs extension, 3D only) and abduction; elbow flexion;
wrist flexion (when the hand landmarks are visible); knee flexion. In 2D, flexion and extension
are not told apart (scored as flexion), and bending towards or away from the camera is invisible.
What it cannot, and so comes from :class:`RebaSettings` (defaults: the benign case): load/force
and shock, coupling (grip quality), activity score, unilateral/unstable leg support, shoulder
raised, arm supported/leaning, wrist deviation/twist, neck twist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from vision.results import ErgonomicRisk
from vision.stages import FrameContext

__all__ = [
    "ErgonomicsStage",
    "ErgonomicsSummary",
    "RebaSettings",
    "joint_angles",
    "reba_from_angles",
    "reba_level",
    "reba_risk",
    "SessionErgonomics",
    "table_a",
    "table_b",
    "table_c",
]

Level = Literal["negligible", "low", "medium", "high", "very high"]
Vec = npt.NDArray[np.float64]

# fmt: off
_TABLE_A = (  # [trunk 1-5][neck 1-3][legs 1-4]
    ((1, 2, 3, 4), (1, 2, 3, 4), (3, 3, 5, 6)),
    ((2, 3, 4, 5), (3, 4, 5, 6), (4, 5, 6, 7)),
    ((2, 4, 5, 6), (4, 5, 6, 7), (5, 6, 7, 8)),
    ((3, 5, 6, 7), (5, 6, 7, 8), (6, 7, 8, 9)),
    ((4, 6, 7, 8), (6, 7, 8, 9), (7, 8, 9, 9)),
)
_TABLE_B = (  # [upper arm 1-6][lower arm 1-2][wrist 1-3]
    ((1, 2, 2), (1, 2, 3)),
    ((1, 2, 3), (2, 3, 4)),
    ((3, 4, 5), (4, 5, 5)),
    ((4, 5, 5), (5, 6, 7)),
    ((6, 7, 8), (7, 8, 8)),
    ((7, 8, 8), (8, 9, 9)),
)
_TABLE_C = (  # [score A 1-12][score B 1-12]
    (1, 1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 7),
    (1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 7, 8),
    (2, 3, 3, 3, 4, 5, 6, 7, 7, 8, 8, 8),
    (3, 4, 4, 4, 5, 6, 7, 8, 8, 9, 9, 9),
    (4, 4, 4, 5, 6, 7, 8, 8, 9, 9, 9, 9),
    (6, 6, 6, 7, 8, 8, 9, 9, 10, 10, 10, 10),
    (7, 7, 7, 8, 9, 9, 9, 10, 10, 11, 11, 11),
    (8, 8, 8, 9, 10, 10, 10, 10, 10, 11, 11, 11),
    (9, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12),
    (10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 12, 12),
    (11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12),
    (12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12),
)
# fmt: on

# BlazePose indices
NOSE, L_EAR, R_EAR, L_SH, R_SH, L_EL, R_EL, L_WR, R_WR = 0, 7, 8, 11, 12, 13, 14, 15, 16
L_PINKY, R_PINKY, L_INDEX, R_INDEX = 17, 18, 19, 20
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANK, R_ANK = 23, 24, 25, 26, 27, 28


@dataclass(frozen=True)
class RebaSettings:
    """REBA inputs pose cannot see, and the thresholds that turn angles into adjustments."""

    load_kg: float = 0.0
    """Load handled: < 5 kg +0, 5-10 kg +1, > 10 kg +2."""
    shock: bool = False
    """Shock or rapid build-up of force: +1."""
    coupling: int = 0
    """0 good, 1 fair, 2 poor, 3 unacceptable grip."""
    activity: int = 0
    """0-3: static > 1 min, repeated small-range actions > 4/min, rapid large changes."""
    bilateral_support: bool = True
    """Legs: False = unilateral weight bearing or unstable posture (+1)."""
    shoulder_raised: bool = False
    arm_supported: bool = False
    wrist_deviated: bool = False
    neck_twisted: bool = False
    side_bend_deg: float = 10.0
    """Trunk/neck side bend above this counts as 'side flexed'."""
    twist_deg: float = 20.0
    """Shoulder line vs hip line (3D) above this counts as 'twisted'."""
    abduction_deg: float = 30.0
    """Upper-arm lateral elevation above this counts as 'abducted'."""
    min_visibility: float = 0.5


def table_a(trunk: int, neck: int, legs: int) -> int:
    return _TABLE_A[min(trunk, 5) - 1][min(neck, 3) - 1][min(legs, 4) - 1]


def table_b(upper_arm: int, lower_arm: int, wrist: int) -> int:
    return _TABLE_B[min(max(upper_arm, 1), 6) - 1][min(lower_arm, 2) - 1][min(wrist, 3) - 1]


def table_c(score_a: int, score_b: int) -> int:
    return _TABLE_C[min(score_a, 12) - 1][min(score_b, 12) - 1]


def reba_level(score: int) -> Level:
    """Action levels: 1 negligible, 2-3 low, 4-7 medium, 8-10 high, 11-15 very high."""
    if score <= 1:
        return "negligible"
    if score <= 3:
        return "low"
    if score <= 7:
        return "medium"
    return "high" if score <= 10 else "very high"


def _angle(a: Vec, b: Vec) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return math.degrees(math.acos(float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def _lateral(v: Vec, axis: Vec) -> float:
    """Angle (deg) between ``v`` and the plane normal to ``axis``."""
    nv, na = float(np.linalg.norm(v)), float(np.linalg.norm(axis))
    if nv < 1e-9 or na < 1e-9:
        return 0.0
    return math.degrees(math.asin(min(1.0, abs(float(np.dot(v, axis))) / (nv * na))))


def joint_angles(
    keypoints: Sequence[Sequence[float]],
    world: Sequence[Sequence[float]] = (),
    aspect: float = 1.0,
    min_visibility: float = 0.5,
) -> dict[str, float]:
    """Joint angles in degrees, only those whose landmarks are visible.

    ``keypoints``: 33 normalized (u, v, visibility); ``world``: optional 33 metric (x, y, z);
    ``aspect``: frame width / height (makes 2D uv isotropic). Keys: trunk_flexion (negative =
    extension, 3D only), trunk_side_bend, trunk_twist (3D), neck_flexion, neck_side_bend,
    {left,right}_upper_arm (negative = extension, 3D only), {left,right}_arm_abduction,
    {left,right}_elbow_flexion, {left,right}_wrist, {left,right}_knee_flexion.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = kp[:, 2] >= min_visibility
    if len(world) == len(kp):
        p = np.asarray(world, dtype=np.float64)
    else:
        p = np.zeros((len(kp), 3))
        p[:, 0], p[:, 1] = kp[:, 0] * aspect, kp[:, 1]
    out: dict[str, float] = {}
    if not vis[[L_SH, R_SH, L_HIP, R_HIP]].all():
        return out
    hip, sh = (p[L_HIP] + p[R_HIP]) / 2, (p[L_SH] + p[R_SH]) / 2
    trunk, lateral = sh - hip, p[L_HIP] - p[R_HIP]
    up = np.array([0.0, -1.0, 0.0])
    forward = np.cross(lateral, up)  # zero in 2D: no sign
    sagittal = trunk
    if np.linalg.norm(lateral) > 0.25 * np.linalg.norm(trunk):  # hip line not foreshortened
        out["trunk_side_bend"] = _lateral(trunk, lateral)
        unit = lateral / np.linalg.norm(lateral)
        sagittal = trunk - np.dot(trunk, unit) * unit
    flex = _angle(sagittal, up)
    out["trunk_flexion"] = -flex if float(np.dot(trunk, forward)) < 0 else flex
    if len(world) == len(kp):
        sh_line = p[L_SH] - p[R_SH]
        out["trunk_twist"] = _angle(sh_line[[0, 2]], lateral[[0, 2]])
    if vis[[L_EAR, R_EAR]].all():
        neck = (p[L_EAR] + p[R_EAR]) / 2 - sh
        out["neck_flexion"] = _angle(neck, trunk)
        out["neck_side_bend"] = _lateral(neck, p[L_SH] - p[R_SH])
    fwd_trunk = np.cross(lateral, trunk)
    for side, (s, e, w, pk, ix, h, k, a) in {
        "left": (L_SH, L_EL, L_WR, L_PINKY, L_INDEX, L_HIP, L_KNEE, L_ANK),
        "right": (R_SH, R_EL, R_WR, R_PINKY, R_INDEX, R_HIP, R_KNEE, R_ANK),
    }.items():
        if vis[[s, e]].all():
            arm = p[e] - p[s]
            elev = _angle(arm, -trunk)
            out[f"{side}_upper_arm"] = -elev if float(np.dot(arm, fwd_trunk)) < 0 else elev
            out[f"{side}_arm_abduction"] = _lateral(arm, lateral)
            if vis[w]:
                out[f"{side}_elbow_flexion"] = _angle(arm, p[w] - p[e])
                if vis[[pk, ix]].all():
                    out[f"{side}_wrist"] = _angle(p[w] - p[e], (p[pk] + p[ix]) / 2 - p[w])
        if vis[[h, k, a]].all():
            out[f"{side}_knee_flexion"] = _angle(p[k] - p[h], p[a] - p[k])
    return out


def _trunk_score(flex: float, bent: bool) -> int:
    score = 1 if abs(flex) < 5 else 2 if abs(flex) <= 20 else 3 if flex <= 60 else 4
    return score + int(bent)


def _upper_arm_score(angle: float, abducted: bool, s: RebaSettings) -> int:
    score = 1 if -20 <= angle <= 20 else 2 if angle <= 45 else 3 if angle <= 90 else 4
    return max(1, score + int(abducted) + int(s.shoulder_raised) - int(s.arm_supported))


def reba_from_angles(
    angles: Mapping[str, float], settings: RebaSettings | None = None
) -> ErgonomicRisk:
    """REBA score from :func:`joint_angles`' output; a missing angle counts as neutral."""
    s = settings if settings is not None else RebaSettings()
    get = angles.get
    trunk = _trunk_score(
        get("trunk_flexion", 0.0),
        get("trunk_side_bend", 0.0) > s.side_bend_deg or get("trunk_twist", 0.0) > s.twist_deg,
    )
    neck_flex = get("neck_flexion", 0.0)
    neck = (1 if neck_flex <= 20 else 2) + int(
        get("neck_side_bend", 0.0) > s.side_bend_deg or s.neck_twisted
    )
    knee = max(get("left_knee_flexion", 0.0), get("right_knee_flexion", 0.0))
    legs = (1 if s.bilateral_support else 2) + (2 if knee > 60 else 1 if knee >= 30 else 0)
    load = (0 if s.load_kg < 5 else 1 if s.load_kg <= 10 else 2) + int(s.shock)
    score_a = table_a(trunk, neck, legs) + load
    score_b = 1
    for side in ("left", "right"):
        arm = get(f"{side}_upper_arm")
        if arm is None:
            continue
        upper = _upper_arm_score(arm, get(f"{side}_arm_abduction", 0.0) > s.abduction_deg, s)
        elbow = get(f"{side}_elbow_flexion")
        lower = 1 if elbow is None or 60 <= elbow <= 100 else 2
        wrist = (1 if get(f"{side}_wrist", 0.0) <= 15 else 2) + int(s.wrist_deviated)
        score_b = max(score_b, table_b(upper, lower, wrist) + s.coupling)
    score = min(15, table_c(score_a, score_b) + s.activity)
    parts = (
        ("trunk", float(trunk)),
        ("neck", float(neck)),
        ("legs", float(legs)),
        ("score_a", float(score_a)),
        ("score_b", float(score_b)),
        *sorted((k, float(v)) for k, v in angles.items()),
    )
    return ErgonomicRisk(score, reba_level(score), parts)


def reba_risk(
    keypoints: Sequence[Sequence[float]],
    world: Sequence[Sequence[float]] = (),
    aspect: float = 1.0,
    settings: RebaSettings | None = None,
) -> ErgonomicRisk | None:
    """REBA for one person; None when the trunk (shoulders and hips) is not visible."""
    s = settings if settings is not None else RebaSettings()
    angles = joint_angles(keypoints, world, aspect, s.min_visibility)
    return reba_from_angles(angles, s) if angles else None


class ErgonomicsStage:
    """Sets ``risk`` on every person of ``frame.persons`` (run after the pose stage)."""

    def __init__(self, settings: RebaSettings | None = None, use_world: bool = True) -> None:
        self.settings = settings if settings is not None else RebaSettings()
        self.use_world = use_world

    def run(self, frame: FrameContext) -> None:
        aspect = frame.width / frame.height
        frame.persons = tuple(
            replace(
                p,
                risk=reba_risk(
                    p.keypoints, p.world if self.use_world else (), aspect, self.settings
                ),
            )
            for p in frame.persons
        )

    def close(self) -> None:
        pass


LEVELS: tuple[Level, ...] = ("negligible", "low", "medium", "high", "very high")


@dataclass(frozen=True, slots=True)
class ErgonomicsSummary:
    """Risk over a session (or one person's share of it), weighted by time."""

    seconds: float
    share: dict[str, float]
    """Level -> fraction of the assessed time spent at that level."""
    max_score: int
    mean_score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "share": {k: round(v, 4) for k, v in self.share.items()},
            "max": self.max_score,
            "mean": round(self.mean_score, 3),
        }


@dataclass
class _Acc:
    seconds: float = 0.0
    weighted: float = 0.0
    max_score: int = 0
    per_level: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0.0))

    def add(self, risk: ErgonomicRisk, seconds: float) -> None:
        self.seconds += seconds
        self.weighted += risk.score * seconds
        self.max_score = max(self.max_score, risk.score)
        self.per_level[risk.level] += seconds

    def summary(self) -> ErgonomicsSummary:
        total = self.seconds
        share = {k: (v / total if total > 0 else 0.0) for k, v in self.per_level.items()}
        return ErgonomicsSummary(
            total, share, self.max_score, self.weighted / total if total else 0.0
        )


class SessionErgonomics:
    """Aggregates per-frame risks of a session: time share per level, max, mean (per person too).

    Feed it every analysed frame with the time that frame stands for (the interval to the next
    analysed frame), so that a lower analysis rate does not change the shares.
    """

    def __init__(self) -> None:
        self._all = _Acc()
        self._people: dict[int, _Acc] = {}

    def add(self, person_id: int, risk: ErgonomicRisk, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._all.add(risk, seconds)
        self._people.setdefault(person_id, _Acc()).add(risk, seconds)

    def summary(self) -> ErgonomicsSummary:
        return self._all.summary()

    def per_person(self) -> dict[int, ErgonomicsSummary]:
        return {pid: acc.summary() for pid, acc in sorted(self._people.items())}
