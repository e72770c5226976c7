"""A rendered RGB-D sequence with known motion, for tests and benchmarks of odometry and fusion.

:class:`Room` is an analytic scene: a box-shaped room (floor, ceiling, four walls) with a few
boxes standing on the floor, every face textured with a real photo (scikit-image's sample
pictures when installed, else :func:`vision.synthetic.textured_background`), lightly shaded by
its orientation, and optionally ArUco markers printed on a wall. :meth:`Room.render` ray-casts it
with numpy (no OpenGL: headless machines have none) and returns the colour image and the metric
z-depth of every pixel; :meth:`Room.distance` is the exact distance of points to the nearest
surface, to grade a reconstruction.

World frame of the room: metres, z up, the floor is z = 0, the room spans
``[0, size[0]] x [0, size[1]] x [0, size[2]]``. Cameras use OpenCV axes (x right, y down,
z forward) and are given as ``world_from_camera`` 4x4 matrices. :func:`walk_and_turn` is a
hand-held path (walk a few metres while turning, with head bob); :func:`render_sequence` renders
it into :class:`RgbdFrameTruth` items (colour, uint16 depth in mm, intrinsics, the true pose).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from vision.markers import marker_dictionary
from vision.synthetic import textured_background
from vision.types import Intrinsics

__all__ = [
    "Box",
    "RgbdFrameTruth",
    "Room",
    "WallMarker",
    "look_pose",
    "render_sequence",
    "walk_and_turn",
]

Mat = npt.NDArray[np.float64]
Image = npt.NDArray[np.uint8]
_PX_PER_M = 160.0  # texture resolution on every face


@dataclass(frozen=True)
class Box:
    """An axis-aligned box standing in the room, ``lo`` and ``hi`` corners in metres."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


@dataclass(frozen=True)
class WallMarker:
    """An ArUco marker printed (with a one-bit white margin) on the wall ``x = size[0]``, its
    centre at ``(y, z)`` on that wall; ``size_m`` is the black square's side."""

    id: int
    y: float
    z: float
    size_m: float = 0.25
    family: str = "aruco_4x4_50"


@dataclass(frozen=True, eq=False)
class _Face:
    origin: Mat  # 3: where texture pixel (0, 0) sits
    u: Mat  # unit vector along texture columns
    v: Mat  # unit vector along texture rows
    extent: tuple[float, float]  # metres along u and v
    normal: Mat  # pointing into the free space the face is seen from
    texture: npt.NDArray[np.float32]  # (rows, cols, 3) BGR 0..255


@dataclass(frozen=True, eq=False)
class RgbdFrameTruth:
    """One rendered frame: colour (BGR), depth (uint16 millimetres, 0 = no reading), the
    intrinsics of each, and the true ``world_from_camera``."""

    index: int
    color: Image
    depth_mm: npt.NDArray[np.uint16]
    color_intrinsics: Intrinsics
    depth_intrinsics: Intrinsics
    world_from_camera: Mat


def _photos() -> list[Image]:
    """Real photos when scikit-image is installed, else deterministic clutter."""
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - the dev extra installs scikit-image
        return [textured_background(480, 360, seed=s) for s in range(8)]
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "brick", "gravel", "grass", "camera"):
        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        out.append(np.ascontiguousarray(image[:, :, 2::-1], dtype=np.uint8))  # RGB -> BGR
    return out


