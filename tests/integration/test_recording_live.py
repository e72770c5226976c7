"""Recording a live session: only with the worker's consent, every track to its own fragmented
MP4 (worker video, each voice), the overlays beside them, and withdrawing consent stops it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import av
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


def decoded_frames(path: object) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams[0]
        return [
            float(frame.pts * frame.time_base)
            for frame in container.decode(stream)
            if frame.pts is not None
        ]


async def test_consent_starts_and_stops_the_recording(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    mentor = ViewerPeer(live_server.url, await live_server.login_async("mentor"), audio=True)
    await mentor.start()
    try:
        await eventually(lambda: mentor.channels_open and len(mentor.frames) > 10, 15, "video")
        session_id = mentor.joined["session_id"]
        folder = live_server.settings.data_dir / "recordings" / session_id
        assert not folder.exists()  # nothing is recorded without consent
        recording = lambda: [m for m in mentor.annotations if m["type"] == "recording"]  # noqa: E731
        worker.send_message("consent", recording=True)
        await eventually(lambda: recording() and recording()[-1]["on"], 10, "recording on")
        await eventually(lambda: (folder / "worker-video.mp4").is_file(), 5, "the video file")
        frames_then = len(mentor.frames)
        await eventually(lambda: len(mentor.frames) > frames_then + 75, 15, "2.5 s more video")
        worker.send_message("consent", recording=False)
        await eventually(lambda: not recording()[-1]["on"], 10, "recording off")
        events = await live_server.services.events.events(session_id)
        kinds = [e.type for e in events]
        assert "recording_started" in kinds
        await eventually(lambda: folder.joinpath("overlays.jsonl").stat().st_size > 0, 5, "ovl")
    finally:
        await mentor.aclose()
    events = await live_server.services.events.events(session_id)
    stopped = [e for e in events if e.type == "recording_stopped"]
    assert stopped, [e.type for e in events]
    files = {f["file"]: f for f in stopped[-1].payload["files"]}
    assert files["worker-video.mp4"]["status"] == "complete"
    assert files["worker-video.mp4"]["duration_s"] >= 2.0
    times = decoded_frames(folder / "worker-video.mp4")
    assert len(times) >= 60 and times == sorted(times)
    voices = [name for name in files if name.startswith("audio-mentor")]
    assert voices, files
    assert decoded_frames(folder / voices[0]), "the mentor's voice decodes"
    lines = (folder / "overlays.jsonl").read_text().splitlines()
    assert len(lines) >= 10 and '"type":"overlay"' in lines[0]
    # the recordings index: one finished row per file, checksum and size as on disk
    rows = await live_server.services.recordings.list_for_session(session_id)
    by_track = {row.track: row for row in rows}
    video = by_track["worker-video"]
    assert video.status == "complete" and video.kind == "video" and video.codec == "h264"
    data = (folder / "worker-video.mp4").read_bytes()
    assert video.size_bytes == len(data) and video.sha256 == hashlib.sha256(data).hexdigest()
    assert video.path == f"recordings/{session_id}/worker-video.mp4"
    assert any(row.kind == "audio" and row.participant == "mentor" for row in rows)
