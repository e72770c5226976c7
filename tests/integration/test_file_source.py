"""The headset streams a video file (with its sound track) like a camera."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import SyntheticVideoTrack, open_source
from tests.integration.peers import ViewerPeer
from tests.live import PASSWORD, LiveServer
from tests.util import eventually

pytestmark = pytest.mark.network


def write_clip(path: Path, seconds: float = 2.0) -> None:
    """An MP4 (H.264 + AAC) of the synthetic scene with a 440 Hz tone."""
    scene = SyntheticVideoTrack()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        audio = container.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for index in range(int(seconds * 30)):
            frame = av.VideoFrame.from_ndarray(scene.render(index), format="bgr24")
            frame.pts = index
            frame.time_base = fractions.Fraction(1, 30)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = np.arange(int(seconds * 48000)) / 48000
        tone = (0.4 * np.sin(2 * np.pi * 440 * samples)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[start : start + 1024].reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            aframe.sample_rate, aframe.pts = 48000, start
            container.mux(audio.encode(aframe))
        container.mux(audio.encode())


async def test_file_source_with_sound(live_server: LiveServer, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip(clip)
    client = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD),
        open_source(f"file:{clip}"),
    )
    mentor = ViewerPeer(live_server.url, await live_server.login_async("mentor"))
    await mentor.start()
    await client.start()
    try:
        await eventually(lambda: client.report.overlays_received >= 5, 20, "overlays")
        assert client.report.overlays_unmatched == 0
        assert client.report.markers_seen >= 5
        await eventually(lambda: mentor.audio_peak > 2000, 15, "the clip's sound at the mentor")
        await eventually(lambda: len(mentor.frames) > 10, 10, "the clip's video at the mentor")
    finally:
        await client.aclose()
        await mentor.aclose()


async def test_a_looping_file_keeps_pts_increasing(live_server: LiveServer, tmp_path: Path) -> None:
    clip = tmp_path / "short.mp4"
    write_clip(clip, seconds=0.5)  # loops several times within the test
    client = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD),
        open_source(f"file:{clip}"),
    )
    mentor = ViewerPeer(live_server.url, await live_server.login_async("mentor"), decode_code=False)
    await mentor.start()
    await client.start()
    try:
        await eventually(lambda: client.report.frames_sent > 60, 20, "two seconds of video")
        await eventually(lambda: len(mentor.frames) > 40, 10, "video past the loops")
        pts = [p for p, _, _, _ in mentor.frames]
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
    finally:
        await client.aclose()
        await mentor.aclose()
