"""Recording a live session: only with the worker's consent, every track to its own fragmented
MP4 (worker video, each voice), the overlays beside them, and withdrawing consent stops it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

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
        recording = lambda: list(mentor.recording_states)  # noqa: E731
        worker.send_message("consent", recording=True)
        await eventually(lambda: recording() and recording()[-1]["on"], 10, "recording on")
        await eventually(lambda: (folder / "worker-video.mp4").is_file(), 5, "the video file")
        frames_then = len(mentor.frames)
        await eventually(lambda: len(mentor.frames) > frames_then + 75, 15, "2.5 s more video")
        worker.send_message("consent", recording=False)
        await eventually(lambda: not recording()[-1]["on"], 10, "recording off")
        first = (folder / "worker-video.mp4").read_bytes()
        # consent given again: a second stretch in files of its own, the first one untouched
        worker.send_message("consent", recording=True)
        await eventually(lambda: recording()[-1]["on"], 10, "recording on again")
        frames_then = len(mentor.frames)
        await eventually(lambda: len(mentor.frames) > frames_then + 30, 15, "1 s more video")
        worker.send_message("consent", recording=False)
        await eventually(lambda: not recording()[-1]["on"], 10, "recording off again")
        assert (folder / "worker-video.mp4").read_bytes() == first
        assert decoded_frames(folder / "worker-video-2.mp4")
        events = await live_server.services.events.events(session_id)
        kinds = [e.type for e in events]
        assert "recording_started" in kinds
        await eventually(lambda: folder.joinpath("overlays.jsonl").stat().st_size > 0, 5, "ovl")
    finally:
        await mentor.aclose()
    events = await live_server.services.events.events(session_id)
    stopped = [e for e in events if e.type == "recording_stopped"]
    assert len(stopped) == 2, [e.type for e in events]
    files = {f["file"]: f for f in stopped[0].payload["files"]}
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
    assert "worker-video-2" in by_track
    video = by_track["worker-video"]
    assert video.status == "complete" and video.kind == "video" and video.codec == "h264"
    data = (folder / "worker-video.mp4").read_bytes()
    assert video.size_bytes == len(data) and video.sha256 == hashlib.sha256(data).hexdigest()
    assert video.path == f"recordings/{session_id}/worker-video.mp4"
    assert any(row.kind == "audio" and row.participant == "mentor" for row in rows)


async def test_faces_are_blurred_in_the_stored_video_only(
    live_server: LiveServer, tmp_path: Path
) -> None:
    import cv2
    import numpy as np
    from skimage import data

    from headset_client.client import HeadsetOptions
    from headset_client.sources import SyntheticVideoTrack, open_source
    from server.rtc.hub import RoomVision
    from tests.live import PASSWORD
    from vision.pose import PoseEstimator, PoseOptions
    from vision.privacy import face_boxes

    photo = tmp_path / "person.png"
    cv2.imwrite(str(photo), np.ascontiguousarray(data.astronaut()[:, :, ::-1]))  # type: ignore[no-untyped-call]
    live_server.services.hub.set_room_settings(
        "pump-7", RoomVision(stages=("pose",), fps=10, blur_faces=True)
    )
    worker = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD),
        open_source(f"synthetic:{photo}"),
    )
    await worker.start()
    try:
        await eventually(lambda: worker.last_overlay and worker.last_overlay["persons"], 20, "pose")
        worker.send_message("consent", recording=True)
        await eventually(lambda: worker.recording and worker.recording["on"], 10, "recording")
        sent = worker.report.frames_sent
        await eventually(lambda: worker.report.frames_sent > sent + 60, 10, "2 s of video")
        session_id = worker.joined["session_id"]  # type: ignore[index]
    finally:
        await worker.aclose()
    folder = live_server.settings.data_dir / "recordings" / session_id
    await eventually(lambda: (folder / "worker-video.mp4").stat().st_size > 0, 10, "the file")
    with av.open(str(folder / "worker-video.mp4")) as container:
        stored = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)][-10:]
    # Where the face is: the pose model on the picture the headset drew (static but for the
    # marker and the code strip).
    drawn = SyntheticVideoTrack(backdrop=cv2.imread(str(photo))).render(0)
    (person,) = PoseEstimator(PoseOptions(tracking=False)).process(drawn)
    (box,) = face_boxes([person], drawn.shape[1], drawn.shape[0], pad=0.0)
    x0, y0, x1, y1 = box

    def detail(image: np.ndarray, region: tuple[slice, slice]) -> float:
        gray = cv2.cvtColor(np.ascontiguousarray(image[region]), cv2.COLOR_BGR2GRAY)
        return float(cv2.Laplacian(gray, cv2.CV_64F).var())

    face = (slice(y0, y1), slice(x0, x1))
    suit = (slice(y1 + 40, y1 + 120), slice(x0, x1))  # below the face: not blurred
    for frame in stored:
        assert detail(frame, face) < 0.25 * detail(drawn, face)
        assert detail(frame, suit) > 0.4 * detail(drawn, suit)


async def test_a_full_disk_stops_the_recording_not_the_session(
    live_server: LiveServer, worker: HeadsetClient
) -> None:
    """Recordings on a 300 KiB tmpfs: it fills within seconds; the recording stops and says
    so, the file stays playable, and the session (video, chat, acks) goes on."""
    import asyncio
    import subprocess

    folder = live_server.settings.data_dir / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    mounted = await asyncio.to_thread(
        subprocess.run,
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    mentor = ViewerPeer(live_server.url, await live_server.login_async("mentor"))
    try:
        await mentor.start()
        await eventually(lambda: mentor.channels_open and len(mentor.frames) > 10, 15, "video")
        worker.send_message("consent", recording=True)
        await eventually(
            lambda: any("stopped" in m["reason"] for m in mentor.recording_states),
            30,
            "the recording stopping on a full disk",
        )
        last = mentor.recording_states[-1]
        assert last["on"] is False and "space" in last["reason"].lower(), last
        # the session goes on: video keeps coming, chat is still stored and acked
        frames = len(mentor.frames)
        await eventually(lambda: len(mentor.frames) > frames + 30, 10, "video after the failure")
        chat = worker.send_message("chat", text="still here")
        await eventually(lambda: chat in worker.acks, 10, "chat stored after the failure")
        session_id = mentor.joined["session_id"]
        events = await live_server.services.events.events(session_id)
        failed = [e for e in events if e.type == "recording_failed"]
        assert failed and "space" in failed[0].payload["error"].lower()
        video = folder / session_id / "worker-video.mp4"
        assert decoded_frames(video), "the cut file still plays"
    finally:
        await mentor.aclose()
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(folder)], check=False)
