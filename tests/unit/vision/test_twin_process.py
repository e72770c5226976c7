"""The twin in a child process: same result as in process, the caller never waits on Open3D,
and a dead child stops integration with a clear error instead of hanging the session."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from vision.errors import VisionError
from vision.rgbd import DepthFrame
from vision.synthetic_rgbd import RgbdFrameTruth, Room, render_sequence, walk_and_turn
from vision.twin import TwinBuilder
from vision.twin_process import TwinProcess


@pytest.fixture(scope="module")
def o3d() -> Any:
    return pytest.importorskip(
        "open3d", reason="Open3D needs libusb-1.0-0: apt-get install libusb-1.0-0"
    )


@pytest.fixture(scope="module")
def walk() -> list[RgbdFrameTruth]:
    return render_sequence(Room(), walk_and_turn(24), color_size=(160, 120))


def feed(twin: TwinBuilder | TwinProcess, frames: list[RgbdFrameTruth]) -> int:
    sent = 0
    for f in frames:
        depth = DepthFrame(f.depth_mm, f.index * 3000)
        sent += twin.integrate(f.color, depth, f.color_intrinsics, f.world_from_camera)
        twin.place_marker(7, f.world_from_camera @ np.diag([1.0, 1.0, 1.0, 1.0]))
    return sent


def test_child_process_twin_matches_the_in_process_one(
    o3d: Any, walk: list[RgbdFrameTruth]
) -> None:
    local, remote = TwinBuilder(), TwinProcess(queue_size=64)
    try:
        feed(local, walk)
        sent = feed(remote, walk)
        assert sent == remote.keyframes > 3 and remote.dropped == 0
        here, there = local.summary(), remote.summary()
        assert there["keyframes"] == here["keyframes"] == sent
        assert abs(there["triangles"] - here["triangles"]) <= 0.02 * here["triangles"]
        assert [m["id"] for m in there["markers"]] == [7]
        np.testing.assert_allclose(
            there["markers"][0]["world_from_marker"],
            here["markers"][0]["world_from_marker"],
            atol=1e-4,
        )
        glb, ply = remote.glb_bytes(), remote.ply_bytes()
        assert glb[:4] == b"glTF" and ply.startswith(b"ply")
    finally:
        remote.close()
    remote.close()  # twice is fine
    assert not remote.integrate(
        walk[0].color, DepthFrame(walk[0].depth_mm), walk[0].color_intrinsics, np.eye(4), force=True
    )
    with pytest.raises(VisionError, match="not running"):
        remote.summary() if remote.keyframes == 0 else remote.glb_bytes()


def test_the_callers_thread_never_holds_the_gil_for_open3d(
    o3d: Any, walk: list[RgbdFrameTruth]
) -> None:
    """Exports run in the child: a thread waiting for them leaves the rest of the process
    free (in process, a mesh extraction holds the GIL for 100+ ms)."""
    remote = TwinProcess(queue_size=64)
    try:
        feed(remote, walk)
        remote.summary()  # the child is up and has fused everything
        done = threading.Event()

        def export() -> None:
            for _ in range(3):
                remote.glb_bytes()
            done.set()

        worker = threading.Thread(target=export)
        worker.start()
        lags = []
        while not done.is_set():
            t0 = time.perf_counter()
            time.sleep(0.002)
            lags.append(time.perf_counter() - t0 - 0.002)
        worker.join()
        assert max(lags) < 0.05, f"the caller's process stalled {max(lags) * 1000:.0f} ms"
    finally:
        remote.close()


def test_a_dead_child_stops_integration_with_a_clear_error(
    o3d: Any, walk: list[RgbdFrameTruth]
) -> None:
    remote = TwinProcess()
    try:
        feed(remote, walk[:3])
        remote.summary()
        remote._process.kill()  # a crash in Open3D, say
        remote._process.join(5)
        f = walk[5]
        moved = f.world_from_camera.copy()
        moved[0, 3] += 1.0  # a keyframe by any rule
        assert not remote.integrate(f.color, DepthFrame(f.depth_mm), f.color_intrinsics, moved)
        with pytest.raises(VisionError, match="not running|not answering"):
            remote.glb_bytes()
    finally:
        remote.close()
