"""``python -m tests.bench.vision [--quick]``: the vision pipeline on ONE core, offline.

Builds a scene per size (640x480, 1280x720): a cluttered background (``textured_background``) with
two real photos of people (scikit-image's astronaut, matplotlib's Grace Hopper), a tilted ArUco
marker (``render_marker_scene``), an equipment reference texture and a QR code; then films it with
a slow hand-held camera (drift, roll, zoom: one ``warpAffine`` per frame), so pose tracking,
optical-flow tracking and re-detection all happen. Every configuration gets a fresh ``Pipeline``,
a warm-up, then the measured frames: per-stage ms p50/p95 from ``FrameResult.timings_ms`` and
fps (frames / wall time, and 1000 / p50 of ``total``).

The process (every thread) is pinned to one CPU, ``cv2.setNumThreads(1)`` and the pose model
runs with one thread. The machine may be shared: read ``cpu/wall`` (1.0 = we had the core to
ourselves) and the load averages before the figures. Writes ``bench-results/vision-<ts>.json``
and ``bench-results/vision-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from tests.bench.report import machine_facts
from tests.bench.stats import percentile
from vision import EquipmentLibrary, Pipeline, PipelineOptions, PoseOptions, Telemetry
from vision import available_stages as vision_stages
from vision.synthetic import facing_rvec, render_marker_scene, textured_background
from vision.types import Intrinsics

REPO = Path(__file__).resolve().parents[2]
SIZES = ((640, 480), (1280, 720))
GOAL_FPS = 60.0
MARGIN = 1.2  # the scene is this much larger than a frame, so the camera can wander
Frame = npt.NDArray[np.uint8]


def _log(message: str) -> None:
    print(f"[bench-vision {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def goal_config() -> tuple[str, tuple[str, ...]]:
    stages = ("markers", "pose") + (("tracking",) if "tracking" in vision_stages() else ())
    return "+".join(stages), stages


def configurations() -> dict[str, tuple[str, ...]]:
    name, stages = goal_config()
    return {
        "markers": ("markers",),
        "pose": ("pose",),
        "pose+ergonomics": ("pose", "ergonomics"),
        name: stages,
        "equipment": ("equipment",),
        "qr": ("qr",),
    }


def _paste(canvas: Frame, image: Frame, x: int, y: int, width: int) -> None:
    height = round(image.shape[0] * width / image.shape[1])
    canvas[y : y + height, x : x + width] = cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA
    )


def _photos() -> tuple[Frame, Frame]:
    from matplotlib.cbook import get_sample_data
    from skimage.data import astronaut

    hopper = cv2.imread(str(get_sample_data("grace_hopper.jpg", asfileobj=False)))
    rgb = astronaut()  # type: ignore[no-untyped-call]
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.uint8), np.asarray(hopper, np.uint8)


def equipment_reference() -> Frame:
    return textured_background(400, 300, seed=11)


def qr_image(text: str = "ASSET-0042") -> Frame:
    code = cv2.QRCodeEncoder.create().encode(text)  # 1 px a module, with a quiet zone
    return np.asarray(cv2.cvtColor(code, cv2.COLOR_GRAY2BGR), np.uint8)


def scene(width: int, height: int) -> Frame:
    """The world the camera looks at: (MARGIN * height, MARGIN * width) BGR. Positions are in
    canvas heights from the centre, inside what a 4:3 frame always sees while it moves."""
    w, h = round(width * MARGIN), round(height * MARGIN)
    canvas = textured_background(w, h, seed=1)
    astronaut, hopper = _photos()

    def at(x: float, y: float) -> tuple[int, int]:
        return round(w / 2 + x * h), round(h / 2 + y * h)

    _paste(canvas, astronaut, *at(-0.50, -0.30), round(0.56 * h))
    _paste(canvas, hopper, *at(0.09, -0.17), round(0.22 * h))
    _paste(canvas, qr_image(), *at(0.09, -0.35), round(0.15 * h))
    _paste(canvas, equipment_reference(), *at(0.26, -0.35), round(0.20 * h))
    camera = Intrinsics.from_fov(w, h)
    z = camera.fx * 0.10 * 8 / 6 / (0.16 * h)  # the sheet (marker + quiet zone) 0.16 h wide
    tvec = (0.38 * h * z / camera.fx, 0.14 * h * z / camera.fy, z)
    return render_marker_scene(
        canvas, 7, "aruco_4x4_50", 0.10, facing_rvec(25.0, 30.0), tvec, camera
    )


def sequence(width: int, height: int, count: int) -> list[Frame]:
    """``count`` frames of a slow hand-held pan over :func:`scene` (a few px a frame)."""
    world = scene(width, height)
    cx, cy = world.shape[1] / 2, world.shape[0] / 2
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        dx = 0.04 * width * math.sin(2 * math.pi * t)
        dy = 0.03 * height * math.sin(4 * math.pi * t + 0.5)
        angle = 2.0 * math.sin(2 * math.pi * t + 1.0)
        zoom = 1.0 + 0.04 * math.sin(math.pi * t)
        m = cv2.getRotationMatrix2D((cx + dx, cy + dy), angle, zoom)
        m[:, 2] += (width / 2 - cx - dx, height / 2 - cy - dy)
        frame = cv2.warpAffine(world, m, (width, height), flags=cv2.INTER_LINEAR)
        frames.append(np.asarray(frame, np.uint8))
    return frames


def pin_to_one_core() -> int:
    """Pin every thread of this process to the last CPU we may use; returns its number."""
    cpu = max(os.sched_getaffinity(0))
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass
    cv2.setNumThreads(1)
    return cpu


def bench(stages: tuple[str, ...], frames: list[Frame], warmup: int, passes: int) -> dict[str, Any]:
    library = EquipmentLibrary()
    library.add("panel", 0.40, equipment_reference())
    options = PipelineOptions(
        stages=stages,
        pose=PoseOptions(num_threads=1),
        equipment_library=library,
        qr_asset_names={"ASSET-0042": "panel"},
    )
    per_stage: dict[str, list[float]] = {}
    found = {"persons": 0, "markers": 0, "objects": 0, "camera_pose": 0}
    with Pipeline(options) as pipeline:
        for i, frame in enumerate(frames[:warmup]):
            pipeline.process(frame, Telemetry(pts=i * 3000))
        pts = warmup
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(passes):
            for frame in frames:
                result = pipeline.process(frame, Telemetry(pts=pts * 3000))
                pts += 1
                for name, ms in result.timings_ms:
                    per_stage.setdefault(name, []).append(ms)
                found["persons"] += len(result.persons)
                found["markers"] += len(result.markers)
                found["objects"] += len(result.objects)
                found["camera_pose"] += result.camera_pose is not None
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = passes * len(frames)
    total = per_stage["total"]
    return {
        "stages": list(stages),
        "frames": n,
        "stage_ms": {
            k: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for k, v in per_stage.items()
        },
        "fps_wall": round(n / wall, 1),
        "fps_p50": round(1000.0 / max(percentile(total, 50) or 1e-3, 1e-3), 1),
        "cpu_over_wall": round(cpu / wall, 2),
        "found_per_frame": {k: round(v / n, 2) for k, v in found.items()},
    }


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Vision pipeline, one core (cpu {result['cpu']}: {m['cpu_model']}), mode {result['mode']}",
        f"load average: start {m['loadavg_at_start']}, end {m['loadavg_at_end']}",
        "",
        f"{'size':<9} {'config':<22} {'fps wall':>8} {'fps p50':>8} {'cpu/wall':>8}  "
        "stage ms p50/p95 ... | found per frame",
    ]
    for size, configs in result["runs"].items():
        for name, r in configs.items():
            if "error" in r:
                lines.append(f"{size:<9} {name:<22} error: {r['error']}")
                continue
            stages = "  ".join(f"{k} {v['p50']}/{v['p95']}" for k, v in r["stage_ms"].items())
            seen = " ".join(f"{k}={v}" for k, v in r["found_per_frame"].items() if v)
            lines.append(
                f"{size:<9} {name:<22} {r['fps_wall']:>8} {r['fps_p50']:>8} "
                f"{r['cpu_over_wall']:>8}  {stages} | {seen or '-'}"
            )
    v = result["verdict"]
    met = {True: "MET", False: "MISSED", None: "not measured"}[v["met"]]
    lines += ["", f"goal: {v['what']} {v['target']}: {v['measured']} -> {met}"]
    return "\n".join(lines)


def run(quick: bool) -> dict[str, Any]:
    facts = machine_facts()
    cpu = pin_to_one_core()
    count, warmup, passes = (30, 5, 1) if quick else (90, 10, 2)
    result: dict[str, Any] = {
        "mode": "quick" if quick else "default",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": cpu,
        "machine": facts,
        "frames_per_sequence": count,
        "warmup_frames": warmup,
        "passes": passes,
        "available_stages": list(vision_stages()),
        "runs": {},
    }
    for width, height in SIZES:
        size = f"{width}x{height}"
        frames = sequence(width, height, count)
        result["runs"][size] = {}
        for name, stages in configurations().items():
            _log(f"{size} {name}: {passes} x {count} frames")
            try:
                result["runs"][size][name] = bench(stages, frames, warmup, passes)
            except Exception as exc:  # a missing model or stage must not sink the other figures
                result["runs"][size][name] = {"stages": list(stages), "error": repr(exc)}
    goal_name, _ = goal_config()
    goal = result["runs"]["640x480"][goal_name]
    fps = goal.get("fps_wall")
    result["verdict"] = {
        "what": f"{goal_name} at 640x480, one core, fps (wall)",
        "target": f">= {GOAL_FPS:.0f} fps",
        "measured": None if fps is None else f"{fps} fps (p50 {goal['fps_p50']})",
        "met": None if fps is None else fps >= GOAL_FPS,
    }
    facts["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def write_json(result: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    path = out_dir / f"vision-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(text)
    (out_dir / "vision-latest.json").write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.vision", description=__doc__)
    p.add_argument("--quick", action="store_true", help="30 frames a size, one pass")
    p.add_argument("--out", type=Path, default=REPO / "bench-results", help="JSON directory")
    p.add_argument("--save-frame", type=Path, help="write the first 640x480 frame (a PNG) and exit")
    args = p.parse_args(argv)
    if args.save_frame:
        cv2.imwrite(str(args.save_frame), sequence(640, 480, 1)[0])
        return 0
    started = time.monotonic()
    result = run(args.quick)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    path = write_json(result, args.out)
    print(render(result))
    print(
        f"\nJSON: {path} (and {args.out / 'vision-latest.json'}); took {result['wall_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
