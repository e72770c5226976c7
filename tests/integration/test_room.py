"""Rooms with real aiortc peers over loopback: views, overlays, ink, voice, comings and goings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from headset_client.client import HeadsetClient
from tests.integration.peers import ViewerPeer
from tests.live import LiveServer, headset_for
from tests.util import eventually

pytestmark = pytest.mark.network


headset = headset_for


@pytest.fixture
async def worker(live_server: LiveServer) -> AsyncIterator[HeadsetClient]:
    client = headset(live_server)
    await client.start()
    try:
        yield client
    finally:
        await client.aclose()


async def viewer(server: LiveServer, role: str = "mentor", **kw: object) -> ViewerPeer:
    username = "trainer" if role == "observer" else "mentor"
    peer = ViewerPeer(server.url, await server.login_async(username), role=role, **kw)  # type: ignore[arg-type]
    await peer.start()
    return peer


async def test_two_mentors_see_the_same_frames_named_by_the_same_pts(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    a, b = await viewer(live_server), await viewer(live_server)
    try:
        await eventually(lambda: len(a.frames) > 20 and len(b.frames) > 20, 15, "frames")
        await eventually(lambda: a.overlays and b.overlays, 10, "overlays at both mentors")
        for peer in (a, b):
            # The media clock: a frame's pts at the mentor is the pts the headset gave it.
            assert [(p, c * 3000) for p, c, _, _ in peer.frames[-10:] if p != c * 3000] == []
            assert peer.frames[-1][3] == (640, 480)
        sent = {code for _, code, _, _ in a.frames} & {code for _, code, _, _ in b.frames}
        assert len(sent) > 10
        overlay = a.overlays[-1]
        assert overlay["pts"] % 3000 == 0 and [m["id"] for m in overlay["markers"]] == [7]
    finally:
        await a.aclose()
        await b.aclose()


async def test_ink_reaches_worker_and_other_mentors_and_is_logged(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    author, other = await viewer(live_server), await viewer(live_server)
    try:
        await eventually(
            lambda: author.frames and author.channels_open and other.channels_open, 15, "video"
        )
        pts = author.frames[-1][0]
        sid = author.stroke(pts, [[0.2, 0.2], [0.5, 0.5], [0.6, 0.4]], tool="arrow")
        await eventually(lambda: worker.strokes, 10, "stroke at the worker")
        stroke = worker.strokes[0]
        assert (stroke["id"], stroke["pts"], stroke["tool"]) == (sid, pts, "arrow")
        assert stroke["author"] == "mentor"
        assert stroke["points"] == [[0.2, 0.2], [0.5, 0.5], [0.6, 0.4]]
        await eventually(lambda: any(m["type"] == "ack" for m in author.annotations), 5, "ack")
        ack = next(m for m in author.annotations if m["type"] == "ack")
        assert ack["id"] == sid
        await eventually(lambda: other.annotations, 5, "stroke at the other mentor")
        assert other.annotations[0]["id"] == sid
        assert worker.report.annotations_received == 1
        events = await live_server.services.events.events(author.joined["session_id"])
        ink = [e for e in events if e.type == "ink"]
        assert len(ink) == 1 and ink[0].seq == ack["seq"] and ink[0].media_pts == pts
        assert [e.type for e in events] == ["join", "join", "join", "ink"]
        assert ink[0].actor == "mentor"
    finally:
        await author.aclose()
        await other.aclose()


async def test_observer_cannot_draw(live_server: LiveServer, worker: HeadsetClient) -> None:
    observer = await viewer(live_server, role="observer")
    try:
        await eventually(lambda: observer.channels_open, 10, "channels")
        observer.stroke(3000, [[0.1, 0.1], [0.2, 0.2]])
        await eventually(lambda: observer.annotations, 5, "an answer")
        assert observer.annotations[0]["type"] == "error"
        assert observer.annotations[0]["code"] == "forbidden"
        assert worker.strokes == []
        events = await live_server.services.events.events(observer.joined["session_id"])
        assert not [e for e in events if e.type == "ink"]
    finally:
        await observer.aclose()


async def test_bad_data_channel_input_gets_an_error_and_the_room_goes_on(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    mentor = await viewer(live_server)
    try:
        await eventually(lambda: mentor.channels_open and mentor.frames, 10, "channels")
        for raw in ["{oops", '{"type":"stroke","id":"x"}', '{"type":"wipe"}', "x" * 70000]:
            mentor.channels["annotations"].send(raw)
        mentor.channels["telemetry"].send('{"type":"telemetry","pts":1}')  # not the worker
        await eventually(lambda: len(mentor.annotations) >= 4, 5, "four errors")
        assert all(m["type"] == "error" for m in mentor.annotations)
        count = len(mentor.frames)
        await eventually(lambda: len(mentor.frames) > count + 10, 5, "video goes on")
        assert worker.report.overlays_received > 0
    finally:
        await mentor.aclose()


async def test_voices_reach_the_worker_and_the_other_mentor(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    speaker = await viewer(live_server, audio=True)
    listener = await viewer(live_server, decode_code=False)
    try:
        await eventually(lambda: worker.report.audio_peak > 2000, 15, "the tone at the worker")
        await eventually(lambda: listener.audio_peak > 2000, 10, "the tone at the other mentor")
    finally:
        await speaker.aclose()
        await listener.aclose()


async def test_worker_changes_under_a_mentor_who_joined_mid_stream(live_server: LiveServer) -> None:
    first = headset(live_server)
    await first.start()
    mentor = await viewer(live_server)
    try:
        await eventually(lambda: len(mentor.frames) > 10, 15, "first worker's video")
        await first.aclose()
        await eventually(lambda: live_server.services.hub.rooms["pump-7"].worker is None, 5)
        seen = len(mentor.frames)
        second = headset(live_server)  # its pts start at 0 again
        await second.start()
        try:
            # Same mentor connection, no renegotiation: the new worker's video fills the slot,
            # its frames placed after the first worker's on the room's timeline.
            await eventually(lambda: len(mentor.frames) > seen + 10, 15, "second worker's video")
            pts = [p for p, _, _, _ in mentor.frames]
            assert pts == sorted(pts) and len(set(pts)) == len(pts)
            await eventually(lambda: second.report.overlays_received > 3, 10, "overlays again")
            assert second.report.overlays_unmatched == 0  # shifted back to the worker's own pts
            frame_pts = mentor.frames[-1][0]
            mentor.stroke(frame_pts, [[0.3, 0.3], [0.4, 0.4]])
            await eventually(lambda: second.strokes, 10, "ink at the second worker")
            offset = live_server.services.hub.rooms["pump-7"].timeline.offset
            assert offset > 0 and second.strokes[0]["pts"] == frame_pts - offset
            assert second.strokes[0]["pts"] % 3000 == 0  # a pts the headset really sent
        finally:
            await second.aclose()
    finally:
        await first.aclose()
        await mentor.aclose()


async def test_leave_and_rejoin(live_server: LiveServer) -> None:
    mentor = await viewer(live_server)
    first = headset(live_server)
    await first.start()
    try:
        await eventually(lambda: len(mentor.frames) > 5, 15, "first worker's video")
        await first.aclose()
        second = headset(live_server)
        await second.start()
        try:
            await eventually(lambda: second.report.overlays_received > 0, 15, "overlays again")
        finally:
            await second.aclose()
        await mentor.aclose()
        await eventually(lambda: not live_server.services.hub.rooms, 5, "room closed when empty")
        again = await viewer(live_server)
        try:
            assert again.joined["participants"][0]["username"] == "mentor"
            assert again.joined["session_id"] != mentor.joined["session_id"]  # a new session
        finally:
            await again.aclose()
    finally:
        await first.aclose()
        await mentor.aclose()


async def test_a_flood_of_strokes_is_limited_and_nothing_stored_is_lost(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    mentor = await viewer(live_server, decode_code=False)
    try:
        await eventually(lambda: mentor.channels_open and mentor.frames, 10, "channels")
        pts = mentor.frames[-1][0]
        started = time.monotonic()
        for index in range(100):
            mentor.stroke(pts, [[0.1, 0.1], [0.2, 0.2]], sid=f"flood{index}")
        answers = lambda: [m for m in mentor.annotations if m["type"] in ("ack", "error")]  # noqa: E731
        await eventually(lambda: len(answers()) >= 100, 10, "an answer to each stroke")
        elapsed = time.monotonic() - started
        acks = [m for m in mentor.annotations if m["type"] == "ack"]
        limited = [m for m in mentor.annotations if m.get("code") == "rate_limited"]
        assert len(acks) + len(limited) == 100
        # The bucket: a burst of 60, then 20 a second while the flood lasts.
        assert limited and 60 <= len(acks) <= 60 + 20 * elapsed + 1
        events = await live_server.services.events.events(mentor.joined["session_id"], limit=500)
        stored = sorted(e.payload["id"] for e in events if e.type == "ink")
        assert stored == sorted(a["id"] for a in acks)  # acked means stored, and nothing else
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
    finally:
        await mentor.aclose()


async def test_a_client_may_renegotiate(live_server: LiveServer, worker: HeadsetClient) -> None:
    """A second offer on the same connection (e.g. a mentor turning the microphone on)."""
    import json

    from aiortc import RTCSessionDescription

    from tests.integration.peers import ToneTrack

    mentor = await viewer(live_server, decode_code=False)
    try:
        await eventually(lambda: len(mentor.frames) > 5, 15, "video")
        assert mentor.pc is not None and mentor.ws is not None
        audio = next(t for t in mentor.pc.getTransceivers() if t.kind == "audio")
        audio.direction = "sendrecv"
        audio.sender.replaceTrack(ToneTrack())
        await mentor.pc.setLocalDescription(await mentor.pc.createOffer())
        before = len(mentor.signals)
        await mentor.ws.send(
            json.dumps({"v": 1, "type": "offer", "sdp": mentor.pc.localDescription.sdp})
        )
        await eventually(
            lambda: any(s["type"] == "answer" for s in mentor.signals[before:]), 10, "the answer"
        )
        answer = mentor.signals[-1]["sdp"]
        await mentor.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        seen = len(mentor.frames)
        await eventually(lambda: len(mentor.frames) > seen + 10, 10, "video goes on")
        await eventually(lambda: worker.report.audio_peak > 2000, 15, "the new voice at the worker")
    finally:
        await mentor.aclose()


async def test_ink_on_the_marker_is_anchored_to_it(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    """A stroke drawn on the marker is fixed to the marker's frame: the headset gets the 3D
    anchor, and later overlays carry the stroke where the (moving) marker now is."""
    mentor = await viewer(live_server, decode_code=False)
    try:
        await eventually(lambda: mentor.channels_open and len(mentor.overlays) > 3, 15, "overlays")
        overlay = next(o for o in reversed(mentor.overlays) if o["markers"])
        corners = overlay["markers"][0]["corners"]
        centre = [sum(c[0] for c in corners) / 4, sum(c[1] for c in corners) / 4]
        points = [[centre[0] - 0.02, centre[1]], centre, [centre[0] + 0.02, centre[1]]]
        sid = mentor.stroke(overlay["pts"], points)
        await eventually(lambda: sid in worker.anchors, 10, "the anchor at the headset")
        anchor = worker.anchors[sid]
        assert anchor["frame"] == "marker:7" and len(anchor["xyz"]) == 3
        assert all(abs(p[2]) < 0.01 for p in anchor["xyz"])  # on the marker's plane (z = 0)

        def on_marker(o: dict[str, object]) -> bool:  # the stroke shown on a frame with the marker
            anchors = o["anchors"]
            assert isinstance(anchors, list)
            return bool(o["markers"]) and any(a["id"] == sid and a["visible"] for a in anchors)

        await eventually(
            lambda: any(on_marker(o) for o in mentor.overlays), 10, "the anchored stroke"
        )
        latest = next(o for o in reversed(mentor.overlays) if on_marker(o))
        drawn = next(a for a in latest["anchors"] if a["id"] == sid)["uv"][1]
        corners = latest["markers"][0]["corners"]
        now = [sum(c[0] for c in corners) / 4, sum(c[1] for c in corners) / 4]
        assert abs(drawn[0] - now[0]) < 0.01 and abs(drawn[1] - now[1]) < 0.01
        events = await live_server.services.events.events(mentor.joined["session_id"])
        ink = next(e for e in events if e.type == "ink")
        assert ink.payload["anchor"]["frame"] == "marker:7"
    finally:
        await mentor.aclose()
