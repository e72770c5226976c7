"""The trainer's review page in a real Chromium, on a session recorded live a moment before.

A reference headset (synthetic source: its frame index in a 16-bit strip of pixels, pts = index *
3000 on the 90 kHz clock) streams into ``pump-7``; a mentor peer watches, the worker consents,
the mentor draws, marks a step and chats on frames it saw, then the worker withdraws consent.

What "in sync within one frame" means here, and is asserted:

* seeking to an event shows the recorded frame with the greatest pts <= the event's ``media_pts``
  (the event's own frame when it was recorded): the page's frame pts (first_pts + rVFC
  ``mediaTime`` * 90000) equals that frame's pts as read from the MP4 with PyAV, and the pixels
  on screen carry that frame's index (the frame code), so the timestamp names the picture shown;
* the overlay drawn on a frame is the analysed one with the greatest pts <= the frame's pts, from
  ``overlays.jsonl`` (so the frame lies in [overlay pts, next overlay pts): within one analysis
  interval, and exactly the frame's own overlay when that frame was analysed); checked for the
  sought frame and for every frame presented during a second of playback.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import av
import pytest

from headset_client.client import HeadsetClient
from server.routes.review import OverlayIndex
from tests.e2e.test_mentor_page import FRAME_TICKS, WAIT_MS, sign_in, wait_for
from tests.integration.peers import ViewerPeer
from tests.live import LiveServer
from tests.util import eventually

pytestmark = pytest.mark.e2e

NUDGE_TICKS = 90  # the page seeks 1 ms past the frame's start (review.js SEEK_NUDGE_S)


async def api(server: LiveServer, token: str, path: str) -> tuple[int, Any]:
    """GET a JSON resource from a thread (the server runs on this test's event loop)."""
    return await asyncio.to_thread(_get, server, token, path)


def _get(server: LiveServer, token: str, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _range(url: str, header: str) -> tuple[int, int]:
    request = urllib.request.Request(url, headers={"Range": header})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, len(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, 0


def send(peer: ViewerPeer, kind: str, **fields: Any) -> None:
    body = {"v": 1, "type": kind, "id": f"{kind}{int(time.time() * 1000) % 10**8}", **fields}
    peer.channels["annotations"].send(json.dumps(body))


def frame_pts(path: Path) -> list[int]:
    """Every frame's pts in the recorded MP4 (90 kHz, file time 0 = 0)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base == 1 / 90000 or float(stream.time_base) == pytest.approx(1 / 90000)
        return sorted(int(p.pts) for p in container.demux(stream) if p.pts is not None)


def overlay_pts(path: Path) -> list[int]:
    return [json.loads(line)["pts"] for line in path.read_text().splitlines() if line]


def expected_overlay(overlays: list[int], pts: int) -> int | None:
    """The overlay the page must draw on frame ``pts``: the greatest overlay pts <= it."""
    i = bisect.bisect_right(overlays, pts)
    return overlays[i - 1] if i else None


async def record_session(server: LiveServer, headset: HeadsetClient) -> tuple[str, dict[str, int]]:
    """A few seconds recorded with consent; an ink stroke, a step and a chat on frames the mentor
    saw. Returns the session id and the seq of each of those events by type."""
    mentor = ViewerPeer(server.url, await server.login_async("mentor"), decode_code=False)
    await mentor.start()
    try:
        await eventually(lambda: mentor.channels_open and len(mentor.frames) > 10, 15, "video")
        session_id = mentor.joined["session_id"]
        recording = lambda: list(mentor.recording_states)  # noqa: E731
        headset.send_message("consent", recording=True)
        await eventually(lambda: recording() and recording()[-1]["on"], 10, "recording on")
        start = len(mentor.frames)
        await eventually(lambda: len(mentor.frames) > start + 45, 10, "1.5 s recorded")
        mentor.stroke(mentor.frames[-1][0], [[0.2, 0.3], [0.5, 0.5], [0.7, 0.4]])
        await eventually(lambda: len(mentor.frames) > start + 70, 10, "more video")
        send(mentor, "step", pts=mentor.frames[-1][0], title="Check the marker")
        await eventually(lambda: len(mentor.frames) > start + 95, 10, "more video")
        send(mentor, "chat", pts=mentor.frames[-1][0], text="looks good")
        await eventually(lambda: len(mentor.frames) > start + 130, 10, "more video")
        headset.send_message("consent", recording=False)
        await eventually(lambda: not recording()[-1]["on"], 10, "recording off")
    finally:
        await mentor.aclose()

    async def stored() -> dict[str, int]:
        events = await server.services.events.events(session_id, limit=1000)
        return {e.type: e.seq for e in events if e.type in ("ink", "step", "chat")}

    deadline = time.monotonic() + 10
    while len(seqs := await stored()) < 3 or "recording_stopped" not in {
        e.type for e in await server.services.events.events(session_id, limit=1000)
    }:
        assert time.monotonic() < deadline, seqs
        await asyncio.sleep(0.1)
    return session_id, seqs


async def test_review_plays_a_recorded_session_with_overlays_in_sync(
    live_server: LiveServer, headset: HeadsetClient, page: Any
) -> None:
    session_id, seqs = await record_session(live_server, headset)
    trainer = await live_server.login_async("trainer")
    status, review = await api(live_server, trainer, f"/api/sessions/{session_id}/review")
    assert status == 200, review
    video = review["video"]
    assert video is not None and video["status"] == "complete", review
    first_pts = video["first_pts"]
    assert isinstance(first_pts, int)
    assert [s["title"] for s in review["steps"]] == ["Check the marker"]
    folder = live_server.settings.data_dir / "recordings" / session_id
    frames = frame_pts(folder / "worker-video.mp4")
    overlays = overlay_pts(folder / "overlays.jsonl")
    assert len(frames) > 90 and len(overlays) > 30
    assert overlays == sorted(overlays)
    # the overlays API: a pts range, in order, the one before it, paging by limit
    lo, hi = overlays[3], overlays[12]
    path = f"/api/sessions/{session_id}/overlays?from_pts={lo}&to_pts={hi}&limit=5"
    status, body = await api(live_server, trainer, path)
    assert status == 200
    assert [o["pts"] for o in body["overlays"]] == overlays[3:8]
    assert body["previous"]["pts"] == overlays[2] and body["next_from_pts"] == overlays[8]
    # the video URL is signed for this user and session, and serves byte ranges
    ranged = await asyncio.to_thread(_range, live_server.url + video["url"], "bytes=0-99")
    assert ranged == (206, 100)
    forged = video["url"].replace("sig=", "sig=0")[:-1]
    assert (await asyncio.to_thread(_range, live_server.url + forged, "bytes=0-99"))[0] == 403

    # From the mentor page (as a trainer) to the review page; the session is listed.
    await sign_in(page, live_server, "trainer")
    await page.wait_for_selector("#view-lobby", state="visible", timeout=WAIT_MS)
    await page.click("#review-link")
    row = page.locator(f'tr[data-session-id="{session_id}"]')
    await row.wait_for(state="visible", timeout=WAIT_MS)
    assert "pump-7" in await row.inner_text()
    await row.locator("button.open-session").click()
    await wait_for(page, "window.__review && __review.ready")
    state = await page.evaluate("__review")
    assert state["hasRecording"] and state["firstPts"] == first_pts and state["metadataLoaded"]
    assert await page.locator(".step-mark").count() == 1
    await page.evaluate("__review.readFrameCode = true")

    # Click the stroke in the timeline: the video shows the stroke's frame, with its overlay.
    ink = next(e for e in review["events"] if e["seq"] == seqs["ink"])
    media_pts = ink["media_pts"]
    frames_before = await page.evaluate("__review.framesShown")
    await page.click(f'#timeline li[data-seq="{seqs["ink"]}"]')
    await wait_for(
        page,
        f"__review.framesShown > {frames_before} && __review.frame.source === 'rvfc'"
        f" && __review.frame.pts <= {media_pts + NUDGE_TICKS}"
        f" && __review.frame.pts > {media_pts - FRAME_TICKS}"
        " && __review.shown && __review.shown.resolved",
    )
    state = await page.evaluate("__review")
    frame = state["frame"]
    seek = state["lastSeek"]
    assert seek["mediaPts"] == media_pts
    assert seek["seconds"] == pytest.approx((media_pts - first_pts) / 90000, abs=1e-9)
    # the recorded frame at or before the event's pts (its own frame when that was recorded)
    recorded = [first_pts + rel for rel in frames]
    i = bisect.bisect_right(recorded, media_pts + NUDGE_TICKS)
    assert i > 0
    assert frame["pts"] == recorded[i - 1], (frame, media_pts)
    assert media_pts - FRAME_TICKS < frame["pts"] <= media_pts
    assert frame["pts"] == first_pts + round(frame["mediaTime"] * 90000)
    # the pixels on screen carry that frame's index: the timestamp names the picture
    assert frame["code"] == (frame["pts"] // FRAME_TICKS) % 2**16, frame
    # the overlay drawn is that frame's (or the newest analysed one before it)
    shown = state["shown"]
    assert shown["framePts"] == frame["pts"]
    assert shown["pts"] == expected_overlay(overlays, frame["pts"]), (shown, frame)
    following = overlays[bisect.bisect_right(overlays, shown["pts"]) :]
    assert shown["pts"] <= frame["pts"] < (following[0] if following else 2**63)

    # Playback at 2x: every presented frame gets the overlay selected for it.
    await page.select_option("#speed", "2")
    assert await page.evaluate("document.getElementById('video').playbackRate") == 2
    await page.evaluate("__review.history.length = 0; __review.frame = null")
    await page.evaluate("document.getElementById('play').click()")
    await wait_for(page, "__review.history.length >= 20")
    await page.evaluate("document.getElementById('video').pause()")
    history = [h for h in await page.evaluate("__review.history") if h["source"] == "rvfc"]
    assert len(history) >= 15
    resolved = [
        h for h in history if h.get("overlayPts") is not None or h["framePts"] < overlays[0]
    ]
    assert len(resolved) >= 0.9 * len(history), history
    for h in resolved:
        assert h["framePts"] == first_pts + round(h["mediaTime"] * 90000)
        assert h["framePts"] - first_pts in set(frames), h  # a frame of the file, exactly
        assert h.get("overlayPts") == expected_overlay(overlays, h["framePts"]), h
        if h["code"] is not None:  # a late callback may copy the next frame, never an older one
            assert 0 <= (h["code"] - h["framePts"] // FRAME_TICKS) % 2**16 <= 2, h
    coded = [h for h in history if h["code"] is not None]
    assert coded and sum(
        h["code"] == (h["framePts"] // FRAME_TICKS) % 2**16 for h in coded
    ) >= 0.5 * len(coded)

    # Half speed; a step marker on the seek bar seeks too.
    await page.select_option("#speed", "0.5")
    assert await page.evaluate("document.getElementById('video').playbackRate") == 0.5
    await page.click(".step-mark")
    step = review["steps"][0]
    await wait_for(page, f"__review.lastSeek && __review.lastSeek.mediaPts === {step['media_pts']}")


async def test_session_without_recording_says_so(live_server: LiveServer, page: Any) -> None:
    mentor = ViewerPeer(live_server.url, await live_server.login_async("mentor"), room="pump-8")
    await mentor.start()
    try:
        session_id = mentor.joined["session_id"]
        await eventually(lambda: mentor.channels_open, 10, "channels")
    finally:
        await mentor.aclose()
    trainer = await live_server.login_async("trainer")
    status, review = await api(live_server, trainer, f"/api/sessions/{session_id}/review")
    assert status == 200 and review["video"] is None
    await sign_in(page, live_server, "trainer")
    await page.wait_for_selector("#view-lobby", state="visible", timeout=WAIT_MS)
    await page.goto(f"{live_server.url}/mentor/review.html?session={session_id}")
    message = page.locator("#stage-message.no-recording")
    await message.wait_for(state="visible", timeout=WAIT_MS)
    assert "no recording" in await message.inner_text()
    assert await page.evaluate("__review.hasRecording") is False
    assert await page.locator("#controls.disabled").count() == 1
    # the list filters by room
    await page.click("#back")
    await page.fill("#filter-room", "pump-8")
    await page.click("#filter-apply")
    row = page.locator(f'tr[data-session-id="{session_id}"]')
    await row.wait_for(state="visible", timeout=WAIT_MS)
    assert await page.locator("#session-rows tr").count() == 1


async def test_review_api_rules(live_server: LiveServer) -> None:
    mentor = ViewerPeer(live_server.url, await live_server.login_async("mentor"), room="pump-9")
    await mentor.start()
    try:
        session_id = mentor.joined["session_id"]
    finally:
        await mentor.aclose()
    trainer = await live_server.login_async("trainer")
    worker = await live_server.login_async("worker")
    unknown = "0" * 32
    assert (await api(live_server, trainer, f"/api/sessions/{unknown}/review"))[0] == 404
    assert (await api(live_server, trainer, f"/api/sessions/{unknown}/overlays"))[0] == 404
    assert (await api(live_server, trainer, f"/api/sessions/{session_id}/review"))[0] == 200
    bad = f"/api/sessions/{session_id}/overlays?from_pts=900&to_pts=900"
    assert (await api(live_server, trainer, bad))[0] == 422
    assert (await api(live_server, trainer, f"/api/sessions/{session_id}/overlays?from_pts=-1"))[
        0
    ] == 422
    status, body = await api(live_server, trainer, f"/api/sessions/{session_id}/overlays")
    assert status == 200 and body["overlays"] == [] and body["previous"] is None
    # a worker who was not in the session does not learn it exists
    assert (await api(live_server, worker, f"/api/sessions/{session_id}/review"))[0] == 404
    assert (await api(live_server, worker, f"/api/sessions/{session_id}/overlays"))[0] == 404


def test_overlay_index_seeks_and_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "overlays.jsonl"
    path.write_text(
        "".join(f'{{"type":"overlay","pts":{p},"n":{p // 10}}}\n' for p in range(0, 1000, 10))
    )
    index = OverlayIndex()
    lines, previous, more = index.query(path, 105, 200, 100)
    assert [json.loads(x)["pts"] for x in lines] == list(range(110, 200, 10))
    assert previous is not None and json.loads(previous)["pts"] == 100 and more is None
    lines, _, more = index.query(path, 0, None, 5)
    assert len(lines) == 5 and more == 50
    assert index.builds == 1  # the second query read no line to find its range
    with path.open("a") as file:  # the file grows (a session still recording), a line half-written
        file.write('{"type":"overlay","pts":1000}\n{"type":"overlay","pts":10')
    lines, previous, _ = index.query(path, 995, None, 10)
    assert [json.loads(x)["pts"] for x in lines] == [1000] and previous is not None
    assert index.builds == 2


def test_overlay_index_keeps_pts_order_when_the_file_does_not(tmp_path: Path) -> None:
    path = tmp_path / "overlays.jsonl"
    order = [0, 30, 10, 40, 20]
    path.write_text("".join(f'{{"type":"overlay","pts":{p}}}\n' for p in order))
    lines, previous, _ = OverlayIndex().query(path, 10, 40, 10)
    assert [json.loads(x)["pts"] for x in lines] == [10, 20, 30]
    assert previous is not None and json.loads(previous)["pts"] == 0
