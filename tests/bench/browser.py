"""The mentor page in a real Chromium against a live server and the reference headset.

The headset runs in a session process of its own (``--no-mentor``); Chromium signs in through the
page's form, joins the room as a mentor with ``?debug=1`` (the page then reads the synthetic
source's frame code from every displayed frame into ``fieldsight.latency``) and draws a stroke
every second with ``fieldsight.drawStroke``. Figures:

* join -> first frame: from just before the click on *Join room* to the first frame the page
  presents (``requestVideoFrameCallback``);
* glass-to-glass: headset capture -> the page's frame callback for it (``receivedAtMs``; also
  -> its last packet received, ``metadata.receiveTime``, and -> rVFC's presentation time);
* ink: page ``Date.now()`` at send -> the headset receives it.

Only run inside a loopback-only network namespace (the caller checks).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.bench.procs import PASSWORD, ServerProcess, start_session, wait_quiet
from tests.bench.run import BenchConfig
from tests.bench.stats import CODE_MOD, summary

__all__ = ["chromium_bench"]

CHROMIUM = Path(os.environ.get("FIELDSIGHT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
ROOM = "browser-0"
WAIT_MS = 15_000


def unavailable() -> str | None:
    """Why the Chromium bench cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set FIELDSIGHT_CHROMIUM)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


async def chromium_bench(cfg: BenchConfig, workdir: Path) -> dict[str, Any]:
    reason = unavailable()
    if reason is not None:
        return {"skipped": reason}
    from playwright.async_api import async_playwright

    quiet = await wait_quiet(cfg.wait_quiet_s) if cfg.wait_quiet_s > 0 else None
    server = ServerProcess("fieldsight", workdir, "browser")
    await server.start()
    session = None
    try:
        # The headset streams for the whole page run, plus time to start Chromium and sign in.
        session = await start_session(
            server, ROOM, cfg.browser_seconds + 15, workdir, mentor=False, stroke_interval=0
        )
        await _until_room(server.url, ROOM)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page_figures = await _drive_page(browser, server, cfg)
            finally:
                await browser.close()
        raw = await session.result()
        session = None
    finally:
        if session is not None:
            session.proc.terminate()
            await session.proc.wait()
        await server.stop()
    return {**_figures(page_figures, raw, server), "before": quiet}


async def _until_room(url: str, room: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            health = await asyncio.to_thread(_get, url + "/healthz")
            if health.get("rooms", 0) >= 1:
                await asyncio.sleep(1.0)  # let the headset's video flow
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the headset did not open room {room!r} within {within:.0f} s")


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=2) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


async def _drive_page(browser: Any, server: ServerProcess, cfg: BenchConfig) -> dict[str, Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 760})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{server.url}/mentor/?debug=1&room={ROOM}")
        await page.fill("#login-username", "mentor")
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await page.wait_for_selector("#view-lobby", state="visible", timeout=WAIT_MS)
        await page.fill("#room-name", ROOM)
        await page.click('#role-choice input[value="mentor"] + span')
        clicked_ms = await page.evaluate("performance.timeOrigin + performance.now()")
        await page.click("#join-submit")
        await page.wait_for_function("fieldsight.framesDecoded > 0", timeout=WAIT_MS, polling="raf")
        ring: dict[float, dict[str, Any]] = {}
        deadline = time.monotonic() + cfg.browser_seconds
        n = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            n += 1
            u = 0.2 + 0.05 * (n % 10)
            await page.evaluate(
                f"void fieldsight.drawStroke('pen', [[{u}, 0.3], [{u + 0.1}, 0.4]])"
            )
            for entry in await page.evaluate("fieldsight.latency"):
                ring[entry["receivedAtMs"]] = entry
        counters = await page.evaluate(
            "({framesDecoded: fieldsight.framesDecoded, overlaysReceived: "
            "fieldsight.overlaysReceived, overlaysDrawn: fieldsight.overlaysDrawn, overlaysMatched:"
            " fieldsight.overlaysMatched, strokesSent: fieldsight.strokesSent, strokesAcked: "
            "fieldsight.strokesAcked, state: fieldsight.state})"
        )
        await page.click("#leave")
    finally:
        await context.close()
    return {
        "clicked_ms": clicked_ms,
        "ring": sorted(ring.values(), key=lambda e: e["receivedAtMs"]),
        "counters": counters,
        "page_errors": errors,
    }


def _figures(page: dict[str, Any], raw: dict[str, Any], server: ServerProcess) -> dict[str, Any]:
    captured = {int(i): float(t) for i, t in raw.get("captured", [])}
    ring = page["ring"]
    glass, packet, presented = [], [], []
    for entry in ring:
        code, shown = entry.get("code"), entry["receivedAtMs"]
        if code is None:
            continue
        index = code
        best = None
        while index in captured:  # the latest frame with this code captured before it was shown
            if captured[index] <= shown:
                best = index
            index += CODE_MOD
        if best is None:
            continue
        glass.append((captured[best], shown - captured[best]))
        if entry.get("packetReceivedAtMs"):
            packet.append(entry["packetReceivedAtMs"] - captured[best])
        if entry.get("presentedAtMs"):
            presented.append(entry["presentedAtMs"] - captured[best])
    first = ring[0]["receivedAtMs"] if ring else None
    start = ring[0]["receivedAtMs"] if ring else 0
    end = ring[-1]["receivedAtMs"] if ring else 0
    assert server.cpu is not None
    return {
        "join_to_first_frame_ms": None if first is None else round(first - page["clicked_ms"], 1),
        "glass_to_glass_ms": summary([v for _, v in glass]),
        "capture_to_packet_received_ms": summary(packet),
        "capture_to_presented_ms": summary(presented),
        "presented_fps": round(len(ring) / max(1e-9, (end - start) / 1000), 1) if ring else None,
        "ink_ms": summary([received - sent for sent, received in raw.get("ink", [])]),
        "counters": page["counters"],
        "page_errors": page["page_errors"],
        "session_errors": raw.get("errors", []),
        "server_cpu": server.cpu.share(start, end),
        "note": "overlay receive times are not exposed by the page (counters only)",
    }
