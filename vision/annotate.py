"""``python -m vision annotate INPUT [--out OUTPUT] [--json PATH]``: the pipeline on a file.

INPUT is an image (anything OpenCV reads) or a video. OUTPUT gets the annotated image or video;
``--json`` gets one result per analysed frame (``frames``: the overlay payload of each, i.e.
``persons``, ``markers``, ``objects``…). Exit status 2 with a message for unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.draw import draw_result
from vision.errors import VisionError
from vision.pipeline import Pipeline, PipelineOptions, available_stages
from vision.types import Intrinsics, Telemetry

__all__ = ["AnnotateError", "annotate", "main"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_RATE = 90_000


class AnnotateError(VisionError):
    """The input cannot be read, or the output cannot be written."""


def _read_image(path: Path) -> npt.NDArray[np.uint8]:
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise AnnotateError(f"{path}: not an image OpenCV can decode (corrupt or unsupported)")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF: scale to 8 bits
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1.0, float(image.max())))
    return np.asarray(image, dtype=np.uint8)


def _video_frames(path: Path) -> Iterator[tuple[int, npt.NDArray[np.uint8], float]]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise AnnotateError(f"{path}: not a video OpenCV can open (corrupt or unsupported)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, np.asarray(frame, dtype=np.uint8), fps
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise AnnotateError(f"{path}: the video has no decodable frame")


def annotate(
    source: Path,
    out: Path | None = None,
    json_path: Path | None = None,
    options: PipelineOptions | None = None,
    every: int = 1,
) -> list[dict[str, Any]]:
    """Run the pipeline over ``source``; write what was asked; return the per-frame results."""
    if not source.is_file():
        raise AnnotateError(f"{source}: no such file")
    results: list[dict[str, Any]] = []
    with Pipeline(options) as pipeline:
        if source.suffix.lower() in IMAGE_SUFFIXES:
            image = _read_image(source)
            result = pipeline.process(image, Telemetry(pts=0))
            results.append(result.to_dict())
            if out is not None and not cv2.imwrite(str(out), draw_result(image, result)):
                raise AnnotateError(f"{out}: cannot write an image there (check the suffix)")
        else:
            writer = _VideoOut(out) if out is not None else None
            try:
                for index, frame, fps in _video_frames(source):
                    if index % every:
                        continue
                    pts = round(index * VIDEO_RATE / fps)
                    result = pipeline.process(frame, Telemetry(pts=pts))
                    results.append({"frame": index, **result.to_dict()})
                    if writer is not None:
                        writer.write(draw_result(frame, result), fps / every)
            finally:
                if writer is not None:
                    writer.close()
    if json_path is not None:
        json_path.write_text(json.dumps({"source": str(source), "frames": results}) + "\n")
    return results


class _VideoOut:
    """An MP4 writer sized by the first frame; later frames of another size are scaled to it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: cv2.VideoWriter | None = None
        self._size = (0, 0)

    def write(self, image: npt.NDArray[np.uint8], fps: float) -> None:
        size = (image.shape[1], image.shape[0])
        if self._writer is None:
            self._size = size
            self._writer = cv2.VideoWriter(
                str(self._path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size
            )
            if not self._writer.isOpened():
                raise AnnotateError(f"{self._path}: cannot write a video there (use .mp4 or .avi)")
        if size != self._size:
            image = np.asarray(cv2.resize(image, self._size), dtype=np.uint8)
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision annotate", description=__doc__)
    parser.add_argument("input", type=Path)
    parser.add_argument("--out", type=Path, help="annotated image or video to write")
    parser.add_argument("--json", type=Path, dest="json_path", help="per-frame results as JSON")
    parser.add_argument("--stages", default="markers",
                        help=f"comma-separated, from: {', '.join(available_stages())}")  # fmt: skip
    parser.add_argument("--every", type=int, default=1, help="analyse every Nth video frame")
    parser.add_argument("--hfov", type=float, default=60.0, help="horizontal field of view, deg")
    parser.add_argument("--intrinsics", type=Path, help="JSON {fx, fy, cx, cy, width, height}")
    args = parser.parse_args(argv)
    try:
        intrinsics = None
        if args.intrinsics is not None:
            intrinsics = Intrinsics.from_dict(json.loads(args.intrinsics.read_text()))
        options = PipelineOptions(
            stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()),
            hfov_deg=args.hfov,
            intrinsics=intrinsics,
        )
        results = annotate(args.input, args.out, args.json_path, options, max(1, args.every))
    except (VisionError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    markers = sum(len(r["markers"]) for r in results)
    persons = sum(len(r["persons"]) for r in results)
    print(f"{len(results)} frame(s): {markers} marker and {persons} person detections")  # noqa: T201
    return 0
