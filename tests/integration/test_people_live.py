"""A person in the worker's view: pose, REBA risk and a safety zone, live through the hub."""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import open_source
from server.rtc.hub import RoomVision
from tests.live import PASSWORD, LiveServer
from tests.util import eventually
from vision import Zone

pytestmark = pytest.mark.network


def write_person_clip(path: Path, seconds: float = 2.0) -> None:
    """A real photo of a person (scikit-image's astronaut), slowly panning, as H.264."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # 512 x 512
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for index in range(int(seconds * 30)):
            canvas = np.full((480, 640, 3), 90, np.uint8)
            x = 40 + index % 60
            canvas[:, x : x + 480] = cv2.resize(photo, (480, 480))
            frame = av.VideoFrame.from_ndarray(canvas, format="bgr24")
            frame.pts, frame.time_base = index, fractions.Fraction(1, 30)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


async def test_pose_risk_and_safety_zone_live(live_server: LiveServer, tmp_path: Path) -> None:
    clip = tmp_path / "person.mp4"
    write_person_clip(clip)
    everywhere = Zone(name="whole view", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
    live_server.services.hub.set_room_settings(
        "pump-7",
        RoomVision(stages=("pose", "ergonomics", "safety"), fps=5, zones=(everywhere,)),
    )
    client = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD),
        open_source(f"file:{clip}"),
    )
    persons: list[dict[str, object]] = []
    client.on_overlay = lambda o: persons.extend(o["persons"])
    await client.start()
    try:
        await eventually(lambda: persons, 30, "a person in the overlays")
        person = persons[-1]
        keypoints = person["keypoints"]
        assert isinstance(keypoints, list) and len(keypoints) == 33
        nose, hip = keypoints[0], keypoints[23]
        assert nose[1] < hip[1]  # the nose above the hip
        assert "risk" in person and 1 <= person["risk"]["score"] <= 15  # type: ignore[index]
        session_id = live_server.services.hub.rooms["pump-7"].session_id
        deadline = time.monotonic() + 10
        while True:  # the event is logged as the person's keypoints are found in the zone
            events = await live_server.services.events.events(session_id)
            found = [e for e in events if e.type == "safety"]
            if found or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert found, "no safety event logged"
        assert found[0].payload == {"zone": "whole view", "person_id": person["id"],
                                    "what": "entered"}  # fmt: skip
    finally:
        await client.aclose()
    # The worker left: the session's ergonomic risk is logged (time-weighted, per person).
    deadline = time.monotonic() + 10
    while True:
        events = await live_server.services.events.events(session_id)
        summaries = [e.payload for e in events if e.type == "vision_summary"]
        if any(s["kind"] == "ergonomics_session" for s in summaries):
            break
        assert time.monotonic() < deadline, f"no session ergonomics summary in {summaries}"
        await asyncio.sleep(0.1)
    (total,) = [s for s in summaries if s["kind"] == "ergonomics_session"]
    ergonomics = total["ergonomics"]
    assert ergonomics["seconds"] > 0 and 1 <= ergonomics["max"] <= 15
    assert abs(sum(ergonomics["share"].values()) - 1.0) < 1e-3
    assert str(person["id"]) in total["persons"]
