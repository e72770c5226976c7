#!/usr/bin/env python3
"""Re-extract the BlazePose models in this folder from their published packages.

    python assets/pose/rebuild.py          # downloads, extracts, checks sha256

``pose_detection.tflite`` and ``pose_landmark_full.tflite`` come from the mediapipe 0.10.21 wheel
on PyPI (through pip; the wheel is never installed, so its numpy<2 pin does not matter);
``pose_landmark_lite.tflite`` from MediaPipe's npm package ``@mediapipe/pose`` (the npm registry,
through ``npm pack``), which ships the same full model byte for byte beside the lite one.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WHEEL = "mediapipe==0.10.21"
FILES = {
    "mediapipe/modules/pose_detection/pose_detection.tflite": (
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"
    ),
    "mediapipe/modules/pose_landmark/pose_landmark_full.tflite": (
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"
    ),
}

NPM_PACKAGE = "@mediapipe/pose@0.5.1675469404"
NPM_FILES = {
    "package/pose_landmark_lite.tflite": (
        "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61"
    ),
}


def _write(name: str, data: bytes, digest: str) -> bool:
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        print(f"{name}: sha256 {got} != expected {digest}", file=sys.stderr)  # noqa: T201
        return False
    (HERE / Path(name).name).write_bytes(data)
    print(f"wrote {Path(name).name} ({len(data)} bytes, sha256 ok)")  # noqa: T201
    return True


def from_npm() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--pack-destination", tmp], check=True)
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as tf:
            for member, digest in NPM_FILES.items():
                handle = tf.extractfile(member)
                if handle is None or not _write(member, handle.read(), digest):
                    return False
    return True


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                WHEEL,
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                "manylinux_2_28_x86_64",
                "--python-version",
                "3.11",
                "-d",
                tmp,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for member, digest in FILES.items():
                if not _write(member, zf.read(member), digest):
                    return 1
    return 0 if from_npm() else 1


if __name__ == "__main__":
    sys.exit(main())
