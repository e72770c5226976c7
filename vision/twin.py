"""The digital twin of a stream: TSDF fusion of RGB-D keyframes, a mesh, and the markers in it.

:class:`TwinBuilder` integrates colour + depth into an Open3D tensor ``VoxelBlockGrid`` (TSDF;
the legacy ``ScalableTSDFVolume`` returns empty meshes in Open3D 0.20). It is frugal:

- only keyframes are fused: the first, then whenever the camera moved more than
  ``keyframe_move_m`` or turned more than ``keyframe_turn_deg`` since the last keyframe, or
  every ``keyframe_every``-th depth frame offered;
- memory is bounded: a keyframe that would grow the grid past ``max_blocks`` voxel blocks is
  skipped (``summary()["full"]``); a block holds ``block_resolution ** 3`` voxels of 12 bytes.

Markers are placed with their world pose (``world_from_marker``); repeated sightings are
averaged per id. The twin has one world (the ``reference`` of its first keyframe, normally
``rgbd``); frames and markers of another world are ignored until :meth:`TwinBuilder.reset`.

Thread-safe: the pipeline integrates from its executor thread while the server exports from
another. Extraction copies the mesh out under the lock; files are written outside it.
World coordinates are the odometry's (OpenCV axes: y down); the GLB's root node turns them
y-up for glTF viewers.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from vision.geometry import Mat
from vision.gltf import GltfNode, glb_bytes, quaternion_xyzw
from vision.rgbd import DepthFrame, load_open3d
from vision.types import Intrinsics

__all__ = [
    "MarkerBook",
    "Twin",
    "TwinBuilder",
    "keyframe_due",
    "TwinMarker",
    "TwinMesh",
    "TwinOptions",
]

logger = logging.getLogger(__name__)

_BYTES_PER_VOXEL = 12  # tsdf float32 + weight uint16 + colour 3 x uint16


@dataclass
class TwinOptions:
    """TSDF settings; the defaults map a room at 2 cm in ~25-35 ms a keyframe (one core)."""

    voxel_size_m: float = 0.02
    block_resolution: int = 8
    """Voxels along a block side."""
    max_blocks: int = 20_000
    """Cap on allocated blocks (20 000 x 8^3 x 12 B = 123 MB)."""
    depth_max_m: float = 4.0
    """Depth beyond this is not fused (far readings are noisy)."""
    trunc_voxels: float = 3.0
    """TSDF truncation, in voxels."""
    keyframe_move_m: float = 0.10
    keyframe_turn_deg: float = 10.0
    keyframe_every: int = 30
    """A keyframe at least every n-th depth frame offered, even without motion (0 = never)."""
    weight_threshold: float = 1.0
    """Voxels seen fewer times than this are left out of the mesh."""
    threads: int | None = 1

    def validate(self) -> None:
        if not 0.001 <= self.voxel_size_m <= 0.5:
            raise ValueError(f"voxel_size_m must be in [0.001, 0.5], got {self.voxel_size_m}")
        if self.block_resolution not in (4, 8, 16, 32):
            raise ValueError(f"block_resolution must be 4, 8, 16 or 32: {self.block_resolution}")
        if self.max_blocks < 1 or self.depth_max_m <= 0 or self.trunc_voxels <= 0:
            raise ValueError("max_blocks, depth_max_m and trunc_voxels must be positive")


@dataclass(frozen=True, eq=False)
class TwinMesh:
    """A copy of the twin's surface: numpy arrays, safe to use without the twin's lock."""

    vertices: npt.NDArray[np.float32]
    """(N, 3) world metres."""
    triangles: npt.NDArray[np.uint32]
    """(M, 3) vertex indices."""
    normals: npt.NDArray[np.float32] | None
    colors: npt.NDArray[np.uint8] | None
    """(N, 3) RGB."""

    def bounds(self) -> tuple[list[float], list[float]] | None:
        if len(self.vertices) == 0:
            return None
        lo, hi = self.vertices.min(axis=0), self.vertices.max(axis=0)
        return [round(float(x), 4) for x in lo], [round(float(x), 4) for x in hi]


@dataclass(frozen=True)
class TwinMarker:
    """A marker placed in the twin: averaged ``world_from_marker`` and how often it was seen."""

    id: int
    name: str
    world_from_marker: tuple[float, ...]
    sightings: int


def _mean_pose(old: Mat, new: Mat, weight: float) -> Mat:
    out = (1.0 - weight) * old + weight * new
    u, _, vt = np.linalg.svd(out[:3, :3])
    out[:3, :3] = u @ vt
    out[3] = [0.0, 0.0, 0.0, 1.0]
    return np.asarray(out, np.float64)


def keyframe_due(options: TwinOptions, last: Mat | None, since_key: int, pose: Mat) -> bool:
    """Whether a frame at ``pose`` is a keyframe: the first, every ``keyframe_every``-th, or
    once the camera moved or turned enough since the ``last`` keyframe."""
    if last is None:
        return True
    if options.keyframe_every and since_key + 1 >= options.keyframe_every:
        return True
    moved = float(np.linalg.norm(pose[:3, 3] - last[:3, 3]))
    cosine = (float(np.trace(last[:3, :3].T @ pose[:3, :3])) - 1.0) / 2.0
    turned = math.degrees(math.acos(min(1.0, max(-1.0, cosine))))
    return moved > options.keyframe_move_m or turned > options.keyframe_turn_deg


class Twin(Protocol):
    """What the ``rgbd`` stage feeds: :class:`TwinBuilder` (in this process) or
    :class:`vision.twin_process.TwinProcess` (in a child process, for servers)."""

    def integrate(
        self,
        color: npt.NDArray[np.uint8],
        depth: DepthFrame,
        camera: Intrinsics,
        world_from_camera: Mat,
        reference: str = "rgbd",
        *,
        force: bool = False,
    ) -> bool: ...

    def place_marker(
        self, marker_id: int, world_from_marker: Mat, reference: str = "rgbd"
    ) -> bool: ...


class MarkerBook:
    """Marker sightings averaged per id (a running mean of the pose, capped at 100 sightings)."""

    def __init__(self) -> None:
        self._poses: dict[int, tuple[Mat, int]] = {}

    def add(self, marker_id: int, pose: Mat) -> None:
        old = self._poses.get(marker_id)
        if old is None:
            self._poses[marker_id] = (pose, 1)
        else:
            n = min(old[1], 100)
            self._poses[marker_id] = (_mean_pose(old[0], pose, 1.0 / (n + 1)), n + 1)

    def set(self, entries: list[tuple[int, Mat, int]]) -> None:
        self._poses = {int(i): (np.asarray(pose, np.float64), int(n)) for i, pose, n in entries}

    def entries(self) -> list[tuple[int, Mat, int]]:
        """(id, world_from_marker, sightings), by id."""
        return [(i, pose, n) for i, (pose, n) in sorted(self._poses.items())]


class TwinBuilder:
    """One stream's digital twin; see the module docstring. Open3D loads on first integrate."""

    def __init__(self, options: TwinOptions | None = None) -> None:
        self.options = options if options is not None else TwinOptions()
        self.options.validate()
        self._lock = threading.Lock()
        self._o3d: Any = None
        self._grid: Any = None
        self.reference: str | None = None
        self._last_key: Mat | None = None
        self._since_key = 0
        self._keyframes = 0
        self._skipped_full = 0
        self._version = 0
        self._mesh: tuple[int, TwinMesh] | None = None
        self._markers = MarkerBook()
        self._names: dict[int, str] = {}

    @property
    def keyframes(self) -> int:
        """Keyframes fused so far (0: nothing to export)."""
        with self._lock:
            return self._keyframes

    def reset(self) -> None:
        """Drop the fused surface and the markers; the next keyframe starts a new twin."""
        with self._lock:
            self._grid, self.reference, self._last_key, self._mesh = None, None, None, None
            self._markers = MarkerBook()
            self._since_key = self._keyframes = self._skipped_full = 0
            self._version += 1

    def name_marker(self, marker_id: int, name: str) -> None:
        """The node name of a marker in exports (default ``marker <id>``)."""
        with self._lock:
            self._names[marker_id] = name

    def is_keyframe(self, world_from_camera: Mat, reference: str) -> bool:
        """Whether :meth:`integrate` would fuse a frame with this pose now."""
        with self._lock:
            return self._is_keyframe(world_from_camera, reference)

    def _is_keyframe(self, pose: Mat, reference: str) -> bool:
        if self.reference is not None and reference != self.reference:
            return False
        return keyframe_due(self.options, self._last_key, self._since_key, pose)

    def integrate(
        self,
        color: npt.NDArray[np.uint8],
        depth: DepthFrame,
        camera: Intrinsics,
        world_from_camera: Mat,
        reference: str = "rgbd",
        *,
        force: bool = False,
    ) -> bool:
        """Fuse the frame if it is a keyframe (or ``force``); returns whether it was fused.

        ``color`` is BGR (or gray) of any size, registered to ``depth``; ``camera`` is the depth
        image's intrinsics.
        """
        pose = np.asarray(world_from_camera, np.float64)
        with self._lock:
            if self.reference is not None and reference != self.reference:
                return False
            if not force and not self._is_keyframe(pose, reference):
                self._since_key += 1
                return False
            o3d = self._open3d()
            opts = self.options
            if self._grid is None:
                self._grid = o3d.t.geometry.VoxelBlockGrid(
                    ("tsdf", "weight", "color"),
                    (o3d.core.float32, o3d.core.uint16, o3d.core.uint16),
                    ((1), (1), (3)),
                    opts.voxel_size_m,
                    opts.block_resolution,
                    min(opts.max_blocks, 4096),
                )
            if color.ndim == 2:
                color = np.asarray(cv2.cvtColor(color, cv2.COLOR_GRAY2BGR), np.uint8)
            color_camera = camera.scaled_to(color.shape[1], color.shape[0])
            depth_image = o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(depth.depth)))
            color_image = o3d.t.geometry.Image(
                o3d.core.Tensor(np.ascontiguousarray(color[:, :, 2::-1]))
            )
            k_depth = o3d.core.Tensor(camera.matrix())
            k_color = o3d.core.Tensor(color_camera.matrix())
            extrinsic = o3d.core.Tensor(np.linalg.inv(pose))
            scale = 1.0 / depth.scale_m
            blocks = self._grid.compute_unique_block_coordinates(
                depth_image, k_depth, extrinsic, scale, opts.depth_max_m, opts.trunc_voxels
            )
            if self._new_blocks(blocks) + int(self._grid.hashmap().size()) > opts.max_blocks:
                self._skipped_full += 1
                if self._skipped_full == 1:
                    logger.warning("twin: %d voxel blocks reached; not growing", opts.max_blocks)
                return False
            self._grid.integrate(
                blocks,
                depth_image,
                color_image,
                k_depth,
                k_color,
                extrinsic,
                scale,
                opts.depth_max_m,
                opts.trunc_voxels,
            )
            self.reference = reference
            self._last_key, self._since_key = pose, 0
            self._keyframes += 1
            self._version += 1
            return True

    def _new_blocks(self, blocks: Any) -> int:
        if blocks.shape[0] == 0:
            return 0
        _, found = self._grid.hashmap().find(blocks)
        return int(blocks.shape[0]) - int(found.numpy().sum())

    def _open3d(self) -> Any:
        if self._o3d is None:
            self._o3d = load_open3d(self.options.threads)
        return self._o3d

    def place_marker(self, marker_id: int, world_from_marker: Mat, reference: str = "rgbd") -> bool:
        """Add a sighting of a marker (running average per id); False if of another world."""
        pose = np.asarray(world_from_marker, np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise ValueError("world_from_marker must be a finite 4x4 matrix")
        with self._lock:
            if self.reference is not None and reference != self.reference:
                return False
            if self.reference is None:
                self.reference = reference
            self._markers.add(marker_id, pose)
            return True

    def set_markers(self, entries: list[tuple[int, Mat, int]]) -> None:
        """Replace the placed markers by averaged ones: ``(id, world_from_marker, sightings)``
        (how a :class:`vision.twin_process.TwinProcess` hands over what it averaged)."""
        book = MarkerBook()
        book.set(entries)
        with self._lock:
            self._markers = book

    def markers(self) -> tuple[TwinMarker, ...]:
        with self._lock:
            return tuple(
                TwinMarker(
                    i,
                    self._names.get(i, f"marker {i}"),
                    tuple(float(x) for x in pose.ravel()),
                    count,
                )
                for i, pose, count in self._markers.entries()
            )

    def mesh(self) -> TwinMesh:
        """The surface as it is now (extracted under the lock; cached until the next keyframe)."""
        with self._lock:
            if self._mesh is not None and self._mesh[0] == self._version:
                return self._mesh[1]
            mesh = self._extract()
            self._mesh = (self._version, mesh)
            return mesh

    def _extract(self) -> TwinMesh:
        empty = TwinMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32), None, None)
        if self._grid is None:
            return empty
        try:
            mesh = self._grid.extract_triangle_mesh(weight_threshold=self.options.weight_threshold)
        except RuntimeError as exc:  # an empty grid
            logger.debug("twin: no mesh (%s)", exc)
            return empty
        vertex = mesh.vertex
        vertices = np.ascontiguousarray(vertex.positions.numpy(), np.float32)
        if len(vertices) == 0:
            return empty
        triangles = np.ascontiguousarray(mesh.triangle.indices.numpy(), np.uint32)
        normals = None
        if "normals" in vertex:
            n = np.asarray(vertex.normals.numpy(), np.float32)
            length = np.linalg.norm(n, axis=1, keepdims=True)
            normals = np.ascontiguousarray(n / np.maximum(length, 1e-12), np.float32)
        colors = None
        if "colors" in vertex:
            c = np.asarray(vertex.colors.numpy(), np.float32)
            scale = 255.0 if float(c.max(initial=0.0)) <= 1.0 + 1e-6 else 1.0
            colors = np.clip(np.rint(c * scale), 0, 255).astype(np.uint8)
        return TwinMesh(vertices, triangles, normals, colors)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts: triangles, vertices, bounds, markers, keyframes, memory."""
        mesh = self.mesh()
        markers = self.markers()
        with self._lock:
            blocks = 0 if self._grid is None else int(self._grid.hashmap().size())
            voxels = self.options.block_resolution**3
            return {
                "reference": self.reference,
                "keyframes": self._keyframes,
                "vertices": len(mesh.vertices),
                "triangles": len(mesh.triangles),
                "bounds": mesh.bounds(),
                "voxel_size_m": self.options.voxel_size_m,
                "blocks": blocks,
                "memory_mb": round(blocks * voxels * _BYTES_PER_VOXEL / 1e6, 1),
                "full": self._skipped_full > 0,
                "markers": [
                    {
                        "id": m.id,
                        "name": m.name,
                        "world_from_marker": [round(x, 5) for x in m.world_from_marker],
                        "sightings": m.sightings,
                    }
                    for m in markers
                ],
            }

    def export_ply(self, path: str | os.PathLike[str]) -> TwinMesh:
        """Write the mesh as a binary PLY (Open3D's writer); returns what was written."""
        mesh = self.mesh()
        o3d = self._open3d()
        out = o3d.t.geometry.TriangleMesh()
        out.vertex.positions = o3d.core.Tensor(mesh.vertices)
        out.triangle.indices = o3d.core.Tensor(mesh.triangles.astype(np.int32))
        if mesh.normals is not None:
            out.vertex.normals = o3d.core.Tensor(mesh.normals)
        if mesh.colors is not None:
            out.vertex.colors = o3d.core.Tensor(mesh.colors.astype(np.float32) / 255.0)
        if not o3d.t.io.write_triangle_mesh(os.fspath(path), out, write_ascii=False):
            raise OSError(f"Open3D could not write {os.fspath(path)!r}")
        return mesh

    def ply_bytes(self) -> bytes:
        """The PLY file's bytes (for a REST response)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "twin.ply"
            self.export_ply(path)
            return path.read_bytes()

    def glb_bytes(self) -> bytes:
        """A glTF 2.0 binary: the mesh (POSITION, NORMAL, COLOR_0, indices) and one node per
        marker (name, translation, rotation), all under a root node turning the world y-up."""
        mesh = self.mesh()
        nodes = []
        for marker in self.markers():
            pose = np.asarray(marker.world_from_marker).reshape(4, 4)
            nodes.append(
                GltfNode(
                    marker.name,
                    (float(pose[0, 3]), float(pose[1, 3]), float(pose[2, 3])),
                    quaternion_xyzw(pose[:3, :3]),
                    {"marker_id": marker.id, "sightings": marker.sightings},
                )
            )
        return glb_bytes(
            mesh.vertices,
            mesh.triangles,
            normals=mesh.normals,
            colors=mesh.colors,
            nodes=nodes,
            root_name="fieldsight twin",
            root_rotation_xyzw=(1.0, 0.0, 0.0, 0.0),  # 180 deg about x: OpenCV y-down -> y-up
        )

    def export_glb(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_bytes(self.glb_bytes())
