"""RGB-D through the hub: a headset plays a rendered RGB-D walk (colour as video, depth on the
telemetry channel); the server's ``rgbd`` stage tracks the camera against the known path, fuses
the digital twin, places the wall marker in it, and serves it over REST, live and after the
session."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.rgbd import DepthImage, pack_depth
from headset_client.sources import open_source
from server.rtc.hub import RoomVision
from tests.live import PASSWORD, LiveServer
from tests.util import eventually

pytest.importorskip(
    "open3d", reason="RGB-D needs open3d, which needs libusb-1.0-0 (apt-get install libusb-1.0-0)"
)

from vision.synthetic_rgbd import Room, WallMarker, render_sequence, walk_and_turn  # noqa: E402

FPS = 30
FRAMES = 75  # 2.5 s of walking, then the sequence loops


def write_tum(folder: Path) -> list[np.ndarray]:
    """The rendered walk in the TUM RGB-D layout; returns the true world_from_camera poses."""
    room = Room(markers=(WallMarker(7, y=1.9, z=1.2, size_m=0.3),))
    frames = render_sequence(room, walk_and_turn(FRAMES, end=(2.6, 2.0)), color_size=(320, 240))
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    rgb, depth = ["# colour"], ["# depth"]
    for f in frames:
        stamp = f"{f.index / FPS:.6f}"
        cv2.imwrite(str(folder / "rgb" / f"{f.index:04d}.png"), f.color)
        cv2.imwrite(str(folder / "depth" / f"{f.index:04d}.png"), f.depth_mm)
        rgb.append(f"{stamp} rgb/{f.index:04d}.png")
        depth.append(f"{stamp} depth/{f.index:04d}.png")
    (folder / "rgb.txt").write_text("\n".join(rgb) + "\n")
    (folder / "depth.txt").write_text("\n".join(depth) + "\n")
    k = frames[0].color_intrinsics
    camera = {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "width": k.width}
    (folder / "camera.json").write_text(
        json.dumps({**camera, "height": k.height, "depth_scale_m": 0.001})
    )
    return [f.world_from_camera for f in frames]


def get(server: LiveServer, path: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_rgbd_odometry_and_twin_live(live_server: LiveServer, tmp_path: Path) -> None:
    truth = await asyncio.to_thread(write_tum, tmp_path / "walk")  # rendering takes seconds
    services = live_server.services
    services.hub.set_marker_table({7: ("pump P-7", 0.3)})
    services.hub.set_room_settings("pump-7", RoomVision(stages=("markers", "rgbd"), fps=5))
    client = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD, depth_fps=10),
        open_source(f"rgbd:{tmp_path / 'walk'}"),
    )
    poses: dict[int, list[float]] = {}  # frame index -> world_from_camera from the rgbd stage

    sources: list[str | None] = []

    def on_overlay(overlay: dict[str, Any]) -> None:
        pose = overlay.get("camera_pose")
        sources.append(pose and pose["source"])
        index = round(overlay["pts"] / (90_000 / FPS))  # the headset stamps frame i at i/30 s
        # Frames without depth repeat the last depth frame's pose: check the measured ones.
        if pose and pose["source"] == "rgbd" and pose["age"] == 0 and index < FRAMES:
            poses[index] = pose["world_from_camera"]

    client.on_overlay = on_overlay
    token = await live_server.login_async("mentor")
    await client.start()
    try:
        await eventually(lambda: client.report.frames_sent > FRAMES, 20, "one pass of the walk")
        room = services.hub.rooms["pump-7"]
        # A depth message with a valid header but a broken image: reported, the session goes on.
        bad = pack_depth(10**9, DepthImage(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 0.001))
        client._channels["telemetry"].send(bad)
        assert room.depth_stats["received"] >= 10, room.depth_stats
        status, body = await asyncio.to_thread(get, live_server, "/api/rooms/pump-7/twin", token)
        assert status == 200, body
        summary = json.loads(body)
        assert summary["keyframes"] >= 2 and summary["triangles"] > 1000, summary
        assert [m["name"] for m in summary["markers"]] == ["pump P-7"], summary["markers"]
        status, glb = await asyncio.to_thread(get, live_server, "/api/rooms/pump-7/twin.glb", token)
        assert status == 200 and glb[:4] == b"glTF"
        session_id = room.session_id
    finally:
        await client.aclose()

    # Odometry against the true path: poses relative to the first tracked frame.
    assert len(poses) >= 5, (sorted(poses), sources)
    first = min(poses)
    errors = []
    for index, values in sorted(poses.items()):
        estimate = np.asarray(values).reshape(4, 4)
        true = np.linalg.inv(truth[first]) @ truth[index]
        errors.append(float(np.linalg.norm(estimate[:3, 3] - true[:3, 3])))
    travelled = float(np.linalg.norm(truth[max(poses)][:3, 3] - truth[first][:3, 3]))
    assert travelled > 0.5
    steps = [(i, round(e, 3)) for i, e in zip(sorted(poses), errors, strict=True)]
    assert max(errors) < 0.05 * travelled + 0.02, f"{steps} over {travelled:.2f} m"

    # The room closed: the twin was saved with the session and is served from disk.
    twin_json = live_server.settings.data_dir / "twins" / f"{session_id}.json"
    await eventually(twin_json.is_file, 30, "the saved twin")
    status, ply = await asyncio.to_thread(
        get, live_server, f"/api/sessions/{session_id}/twin.ply", token
    )
    assert status == 200 and ply.startswith(b"ply"), ply[:40]
    status, body = await asyncio.to_thread(
        get, live_server, f"/api/sessions/{session_id}/twin", token
    )
    assert status == 200 and json.loads(body)["live"] is False
    status, _ = await asyncio.to_thread(
        get, live_server, "/api/sessions/" + "0" * 32 + "/twin.glb", token
    )
    assert status == 404
    status, _ = await asyncio.to_thread(
        get, live_server, "/api/sessions/..%2F..%2Fetc/twin.glb", token
    )
    assert status in (404, 422)
