"""Shared scenes for the vision tests: a cluttered background and a noisy marker renderer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from vision import Intrinsics
from vision.synthetic import render_marker_scene, textured_background

Frame = npt.NDArray[np.uint8]
RenderFn = Callable[..., Frame]

# A 640x480 camera with a 60 deg horizontal field of view and an off-centre principal point, so
# that a pipeline falling back to the FOV default (centred) would be measurably wrong.
CAMERA = Intrinsics(fx=560.0, fy=558.0, cx=326.4, cy=236.9, width=640, height=480)


@pytest.fixture
def camera() -> Intrinsics:
    return CAMERA


@pytest.fixture(scope="session")
def background() -> Frame:
    return textured_background(640, 480, seed=7)


def add_sensor_noise(image: Frame, sigma: float = 2.0, seed: int = 0) -> Frame:
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


@pytest.fixture
def render(background: Frame) -> RenderFn:
    """render(marker_id, rvec, tvec, intrinsics=CAMERA, family=..., size_m=..., base=None)."""

    def _render(
        marker_id: int,
        rvec: Sequence[float],
        tvec: Sequence[float],
        intrinsics: Intrinsics = CAMERA,
        family: str = "aruco_4x4_50",
        size_m: float = 0.10,
        base: Frame | None = None,
        noise: bool = True,
    ) -> Frame:
        if base is None:
            base = background
            if (intrinsics.width, intrinsics.height) != (640, 480):
                size = (intrinsics.width, intrinsics.height)
                base = np.asarray(cv2.resize(background, size, interpolation=cv2.INTER_AREA))
        image = render_marker_scene(base, marker_id, family, size_m, rvec, tvec, intrinsics)
        return add_sensor_noise(image) if noise else image

    return _render
