"""``python -m vision annotate`` on images and videos, good and bad."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.annotate import AnnotateError, annotate
from vision.synthetic import facing_rvec, render_marker_scene, textured_background
from vision.types import Intrinsics

INTRINSICS = Intrinsics.from_fov(640, 480, 60.0)


def scene(marker_id: int = 7, z: float = 0.8, x: float = 0.0) -> np.ndarray:
    background = textured_background(640, 480, seed=3)
    return render_marker_scene(
        background, marker_id, "aruco_4x4_50", 0.10, facing_rvec(20.0, 30.0), (x, 0.0, z),
        INTRINSICS,
    )  # fmt: skip


def test_image_annotated_with_json(tmp_path: Path) -> None:
    source = tmp_path / "scene.png"
    cv2.imwrite(str(source), scene())
    out, report = tmp_path / "out.png", tmp_path / "out.json"
    results = annotate(source, out, report)
    assert [m["id"] for m in results[0]["markers"]] == [7]
    data = json.loads(report.read_text())
    marker = data["frames"][0]["markers"][0]
    assert set(marker) >= {"id", "corners", "rvec", "tvec"}
    assert marker["tvec"][2] == pytest.approx(0.8, abs=0.02)
    drawn = cv2.imread(str(out))
    assert drawn.shape == (480, 640, 3)
    assert np.abs(drawn.astype(int) - cv2.imread(str(source)).astype(int)).sum() > 0


def test_video_annotated_frame_by_frame(tmp_path: Path) -> None:
    source = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
    for i in range(6):
        writer.write(scene(x=-0.1 + 0.04 * i))
    writer.release()
    out, report = tmp_path / "out.mp4", tmp_path / "out.json"
    results = annotate(source, out, report, every=2)
    assert [r["frame"] for r in results] == [0, 2, 4]
    assert all([m["id"] for m in r["markers"]] == [7] for r in results)
    xs = [r["markers"][0]["tvec"][0] for r in results]
    assert xs == sorted(xs)  # the marker moves right, and the poses say so
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 3
    assert [f["pts"] for f in json.loads(report.read_text())["frames"]] == [0, 18000, 36000]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("broken.png", b"\x89PNG\r\n\x1a\nnot really", "not an image"),
        ("empty.jpg", b"", "not an image"),
        ("broken.mp4", b"\x00\x00\x00\x18ftypmp42 garbage", "video"),
    ],
)
def test_corrupt_input_gets_a_clear_error(
    tmp_path: Path, name: str, content: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AnnotateError, match=words):
        annotate(path)


def test_command_line(tmp_path: Path) -> None:
    source = tmp_path / "scene.jpg"
    cv2.imwrite(str(source), scene())
    ok = subprocess.run(
        [sys.executable, "-m", "vision", "annotate", str(source), "--json", str(tmp_path / "j")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0 and "1 marker" in ok.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "vision", "annotate", str(tmp_path / "nope.png")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad_stage = subprocess.run(
        [sys.executable, "-m", "vision", "annotate", str(source), "--stages", "telepathy"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad_stage.returncode == 2 and "telepathy" in bad_stage.stderr
