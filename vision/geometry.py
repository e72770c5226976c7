"""Small rigid-body and projective helpers shared by camera tracking and anchors.

Poses are 4x4 float64 matrices named ``a_from_b`` (they take b-frame points to the a frame);
image points are normalized uv (see :mod:`vision.types`) unless a name says ``px``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from vision.types import Intrinsics

__all__ = [
    "Mat",
    "apply_homography",
    "invert_pose",
    "pose_from_plane_homography",
    "pose_matrix",
    "project_uv",
    "px_to_uv_matrix",
    "uv_rays",
]

Mat = npt.NDArray[np.float64]


def pose_matrix(values: Sequence[float]) -> Mat:
    """16 row-major floats -> 4x4."""
    return np.asarray(values, dtype=np.float64).reshape(4, 4).copy()


def invert_pose(pose: Mat) -> Mat:
    """Inverse of a rigid 4x4 transform."""
    out = np.eye(4, dtype=np.float64)
    rotation = pose[:3, :3]
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ pose[:3, 3]
    return out


def px_to_uv_matrix(width: int, height: int) -> Mat:
    """The 3x3 homography taking pixel coordinates to uv: ``u = (x + 0.5) / W``."""
    return np.array(
        [[1.0 / width, 0.0, 0.5 / width], [0.0, 1.0 / height, 0.5 / height], [0.0, 0.0, 1.0]]
    )


def apply_homography(h: Mat, points: Mat) -> Mat:
    """Map N x 2 points through a 3x3 homography (NaN where a point goes to infinity)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homogeneous = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ h.T
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Mat = homogeneous[:, :2] / homogeneous[:, 2:3]
    out[~np.isfinite(out).all(axis=1)] = np.nan
    return out


def uv_rays(points_uv: Mat, intrinsics: Intrinsics) -> Mat:
    """N x 3 camera-frame rays ``(x, y, 1)`` through normalized uv points (lens distortion
    removed)."""
    uv = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2)
    px = uv * [intrinsics.width, intrinsics.height] - 0.5
    dist = intrinsics.dist_coeffs()
    if dist is None:
        xy = (px - [intrinsics.cx, intrinsics.cy]) / [intrinsics.fx, intrinsics.fy]
    else:
        undistorted = cv2.undistortPoints(px.reshape(-1, 1, 2), intrinsics.matrix(), dist)
        xy = np.asarray(undistorted, np.float64).reshape(-1, 2)
    return np.concatenate([xy, np.ones((len(xy), 1))], axis=1)


def project_uv(camera_from_points: Mat, xyz: Mat, intrinsics: Intrinsics) -> tuple[Mat, bool]:
    """Project N x 3 points to uv; also whether every point is in front of the camera."""
    pts = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    cam = pts @ camera_from_points[:3, :3].T + camera_from_points[:3, 3]
    in_front = bool(np.all(cam[:, 2] > 1e-6))
    if not in_front:
        return np.empty((0, 2)), False
    dist = intrinsics.dist_coeffs()
    if dist is None:
        px = cam[:, :2] / cam[:, 2:3] * [intrinsics.fx, intrinsics.fy] + [
            intrinsics.cx,
            intrinsics.cy,
        ]
    else:
        zero = np.zeros(3)
        projected, _ = cv2.projectPoints(cam, zero, zero, intrinsics.matrix(), dist)
        px = np.asarray(projected, np.float64).reshape(-1, 2)
    uv: Mat = (px + 0.5) / [intrinsics.width, intrinsics.height]
    return uv, True


def pose_from_plane_homography(k: Mat, plane_to_px: Mat) -> Mat | None:
    """camera_from_plane (4x4) from the homography taking plane (X, Y) metres to pixels, or None
    when the homography is not that of a plane in front of the camera."""
    a = np.linalg.solve(k, plane_to_px)
    norms = np.linalg.norm(a[:, 0]) + np.linalg.norm(a[:, 1])
    if not np.isfinite(norms) or norms < 1e-12:
        return None
    a = a * (2.0 / norms)
    if a[2, 2] < 0:
        a = -a
    r1, r2, t = a[:, 0], a[:, 1], a[:, 2]
    u, _, vt = np.linalg.svd(np.stack([r1, r2, np.cross(r1, r2)], axis=1))
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        return None
    out = np.eye(4, dtype=np.float64)
    out[:3, :3] = rotation
    out[:3, 3] = t
    return out
