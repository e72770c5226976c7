#!/usr/bin/env python3
"""Re-extract the BlazePose models in this folder from the mediapipe 0.10.21 wheel on PyPI.

    python assets/pose/rebuild.py          # downloads the wheel with pip, extracts, checks sha256

Only PyPI is contacted (through pip). The wheel is never installed: the two .tflite files are
read out of it, so mediapipe 0.10.21's numpy<2 pin does not matter.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
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
                data = zf.read(member)
                got = hashlib.sha256(data).hexdigest()
                if got != digest:
                    print(f"{member}: sha256 {got} != expected {digest}", file=sys.stderr)  # noqa: T201
                    return 1
                (HERE / Path(member).name).write_bytes(data)
                print(f"wrote {Path(member).name} ({len(data)} bytes, sha256 ok)")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
