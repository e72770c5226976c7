"""Value types: intrinsics maths and parsing, uv convention, serialisation."""

from __future__ import annotations

import json
import math
from typing import Any

import cv2
import numpy as np
import pytest

from vision import (
    FrameResult,
    Intrinsics,
    InvalidIntrinsicsError,
    MarkerPose,
    Telemetry,
    pixel_to_uv,
    uv_to_pixel,
)


def test_from_fov() -> None:
    k = Intrinsics.from_fov(640, 480, 60.0)
    assert k.fx == pytest.approx(320.0 / math.tan(math.radians(30.0)))
    assert k.fx == k.fy
    assert (k.cx, k.cy) == (319.5, 239.5)
    assert k.dist == ()
    expected = np.array([[k.fx, 0.0, 319.5], [0.0, k.fy, 239.5], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(k.matrix(), expected)


def test_scaled_to_keeps_the_camera() -> None:
    k = Intrinsics(560.0, 558.0, 326.4, 236.9, 640, 480, dist=(-0.2, 0.05, 0.0, 0.0))
    small = k.scaled_to(480, 360)
    assert (small.fx, small.fy) == pytest.approx((420.0, 418.5))
    assert (small.cx, small.cy) == pytest.approx((326.9 * 0.75 - 0.5, 237.4 * 0.75 - 0.5))
    assert small.dist == k.dist
    assert k.scaled_to(640, 480) is k
    back = small.scaled_to(640, 480)
    for name in ("fx", "fy", "cx", "cy"):
        assert getattr(back, name) == pytest.approx(getattr(k, name))
    # A ray through a scene point lands on the same uv at both sizes.
    point = np.array([[0.21, -0.13, 1.7]])
    zero = np.zeros(3)
    bx, by = cv2.projectPoints(point, zero, zero, k.matrix(), None)[0].ravel().tolist()
    sx, sy = cv2.projectPoints(point, zero, zero, small.matrix(), None)[0].ravel().tolist()
    assert pixel_to_uv(bx, by, 640, 480) == pytest.approx(pixel_to_uv(sx, sy, 480, 360))


def test_uv_convention() -> None:
    assert pixel_to_uv(-0.5, -0.5, 640, 480) == (0.0, 0.0)
    assert pixel_to_uv(639.5, 479.5, 640, 480) == (1.0, 1.0)
    assert pixel_to_uv(319.5, 239.5, 640, 480) == (0.5, 0.5)
    assert uv_to_pixel(*pixel_to_uv(12.25, 400.0, 640, 480), 640, 480) == pytest.approx(
        (12.25, 400.0)
    )


def test_intrinsics_dict_round_trip() -> None:
    k = Intrinsics(560.12345, 558.0, 326.4, 236.9, 640, 480, dist=(-0.2, 0.05, 0.001, 0.0, 0.01))
    data = json.loads(json.dumps(k.to_dict()))
    assert Intrinsics.from_dict(data) == Intrinsics(
        560.1235, 558.0, 326.4, 236.9, 640, 480, (-0.2, 0.05, 0.001, 0.0, 0.01)
    )
    # The telemetry wire model has no dist and may send whole numbers as floats.
    wire = {"fx": 500, "fy": 500.0, "cx": 320, "cy": 240, "width": 640.0, "height": 480}
    assert Intrinsics.from_dict(wire) == Intrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"fy": 1, "cx": 1, "cy": 1, "width": 2, "height": 2}, "missing 'fx'"),
        (
            {"fx": "500", "fy": 1, "cx": 1, "cy": 1, "width": 2, "height": 2},
            "'fx' must be a number",
        ),
        ({"fx": True, "fy": 1, "cx": 1, "cy": 1, "width": 2, "height": 2}, "'fx' must be a number"),
        ({"fx": -5, "fy": 1, "cx": 1, "cy": 1, "width": 2, "height": 2}, "must be > 0"),
        ({"fx": 5, "fy": 1, "cx": 1, "cy": 1, "width": 2.5, "height": 2}, "whole pixels"),
        ({"fx": 5, "fy": 1, "cx": 1, "cy": 1, "width": 0, "height": 2}, "positive int"),
        ({"fx": 5, "fy": 1, "cx": math.inf, "cy": 1, "width": 2, "height": 2}, "finite"),
        ({"fx": 5, "fy": 1, "cx": 1, "cy": 1, "width": 2, "height": 2, "dist": [1, 2]}, "dist"),
        ({"fx": 5, "fy": 1, "cx": 1, "cy": 1, "width": 2, "height": 2, "dist": "x"}, "dist"),
        ([1, 2, 3], "must be an object"),
    ],
)
def test_bad_intrinsics_say_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(InvalidIntrinsicsError, match=message):
        Intrinsics.from_dict(data)


def test_bad_fov_is_refused() -> None:
    with pytest.raises(InvalidIntrinsicsError, match="hfov_deg"):
        Intrinsics.from_fov(640, 480, 180.0)


def test_telemetry_checks_head_pose() -> None:
    pose = tuple(float(x) for x in np.eye(4).ravel())
    assert Telemetry(pts=1, head_pose=pose).to_dict()["head_pose"] == list(pose)
    with pytest.raises(ValueError, match="16 finite floats"):
        Telemetry(pts=1, head_pose=pose[:15])
    with pytest.raises(ValueError, match="16 finite floats"):
        Telemetry(pts=1, head_pose=(math.nan,) * 16)


def test_frame_result_to_dict_rounds_and_serialises() -> None:
    marker = MarkerPose(
        id=3,
        family="aruco_4x4_50",
        corners=((0.1234567, 0.2), (0.3, 0.2), (0.3, 0.4), (0.1, 0.4)),
        rvec=(3.14159265, 0.0, 0.0),
        tvec=(0.0123456, -0.02, 1.00000049),
        size_m=0.1,
        axes=((0.2, 0.3), (0.25, 0.3), (0.2, 0.25), (0.2, 0.3)),
        reprojection_error_px=0.12345,
    )
    result = FrameResult(
        pts=9,
        width=640,
        height=480,
        markers=(marker,),
        timings_ms=(("markers", 4.56789),),
        camera="settings",
    )
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    (m,) = data["markers"]
    assert m["corners"][0] == [0.12346, 0.2]
    assert m["tvec"] == [0.01235, -0.02, 1.0]
    assert m["rvec"][0] == 3.141593
    assert m["reprojection_error_px"] == 0.123
    assert data["timings_ms"] == {"markers": 4.568}
    assert data["camera"] == "settings"
