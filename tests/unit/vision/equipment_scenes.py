"""Ground-truth scenes for equipment tests: a flat reference image seen with a known pose."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from vision import Intrinsics

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
