"""One bench session in its own process: a reference headset and a scripted aiortc mentor.

    python -m tests.bench.session --server URL --room ROOM --seconds S --out FILE.json

The headset streams the synthetic source (frame code strip + moving ArUco marker) and the mentor
(``tests.integration.peers.ViewerPeer``) joins once the headset's video flows, watches, and
sends a stroke every ``--stroke-interval`` seconds. Everything is recorded raw, in wall-clock
milliseconds, and written as JSON for ``tests.bench.stats``:

* ``captured``: ``[index, ms]`` when the headset's source produced frame ``index`` (just before
  encoding; pts = index * 3000, code = index mod 2**16);
* ``mentor_frames``: ``[code, ms]`` per frame decoded at the mentor;
* ``mentor_overlays``: ``[pts, ms, server's t_analysed_ms, vision ms]`` per overlay received;
* ``headset_overlays``: ``[pts, ms]`` per overlay received;
* ``ink``: ``[sent_ms, received_at_headset_ms]`` per stroke.

``--no-mentor`` runs the headset alone (the Chromium bench brings its own mentor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import cv2
from aiortc.mediastreams import MediaStreamTrack

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import Source, SyntheticVideoTrack
from tests.integration.peers import ViewerPeer

__all__ = ["TimedSource", "main", "run_session"]

logger = logging.getLogger(__name__)


def _now_ms() -> float:
    return time.time() * 1000


class TimedSource(MediaStreamTrack):
    """The synthetic source, noting when each frame was produced (its 'capture' time)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        backdrop = None
        path = os.environ.get("FIELDSIGHT_BENCH_BACKDROP")  # e.g. a photo of a person
        if path:
            backdrop = cv2.imread(path, cv2.IMREAD_COLOR)
            if backdrop is None:
                raise ValueError(f"FIELDSIGHT_BENCH_BACKDROP: cannot read {path!r}")
        self.inner = SyntheticVideoTrack(backdrop=backdrop)
        self.captured: list[tuple[int, float]] = []

    async def recv(self) -> av.VideoFrame:
        frame = await self.inner.recv()
        self.captured.append((self.inner.frames_produced - 1, _now_ms()))
        return frame

    def lateness_ms(self) -> list[float]:
        """How late each frame was produced against the source's own 30 fps schedule."""
        start = self.inner.start_time_ms
        if start is None:
            return []
        fps = self.inner.fps
        return [t - (start + i * 1000 / fps) for i, t in self.captured]

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


def login(server: str, username: str, password: str) -> str:
    request = urllib.request.Request(
        server.rstrip("/") + "/api/auth/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return str(json.loads(response.read())["access_token"])


async def _until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {within:.0f} s")
        await asyncio.sleep(0.005)


async def run_session(
    server: str,
    room: str,
    password: str,
    seconds: float,
    *,
    mentor: bool = True,
    stroke_interval: float = 1.0,
) -> dict[str, Any]:
    cpu0, wall0 = time.process_time(), time.monotonic()
    source = TimedSource()
    headset = HeadsetClient(
        HeadsetOptions(server=server, username="worker", password=password, room=room),
        Source(video=source, audio=None, description="synthetic 640x480@30 (timed)"),
    )
    headset_overlays: list[tuple[int, float]] = []
    ink: list[tuple[float, float]] = []
    headset.on_overlay = lambda m: headset_overlays.append((int(m["pts"]), _now_ms()))
    headset.on_stroke = lambda m: ink.append((float(m["t_sent_ms"]), float(m["received_ms"])))
    peer: ViewerPeer | None = None
    out: dict[str, Any] = {"room": room, "server": server, "errors": []}
    try:
        await headset.start()
        await asyncio.wait_for(headset.connected.wait(), 20)
        await _until(lambda: len(source.captured) >= 15, 20, "headset frames")
        if mentor:
            token = await asyncio.to_thread(login, server, "mentor", password)
            joined_at = _now_ms()
            peer = ViewerPeer(server, token, room=room)
            await peer.start()
            await _until(lambda: peer is not None and peer.first_frame_ms, 20, "mentor frame")
            assert peer.first_frame_ms is not None
            out["join_to_first_frame_ms"] = round(peer.first_frame_ms - joined_at, 1)
            await _until(lambda: peer is not None and peer.channels_open, 10, "data channels")
        out["measure_from_ms"] = _now_ms()
        await _drive(peer, seconds, stroke_interval)
        out["measure_to_ms"] = _now_ms()
    except Exception as exc:  # a session that fails is a figure too, not a crash of the bench
        logger.exception("session %s failed", room)
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        if peer is not None:
            await peer.aclose()
        await headset.aclose()
    out["captured"] = source.captured
    out["lateness_ms"] = _lateness(source)
    out["source_start_ms"] = source.inner.start_time_ms
    out["mentor_frames"] = [] if peer is None else [(c, t) for _, c, t, _ in peer.frames]
    out["mentor_sizes"] = sorted({f"{w}x{h}" for *_, (w, h) in (peer.frames if peer else [])})
    out["mentor_overlays"] = [] if peer is None else [_overlay_row(m) for m in peer.overlays]
    out["headset_overlays"] = headset_overlays
    out["ink"] = ink
    out["strokes_acked"] = (
        0 if peer is None else sum(1 for m in peer.annotations if m.get("type") == "ack")
    )
    out["client_cpu"] = round((time.process_time() - cpu0) / (time.monotonic() - wall0), 3)
    return out


async def _drive(peer: ViewerPeer | None, seconds: float, stroke_interval: float) -> None:
    """Let the session run; the mentor draws a short stroke on the latest frame now and then."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(stroke_interval, max(0.0, deadline - time.monotonic())))
        if peer is None or not peer.frames or stroke_interval <= 0:
            continue
        code = peer.frames[-1][1]
        n += 1
        u = 0.2 + 0.05 * (n % 10)
        peer.stroke(code * 3000, [[u, 0.3], [u + 0.1, 0.4], [u + 0.2, 0.35]], sid=f"b{n}")


def _overlay_row(m: dict[str, Any]) -> tuple[int, float, float, float]:
    timings = m.get("timings_ms") or {}
    vision_ms = timings.get("total", sum(timings.values()))
    return int(m["pts"]), m["received_ms"], float(m.get("t_analysed_ms") or 0), vision_ms


def _lateness(source: TimedSource) -> dict[str, float | None]:
    values = sorted(source.lateness_ms())
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(values[len(values) // 2], 1),
        "p95": round(values[int(len(values) * 0.95)], 1),
        "max": round(values[-1], 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.session", description=__doc__)
    p.add_argument("--server", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--no-mentor", action="store_true")
    p.add_argument("--stroke-interval", type=float, default=1.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Offer only 127.0.0.1 as ICE host candidate, in or out of a loopback-only namespace.
    from server.rtc.hub import pin_host_addresses

    pin_host_addresses(("127.0.0.1",))
    # The aiortc mentor receives like the server does (frames leave the jitter buffer on their
    # marker packet); Chromium, measured separately, is the real mentor.
    from server.rtc import jitter

    jitter.install()
    result = asyncio.run(
        run_session(
            args.server,
            args.room,
            args.password,
            args.seconds,
            mentor=not args.no_mentor,
            stroke_interval=args.stroke_interval,
        )
    )
    args.out.write_text(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
