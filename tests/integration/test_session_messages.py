"""Chat, freeze-frame, step markers and recording consent: relayed live, stored as session
events, acknowledged to the author only once stored; who may send what; and bad input."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from headset_client.client import HeadsetClient
from tests.integration.peers import ViewerPeer
from tests.live import LiveServer, headset_for
from tests.util import eventually

pytestmark = pytest.mark.network


@pytest.fixture
async def worker(live_server: LiveServer) -> AsyncIterator[HeadsetClient]:
    client = headset_for(live_server)
    await client.start()
    try:
        yield client
    finally:
        await client.aclose()


async def viewer(server: LiveServer, role: str = "mentor") -> ViewerPeer:
    username = "trainer" if role == "observer" else "mentor"
    peer = ViewerPeer(server.url, await server.login_async(username), role=role)
    await peer.start()
    await eventually(lambda: peer.channels_open and peer.frames, 15, "a mentor with video")
    return peer


def send(peer: ViewerPeer, kind: str, **fields: Any) -> str:
    message_id = f"{kind}-{int(time.time() * 1e6) % 10**9}"
    body = {"v": 1, "type": kind, "id": message_id, **fields}
    peer.channels["annotations"].send(json.dumps(body))
    return message_id


def answer(peer: ViewerPeer, message_id: str) -> dict[str, Any] | None:
    for m in peer.annotations:
        if m.get("id") == message_id and m["type"] in ("ack", "error"):
            return m
    return None


async def test_chat_freeze_and_steps_are_relayed_stored_and_acked(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    mentor, observer = await viewer(live_server), await viewer(live_server, "observer")
    try:
        pts = mentor.frames[-1][0]
        chat = send(mentor, "chat", text="Close the valve on the left first.", pts=pts)
        step = send(mentor, "step", pts=pts, title="Isolate the pump")
        freeze = send(mentor, "freeze", pts=pts, on=True)
        note = send(observer, "chat", text="Noted for the module.")
        worker_chat = worker.send_message("chat", text="Which one, the red one?")
        await eventually(
            lambda: all(answer(mentor, i) for i in (chat, step, freeze)), 10, "mentor acks"
        )
        await eventually(lambda: answer(observer, note), 10, "observer ack")
        await eventually(lambda: worker_chat in worker.acks, 10, "worker ack")
        assert all(answer(mentor, i)["type"] == "ack" for i in (chat, step, freeze))  # type: ignore[index]
        # relayed to the others, with the author set by the server
        await eventually(lambda: len(worker.messages) >= 4, 10, "messages at the worker")
        got = {m["id"]: m for m in worker.messages}
        assert got[chat]["text"].startswith("Close") and got[chat]["author"] == "mentor"
        assert got[step]["title"] == "Isolate the pump" and got[freeze]["on"] is True
        assert got[note]["author"] == "trainer"
        await eventually(
            lambda: any(m.get("id") == worker_chat for m in mentor.annotations), 10, "worker chat"
        )
        # stored in order, acks carry the stored seq
        session_id = mentor.joined["session_id"]
        events = await live_server.services.events.events(session_id)
        by_id = {e.payload.get("id"): e for e in events if e.type in ("chat", "step", "freeze")}
        for message_id in (chat, step, freeze):
            ack = answer(mentor, message_id)
            assert ack is not None and by_id[message_id].seq == ack["seq"]
        assert by_id[step].media_pts == pts and by_id[step].actor == "mentor"
        assert by_id[worker_chat].actor == "worker" and by_id[note].actor == "trainer"
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        await mentor.aclose()
        await observer.aclose()


async def test_who_may_send_what_and_bad_messages(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    observer = await viewer(live_server, "observer")
    try:
        refused = [
            send(observer, "step", pts=0, title="not mine to set"),
            send(observer, "freeze", pts=0),
            send(observer, "consent", recording=True),
        ]
        huge = send(observer, "chat", text="x" * 2001)
        await eventually(lambda: all(answer(observer, i) for i in refused), 10, "refusals")
        for message_id in refused:
            assert answer(observer, message_id)["code"] == "forbidden"  # type: ignore[index]
        await eventually(
            lambda: any(m.get("code") == "invalid" for m in observer.annotations), 10, "invalid"
        )
        assert not answer(observer, huge)  # refused before it was read: no id to answer
        assert any("2000" in m.get("message", "") for m in observer.annotations)
        events = await live_server.services.events.events(observer.joined["session_id"])
        assert {e.type for e in events} <= {"join"}  # nothing refused was stored
    finally:
        await observer.aclose()


async def test_recording_consent_is_the_workers_and_everyone_is_told(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    mentor = await viewer(live_server)
    try:
        assert mentor.joined["recording"]["on"] is False
        assert "consent" in mentor.joined["recording"]["reason"]
        given = worker.send_message("consent", recording=True)
        await eventually(lambda: given in worker.acks, 10, "consent stored")
        recording = lambda: list(mentor.recording_states)  # noqa: E731
        await eventually(lambda: recording() and recording()[-1]["on"], 10, "recording on")
        withdrawn = worker.send_message("consent", recording=False)
        await eventually(lambda: withdrawn in worker.acks, 10, "withdrawal stored")
        await eventually(lambda: not recording()[-1]["on"], 10, "recording off")
        assert worker.recording is not None and worker.recording["on"] is False
        events = await live_server.services.events.events(mentor.joined["session_id"])
        consents = [e.payload["recording"] for e in events if e.type == "consent"]
        assert consents == [True, False]
    finally:
        await mentor.aclose()
