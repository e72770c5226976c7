"""``python -m tests.bench``: the live benchmark of the media hub, with a naive baseline beside it.

    make bench                                       # default run, ~10 minutes
    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m tests.bench --quick'

Scenarios, each against a fresh server process (clients in processes of their own):

1. drift: 1 session (headset + aiortc mentor) for ``FIELDSIGHT_BENCH_SECONDS`` (default 120) on
   Fieldsight, then the same on the naive baseline (``tests/bench/naive_server.py``); latency per
   30 s window, and our figures over the naive ones per window (same run, same load);
2. ramp: 1, 2, 3, ... sessions until overlay p95 passes 120 ms, mentors get fewer than 24 fps, or
   ``FIELDSIGHT_BENCH_MAX_SESSIONS`` (default 8); the naive baseline too;
3. Chromium: the mentor page (``?debug=1``) against the headset: join -> first frame, latency;
4. vision: the frame pipeline on one core, offline (``tests/bench/vision.py``, run as a child
   process so its CPU pinning stays there); ``--no-vision`` skips it.

Prints a table and writes ``bench-results/live-<timestamp>.json`` and ``bench-results/latest.json``.
``--quick`` is a ~1.5-minute smoke version. All traffic stays on 127.0.0.1; Chromium only runs
when the process sees no network interface but ``lo``.

Knobs: ``FIELDSIGHT_BENCH_SECONDS`` (drift length), ``FIELDSIGHT_BENCH_DRIFT_SESSIONS``,
``FIELDSIGHT_BENCH_MAX_SESSIONS`` (ramp cap), ``FIELDSIGHT_BENCH_WAIT_QUIET`` (on a shared
machine, wait up to that many seconds before each scenario for other load to settle).
Every figure comes with the CPU that other processes used meanwhile ("other"), and with how late
the headsets produced their frames: on a busy machine read those before the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import run
from tests.bench.report import machine_facts, render, verdicts, write_json

REPO = Path(__file__).resolve().parents[2]


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loopback_only() -> bool:
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    cfg = run.BenchConfig.from_env(quick=args.quick, browser=not args.no_browser)
    if args.wait_quiet is not None:
        cfg = dataclasses.replace(cfg, wait_quiet_s=args.wait_quiet)
    result: dict[str, Any] = {
        "mode": "quick" if cfg.quick else "default",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_facts(),
        "config": dict(vars(cfg).items()),
        "loopback_only_namespace": loopback_only(),
        "drift": {},
        "ramp": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="fieldsight-bench-"))
    if args.keep:
        _log(f"keeping logs and raw samples in {workdir}")
    try:
        for kind in ("fieldsight", "naive"):
            _log(f"drift: {kind}, {cfg.drift_sessions} session(s) for {cfg.drift_seconds:.0f} s")
            result["drift"][kind] = await run.drift(kind, cfg, workdir)
        result["drift"]["comparison"] = run.compare_windows(
            result["drift"]["fieldsight"], result["drift"]["naive"]
        )
        kinds = ("fieldsight", "naive") if cfg.naive_ramp else ("fieldsight",)
        for kind in kinds:
            _log(f"ramp: {kind}, up to {cfg.ramp_max} sessions, {cfg.ramp_step_s:.0f} s a step")
            result["ramp"][kind] = await run.ramp(kind, cfg, workdir)
        if cfg.browser:
            from tests.bench.browser import chromium_bench

            _log(f"Chromium: mentor page for {cfg.browser_seconds:.0f} s")
            if loopback_only():
                result["browser"] = await chromium_bench(cfg, workdir)
            else:
                result["browser"] = {
                    "skipped": "not in a loopback-only network namespace (run via make bench)"
                }
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result["verdicts"] = verdicts(result, cfg)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="a ~1.5-minute smoke version")
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        metavar="S",
        help="before each scenario wait up to S seconds for the machine to be quiet "
        "(FIELDSIGHT_BENCH_WAIT_QUIET; default 0)",
    )
    p.add_argument("--keep", action="store_true", help="keep server logs and raw samples")
    p.add_argument("--no-vision", action="store_true", help="skip the offline vision part")
    p.add_argument("--out", type=Path, default=REPO / "bench-results", help="JSON directory")
    args = p.parse_args(argv)
    if not loopback_only():
        _log(
            "WARNING: network interfaces besides lo are visible; WebRTC is pinned to 127.0.0.1 "
            "and Chromium will not run. Use: unshare -n sh -c 'ip link set lo up && exec "
            ".venv/bin/python -m tests.bench'"
        )
    started = time.monotonic()
    result = asyncio.run(_main(args))
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    path = write_json(result, args.out, time.strftime("%Y%m%d-%H%M%S"))
    print(render(result))
    print(f"\nJSON: {path} (and {args.out / 'latest.json'}); took {result['wall_seconds']} s")
    if not args.no_vision:
        return _vision(args)
    return 0


def _vision(args: argparse.Namespace) -> int:
    """The offline vision benchmark (tests/bench/vision.py), in a child process of its own."""
    _log("vision: the frame pipeline on one core")
    command = [sys.executable, "-m", "tests.bench.vision", "--out", str(args.out)]
    print(flush=True)
    return subprocess.run(command + (["--quick"] if args.quick else []), cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
