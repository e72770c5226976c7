"""Video of odd and changing size, and the event loop staying responsive under a live session."""

from __future__ import annotations

import asyncio
import fractions

import av
import cv2
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import Source, SyntheticVideoTrack, open_source
from tests.integration.peers import ViewerPeer
from tests.live import PASSWORD, LiveServer, ServerProcess
from tests.util import eventually

pytestmark = pytest.mark.network

SIZES = [(640, 480), (480, 360), (333, 251), (1280, 720)]


class ResizingTrack(MediaStreamTrack):
    """The synthetic scene, rescaled to a new (sometimes odd) size every 30 frames."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._inner = SyntheticVideoTrack()

    async def recv(self) -> av.VideoFrame:
        frame = await self._inner.recv()
        index = self._inner.frames_produced - 1
        width, height = SIZES[(index // 30) % len(SIZES)]
        image = cv2.resize(frame.to_ndarray(format="bgr24"), (width, height))
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        out.pts, out.time_base = frame.pts, fractions.Fraction(1, 90_000)
        return out


async def test_frames_of_odd_and_changing_size(live_server: LiveServer) -> None:
    source = Source(video=ResizingTrack(), audio=None, description="resizing")
    client = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD), source
    )
    mentor = ViewerPeer(live_server.url, await live_server.login_async("mentor"), decode_code=False)
    await client.start()
    await mentor.start()
    widths: set[int] = set()
    client.on_overlay = lambda o: widths.add(o["width"])
    try:
        await eventually(lambda: {640, 480, 333} <= widths, 25, f"overlays of each size ({widths})")
        sizes = {size for _, _, _, size in mentor.frames}
        assert (640, 480) in sizes and len(sizes) >= 2
        assert live_server.services.hub.rooms["pump-7"].vision_stats["errors"] == 0
    finally:
        await mentor.aclose()
        await client.aclose()


async def test_event_loop_lag_under_a_live_session(server_process: ServerProcess) -> None:
    """The server's own loop never stalls under a live session: p99 lag <= 20 ms."""
    server = server_process
    client = HeadsetClient(
        HeadsetOptions(server=server.url, username="worker", password=PASSWORD),
        open_source("synthetic"),
    )
    await client.start()
    mentors = [
        ViewerPeer(server.url, await server.login_async("mentor"), decode_code=False)
        for _ in range(2)
    ]
    for mentor in mentors:
        await mentor.start()
    try:
        await eventually(lambda: all(m.frames for m in mentors), 15, "video at both mentors")
        token = await server.login_async("mentor")
        await asyncio.to_thread(server.get, "/api/metrics/reset", token, "POST")
        overlays_before = client.report.overlays_received
        await asyncio.sleep(6.0)
        metrics = await asyncio.to_thread(server.get, "/api/metrics", token)
        lag = metrics["loop_lag"]  # type: ignore[index]
        assert client.report.overlays_received - overlays_before > 30  # vision ran meanwhile
        assert lag["samples"] > 300
        assert lag["p99_ms"] <= 20.0, f"server event loop lag {lag}"
    finally:
        for mentor in mentors:
            await mentor.aclose()
        await client.aclose()
