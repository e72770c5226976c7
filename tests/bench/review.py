"""``python -m tests.bench.review``: how fast the trainer's review page opens a long session.

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m tests.bench.review'

A synthetic 30-minute session is written straight into a temporary data dir (no live media): the
database rows (a session, joins, an ink stroke and a chat every 10 s, a step every 5 minutes,
a ``vision_summary`` every 10 s, the recording events), ``overlays.jsonl`` with 15 overlays a
second (27,000 lines, each a person with 33 keypoints and risk plus a marker, ~1.5 KB) and a real
30-minute H.264 fragmented MP4 (320x240 at 5 fps, so it encodes in seconds). Then the server
runs in its own process and Chromium opens the review page of that session, several times:

* ready: navigation start -> the player is ready (video metadata loaded, the first frame's
  overlay drawn, the timeline rendered), from ``window.__review`` (``performance.now()``);
* seek: a click on an event 20 minutes in -> that frame presented with its overlay drawn;
* the pts index of ``overlays.jsonl`` built in this process (what the server's first overlay
  request of the session pays: the first browser run includes it), and one 10 s window from the
  overlays API once the index is warm.

Prints a summary and writes ``bench-results/review-latest.json``. Loopback only.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from sqlalchemy import update

from server.routes.review import OverlayIndex
from server.services import Services
from server.settings import Settings
from sessions.models import Event

CHROMIUM = Path(os.environ.get("FIELDSIGHT_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "bench-password-1"
CLOCK_HZ = 90_000
MINUTES = 30
OVERLAY_FPS = 15
VIDEO_FPS = 5
FIRST_PTS = 123_456 * 3000
RUNS = 5
WAIT_MS = 30_000
RESULTS = Path("bench-results")


def _log(message: str) -> None:
    print(f"[review bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loopback_only() -> bool:
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


# --- the synthetic session ------------------------------------------------------------------------


def _overlay(pts: int, t: float) -> str:
    sway = 0.05 * math.sin(t / 3)
    keypoints = [
        [round(0.4 + 0.2 * (i % 3) / 2 + sway, 4), round(0.15 + 0.7 * i / 33, 4), 0.98]
        for i in range(33)
    ]
    score = 2 + int(6 * (0.5 + 0.5 * math.sin(t / 60)))
    level = "low" if score <= 3 else "medium" if score <= 7 else "high"
    corners = [[0.6 + sway, 0.5], [0.7 + sway, 0.5], [0.7 + sway, 0.62], [0.6 + sway, 0.62]]
    message = {
        "type": "overlay",
        "pts": pts,
        "width": 320,
        "height": 240,
        "markers": [{"id": 7, "corners": corners, "tvec": [0.1, 0.0, 0.9]}],
        "persons": [
            {
                "id": 1,
                "bbox": [0.35 + sway, 0.1, 0.65 + sway, 0.9],
                "keypoints": keypoints,
                "risk": {"score": score, "level": level},
            }
        ],
        "objects": [],
        "camera_pose": None,
        "anchors": [],
        "events": [],
        "zones": [],
        "timings_ms": {"pose": 11.6, "markers": 3.1},
        "camera": "synthetic",
        "t_analysed_ms": 1_700_000_000_000 + t * 1000,
    }
    return json.dumps(message, separators=(",", ":"))


def write_overlays(path: Path, seconds: int) -> int:
    step = CLOCK_HZ // OVERLAY_FPS
    count = seconds * OVERLAY_FPS
    with path.open("w") as file:
        for i in range(count):
            file.write(_overlay(FIRST_PTS + i * step, i / OVERLAY_FPS) + "\n")
    return count


def write_video(path: Path, seconds: int) -> None:
    """A fragmented MP4 like the recorder's: H.264, 90 kHz time base, file time 0 = FIRST_PTS."""
    with av.open(
        str(path), "w", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    ) as out:
        stream = out.add_stream("libx264", rate=VIDEO_FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = Fraction(1, CLOCK_HZ)
        stream.codec_context.time_base = Fraction(1, CLOCK_HZ)
        stream.codec_context.gop_size = VIDEO_FPS * 10
        image = np.zeros((240, 320, 3), np.uint8)
        for i in range(seconds * VIDEO_FPS):
            image[:] = (i * 3) % 200
            image[100:140, (i * 4) % 280 : (i * 4) % 280 + 40] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i * (CLOCK_HZ // VIDEO_FPS)
            frame.time_base = Fraction(1, CLOCK_HZ)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


async def write_session(data_dir: Path) -> dict[str, Any]:
    seconds = MINUTES * 60
    settings = Settings(data_dir=data_dir, demo_password=PASSWORD)
    services = await Services.start(settings)
    try:
        events, recordings = services.events, services.recordings
        record = await events.open_session("bench-review")
        sid = record.id
        folder = data_dir / "recordings" / sid
        folder.mkdir(parents=True)
        started = time.perf_counter()
        lines = await asyncio.to_thread(write_overlays, folder / "overlays.jsonl", seconds)
        await asyncio.to_thread(write_video, folder / "worker-video.mp4", seconds)
        _log(f"overlays and video written in {time.perf_counter() - started:.1f} s")
        t0 = datetime.now(UTC) - timedelta(seconds=seconds + 60)
        times: list[tuple[int, float]] = []

        async def add(kind: str, payload: dict[str, Any], at_s: float, **kw: Any) -> int:
            event = await events.append(sid, kind, payload, **kw)
            times.append((event.seq, at_s))
            return event.seq

        await add("join", {"role": "worker"}, 0, actor="worker")
        await add("join", {"role": "mentor"}, 0.5, actor="mentor")
        await add("consent", {"recording": True}, 1, actor="worker")
        await add("recording_started", {"tracks": ["worker-video"]}, 1)
        seek_seq = 0
        for s in range(0, seconds, 10):
            pts = FIRST_PTS + s * CLOCK_HZ
            ink = {"tool": "pen", "points": [[0.2, 0.3], [0.4, 0.5]], "color": "#ff3b30"}
            seq = await add("ink", ink, s + 2, actor="mentor", media_pts=pts + 2 * CLOCK_HZ)
            if s == 20 * 60:
                seek_seq = seq
            chat = {"text": f"check at {s} s"}
            await add("chat", chat, s + 6, actor="mentor", media_pts=pts + 6 * CLOCK_HZ)
            summary = {
                "kind": "ergonomics",
                "from_pts": pts,
                "ergonomics": {
                    "seconds": 10,
                    "share": {"low": 0.5, "medium": 0.5},
                    "max": 2 + (s // 60) % 8,
                    "mean": 3.5,
                },
                "persons": {},
            }
            await add("vision_summary", summary, s + 10, media_pts=pts + 10 * CLOCK_HZ - 6000)
            if s % 300 == 0:
                step = {"title": f"Step {s // 300 + 1}"}
                await add("step", step, s + 1, actor="mentor", media_pts=pts + CLOCK_HZ)
        stopped = {
            "files": [
                {
                    "file": "worker-video.mp4",
                    "status": "complete",
                    "duration_s": float(seconds),
                    "first_pts": FIRST_PTS,
                }
            ]
        }
        await add("recording_stopped", stopped, seconds)
        row = await recordings.add(
            sid,
            "worker-video",
            "video",
            "worker",
            "h264",
            "mp4",
            f"recordings/{sid}/worker-video.mp4",
        )
        video = folder / "worker-video.mp4"
        await recordings.finish(
            row.id, size_bytes=video.stat().st_size, sha256=None, duration_s=float(seconds)
        )
        async with services.db.session() as session, session.begin():
            for seq, at_s in times:  # spread the wall times over the session
                await session.execute(
                    update(Event)
                    .where(Event.session_id == sid, Event.seq == seq)
                    .values(wall_time=t0 + timedelta(seconds=at_s))
                )
        await events.close_session(sid, "bench")
        return {
            "session_id": sid,
            "events": len(times),
            "overlay_lines": lines,
            "overlays_mb": round((folder / "overlays.jsonl").stat().st_size / 1e6, 1),
            "video_mb": round(video.stat().st_size / 1e6, 2),
            "seek_seq": seek_seq,
        }
    finally:
        await services.aclose()


# --- measuring ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def api_timings(url: str, sid: str) -> dict[str, float]:
    token = _request(url + "/api/auth/login", body={"username": "trainer", "password": PASSWORD})[
        "access_token"
    ]
    out: dict[str, float] = {}
    mid = FIRST_PTS + 15 * 60 * CLOCK_HZ
    path = f"/api/sessions/{sid}/overlays?from_pts={mid}&to_pts={mid + 10 * CLOCK_HZ}"
    started = time.perf_counter()
    body = _request(url + path, token)
    out["overlays_10s_window_ms"] = round((time.perf_counter() - started) * 1000, 1)
    assert len(body["overlays"]) == 10 * OVERLAY_FPS, len(body["overlays"])
    started = time.perf_counter()
    _request(url + f"/api/sessions/{sid}/review", token)
    out["review_api_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


async def browser_runs(url: str, session: dict[str, Any]) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    sid = session["session_id"]
    runs: list[dict[str, Any]] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 760})
            await page.goto(url + "/mentor/review.html")
            await page.fill("#login-username", "trainer")
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-submit")
            await page.wait_for_selector(f'tr[data-session-id="{sid}"]', timeout=WAIT_MS)
            for _ in range(RUNS):
                await page.goto(url + f"/mentor/review.html?session={sid}")
                await page.wait_for_function(
                    "window.__review && __review.ready", timeout=WAIT_MS, polling=10
                )
                state = await page.evaluate("({...__review, history: null})")
                seek_ms = await page.evaluate(
                    """async (seq) => {
                        const t0 = performance.now();
                        const before = __review.framesShown;
                        __review.seekToEvent(seq);
                        const target = __review.lastSeek.mediaPts;
                        while (performance.now() - t0 < 20000) {
                          await new Promise((r) => setTimeout(r, 5));
                          const f = __review.frame, s = __review.shown;
                          if (__review.framesShown > before && f && f.pts <= target
                              && f.pts > target - 18000 && s && s.framePts === f.pts
                              && s.resolved && s.pts !== null) {
                            return performance.now() - t0;
                          }
                        }
                        return null;
                    }""",
                    session["seek_seq"],
                )
                marks = {k: round(v, 1) for k, v in state["marks"].items()}
                runs.append(
                    {
                        "ready_ms": round(state["readyMs"], 1),
                        "marks_ms": marks,
                        "seek_20min_ms": None if seek_ms is None else round(seek_ms, 1),
                        "overlays_loaded": state["overlaysLoaded"],
                    }
                )
                _log(f"ready {runs[-1]['ready_ms']} ms, seek {runs[-1]['seek_20min_ms']} ms")
        finally:
            await browser.close()
    return runs


def measure(workdir: Path) -> dict[str, Any]:
    data_dir = workdir / "data"
    _log(f"writing a {MINUTES}-minute session in {data_dir}")
    session = asyncio.run(write_session(data_dir))
    overlays = data_dir / "recordings" / session["session_id"] / "overlays.jsonl"
    started = time.perf_counter()
    OverlayIndex().query(overlays, FIRST_PTS, FIRST_PTS + 10 * CLOCK_HZ, 2000)
    session["index_build_ms"] = round((time.perf_counter() - started) * 1000, 1)
    port = _free_port()
    env = {
        **os.environ,
        "FIELDSIGHT_PORT": str(port),
        "FIELDSIGHT_DATA_DIR": str(data_dir),
        "FIELDSIGHT_DEMO_PASSWORD": PASSWORD,
    }
    url = f"http://127.0.0.1:{port}"
    with (workdir / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "server"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(url + "/healthz", None, 1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((workdir / "server.log").read_text()) from None
                    time.sleep(0.05)
            runs = asyncio.run(browser_runs(url, session))  # the first opens a cold index
            api = api_timings(url, session["session_id"])
        finally:
            server.terminate()
            server.wait(20)
    ready = [r["ready_ms"] for r in runs]
    seeks = [r["seek_20min_ms"] for r in runs if r["seek_20min_ms"] is not None]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "session": session,
        "api": api,
        "runs": runs,
        "ready_ms": {
            "first": ready[0],
            "median": statistics.median(ready),
            "max": max(ready),
        },
        "seek_20min_ms": {"median": statistics.median(seeks) if seeks else None},
    }


def main() -> int:
    if not CHROMIUM.exists():
        _log(f"no Chromium at {CHROMIUM}")
        return 2
    if not loopback_only():
        _log(
            "run me in a loopback-only namespace: unshare -n sh -c 'ip link set lo up && exec ...'"
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="review-bench-") as tmp:
        result = measure(Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "review-latest.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    ready = result["ready_ms"]
    print(  # noqa: T201 - a command-line report
        f"review page, {MINUTES}-minute session ({result['session']['overlay_lines']} overlays,"
        f" {result['session']['events']} events): ready in {ready['median']:.0f} ms median"
        f" (first {ready['first']:.0f}, max {ready['max']:.0f}); seek 20 min in"
        f" {result['seek_20min_ms']['median']} ms median; pts index of the overlays file built in"
        f" {result['session']['index_build_ms']} ms; a 10 s overlay window"
        f" {result['api']['overlays_10s_window_ms']} ms;"
        f" written to {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
