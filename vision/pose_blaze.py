"""BlazePose (MediaPipe's Apache-2.0 models) run directly with a LiteRT interpreter.

Two models: ``pose_detection.tflite`` (an SSD that finds a person's hip centre and body size)
and ``pose_landmark_full.tflite`` or ``pose_landmark_lite.tflite`` (39 landmarks in a rotated
square crop: the 33 BlazePose points plus two auxiliary points used to place the next frame's
crop). This module holds only the
numerics; tracking and the pipeline stage live in :mod:`vision.pose`. Pre/post-processing
follows MediaPipe's graphs (``pose_detection_cpu``, ``pose_landmark_by_roi_cpu``,
``pose_landmarks_to_roi``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import VisionError

__all__ = ["LANDMARK_VARIANTS", "BlazePose", "Landmarks", "Roi", "default_model_dir"]

F32 = npt.NDArray[np.float32]
DET_SIZE = 224
LMK_SIZE = 256
LANDMARK_VARIANTS = {"full": "pose_landmark_full.tflite", "lite": "pose_landmark_lite.tflite"}
"""Landmark models by name: ``lite`` is ~1.5x faster, ``full`` more precise on hands and feet."""


def default_model_dir() -> Path:
    """``assets/pose`` of the source tree (see ``assets/pose/README.md``)."""
    return Path(__file__).resolve().parent.parent / "assets" / "pose"


@dataclass(frozen=True, slots=True)
class Roi:
    """A rotated square crop in pixels: centre, side, rotation (radians, image y down)."""

    cx: float
    cy: float
    size: float
    rotation: float

    def scaled(self, sx: float, sy: float) -> Roi:
        return Roi(self.cx * sx, self.cy * sy, self.size * math.sqrt(sx * sy), self.rotation)

    def box(self) -> tuple[float, float, float, float]:
        h = self.size / 2.0
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Model output for one crop, projected back to the image."""

    points: F32
    """(39, 4): x, y in pixels, z (crop-relative), visibility 0..1."""
    world: F32
    """(39, 3) metric, hip-centred, image-aligned axes."""
    presence: float
    roi: Roi


def _ssd_anchors() -> F32:
    """The 2254 anchor centres of MediaPipe's pose detector (fixed size 1x1)."""
    strides, per_layer = (8, 16, 32, 32, 32), []
    layer = 0
    while layer < len(strides):
        last, count = layer, 0
        while last < len(strides) and strides[last] == strides[layer]:
            count += 2  # aspect ratio 1.0 + interpolated scale, per layer
            last += 1
        n = math.ceil(DET_SIZE / strides[layer])
        ys, xs = np.mgrid[0:n, 0:n]
        centres = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], axis=-1).reshape(-1, 1, 2)
        per_layer.append(np.repeat(centres, count, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(per_layer).astype(np.float32)


def _sigmoid(x: F32) -> F32:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0))), dtype=np.float32)


def _aligned_roi(x0: float, y0: float, x1: float, y1: float, scale: float) -> Roi:
    """Centre at point 0, side 2*|p1-p0|*scale, rotated so p0->p1 points up."""
    angle = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    return Roi(x0, y0, 2.0 * math.hypot(x1 - x0, y1 - y0) * scale, angle)


def _weighted_nms(boxes: F32, scores: F32, iou: float) -> list[tuple[float, F32]]:
    """MediaPipe's weighted NMS: overlapping candidates are averaged by score."""
    order, out = list(np.argsort(-scores)), []
    while order:
        best = boxes[order[0]]
        rest = boxes[order]
        ix = np.clip(np.minimum(rest[:, 2], best[2]) - np.maximum(rest[:, 0], best[0]), 0, None)
        iy = np.clip(np.minimum(rest[:, 3], best[3]) - np.maximum(rest[:, 1], best[1]), 0, None)
        inter = ix * iy
        area = (rest[:, 2] - rest[:, 0]) * (rest[:, 3] - rest[:, 1])
        area0 = (best[2] - best[0]) * (best[3] - best[1])
        overlap = inter / np.maximum(area + area0 - inter, 1e-9)
        group = [order[i] for i in range(len(order)) if overlap[i] > iou]
        w = scores[group][:, None]
        out.append((float(scores[order[0]]), np.asarray((boxes[group] * w).sum(0) / w.sum())))
        order = [i for i in order if i not in set(group)]
    return out


