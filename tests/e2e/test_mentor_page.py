"""The mentor page in a real Chromium: sign in, watch a headset's stream with aligned overlays, ink.

A reference headset (aiortc, synthetic source: a 16-bit frame counter drawn in the pixels and a
moving ArUco marker id 7) streams into room ``pump-7``; the page signs in through its own form.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import open_source
from tests.live import PASSWORD, LiveServer
from tests.util import eventually

pytestmark = pytest.mark.e2e

FRAME_TICKS = 3000  # the synthetic source: 30 fps on the 90 kHz RTP clock, pts = index * 3000
WAIT_MS = 10_000
SCREENSHOT_ENV = "FIELDSIGHT_E2E_SCREENSHOT"


async def sign_in(page: Any, server: LiveServer, username: str, password: str = PASSWORD) -> None:
    await page.goto(server.url + "/")
    await page.fill("#login-username", username)
    await page.fill("#login-password", password)
    await page.click("#login-submit")


async def join(page: Any, role: str, room: str = "pump-7") -> None:
    await page.wait_for_selector("#view-lobby", state="visible", timeout=WAIT_MS)
    await page.fill("#room-name", room)
    await page.click(f'#role-choice input[value="{role}"] + span')
    await page.click("#join-submit")
    await page.wait_for_selector("#view-room", state="visible", timeout=WAIT_MS)


async def wait_for(page: Any, expression: str) -> None:
    await page.wait_for_function(expression, timeout=WAIT_MS, polling=50)


def sent_frame(pts: int) -> int:
    """Index of the frame the synthetic headset sent with this pts; fails for any other pts."""
    index, rest = divmod(pts, FRAME_TICKS)
    assert rest == 0, f"pts {pts} names no frame the headset sent"
    return index


async def test_mentor_sees_aligned_overlays_and_draws_ink(
    live_server: LiveServer, headset: HeadsetClient, page: Any
) -> None:
    await sign_in(page, live_server, "mentor")
    await join(page, "mentor")
    await page.evaluate("fieldsight.readFrameCode = true")

    # Video arrives and overlays are drawn on the frames they belong to, with marker id 7.
    await wait_for(page, "fieldsight.state === 'live' && fieldsight.framesDecoded > 10")
    await wait_for(
        page,
        "fieldsight.overlaysDrawn > 0 && fieldsight.overlaysMatched > 0 && fieldsight.lastDrawn"
        " && fieldsight.lastDrawn.markerIds.includes(7) && !fieldsight.lastDrawn.stale",
    )
    handle = await page.evaluate("({...fieldsight})")
    assert handle["overlaysReceived"] > 0
    assert handle["lastDrawn"]["ageMs"] <= handle["staleAfterMs"]

    # The timestamp rVFC reports names the frame on screen: its pixels carry the same counter.
    # (A callback that runs late on a loaded machine may copy a newer frame already: then the
    # pixels run a frame or two ahead of the timestamp, never behind.)
    await wait_for(page, "fieldsight.latency.length >= 20")
    latency = await page.evaluate("fieldsight.latency")
    read = [e for e in latency if e["code"] is not None]
    assert len(read) >= 0.9 * len(latency), latency
    offsets = [(e["code"] - sent_frame(e["rtpTimestamp"])) % 2**16 for e in read]
    assert set(offsets) <= {0, 1, 2, 3}, list(zip(read, offsets, strict=True))
    assert offsets.count(0) >= 0.5 * len(offsets), offsets

    # Draw with the mouse across the middle of the picture.
    box = await page.locator("#overlay-canvas").bounding_box()
    video = await page.evaluate("[video.videoWidth, video.videoHeight]")
    scale = min(box["width"] / video[0], box["height"] / video[1])
    left = box["x"] + (box["width"] - video[0] * scale) / 2
    top = box["y"] + (box["height"] - video[1] * scale) / 2
    start, end = (0.25, 0.4), (0.7, 0.65)

    def at(u: float, v: float) -> tuple[float, float]:
        return left + u * video[0] * scale, top + v * video[1] * scale

    frames_before = headset.report.frames_sent
    await page.mouse.move(*at(*start))
    await page.mouse.down()
    for i in range(1, 13):
        t = i / 12
        await page.mouse.move(
            *at(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
        )
    await page.mouse.up()

    await eventually(lambda: headset.strokes, 5, "the mentor's stroke at the headset")
    stroke = headset.strokes[0]
    assert stroke["tool"] == "pen" and stroke["author"] == "mentor"
    assert stroke["seq"] is None  # the seq goes to the author, in the ack after the commit
    assert 0 <= sent_frame(stroke["pts"]) <= frames_before
    points = stroke["points"]
    assert len(points) >= 2
    assert all(0 <= u <= 1 and 0 <= v <= 1 for u, v in points)
    assert points[0] == pytest.approx(list(start), abs=0.01)
    assert points[-1] == pytest.approx(list(end), abs=0.01)
    await wait_for(page, "fieldsight.strokesSent === 1 && fieldsight.strokesAcked === 1")

    # The mentor's microphone (Chromium's fake device beeps) reaches the headset.
    await eventually(lambda: headset.report.audio_peak > 1000, 5, "the mentor's voice")

    # An arrow too, for the screenshot.
    await page.click('#tools [data-tool="arrow"]')
    await page.click('.swatch[aria-label="yellow"]')
    await page.mouse.move(*at(0.85, 0.2))
    await page.mouse.down()
    await page.mouse.move(*at(0.7, 0.3), steps=4)
    await page.mouse.move(*at(0.6, 0.38), steps=4)
    await page.mouse.up()
    await wait_for(page, "fieldsight.strokesAcked === 2")
    await eventually(lambda: len(headset.strokes) == 2, 5, "the arrow at the headset")
    assert headset.strokes[1]["tool"] == "arrow" and len(headset.strokes[1]["points"]) == 2

    screenshot = os.environ.get(SCREENSHOT_ENV)
    if screenshot:
        await page.screenshot(path=screenshot)

    await page.click("#leave")
    await page.wait_for_selector("#view-lobby", state="visible", timeout=WAIT_MS)


async def test_observer_cannot_draw(live_server: LiveServer, page: Any) -> None:
    await sign_in(page, live_server, "mentor")
    await join(page, "observer")
    assert await page.locator('#tools [data-tool="pen"]').is_disabled()
    assert await page.locator('#tools [data-tool="arrow"]').is_disabled()
    assert "Observers watch only" in await page.locator("#tools-note").inner_text()

    await wait_for(page, "fieldsight.state === 'connected'")
    reply = await page.evaluate("fieldsight.drawStroke('pen', [[0.1, 0.1], [0.5, 0.5]])")
    assert reply["type"] == "error" and reply["code"] == "forbidden", reply
    error = await page.evaluate("fieldsight.lastError")
    assert error["code"] == "forbidden" and "cannot draw" in error["message"]
    assert await page.evaluate("fieldsight.strokesAcked") == 0


async def test_bad_login_is_explained(live_server: LiveServer, page: Any) -> None:
    await sign_in(page, live_server, "mentor", "not-the-password")
    error = page.locator("#login-error")
    await error.wait_for(state="visible", timeout=WAIT_MS)
    assert "wrong username or password" in await error.inner_text()
    assert await page.locator("#view-lobby").is_hidden()
    assert await page.evaluate("fieldsight.state") == "signed-out"


async def test_server_refusal_is_shown_in_words(live_server: LiveServer, page: Any) -> None:
    await sign_in(page, live_server, "trainer")
    await page.wait_for_selector("#view-lobby", state="visible", timeout=WAIT_MS)
    mentor = page.locator('#role-choice input[value="mentor"]')
    assert await mentor.is_disabled()
    assert "observers" in await page.locator("#join-note").inner_text()

    # Past the page's own guard, the server refuses and closes; the page says why.
    await mentor.evaluate("input => { input.disabled = false; }")
    await join(page, "mentor")
    await wait_for(page, "fieldsight.state === 'disconnected'")
    summary = await page.locator("#conn-summary").inner_text()
    assert "a trainer account cannot join as mentor" in summary and "4003" in summary, summary
    assert await page.locator("#reconnect").is_visible()
    assert (await page.evaluate("fieldsight.lastError"))["code"] == "close_4003"


async def test_video_comes_back_when_a_new_worker_joins(
    live_server: LiveServer, headset: HeadsetClient, page: Any
) -> None:
    await sign_in(page, live_server, "mentor")
    await join(page, "mentor")  # mid-stream: the worker is already sending
    await wait_for(page, "fieldsight.state === 'live' && fieldsight.framesDecoded > 5")
    await headset.aclose()
    await wait_for(page, "fieldsight.state === 'connected'")
    last_rtp = await page.evaluate("fieldsight.lastRtpTimestamp")
    decoded = await page.evaluate("fieldsight.framesDecoded")

    second = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD, room="pump-7"),
        open_source("synthetic"),
    )
    try:
        await second.start()
        # The new worker's own pts start again at 0; the room places them after the first's.
        try:
            await page.wait_for_function(
                f"fieldsight.state === 'live' && fieldsight.lastRtpTimestamp > {last_rtp}"
                f" && fieldsight.framesDecoded > {decoded} + 10",
                timeout=15_000,
                polling=100,
            )
        except Exception as exc:
            handle = await page.evaluate("({...fieldsight, latency: null})")
            log = await page.locator("#log").inner_text()
            raise AssertionError(f"no video from the new worker: {handle}\n{log}") from exc
        await wait_for(page, "fieldsight.lastDrawn && fieldsight.lastDrawn.markerIds.includes(7)")
    finally:
        await second.aclose()
    # The same peer connection carries the new worker: the page never had to reconnect.
    assert await page.evaluate("fieldsight.mediaReconnects") == 0


async def test_the_page_shows_whether_the_session_is_recorded(
    live_server: LiveServer, page: Any, headset: HeadsetClient
) -> None:
    """The badge follows the worker's consent, even when the page's channels open after the
    change (the state is re-sent when they open)."""
    await sign_in(page, live_server, "mentor")
    await eventually(
        lambda: (
            "annotations" in headset._channels
            and headset._channels["annotations"].readyState == "open"
        ),
        10,
        "the worker's channels",
    )
    await join(page, "mentor")
    headset.send_message("consent", recording=True)  # likely before the page's channels open
    badge = page.locator("#rec-badge")
    await wait_for(page, "document.getElementById('rec-badge').textContent.includes('Recording')")
    assert await badge.evaluate("b => b.classList.contains('on')")
    assert "consented" in (await badge.get_attribute("title") or "")
    await wait_for(page, "fieldsight.state === 'connected'")
    headset.send_message("consent", recording=False)
    await wait_for(page, "document.getElementById('rec-badge').textContent === 'Not recorded'")
    assert "not consented" in (await badge.get_attribute("title") or "")
