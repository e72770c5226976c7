"""Crash safety, as a test: ``kill -9`` the server while ink and chat flow and a recording runs.

After a restart on the same data: every event a client saw acknowledged is in the log, in order,
with no gap in the sequence; the recording plays up to within 1 s of the kill; the session is
marked as ended abnormally; a client that comes back gets a new session part linked to the old
one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from headset_client.client import HeadsetClient
from tests.integration.peers import ViewerPeer
from tests.live import PASSWORD, ServerProcess, free_port, headset_for
from tests.util import eventually

pytestmark = pytest.mark.network


class Server:
    """``python -m server`` on a fixed port and data dir, that can be killed and restarted."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.data = tmp_path / "srv"
        self.log = tmp_path / "server.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "FIELDSIGHT_PORT": str(self.port),
            "FIELDSIGHT_DATA_DIR": str(self.data),
            "FIELDSIGHT_DEMO_PASSWORD": PASSWORD,
            "FIELDSIGHT_ICE_HOST_ADDRESSES": "127.0.0.1",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text())
            try:
                urllib.request.urlopen(self.url + "/healthz", None, 1).close()
                return ServerProcess(url=self.url, process=self.process)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> float:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        killed = time.time()
        self.process.wait(10)
        return killed

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def get(server: ServerProcess, path: str, token: str) -> Any:
    return server.get(path, token)


async def test_kill_9_loses_nothing_acknowledged(server: Server) -> None:
    live = server.start()
    worker = headset_for(live)
    await worker.start()
    mentor = ViewerPeer(live.url, await live.login_async("mentor"))
    await mentor.start()
    acked: dict[str, int] = {}
    try:
        await eventually(lambda: mentor.channels_open and len(mentor.frames) > 10, 15, "video")
        session_id = mentor.joined["session_id"]
        worker.send_message("consent", recording=True)
        await eventually(
            lambda: any(m["on"] for m in mentor.recording_states),
            10,
            "recording on",
        )
        recording_on = time.time()
        # Ink and chat flow from the mentor and the worker until the kill.
        sent: list[str] = []
        deadline = time.monotonic() + 3.0
        n = 0
        while time.monotonic() < deadline:
            n += 1
            pts = mentor.frames[-1][0]
            sent.append(mentor.stroke(pts, [[0.1, 0.1], [0.2, 0.2 + n * 0.001]], sid=f"k{n}"))
            if n % 3 == 0:
                sent.append(worker.send_message("chat", text=f"message {n}"))
            await asyncio.sleep(0.08)
        killed_at = server.kill()
    finally:
        for m in mentor.annotations:
            if m.get("type") == "ack":
                acked[m["id"]] = m["seq"]
        acked.update(worker.acks)
        await mentor.aclose()
        await worker.aclose()
    assert len(acked) >= 20, f"only {len(acked)} acks before the kill"

    # --- restart on the same data -----------------------------------------------------------
    live = server.start()
    token = await live.login_async("trainer")
    facts = await asyncio.to_thread(get, live, f"/api/sessions/{session_id}", token)
    assert facts["live"] is False
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await asyncio.to_thread(
            get, live, f"/api/sessions/{session_id}/events?after_seq={after}&limit=500", token
        )
        events += page["events"]
        after = page["next_after_seq"]
        if not page["more"]:
            break
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a repeat in the sequence"
    stored = {e["payload"].get("id"): e["seq"] for e in events if "id" in e["payload"]}
    missing = {i: s for i, s in acked.items() if stored.get(i) != s}
    assert not missing, f"acknowledged but not stored as acked: {missing}"
    # in order: each author's messages appear in the order they were sent
    order = [e["payload"]["id"] for e in events if e["type"] == "ink"]
    assert order == [i for i in sent if i in set(order) and i.startswith("k")]

    # the session ended abnormally (the database says so)
    from sessions import Database, EventLog

    db = Database(f"sqlite+aiosqlite:///{server.data / 'fieldsight.db'}")
    try:
        record = await EventLog(db).get_session(session_id)
    finally:
        await db.aclose()
    assert record is not None and record.ended_abnormally and record.end_reason

    # the recording plays up to within 1 s of the kill
    video = server.data / "recordings" / session_id / "worker-video.mp4"
    with av.open(str(video)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0) if f.pts is not None]
    recorded = killed_at - recording_on
    assert times and times[-1] >= recorded - 1.0, (times[-1] if times else None, recorded)

    # a client that comes back gets a new part, linked to the cut-off session
    again: HeadsetClient = headset_for(live)
    await again.start()
    try:
        assert again.joined is not None
        new_id = again.joined["session_id"]
        assert new_id != session_id
    finally:
        await again.aclose()
    db = Database(f"sqlite+aiosqlite:///{server.data / 'fieldsight.db'}")
    try:
        part = await EventLog(db).get_session(new_id)
    finally:
        await db.aclose()
    assert part is not None and part.previous_session_id == session_id
    log = server.log.read_text()
    assert "ended 1 session(s) left open" in log, log[-2000:]