@dataclass
class Room:
    """The analytic room; see the module docstring. Build once (textures are prepared here)."""

    size: tuple[float, float, float] = (5.0, 4.0, 2.6)
    boxes: tuple[Box, ...] = (
        Box((3.6, 0.3, 0.0), (4.4, 1.1, 0.9)),
        Box((1.2, 3.0, 0.0), (2.0, 3.7, 1.2)),
        Box((3.0, 2.9, 0.0), (3.5, 3.4, 0.5)),
    )
    markers: tuple[WallMarker, ...] = ()
    seed: int = 0
    _faces: list[_Face] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        photos = _photos()
        rng = np.random.default_rng(self.seed)
        lx, ly, lz = self.size
        e = np.eye(3)
        faces: list[tuple[Mat, Mat, Mat, tuple[float, float], Mat]] = [
            # origin, u, v, extent, normal (into the room)
            (np.array([0.0, 0.0, 0.0]), e[0], e[1], (lx, ly), e[2]),  # floor
            (np.array([0.0, ly, lz]), e[0], -e[1], (lx, ly), -e[2]),  # ceiling
            (np.array([lx, ly, lz]), -e[1], -e[2], (ly, lz), -e[0]),  # wall x = lx
            (np.array([0.0, ly, lz]), -e[1], -e[2], (ly, lz), e[0]),  # wall x = 0
            (np.array([lx, ly, lz]), -e[0], -e[2], (lx, lz), -e[1]),  # wall y = ly
            (np.array([0.0, 0.0, lz]), e[0], -e[2], (lx, lz), e[1]),  # wall y = 0
        ]
        for box in self.boxes:
            lo, hi = np.array(box.lo), np.array(box.hi)
            d = hi - lo
            faces += [
                (np.array([lo[0], lo[1], hi[2]]), e[0], e[1], (d[0], d[1]), e[2]),  # top
                (np.array([lo[0], lo[1], hi[2]]), e[0], -e[2], (d[0], d[2]), -e[1]),
                (np.array([hi[0], hi[1], hi[2]]), -e[0], -e[2], (d[0], d[2]), e[1]),
                (np.array([lo[0], hi[1], hi[2]]), -e[1], -e[2], (d[1], d[2]), -e[0]),
                (np.array([hi[0], lo[1], hi[2]]), e[1], -e[2], (d[1], d[2]), e[0]),
            ]
        light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
        self._faces = []
        for i, (origin, u, v, extent, normal) in enumerate(faces):
            photo = photos[(i * 3 + self.seed) % len(photos)]
            if np.ptp(photo.astype(np.int16) - photo[:, :, :1], axis=None) == 0:  # gray: tint
                photo = (photo * rng.uniform(0.55, 1.0, 3)).astype(np.uint8)
            cols = max(8, round(extent[0] * _PX_PER_M))
            rows = max(8, round(extent[1] * _PX_PER_M))
            texture = np.asarray(
                cv2.resize(photo, (cols, rows), interpolation=cv2.INTER_AREA), np.uint8
            )
            if i == 2:  # the wall x = lx carries the markers
                for marker in self.markers:
                    _print_marker(texture, marker, extent)
            shade = 0.75 + 0.25 * abs(float(normal @ light))
            blurred = cv2.GaussianBlur(texture, (3, 3), 0.6).astype(np.float32)
            shaded = np.asarray(blurred * np.float32(shade), np.float32)
            self._faces.append(_Face(origin, u, v, extent, normal, shaded))

    def marker_pose(self, marker: WallMarker) -> Mat:
        """world_from_marker of a wall marker (x right, y up, z out of the wall)."""
        out = np.eye(4)
        out[:3, 0], out[:3, 1], out[:3, 2] = [0, -1, 0], [0, 0, 1], [-1, 0, 0]
        out[:3, 3] = [self.size[0], marker.y, marker.z]
        return out

    def render(
        self, world_from_camera: Mat, intrinsics: Intrinsics
    ) -> tuple[Image, npt.NDArray[np.float32]]:
        """BGR colour and z-depth in metres (0 where a ray hits nothing) of one view."""
        w, h = intrinsics.width, intrinsics.height
        xs = (np.arange(w) - intrinsics.cx) / intrinsics.fx
        ys = (np.arange(h) - intrinsics.cy) / intrinsics.fy
        gx, gy = np.meshgrid(xs, ys)
        rays = np.stack([gx.ravel(), gy.ravel(), np.ones(w * h)], axis=1)  # camera, z = 1
        d = rays @ world_from_camera[:3, :3].T  # world directions; t along them = z-depth
        o = world_from_camera[:3, 3]
        best = np.full(w * h, np.inf)
        which = np.full(w * h, -1, np.int32)
        columns = [np.ascontiguousarray(d[:, k]) for k in range(3)]
        with np.errstate(divide="ignore"):
            inverse = [1.0 / c for c in columns]
        for i, face in enumerate(self._faces):  # every face is axis-aligned
            k = int(np.argmax(np.abs(face.normal)))
            sign = float(face.normal[k])
            t = (face.origin[k] - o[k]) * inverse[k]
            ok = (columns[k] * sign < -1e-9) & (t > 1e-6) & (t < best)
            idx = np.flatnonzero(ok)
            if len(idx) == 0:
                continue
            rel = o + d[idx] * t[idx, None] - face.origin
            a, b = rel @ face.u, rel @ face.v
            inside = (a >= 0) & (a <= face.extent[0]) & (b >= 0) & (b <= face.extent[1])
            idx = idx[inside]
            best[idx], which[idx] = t[idx], i
        color = np.zeros((w * h, 3), np.float32)
        for i, face in enumerate(self._faces):
            idx = np.flatnonzero(which == i)
            if len(idx) == 0:
                continue
            rel = o + d[idx] * best[idx, None] - face.origin
            rows, cols = face.texture.shape[:2]
            mx = (rel @ face.u * (cols / face.extent[0]) - 0.5).astype(np.float32)
            my = (rel @ face.v * (rows / face.extent[1]) - 0.5).astype(np.float32)
            color[idx] = _sample(face.texture, mx, my)
        depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32).reshape(h, w)
        bgr = np.clip(np.rint(color), 0, 255).astype(np.uint8).reshape(h, w, 3)
        return bgr, depth

    def distance(self, points: Mat) -> npt.NDArray[np.float64]:
        """Unsigned distance (metres) of N x 3 world points to the nearest surface."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        size = np.asarray(self.size)
        inside = np.minimum(p, size - p)  # distance to each pair of room faces
        dist = np.abs(inside).min(axis=1)
        for box in self.boxes:
            lo, hi = np.asarray(box.lo), np.asarray(box.hi)
            centre, half = (lo + hi) / 2, (hi - lo) / 2
            q = np.abs(p - centre) - half
            outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
            dist = np.minimum(dist, np.abs(outside + np.minimum(q.max(axis=1), 0.0)))
        out: npt.NDArray[np.float64] = dist
        return out


def _print_marker(texture: Image, marker: WallMarker, extent: tuple[float, float]) -> None:
    """Paste the marker into the texture of the wall x = lx (u = -y, v = -z)."""
    dictionary = marker_dictionary(marker.family)
    bits = dictionary.markerSize + 2
    rows, cols = texture.shape[:2]
    ppm = cols / extent[0]
    side = round(marker.size_m * ppm)
    margin = round(side / bits)
    sheet = np.full((side + 2 * margin,) * 2, 255, np.uint8)
    sheet[margin : margin + side, margin : margin + side] = cv2.aruco.generateImageMarker(
        dictionary, marker.id, side
    )
    cu, cv = (extent[0] - marker.y) * ppm, (extent[1] - marker.z) * (rows / extent[1])
    x0, y0 = round(cu - sheet.shape[1] / 2), round(cv - sheet.shape[0] / 2)
    texture[y0 : y0 + sheet.shape[0], x0 : x0 + sheet.shape[1]] = sheet[:, :, None]


def _sample(
    texture: npt.NDArray[np.float32], mx: npt.NDArray[np.float32], my: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Bilinear texture lookups at N points (cv2.remap wants 2D maps under 32k a side)."""
    n = len(mx)
    pad = -n % 1024
    shape = (-1, 1024)
    map_x = np.concatenate([mx, np.zeros(pad, np.float32)]).reshape(shape)
    map_y = np.concatenate([my, np.zeros(pad, np.float32)]).reshape(shape)
    out = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT)
    return np.asarray(out, np.float32).reshape(-1, 3)[:n]


