"""A deployer's own ONNX object detector, run with ``cv2.dnn`` as a pipeline stage.

Input: the frame is converted to RGB, stretched (no letterbox) to ``input_size`` = (width,
height), scaled to 0..1 and fed as one NCHW float32 tensor ``[1, 3, height, width]``.

Output layouts (``output_format``):

``"yolo"``
    One output ``[1, N, 4 + C]`` (or ``[1, 4 + C, N]``, the YOLOv8 export, detected by shape):
    per candidate ``cx, cy, w, h`` in input pixels, then ``C`` class scores in 0..1 (no separate
    objectness column).
``"boxes_scores"``
    Two outputs (SSD style): boxes ``[1, N, 4]`` as ``x0, y0, x1, y1`` normalized to 0..1 of the
    input, and scores ``[1, N, C]``. The output whose last dimension is 4 is the boxes unless
    both are (C == 4), then the first output is.

``C`` must equal the number of labels in ``labels_path`` (UTF-8, one label per line). Boxes
below ``score_threshold`` are dropped, the rest go through per-class NMS at
``nms_threshold`` IoU. Boxes labelled ``person`` get ``source="person-detector"``, the rest
``"detector"``. Every problem with the model or labels is raised as :class:`DetectorLoadError`
by the constructor, which runs the model once on a blank input to check the shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import VisionError
from vision.results import DetectedObject
from vision.stages import FrameContext

__all__ = ["DetectorLoadError", "OnnxDetector", "OutputFormat", "read_labels"]

logger = logging.getLogger(__name__)

OutputFormat = Literal["yolo", "boxes_scores"]
_F32 = npt.NDArray[np.float32]
_MAX_DETECTIONS = 100


class DetectorLoadError(VisionError):
    """The configured detector model or labels file cannot be used."""


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Labels, one per line; trailing blank lines are ignored, blank lines inside are refused."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectorLoadError(f"cannot read labels file {str(path)!r}: {exc}") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DetectorLoadError(f"labels file {str(path)!r} is empty; write one label per line")
    if "" in lines:
        line = lines.index("") + 1
        raise DetectorLoadError(
            f"labels file {str(path)!r} has a blank line {line}; class ids follow line order"
        )
    return tuple(lines)


class OnnxDetector:
    """Runs an ONNX detector on every frame -> ``frame.objects``. See the module docstring."""

    def __init__(
        self,
        model_path: str | Path,
        labels_path: str | Path,
        input_size: tuple[int, int] = (640, 640),
        score_threshold: float = 0.5,
        nms_threshold: float = 0.45,
        output_format: OutputFormat = "yolo",
    ) -> None:
        if output_format not in ("yolo", "boxes_scores"):
            raise DetectorLoadError(
                f"output_format must be 'yolo' or 'boxes_scores', got {output_format!r}"
            )
        if (
            len(input_size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in input_size)
            or min(input_size) < 1
        ):
            raise DetectorLoadError(f"input_size must be (width, height) > 0, got {input_size!r}")
        for name, value in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold)):
            if not 0.0 <= value <= 1.0:
                raise DetectorLoadError(f"{name} must be in [0, 1], got {value!r}")
        self.labels = read_labels(labels_path)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.output_format: OutputFormat = output_format
        path = Path(model_path)
        if not path.is_file():
            raise DetectorLoadError(f"detector model {str(path)!r} does not exist")
        try:
            self._net: Any = cv2.dnn.readNetFromONNX(str(path))
            self._outputs: list[str] = list(self._net.getUnconnectedOutLayersNames())
        except cv2.error as exc:
            raise DetectorLoadError(
                f"{str(path)!r} is not an ONNX model cv2.dnn can load: {_first_line(exc)}"
            ) from None
        try:
            raw = self._forward(np.zeros((self.input_size[1], self.input_size[0], 3), np.uint8))
        except cv2.error as exc:
            raise DetectorLoadError(
                f"{str(path)!r} does not run on a [1, 3, {self.input_size[1]}, "
                f"{self.input_size[0]}] float input (check input_size): {_first_line(exc)}"
            ) from None
        self._decode(raw)  # raises DetectorLoadError on a layout mismatch

    def _forward(self, bgr: npt.NDArray[np.uint8]) -> list[_F32]:
        blob = cv2.dnn.blobFromImage(bgr, 1.0 / 255.0, self.input_size, swapRB=True, crop=False)
        self._net.setInput(blob)
        outs = self._net.forward(self._outputs)
        return [np.asarray(o, dtype=np.float32) for o in outs]

    def _decode(self, raw: Sequence[_F32]) -> tuple[_F32, _F32]:
        """(boxes [N, 4] x0 y0 x1 y1 in input-normalized coordinates, scores [N, C])."""
        classes = len(self.labels)
        shapes = [tuple(o.shape) for o in raw]
        if self.output_format == "yolo":
            if len(raw) != 1:
                raise DetectorLoadError(f"'yolo' format expects 1 output, the model has {shapes}")
            out = raw[0].reshape(raw[0].shape[-2:]) if raw[0].ndim == 3 else raw[0]
            if out.ndim != 2 or (out.shape[1] != 4 + classes and out.shape[0] != 4 + classes):
                raise DetectorLoadError(
                    f"'yolo' output must be [1, N, 4+C] with C={classes} labels, got {shapes}"
                )
            if out.shape[1] != 4 + classes:
                out = out.T
            w, h = self.input_size
            cx, cy, bw, bh = (out[:, i] for i in range(4))
            corners = np.stack(
                [(cx - bw / 2) / w, (cy - bh / 2) / h, (cx + bw / 2) / w, (cy + bh / 2) / h], 1
            )
            return corners.astype(np.float32), np.ascontiguousarray(out[:, 4:])
        if len(raw) != 2:
            raise DetectorLoadError(
                f"'boxes_scores' format expects 2 outputs (boxes, scores), the model has {shapes}"
            )
        first, second = (o.reshape(o.shape[-2:]) if o.ndim == 3 else o for o in raw)
        boxes, scores = (
            (second, first) if second.shape[-1] == 4 != first.shape[-1] else (first, second)
        )
        if (
            boxes.ndim != 2
            or scores.ndim != 2
            or boxes.shape[1] != 4
            or scores.shape != (boxes.shape[0], classes)
        ):
            raise DetectorLoadError(
                f"'boxes_scores' outputs must be [1, N, 4] and [1, N, C] with C={classes} "
                f"labels, got {shapes}"
            )
        return boxes, scores

    def detect(self, bgr: npt.NDArray[np.uint8]) -> tuple[DetectedObject, ...]:
        """Detections on one BGR frame, best first. Returns () if the model fails at run time."""
        try:
            boxes, scores = self._decode(self._forward(bgr))
        except (cv2.error, DetectorLoadError) as exc:
            logger.warning("detector failed on a %sx%s frame: %s", bgr.shape[1], bgr.shape[0], exc)
            return ()
        if len(boxes) == 0:
            return ()
        class_ids = np.argmax(scores, axis=1)
        best = scores[np.arange(len(scores)), class_ids]
        keep = np.flatnonzero((best >= self.score_threshold) & np.all(np.isfinite(boxes), axis=1))
        if len(keep) == 0:
            return ()
        boxes, best, class_ids = boxes[keep], best[keep], class_ids[keep]
        rects = [(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])) for b in boxes]
        chosen = cv2.dnn.NMSBoxesBatched(
            rects, best.tolist(), class_ids.tolist(), self.score_threshold, self.nms_threshold
        )
        order = sorted(np.asarray(chosen).ravel().tolist(), key=lambda i: -float(best[i]))
        found = []
        for i in order[:_MAX_DETECTIONS]:
            label = self.labels[int(class_ids[i])]
            u0, v0, u1, v1 = (float(np.clip(c, 0.0, 1.0)) for c in boxes[i])
            if u1 <= u0 or v1 <= v0:
                continue
            found.append(
                DetectedObject(
                    label=label,
                    score=float(best[i]),
                    bbox=(u0, v0, u1, v1),
                    source="person-detector" if label.lower() == "person" else "detector",
                )
            )
        return tuple(found)

    def run(self, frame: FrameContext) -> None:
        found = self.detect(frame.bgr)
        if found:
            frame.objects = (*frame.objects, *found)

    def close(self) -> None:
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
