"""Ground-truth scenes for equipment tests: a flat reference image seen with a known pose."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from vision import Intrinsics
from vision.synthetic import facing_rvec, textured_background

Frame = npt.NDArray[np.uint8]


def plane_corners_px(
    size_px: tuple[int, int],
    width_m: float,
    rvec: Sequence[float],
    tvec: Sequence[float],
    camera: Intrinsics,
) -> npt.NDArray[np.float64]:
    """Pixel corners (TL, TR, BR, BL of the image's outer edges) of a reference with this pose."""
    w_px, h_px = size_px
    half_w, half_h = width_m / 2, width_m * h_px / w_px / 2
    corners = np.array(
        [[-half_w, half_h, 0.0], [half_w, half_h, 0.0], [half_w, -half_h, 0.0],
         [-half_w, -half_h, 0.0]],
        dtype=np.float64,
    )  # fmt: skip
    pixels, _ = cv2.projectPoints(
        corners, np.asarray(rvec, np.float64), np.asarray(tvec, np.float64), camera.matrix(), None
    )
    out: npt.NDArray[np.float64] = pixels.reshape(4, 2).astype(np.float64)
    return out


def render_plane(
    background: Frame,
    texture: Frame,
    width_m: float,
    rvec: Sequence[float],
    tvec: Sequence[float],
    camera: Intrinsics,
    *,
    supersample: int = 3,
) -> Frame:
    """``background`` with ``texture`` as a flat sheet ``width_m`` wide at pose (rvec, tvec)."""
    h_px, w_px = texture.shape[:2]
    src = np.array(
        [[-0.5, -0.5], [w_px - 0.5, -0.5], [w_px - 0.5, h_px - 0.5], [-0.5, h_px - 0.5]],
        np.float32,
    )
    dst = plane_corners_px((w_px, h_px), width_m, rvec, tvec, camera)
    s = supersample
    dst_hi = ((dst + 0.5) * s - 0.5).astype(np.float32)
    homography = cv2.getPerspectiveTransform(src, dst_hi)
    size = (background.shape[1] * s, background.shape[0] * s)
    ink = cv2.warpPerspective(texture.astype(np.float32), homography, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(
        np.ones(texture.shape[:2], np.float32), homography, size, flags=cv2.INTER_LINEAR
    )
    out_size = (background.shape[1], background.shape[0])
    ink = cv2.resize(ink, out_size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, out_size, interpolation=cv2.INTER_AREA)
    if background.ndim == 3:
        alpha = alpha[:, :, None]
    blended = background.astype(np.float32) * (1.0 - alpha) + ink * alpha
    out: Frame = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


@functools.cache
def person_photos() -> tuple[Frame, Frame]:
    """Two real photos of people (BGR): scikit-image's astronaut, matplotlib's Grace Hopper."""
    from matplotlib.cbook import get_sample_data
    from skimage.data import astronaut

    hopper = cv2.imread(str(get_sample_data("grace_hopper.jpg", asfileobj=False)))
    rgb = astronaut()  # type: ignore[no-untyped-call]
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.uint8), np.asarray(hopper, np.uint8)


@dataclass(frozen=True)
class BusyScene:
    image: Frame
    rvec: tuple[float, float, float]
    tvec: tuple[float, float, float]
    scale: float
    """Size relative to "1x" (the reference 0.6 m from the camera)."""
    roll_deg: float
    blur: float


def busy_scene(
    rng: np.random.Generator, reference: Frame, width_m: float, camera: Intrinsics
) -> BusyScene:
    """A cluttered background with two large person photos (left and right, randomly swapped)
    and ``reference`` in front, wholly in view: 0.5x-2x, rolled up to +-30 deg in the image,
    tilted up to 30 deg, Gaussian blur up to 1.5 px, sensor noise. "1x" is 0.6 m away."""
    width, height = camera.width, camera.height
    background = textured_background(width, height, seed=int(rng.integers(1000, 2000)))
    first, second = person_photos()
    if rng.random() < 0.5:
        first, second = second, first
    paste(background, first, int(rng.integers(0, 40)), int(rng.integers(0, 120)),
           int(rng.integers(240, 320)))  # fmt: skip
    w = int(rng.integers(220, 300))
    paste(background, second, width - w - int(rng.integers(0, 40)), int(rng.integers(0, 120)), w)
    scale = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    distance = 0.6 / scale
    roll = float(rng.uniform(-30.0, 30.0))
    tilt = cv2.Rodrigues(np.asarray(facing_rvec(float(rng.uniform(0, 30)), rng.uniform(0, 180))))
    in_plane = cv2.Rodrigues(np.array([0.0, 0.0, math.radians(roll)]))[0]
    r = np.asarray(cv2.Rodrigues(in_plane @ tilt[0])[0]).ravel()
    rvec = (float(r[0]), float(r[1]), float(r[2]))
    h_px, w_px = reference.shape[:2]
    tvec = (0.0, 0.0, distance)
    for _ in range(100):  # somewhere wholly inside the frame
        x, y = rng.uniform(-0.5, 0.5) * distance, rng.uniform(-0.4, 0.4) * distance
        corners = plane_corners_px((w_px, h_px), width_m, rvec, (x, y, distance), camera)
        if corners.min() >= 2 and corners[:, 0].max() < width - 2:
            if corners[:, 1].max() < height - 2:
                tvec = (float(x), float(y), distance)
                break
    image = render_plane(background, reference, width_m, rvec, tvec, camera)
    blur = float(rng.uniform(0.0, 1.5))
    if blur > 0.3:
        image = np.asarray(cv2.GaussianBlur(image, (0, 0), blur), np.uint8)
    noise = np.random.default_rng(int(rng.integers(1 << 30))).normal(0.0, 2.0, image.shape)
    image = np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)
    return BusyScene(image, rvec, tvec, scale, roll, blur)


def paste(canvas: Frame, image: Frame, x: int, y: int, width: int) -> None:
    height = round(image.shape[0] * width / image.shape[1])
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    rows = min(height, canvas.shape[0] - y)
    canvas[y : y + rows, x : x + width] = resized[:rows]
