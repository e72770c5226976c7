"""``python -m tests.bench.records [--seconds 20] [--sessions 1]``: what recording costs.

Each session records a 640x480@30 video track (the headset's synthetic scene: a photo, a textured
background, a moving marker, the frame code; handed over as yuv420p, as a WebRTC decoder does)
and a 48 kHz stereo audio track (20 ms frames) with :class:`server.rtc.recorder.TrackRecorder`,
for ``--seconds`` after a 2 s warm-up. Figures, as a share of one core over wall time:

* ``recorder threads``: CPU of the recorders' own threads (convert, encode, mux, write), read from
  ``/proc/self/task/<tid>/stat``: the cost of recording proper;
* ``event loop``: the main thread, which here also renders the synthetic frames (a real server
  receives them instead), so it is an upper bound of the loop's share;
* ``process``: everything.

Also the event loop's lag (how late a 5 ms sleep wakes up), frames written / dropped, and the
bitrate of the files. Prints a table and writes ``bench-results/records-<ts>.json`` and
``bench-results/records-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import av
import numpy as np

from headset_client.sources import SyntheticVideoTrack
from server.rtc.recorder import RecorderOptions, TrackRecorder
from tests.bench.report import machine_facts
from tests.bench.stats import percentile
from tests.unit.server.recorder_child import PacedAudioTrack

REPO = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 2.0


def _log(message: str) -> None:
    print(f"[bench-records {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def thread_cpu(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process."""
    raw = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class YuvSyntheticTrack(SyntheticVideoTrack):
    """The headset's synthetic scene, as yuv420p frames (what the server's decoder yields)."""

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        out = frame.reformat(format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


def _backdrop() -> np.ndarray | None:
    try:
        from skimage import data

        image: np.ndarray = data.astronaut()[:, :, ::-1].copy()  # RGB -> BGR
        return image
    except ImportError:
        return None


async def _loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        samples.append((time.perf_counter() - started - 0.005) * 1000)


def _recorder_cpu(names: set[str]) -> dict[str, float]:
    return {
        t.name: thread_cpu(t.native_id)
        for t in threading.enumerate()
        if t.name in names and t.native_id is not None
    }


async def bench(seconds: float, sessions: int, options: RecorderOptions, workdir: Path) -> Any:
    backdrop = _backdrop()
    recorders: list[TrackRecorder] = []
    for i in range(sessions):
        video = YuvSyntheticTrack(backdrop=backdrop)
        recorders.append(
            TrackRecorder(
                video, workdir / f"s{i}-video.mp4", kind="video", options=options, name=f"rec-v{i}"
            )
        )
        recorders.append(
            TrackRecorder(
                PacedAudioTrack(None),
                workdir / f"s{i}-audio.mp4",
                kind="audio",
                options=options,
                name=f"rec-a{i}",
            )
        )
    names = {f"rec-{k}{i}" for i in range(sessions) for k in "va"}
    lag: list[float] = []
    stop = asyncio.Event()
    lag_task = asyncio.create_task(_loop_lag(lag, stop))
    for recorder in recorders:
        recorder.start()
    await asyncio.sleep(WARMUP_S)
    main_tid = threading.main_thread().native_id
    assert main_tid is not None
    lag.clear()
    before = {r.kind + r.path.name: r.stats.frames_written for r in recorders}
    t0, cpu0, main0 = time.monotonic(), time.process_time(), thread_cpu(main_tid)
    rec0 = _recorder_cpu(names)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    cpu, main = time.process_time() - cpu0, thread_cpu(main_tid) - main0
    rec1 = _recorder_cpu(names)
    written = {r.kind + r.path.name: r.stats.frames_written for r in recorders}
    stop.set()
    await lag_task
    results = [await r.aclose() for r in recorders]
    per_thread = {name: rec1[name] - rec0.get(name, 0.0) for name in rec1}
    video_cpu = sum(v for k, v in per_thread.items() if k.startswith("rec-v"))
    audio_cpu = sum(v for k, v in per_thread.items() if k.startswith("rec-a"))

    def share(cpu_s: float) -> float:
        return round(100 * cpu_s / wall, 1)

    video_results = [r for r in results if r.kind == "video"]
    return {
        "seconds": round(wall, 2),
        "sessions": sessions,
        "options": asdict(options),
        "cpu_percent_of_one_core": {
            "recorder_threads_per_session": share((video_cpu + audio_cpu) / sessions),
            "video_thread_per_session": share(video_cpu / sessions),
            "audio_thread_per_session": share(audio_cpu / sessions),
            "event_loop_incl_synthetic_source": share(main),
            "process_total": share(cpu),
            "process_total_per_session": share(cpu / sessions),
        },
        "loop_lag_ms": {
            "p50": percentile(lag, 50),
            "p99": percentile(lag, 99),
            "max": round(max(lag), 1) if lag else None,
        },
        "video_fps_written": round(
            sum(written[k] - before[k] for k in written if k.startswith("video")) / wall / sessions,
            1,
        ),
        "video_kbps": round(
            sum(r.size_bytes for r in video_results)
            * 8
            / 1000
            / sum(max(r.duration_s, 1e-9) for r in video_results),
            0,
        ),
        "recordings": [
            {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(r).items()}
            for r in results
        ],
    }


def render(result: dict[str, Any]) -> str:
    cpu = result["cpu_percent_of_one_core"]
    lag = result["loop_lag_ms"]
    opts = result["options"]
    lines = [
        f"== recording: {result['sessions']} session(s) x (480p30 H.264 + 48 kHz AAC), "
        f"{result['seconds']} s, preset {opts['preset']}, crf {opts['crf']}",
        f"  {'what':<44} {'% of one core':>14}",
        f"  {'recorder threads, per session':<44} {cpu['recorder_threads_per_session']:>14}",
        f"  {'  video thread':<44} {cpu['video_thread_per_session']:>14}",
        f"  {'  audio thread':<44} {cpu['audio_thread_per_session']:>14}",
        f"  {'event loop (incl. the synthetic source)':<44} "
        f"{cpu['event_loop_incl_synthetic_source']:>14}",
        f"  {'process total':<44} {cpu['process_total']:>14}",
        f"  loop lag: p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms",
        f"  video: {result['video_fps_written']} fps written, {result['video_kbps']:.0f} kbit/s",
    ]
    for r in result["recordings"]:
        lines.append(
            f"  {Path(r['path']).name}: {r['status']}, {r['frames']} frames, "
            f"{r['dropped']} dropped, {r['duration_s']:.1f} s, {r['size_bytes'] / 1e6:.2f} MB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.records", description=__doc__)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--preset", default=RecorderOptions.preset)
    p.add_argument("--crf", type=int, default=RecorderOptions.crf)
    p.add_argument("--out", type=Path, default=REPO / "bench-results", help="JSON directory")
    args = p.parse_args(argv)
    options = RecorderOptions(preset=args.preset, crf=args.crf)
    _log(f"{args.sessions} session(s) for {args.seconds:.0f} s (+{WARMUP_S:.0f} s warm-up)")
    with tempfile.TemporaryDirectory(prefix="fieldsight-records-") as tmp:
        result = asyncio.run(bench(args.seconds, args.sessions, options, Path(tmp)))
    result["machine"] = machine_facts()
    result["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    path = args.out / f"records-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(text)
    (args.out / "records-latest.json").write_text(text)
    print(render(result))
    print(f"\nJSON: {path} (and {args.out / 'records-latest.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
