"""``python -m tests.bench.vision [--quick]``: the vision pipeline on ONE core, offline.

Builds a scene per size (640x480, 1280x720): a cluttered background (``textured_background``) with
two real photos of people (scikit-image's astronaut, matplotlib's Grace Hopper), a tilted ArUco
marker (``render_marker_scene``), an equipment reference texture and a QR code; then films it with
a slow hand-held camera (drift, roll, zoom: one ``warpAffine`` per frame), so pose tracking,
optical-flow tracking and re-detection all happen. Every configuration gets a fresh ``Pipeline``,
a warm-up, then the measured frames: per-stage ms p50/p95 from ``FrameResult.timings_ms`` and
fps (frames / wall time, and 1000 / p50 of ``total``).

Two comparisons run old and new code back to back on the same input: markers in the same video
with full detection on every frame (the baseline) vs the default tracking ``MarkerStage``
(``bench_marker_modes``), and equipment in 30 busy scenes, plain ORB vs spread features
(``bench_equipment_busy``: recall and stage ms).

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
from itertools import pairwise
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


def configurations() -> dict[str, tuple[tuple[str, ...], int]]:
    """Name -> (stages, landmark_every of the pose stage)."""
    name, stages = goal_config()
    return {
        "markers": (("markers",), 1),
        "pose": (("pose",), 1),
        "pose (every 2nd)": (("pose",), 2),
        "pose+ergonomics": (("pose", "ergonomics"), 1),
        name: (stages, 1),
        f"{name} (pose every 2nd)": (stages, 2),
        "equipment": (("equipment",), 1),
        "qr": (("qr",), 1),
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


def bench(
    stages: tuple[str, ...], frames: list[Frame], warmup: int, passes: int, pose_every: int = 1
) -> dict[str, Any]:
    library = EquipmentLibrary()
    library.add("panel", 0.40, equipment_reference())
    options = PipelineOptions(
        stages=stages,
        pose=PoseOptions(num_threads=1, landmark_every=pose_every),
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


def bench_marker_modes(frames: list[Frame], passes: int) -> dict[str, Any]:
    """Markers in a video: full detection on every frame (the baseline) vs the default
    ``MarkerStage`` (full scan every ``full_detect_every`` frames, windowed re-detection in
    between), run back to back on every frame so that both see the same machine load.
    ``max_corner_diff_px``: largest corner difference between the two (0 = same corners)."""
    from vision import MarkerDetector, MarkerStage
    from vision.stages import FrameContext

    height, width = frames[0].shape[:2]
    intrinsics = Intrinsics.from_fov(width, height)
    full_stage = MarkerStage(MarkerDetector(), tracking=None)
    tracked_stage = MarkerStage(MarkerDetector())
    assert tracked_stage.tracker is not None
    times: dict[str, list[float]] = {"full": [], "tracked": []}
    scans, id_mismatches, diff = 0, 0, 0.0
    for i in range(passes * len(frames)):
        frame = frames[i % len(frames)]
        results = {}
        for name, stage in (("full", full_stage), ("tracked", tracked_stage)):
            ctx = FrameContext(frame, Telemetry(pts=i * 3000), intrinsics, "fov-default")
            _ = ctx.gray  # colour conversion is not the stage's cost here
            started = time.perf_counter()
            stage.run(ctx)
            times[name].append((time.perf_counter() - started) * 1000.0)
            results[name] = ctx.markers
        scans += tracked_stage.tracker.last_was_full_scan
        full, tracked = results["full"], results["tracked"]
        if [m.id for m in full] != [m.id for m in tracked]:
            id_mismatches += 1
            continue
        for a, b in zip(full, tracked, strict=True):
            delta = (np.subtract(a.corners, b.corners) * [width, height]).max(initial=0.0)
            diff = max(diff, float(np.abs(delta)))
    out: dict[str, Any] = {
        "frames": len(times["full"]),
        "full_detect_every": tracked_stage.tracker.options.full_detect_every,
        "full_scans": scans,
        "id_mismatches": id_mismatches,
        "max_corner_diff_px": round(diff, 4),
    }
    for name, values in times.items():
        out[name] = {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "mean": round(float(np.mean(values)), 2),
        }
    return out


EQUIPMENT_BUSY_SCENES = 30


def bench_equipment_busy(count: int = EQUIPMENT_BUSY_SCENES) -> dict[str, Any]:
    """Equipment among two person photos (``busy_scene``: 0.5x-2x, roll +-30 deg, tilt to 30,
    blur), 640x480, ``count`` scenes with a fixed seed: recall and stage ms, plain ORB
    (1000 features, 500 on the reference: the old code) vs the spread features (defaults)."""
    from tests.unit.vision.equipment_scenes import busy_scene, plane_corners_px
    from vision.equipment import EquipmentStage
    from vision.stages import FrameContext

    camera = Intrinsics(fx=560.0, fy=558.0, cx=326.4, cy=236.9, width=640, height=480)
    reference = equipment_reference()
    rng = np.random.default_rng(7)
    scenes = [busy_scene(rng, reference, 0.30, camera) for _ in range(count)]
    old_library = EquipmentLibrary(max_features=500)
    old_library.add("panel", 0.30, reference)
    new_library = EquipmentLibrary()
    new_library.add("panel", 0.30, reference)
    configs = {
        "old": lambda: EquipmentStage(old_library, max_features=1000, feature_cell_px=None),
        "new": lambda: EquipmentStage(new_library),
    }
    out: dict[str, Any] = {"scenes": count}
    hits = dict.fromkeys(configs, 0)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for i, scene_ in enumerate(scenes):
        truth = plane_corners_px((400, 300), 0.30, scene_.rvec, scene_.tvec, camera)
        for name, make in configs.items():  # back to back on the same scene
            cv2.setRNGSeed(i)
            stage = make()
            ctx = FrameContext(scene_.image, Telemetry(pts=i), camera, "settings")
            _ = ctx.gray
            started = time.perf_counter()
            stage.run(ctx)
            times[name].append((time.perf_counter() - started) * 1000.0)
            for obj in ctx.objects:
                error = np.abs(np.asarray(obj.corners) * [640, 480] - 0.5 - truth).max()
                hits[name] += bool(error <= 2.5)
    for name in configs:
        out[name] = {
            "found": hits[name],
            "recall": round(hits[name] / count, 2),
            "p50": percentile(times[name], 50),
            "p95": percentile(times[name], 95),
        }
    return out


RGBD_SIZES = ((320, 240), (640, 480))
RGBD_FRAMES = 40  # depth frames along the rendered ~2.5 m, ~90 deg walk


def bench_rgbd(width: int, height: int) -> dict[str, Any]:
    """Odometry, TSDF and mesh extraction on the rendered room (``vision.synthetic_rgbd``),
    colour and depth at ``width`` x ``height``; drift against the known path."""
    from vision import DepthFrame, RgbdOdometry, TwinBuilder
    from vision.synthetic_rgbd import Room, render_sequence, walk_and_turn

    frames = render_sequence(Room(), walk_and_turn(RGBD_FRAMES), color_size=(width, height))
    odometry, twin = RgbdOdometry(), TwinBuilder()
    odometry_ms: list[float] = []
    integrate_ms: list[float] = []
    lost = 0
    estimate = None
    for f in frames:
        depth = DepthFrame(f.depth_mm, pts=f.index)
        started = time.perf_counter()
        step = odometry.update(f.color, depth, f.depth_intrinsics)
        odometry_ms.append((time.perf_counter() - started) * 1000.0)
        if step.world_from_camera is None:
            lost += 1
            continue
        estimate = step.world_from_camera
        started = time.perf_counter()
        if twin.integrate(f.color, depth, f.depth_intrinsics, estimate):
            integrate_ms.append((time.perf_counter() - started) * 1000.0)
    started = time.perf_counter()
    mesh = twin.mesh()
    extract_ms = (time.perf_counter() - started) * 1000.0
    first = np.linalg.inv(frames[0].world_from_camera)
    truth = [first @ f.world_from_camera for f in frames]
    metres = sum(float(np.linalg.norm(b[:3, 3] - a[:3, 3])) for a, b in pairwise(truth))
    degrees = sum(_angle_deg(a[:3, :3].T @ b[:3, :3]) for a, b in pairwise(truth))
    out: dict[str, Any] = {
        "frames": len(frames),
        "lost": lost,
        "odometry_ms": {
            "p50": percentile(odometry_ms[1:], 50),
            "p95": percentile(odometry_ms[1:], 95),
        },
        "integrate_ms": {"p50": percentile(integrate_ms, 50), "p95": percentile(integrate_ms, 95)},
        "keyframes": len(integrate_ms),
        "extract_ms": round(extract_ms, 1),
        "triangles": len(mesh.triangles),
        "path_m": round(metres, 2),
        "path_deg": round(degrees, 1),
    }
    if estimate is not None and lost == 0:
        drift = float(np.linalg.norm(estimate[:3, 3] - truth[-1][:3, 3]))
        out["drift_pct_per_m"] = round(100.0 * drift / metres, 3)
        out["rot_drift_deg_per_deg"] = round(
            _angle_deg(estimate[:3, :3].T @ truth[-1][:3, :3]) / degrees, 4
        )
    return out


def _angle_deg(rotation: npt.NDArray[np.float64]) -> float:
    cosine = (float(np.trace(rotation)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


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
    if result.get("rgbd"):
        lines += [
            "",
            f"RGB-D (rendered room, {RGBD_FRAMES} depth frames, colour = depth size; hybrid "
            "odometry on <= 320 px wide, TSDF 2 cm on every pixel)",
            f"{'size':<9} {'odometry ms p50/p95':>20} {'TSDF ms/keyframe':>17} {'keyframes':>9} "
            f"{'extract ms':>10} {'triangles':>9} {'drift %/m':>9} {'rot deg/deg':>11}",
        ]
        for size, r in result["rgbd"].items():
            if "error" in r:
                lines.append(f"{size:<9} error: {r['error']}")
                continue
            odo, tsdf = r["odometry_ms"], r["integrate_ms"]
            odo_text = f"{odo['p50']}/{odo['p95']}"
            tsdf_text = f"{tsdf['p50']}/{tsdf['p95']}"
            lines.append(
                f"{size:<9} {odo_text:>20} "
                f"{tsdf_text:>17} {r['keyframes']:>9} {r['extract_ms']:>10} "
                f"{r['triangles']:>9} {r.get('drift_pct_per_m', 'lost'):>9} "
                f"{r.get('rot_drift_deg_per_deg', '-'):>11}"
            )
    if result.get("markers_tracking"):
        lines += ["", "markers in the video: full detection every frame vs default tracking "
                  "(same frames, back to back)"]  # fmt: skip
        for size, r in result["markers_tracking"].items():
            if "error" in r:
                lines.append(f"{size:<9} error: {r['error']}")
                continue
            f, t = r["full"], r["tracked"]
            lines.append(
                f"{size:<9} full {f['p50']}/{f['p95']} ms (mean {f['mean']})  tracked "
                f"{t['p50']}/{t['p95']} ms (mean {t['mean']}), {r['full_scans']} full scans in "
                f"{r['frames']} frames (every {r['full_detect_every']}), id mismatches "
                f"{r['id_mismatches']}, max corner diff {r['max_corner_diff_px']} px"
            )
    busy = result.get("equipment_busy")
    if busy:
        lines += ["", f"equipment in {busy.get('scenes')} busy scenes (two person photos, "
                  "0.5x-2x, roll 30, blur), 640x480"]  # fmt: skip
        if "error" in busy:
            lines.append(f"error: {busy['error']}")
        for name in ("old", "new") if "error" not in busy else ():
            b = busy[name]
            lines.append(
                f"{name:<4} found {b['found']}/{busy['scenes']} (recall {b['recall']}), "
                f"stage ms p50/p95 {b['p50']}/{b['p95']}"
            )
    lines.append("")
    for v in result["verdict"]:
        met = {True: "MET", False: "MISSED", None: "not measured"}[v["met"]]
        lines.append(f"goal: {v['what']} {v['target']}: {v['measured']} -> {met}")
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
        for name, (stages, pose_every) in configurations().items():
            _log(f"{size} {name}: {passes} x {count} frames")
            try:
                result["runs"][size][name] = bench(stages, frames, warmup, passes, pose_every)
            except Exception as exc:  # a missing model or stage must not sink the other figures
                result["runs"][size][name] = {"stages": list(stages), "error": repr(exc)}
    result["rgbd"] = {}
    for width, height in RGBD_SIZES:
        size = f"{width}x{height}"
        _log(f"rgbd {size}: {RGBD_FRAMES} rendered frames")
        try:
            result["rgbd"][size] = bench_rgbd(width, height)
        except Exception as exc:  # e.g. Open3D not importable (libusb missing)
            result["rgbd"][size] = {"error": repr(exc)}
    result["markers_tracking"] = {}
    for width, height in SIZES:
        size = f"{width}x{height}"
        _log(f"{size} markers: full vs tracked, {passes} x {count} frames")
        try:
            frames = sequence(width, height, count)
            result["markers_tracking"][size] = bench_marker_modes(frames, passes)
        except Exception as exc:
            result["markers_tracking"][size] = {"error": repr(exc)}
    _log(f"equipment: {EQUIPMENT_BUSY_SCENES} busy scenes, old vs new")
    try:
        result["equipment_busy"] = bench_equipment_busy()
    except Exception as exc:
        result["equipment_busy"] = {"scenes": EQUIPMENT_BUSY_SCENES, "error": repr(exc)}
    goal_name, _ = goal_config()
    result["verdict"] = []
    for name in (goal_name, f"{goal_name} (pose every 2nd)"):
        goal = result["runs"]["640x480"][name]
        fps = goal.get("fps_wall")
        result["verdict"].append(
            {
                "what": f"{name} at 640x480, one core, fps (wall)",
                "target": f">= {GOAL_FPS:.0f} fps",
                "measured": None if fps is None else f"{fps} fps (p50 {goal['fps_p50']})",
                "met": None if fps is None else fps >= GOAL_FPS,
            }
        )
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