def look_pose(position: Sequence[float], yaw_deg: float, pitch_deg: float = 0.0) -> Mat:
    """world_from_camera of a camera at ``position`` heading ``yaw_deg`` (0 = +x, 90 = +y),
    tilted down by ``pitch_deg``, with a level horizon."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), 0.0])
    forward[2] = -math.sin(pitch)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = right, down, forward, position
    return out


def walk_and_turn(
    count: int,
    *,
    start: tuple[float, float] = (1.0, 1.6),
    end: tuple[float, float] = (3.4, 2.1),
    yaw_deg: tuple[float, float] = (-10.0, 80.0),
    height_m: float = 1.5,
    pitch_deg: float = 20.0,
) -> list[Mat]:
    """``count`` poses of a person walking from ``start`` to ``end`` (metres on the floor)
    while turning from ``yaw_deg[0]`` to ``yaw_deg[1]``, with a 2 cm head bob and a little sway
    of the view. Smooth: the steps are largest mid-path."""
    out = []
    for i in range(count):
        s = 0.5 - 0.5 * math.cos(math.pi * i / max(count - 1, 1))  # ease in and out
        x = start[0] + s * (end[0] - start[0])
        y = start[1] + s * (end[1] - start[1])
        z = height_m + 0.02 * math.sin(6 * math.pi * s)
        yaw = yaw_deg[0] + s * (yaw_deg[1] - yaw_deg[0]) + 3.0 * math.sin(4 * math.pi * s)
        pitch = pitch_deg + 3.0 * math.sin(2 * math.pi * s)
        out.append(look_pose((x, y, z), yaw, pitch))
    return out


def render_sequence(
    room: Room,
    poses: Sequence[Mat],
    *,
    color_size: tuple[int, int] = (320, 240),
    depth_size: tuple[int, int] | None = None,
    hfov_deg: float = 70.0,
    depth_noise: float = 0.0,
    seed: int = 0,
) -> list[RgbdFrameTruth]:
    """Render every pose. ``depth_size`` defaults to the colour size (the depth is registered
    to the colour camera either way). ``depth_noise`` is the sensor's sigma at 1 m, growing
    with the square of the distance (a structured-light/ToF-like model), in metres."""
    rng = np.random.default_rng(seed)
    color_k = Intrinsics.from_fov(*color_size, hfov_deg)
    depth_k = color_k if depth_size is None else color_k.scaled_to(*depth_size)
    frames = []
    for index, pose in enumerate(poses):
        color, depth = room.render(pose, color_k)
        if depth_k is not color_k:
            _, depth = room.render(pose, depth_k)
        if depth_noise > 0:
            depth = depth + rng.normal(0.0, 1.0, depth.shape).astype(np.float32) * (
                depth_noise * depth * depth
            )
        mm = np.clip(np.rint(depth * 1000.0), 0, 65535).astype(np.uint16)
        frames.append(RgbdFrameTruth(index, color, mm, color_k, depth_k, np.asarray(pose)))
    return frames
