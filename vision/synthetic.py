"""Ground-truth scenes for tests and benchmarks: a marker rendered with a known pose.

``render_marker_scene`` projects a printed marker (with its white quiet zone) through known
intrinsics onto a background image, anti-aliased by supersampling, so that detector output can be
compared with the exact pose. Without lens distortion the plane maps by a homography
(``cv2.warpPerspective``); with distortion every pixel's ray is intersected with the marker plane
(``cv2.remap``). ``textured_background`` makes a cluttered, deterministic background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from vision.markers import marker_dictionary, marker_object_points
from vision.types import Intrinsics

__all__ = [
    "facing_rvec",
    "marker_corners_px",
    "render_marker_scene",
    "rotation_error_deg",
    "textured_background",
]

_CELL_PX = 32  # texture pixels per marker bit
_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]


def facing_rvec(tilt_deg: float = 0.0, axis_deg: float = 0.0) -> tuple[float, float, float]:
    """Rodrigues vector of a marker facing the camera (upright, its z towards the lens), then
    tilted by ``tilt_deg`` about an axis in the image plane at ``axis_deg`` from the x axis."""
    axis = np.array([math.cos(math.radians(axis_deg)), math.sin(math.radians(axis_deg)), 0.0])
    tilt = np.asarray(cv2.Rodrigues(axis * math.radians(tilt_deg))[0], np.float64)
    facing = np.diag([1.0, -1.0, -1.0])  # marker y up = camera -y, marker z = camera -z
    rvec = np.asarray(cv2.Rodrigues(tilt @ facing)[0], np.float64).ravel()
    return float(rvec[0]), float(rvec[1]), float(rvec[2])


def rotation_error_deg(rvec_a: Sequence[float], rvec_b: Sequence[float]) -> float:
    """Angle of the rotation between two Rodrigues vectors, degrees."""
    a = np.asarray(cv2.Rodrigues(np.asarray(rvec_a, np.float64))[0], np.float64)
    b = np.asarray(cv2.Rodrigues(np.asarray(rvec_b, np.float64))[0], np.float64)
    cosine = (float(np.trace(a.T @ b)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


def marker_corners_px(
    size_m: float, rvec: Sequence[float], tvec: Sequence[float], intrinsics: Intrinsics
) -> _F64:
    """Ground-truth pixel corners (4x2, detector order) of a marker with this pose."""
    points, _ = cv2.projectPoints(
        marker_object_points(size_m),
        np.asarray(rvec, np.float64),
        np.asarray(tvec, np.float64),
        intrinsics.matrix(),
        intrinsics.dist_coeffs(),
    )
    out: _F64 = points.reshape(4, 2).astype(np.float64)
    return out


def render_marker_scene(
    background: npt.NDArray[np.uint8],
    marker_id: int,
    family: str,
    size_m: float,
    rvec: Sequence[float],
    tvec: Sequence[float],
    intrinsics: Intrinsics,
    *,
    quiet_zone_bits: float = 1.0,
    supersample: int = 4,
) -> npt.NDArray[np.uint8]:
    """``background`` with a printed marker drawn at pose (rvec, tvec), camera-from-marker.

    ``size_m`` is the side of the black square; a white margin of ``quiet_zone_bits`` bits
    surrounds it as on a printed sheet. ``intrinsics`` must match the background's size. Returns
    a new array of the background's shape (gray or BGR). Call again on the result to add more
    markers.
    """
    height, width = background.shape[:2]
    if (width, height) != (intrinsics.width, intrinsics.height):
        raise ValueError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height}, "
            f"the background is {width}x{height}"
        )
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    dictionary = marker_dictionary(family)
    marker_px = (dictionary.markerSize + 2) * _CELL_PX
    margin = round(quiet_zone_bits * _CELL_PX)
    texture = np.full((marker_px + 2 * margin,) * 2, 255, np.uint8)
    texture[margin : margin + marker_px, margin : margin + marker_px] = (
        cv2.aruco.generateImageMarker(dictionary, marker_id, marker_px)
    )
    sheet_m = size_m * texture.shape[0] / marker_px
    rotation = np.asarray(cv2.Rodrigues(np.asarray(rvec, np.float64))[0], np.float64)
    translation = np.asarray(tvec, np.float64).reshape(3)
    sheet = marker_object_points(sheet_m)
    if np.any((sheet @ rotation.T + translation)[:, 2] <= 1e-6):
        raise ValueError("the marker sheet is (partly) behind the camera; increase tvec z")

    roi = _sheet_roi(sheet_m, rotation, translation, intrinsics)
    if roi is None:
        return background.copy()
    x0, y0, x1, y1 = roi
    s = supersample
    # Final pixel x <-> supersampled pixel (x - x0 + 0.5) * s - 0.5 (pixel-centre convention).
    hi_w, hi_h = (x1 - x0) * s, (y1 - y0) * s
    if intrinsics.dist_coeffs() is None:
        src = np.array([[-0.5, -0.5], [1, -0.5], [1, 1], [-0.5, 1]], np.float64)
        src[src == 1] = texture.shape[0] - 0.5
        dst, _ = cv2.projectPoints(sheet, rotation, translation, intrinsics.matrix(), None)
        dst = (dst.reshape(4, 2) - [x0, y0] + 0.5) * s - 0.5
        homography = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
        ink = cv2.warpPerspective(
            texture.astype(np.float32), homography, (hi_w, hi_h), flags=cv2.INTER_LINEAR
        )
        alpha = cv2.warpPerspective(
            np.ones(texture.shape, np.float32), homography, (hi_w, hi_h), flags=cv2.INTER_LINEAR
        )
    else:
        map_x, map_y = _ray_maps(
            roi, s, rotation, translation, intrinsics, sheet_m, texture.shape[0]
        )
        ink = cv2.remap(texture.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0)
        alpha = cv2.remap(np.ones(texture.shape, np.float32), map_x, map_y, cv2.INTER_LINEAR)
    ink = cv2.resize(ink, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    out = background.copy()
    patch = out[y0:y1, x0:x1].astype(np.float32)
    if patch.ndim == 3:
        ink, alpha = ink[:, :, None], alpha[:, :, None]
    blended = patch * (1.0 - alpha) + ink * alpha
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def _sheet_roi(
    sheet_m: float, rotation: _F64, translation: _F64, intrinsics: Intrinsics
) -> tuple[int, int, int, int] | None:
    """Integer pixel box (x0, y0, x1, y1) holding the projected sheet, clipped to the image."""
    edge = np.linspace(-sheet_m / 2, sheet_m / 2, 17)
    ring = np.concatenate(
        [np.stack([edge, np.full_like(edge, c)], 1) for c in (-sheet_m / 2, sheet_m / 2)]
        + [np.stack([np.full_like(edge, c), edge], 1) for c in (-sheet_m / 2, sheet_m / 2)]
    )
    ring3 = np.concatenate([ring, np.zeros((len(ring), 1))], axis=1)
    pixels, _ = cv2.projectPoints(
        ring3, rotation, translation, intrinsics.matrix(), intrinsics.dist_coeffs()
    )
    pixels = pixels.reshape(-1, 2)
    pad = 3  # bulge of distorted edges between samples, and the resampling kernel
    x0 = max(int(np.floor(pixels[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(pixels[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(pixels[:, 0].max())) + pad + 1, intrinsics.width)
    y1 = min(int(np.ceil(pixels[:, 1].max())) + pad + 1, intrinsics.height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _ray_maps(
    roi: tuple[int, int, int, int],
    s: int,
    rotation: _F64,
    translation: _F64,
    intrinsics: Intrinsics,
    sheet_m: float,
    texture_px: int,
) -> tuple[_F32, _F32]:
    """remap() maps: for every supersampled pixel, the texture pixel its ray hits."""
    x0, y0, x1, y1 = roi
    xs = (np.arange((x1 - x0) * s) + 0.5) / s - 0.5 + x0
    ys = (np.arange((y1 - y0) * s) + 0.5) / s - 0.5 + y0
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    rays = cv2.undistortPoints(
        grid, intrinsics.matrix(), intrinsics.dist_coeffs(), criteria=criteria
    ).reshape(-1, 2)
    rays = np.concatenate([rays, np.ones((len(rays), 1))], axis=1)
    normal = rotation[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (normal @ translation) / (rays @ normal)
    hits = rays * depth[:, None] - translation
    local = hits @ rotation  # rotation.T applied to each row
    scale = texture_px / sheet_m
    map_x = (local[:, 0] + sheet_m / 2) * scale - 0.5
    map_y = (sheet_m / 2 - local[:, 1]) * scale - 0.5
    behind = ~(depth > 0)
    map_x[behind] = -10.0
    map_y[behind] = -10.0
    shape = ((y1 - y0) * s, (x1 - x0) * s)
    return map_x.reshape(shape).astype(np.float32), map_y.reshape(shape).astype(np.float32)


def textured_background(width: int, height: int, *, seed: int = 0) -> npt.NDArray[np.uint8]:
    """A deterministic cluttered BGR scene: fractal noise, shapes with sharp corners, text,
    lines, blur and sensor noise; dark squares make the detector reject candidates."""
    rng = np.random.default_rng(seed)
    field = np.zeros((height, width, 3), np.float32)
    amplitude = 1.0
    for octave in range(1, 7):
        cells = (max(2, height >> (8 - octave)), max(2, width >> (8 - octave)))
        noise = rng.random((*cells, 3), dtype=np.float32)
        field += amplitude * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.55
    field -= field.min()
    field /= max(float(field.max()), 1e-6)
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    image = (40 + 170 * field * tint).astype(np.uint8)
    for _ in range(40):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            cv2.line(image, p, q, color, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif kind == 1:
            r = int(rng.integers(4, max(5, width // 10)))
            cv2.circle(image, p, r, color, -1, cv2.LINE_AA)
        elif kind == 2:
            side = int(rng.integers(8, max(9, width // 12)))
            box = cv2.boxPoints((p, (side, side), float(rng.uniform(0, 90))))
            dark = tuple(int(c) for c in rng.integers(0, 40, 3))
            cv2.fillPoly(image, [box.astype(np.int32)], dark, cv2.LINE_AA)
        else:
            cv2.putText(
                image,
                f"FS-{int(rng.integers(1000)):03d}",
                p,
                cv2.FONT_HERSHEY_SIMPLEX,
                float(rng.uniform(0.4, 1.2)),
                color,
                1,
                cv2.LINE_AA,
            )
    blurred = cv2.GaussianBlur(image, (3, 3), 0.7)
    noisy = blurred.astype(np.float32) + rng.normal(0.0, 2.0, image.shape).astype(np.float32)
    out: npt.NDArray[np.uint8] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out