class BlazePose:
    """Detector + landmark model on one interpreter thread each. Not thread-safe."""

    def __init__(
        self, model_dir: Path | None = None, num_threads: int = 1, variant: str = "full"
    ) -> None:
        if variant not in LANDMARK_VARIANTS:
            raise VisionError(
                f"unknown pose landmark model {variant!r}; "
                f"choose one of {sorted(LANDMARK_VARIANTS)}"
            )
        folder = model_dir if model_dir is not None else default_model_dir()
        paths = [folder / "pose_detection.tflite", folder / LANDMARK_VARIANTS[variant]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise VisionError(
                f"pose model file(s) missing: {', '.join(missing)}; run assets/pose/rebuild.py "
                "or set PoseOptions.model_dir"
            )
        try:
            interpreter: Any = importlib.import_module("ai_edge_litert.interpreter")
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise VisionError(
                "the pose stage needs ai-edge-litert (pip install ai-edge-litert)"
            ) from exc
        self._det: Any = interpreter.Interpreter(model_path=str(paths[0]), num_threads=num_threads)
        self._lmk: Any = interpreter.Interpreter(model_path=str(paths[1]), num_threads=num_threads)
        for it in (self._det, self._lmk):
            it.allocate_tensors()
        self._det_in = self._det.get_input_details()[0]["index"]
        det_out = {d["name"]: d["index"] for d in self._det.get_output_details()}
        self._det_boxes, self._det_scores = det_out["Identity"], det_out["Identity_1"]
        self._lmk_in = self._lmk.get_input_details()[0]["index"]
        lmk_out = {d["name"]: d["index"] for d in self._lmk.get_output_details()}
        self._lmk_points, self._lmk_flag = lmk_out["Identity"], lmk_out["Identity_1"]
        self._lmk_world = lmk_out["Identity_4"]
        self._anchors = _ssd_anchors()

    def detect(
        self, rgb: npt.NDArray[np.uint8], min_score: float = 0.5, max_count: int = 4
    ) -> list[tuple[float, Roi]]:
        """Persons in an RGB image as (score, crop for the landmark model), best first."""
        h, w = rgb.shape[:2]
        scale = DET_SIZE / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        px, py = (DET_SIZE - nw) // 2, (DET_SIZE - nh) // 2
        canvas = np.zeros((DET_SIZE, DET_SIZE, 3), np.float32)
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        canvas[py : py + nh, px : px + nw] = resized.astype(np.float32) / 127.5 - 1.0
        self._det.set_tensor(self._det_in, canvas[None])
        self._det.invoke()
        raw = self._det.get_tensor(self._det_boxes)[0]
        scores = _sigmoid(self._det.get_tensor(self._det_scores)[0, :, 0])
        keep = np.flatnonzero(scores >= min_score)
        if keep.size == 0:
            return []
        a = self._anchors[keep]
        r = raw[keep] / DET_SIZE
        cx, cy, bw, bh = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1], r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = r[:, 4:8].reshape(-1, 2, 2) + a[:, None, :]
        merged = _weighted_nms(
            np.concatenate([boxes, kps.reshape(-1, 4)], axis=1), scores[keep], 0.3
        )
        out = []
        for score, row in merged[:max_count]:
            # letterboxed [0, 1] -> image pixels
            pts = (row[4:8].reshape(2, 2) * DET_SIZE - (px, py)) / scale
            x0, y0, x1, y1 = (float(v) for v in pts.reshape(-1))
            out.append((score, _aligned_roi(x0, y0, x1, y1, scale=1.25)))
        return out

    def landmarks(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> Landmarks:
        """Run the landmark model on ``roi`` and project its output back to the image."""
        c, s = math.cos(roi.rotation), math.sin(roi.rotation)
        rot = np.array([[c, -s], [s, c]], np.float32) * roi.size
        centre = np.array([roi.cx, roi.cy], np.float32)
        unit = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]], np.float32)
        src = (unit @ rot.T + centre).astype(np.float32)
        dst = np.array([[0, 0], [LMK_SIZE, 0], [0, LMK_SIZE]], np.float32)
        crop = cv2.warpAffine(
            rgb, cv2.getAffineTransform(src, dst), (LMK_SIZE, LMK_SIZE), flags=cv2.INTER_LINEAR
        )
        self._lmk.set_tensor(self._lmk_in, (crop.astype(np.float32) / 255.0)[None])
        self._lmk.invoke()
        raw = self._lmk.get_tensor(self._lmk_points).reshape(39, 5)
        presence = float(self._lmk.get_tensor(self._lmk_flag).reshape(-1)[0])
        world = self._lmk.get_tensor(self._lmk_world).reshape(39, 3).astype(np.float32)
        xy = (raw[:, :2] / LMK_SIZE - 0.5) @ rot.T + centre
        points = np.empty((39, 4), np.float32)
        points[:, :2] = xy
        points[:, 2] = raw[:, 2] / LMK_SIZE * roi.size
        points[:, 3] = _sigmoid(raw[:, 3])
        world[:, :2] = world[:, :2] @ np.array([[c, -s], [s, c]], np.float32).T
        return Landmarks(points, world, presence, roi)

    @staticmethod
    def next_roi(points: F32) -> Roi:
        """The crop for the next frame, from the auxiliary landmarks 33 (centre) and 34 (size)."""
        return _aligned_roi(
            float(points[33, 0]),
            float(points[33, 1]),
            float(points[34, 0]),
            float(points[34, 1]),
            scale=1.25,
        )
