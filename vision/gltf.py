"""A minimal glTF 2.0 binary (GLB) writer: one triangle mesh and named empty nodes.

Enough for the digital twin export (no new dependency): POSITION (with the min/max the spec
requires), optional NORMAL and COLOR_0 (normalized RGBA bytes, 4-byte aligned), uint32 indices,
and named nodes with a translation and rotation (markers). Everything hangs under one root node
whose rotation maps the caller's world axes to glTF's y-up.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["GltfNode", "glb_bytes", "quaternion_xyzw"]

_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_FLOAT, _UNSIGNED_BYTE, _UNSIGNED_INT = 5126, 5121, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass(frozen=True)
class GltfNode:
    """An empty node: a name, where it is and how it is turned (quaternion x, y, z, w)."""

    name: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    extras: dict[str, Any] = field(default_factory=dict)


def quaternion_xyzw(rotation: npt.ArrayLike) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of a 3x3 rotation matrix, w >= 0."""
    m = np.asarray(rotation, np.float64).reshape(3, 3)
    trace = float(np.trace(m))
    if trace > 0:
        s = math.sqrt(trace + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12)) * 2
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = s / 4
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    out = np.asarray(q, np.float64)
    out /= np.linalg.norm(out)
    if out[3] < 0:
        out = -out
    return float(out[0]), float(out[1]), float(out[2]), float(out[3])


def glb_bytes(
    vertices: npt.NDArray[np.float32],
    triangles: npt.NDArray[np.uint32],
    *,
    normals: npt.NDArray[np.float32] | None = None,
    colors: npt.NDArray[np.uint8] | None = None,
    nodes: Sequence[GltfNode] = (),
    root_name: str = "root",
    root_rotation_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0),
) -> bytes:
    """The GLB file. ``colors`` are (N, 3) RGB bytes. A mesh without triangles is left out
    (nodes only)."""
    positions = np.ascontiguousarray(vertices, np.float32).reshape(-1, 3)
    indices = np.ascontiguousarray(triangles, np.uint32).reshape(-1)
    blob = bytearray()
    views: list[dict[str, Any]] = []
    accessors: list[dict[str, Any]] = []

    def add(data: npt.NDArray[Any], target: int, **accessor: Any) -> int:
        while len(blob) % 4:
            blob.append(0)
        views.append(
            {"buffer": 0, "byteOffset": len(blob), "byteLength": data.nbytes, "target": target}
        )
        blob.extend(data.tobytes())
        accessors.append({"bufferView": len(views) - 1, **accessor})
        return len(accessors) - 1

    scene_children: list[int] = []
    gltf_nodes: list[dict[str, Any]] = [
        {"name": root_name, "rotation": list(root_rotation_xyzw), "children": scene_children}
    ]
    meshes: list[dict[str, Any]] = []
    if len(indices) and len(positions):
        attributes = {
            "POSITION": add(
                positions,
                _ARRAY_BUFFER,
                componentType=_FLOAT,
                count=len(positions),
                type="VEC3",
                min=[float(x) for x in positions.min(axis=0)],
                max=[float(x) for x in positions.max(axis=0)],
            )
        }
        if normals is not None:
            n = np.ascontiguousarray(normals, np.float32).reshape(-1, 3)
            attributes["NORMAL"] = add(
                n, _ARRAY_BUFFER, componentType=_FLOAT, count=len(n), type="VEC3"
            )
        if colors is not None:
            rgb = np.asarray(colors, np.uint8).reshape(-1, 3)
            rgba = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
            attributes["COLOR_0"] = add(
                np.ascontiguousarray(rgba),
                _ARRAY_BUFFER,
                componentType=_UNSIGNED_BYTE,
                normalized=True,
                count=len(rgba),
                type="VEC4",
            )
        index = add(
            indices,
            _ELEMENT_ARRAY_BUFFER,
            componentType=_UNSIGNED_INT,
            count=len(indices),
            type="SCALAR",
        )
        meshes.append(
            {
                "name": "surface",
                "primitives": [{"attributes": attributes, "indices": index, "mode": 4}],
            }
        )
        gltf_nodes.append({"name": "surface", "mesh": 0})
        scene_children.append(len(gltf_nodes) - 1)
    for node in nodes:
        entry: dict[str, Any] = {
            "name": node.name,
            "translation": [float(x) for x in node.translation],
            "rotation": [float(x) for x in node.rotation],
        }
        if node.extras:
            entry["extras"] = node.extras
        gltf_nodes.append(entry)
        scene_children.append(len(gltf_nodes) - 1)
    if not scene_children:
        del gltf_nodes[0]["children"]
    while len(blob) % 4:
        blob.append(0)
    document: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "fieldsight vision.gltf"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": gltf_nodes,
    }
    if meshes:
        document |= {
            "meshes": meshes,
            "accessors": accessors,
            "bufferViews": views,
            "buffers": [{"byteLength": len(blob)}],
        }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), _CHUNK_JSON) + text
    if meshes:
        chunks += struct.pack("<II", len(blob), _CHUNK_BIN) + bytes(blob)
    return struct.pack("<III", _GLB_MAGIC, 2, 12 + len(chunks)) + chunks
