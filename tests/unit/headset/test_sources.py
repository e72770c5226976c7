"""The reference headset's sources that need no network: synthetic with a backdrop, RGB-D
folders (TUM layout) and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from headset_client.rgbd import DEPTH_MAGIC, DepthImage, RgbdSequence, RgbdTrack, pack_depth
from headset_client.sources import SyntheticVideoTrack, open_source


def test_synthetic_backdrop_is_in_every_frame(tmp_path: Path) -> None:
    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # type: ignore[no-untyped-call]
    path = tmp_path / "person.png"
    cv2.imwrite(str(path), photo)
    source = open_source(f"synthetic:{path}")
    assert isinstance(source.video, SyntheticVideoTrack)
    plain = SyntheticVideoTrack().render(0)
    with_photo = source.video.render(0)
    left = (slice(100, 300), slice(20, 200))
    assert np.abs(with_photo[left].astype(int) - plain[left].astype(int)).mean() > 20
    with pytest.raises(ValueError, match="cannot read the backdrop"):
        open_source(f"synthetic:{tmp_path / 'missing.png'}")


def write_folder(folder: Path, frames: int = 4, camera: dict[str, float] | None = None) -> None:
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    rgb, depth = ["# timestamp filename"], []
    for i in range(frames):
        cv2.imwrite(str(folder / "rgb" / f"{i}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
        cv2.imwrite(str(folder / "depth" / f"{i}.png"), np.full((24, 32), 1000 + i, np.uint16))
        rgb.append(f"{i / 30:.6f} rgb/{i}.png")
        depth.append(f"{i / 30 + 0.005:.6f} depth/{i}.png")
    (folder / "rgb.txt").write_text("\n".join(rgb))
    (folder / "depth.txt").write_text("\n".join(depth))
    if camera is not None:
        (folder / "camera.json").write_text(json.dumps(camera))


async def test_rgbd_folder_plays_frames_with_their_depth(tmp_path: Path) -> None:
    write_folder(tmp_path, camera={"fx": 50.0, "fy": 50.0, "cx": 32, "cy": 24, "width": 64,
                                   "height": 48, "depth_scale_m": 0.001})  # fmt: skip
    source = open_source(f"rgbd:{tmp_path}")
    assert source.intrinsics is not None and source.intrinsics["fx"] == 50.0
    assert isinstance(source.video, RgbdTrack) and source.depth_for is not None
    pts = []
    for _ in range(5):  # one more than the folder holds: it loops
        frame = await source.video.recv()
        pts.append(frame.pts)
    assert pts == sorted(pts) and pts[1] - pts[0] == 3000
    depth = source.depth_for(pts[2])
    assert depth is not None and depth.scale_m == 0.001
    image = cv2.imdecode(np.frombuffer(depth.png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and int(image[0, 0]) == 1002
    assert source.depth_for(pts[2]) is None  # handed out once
    source.stop()


def test_rgbd_folder_defaults_to_tum_and_refuses_bad_folders(tmp_path: Path) -> None:
    write_folder(tmp_path / "tum")
    sequence = RgbdSequence(tmp_path / "tum")
    assert sequence.depth_scale_m == pytest.approx(1 / 5000) and sequence.camera["fx"] == 525.0
    assert sequence.depth_near(0.0) is not None and sequence.depth_near(0.5) is None
    with pytest.raises(ValueError, match="not a folder"):
        RgbdSequence(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="rgb.txt"):
        RgbdSequence(tmp_path / "empty")
    (tmp_path / "empty" / "rgb.txt").write_text("nonsense\n")
    with pytest.raises(ValueError, match="timestamp filename"):
        RgbdSequence(tmp_path / "empty")
    write_folder(tmp_path / "badcam")
    (tmp_path / "badcam" / "camera.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="camera description"):
        RgbdSequence(tmp_path / "badcam")


def test_depth_message_framing() -> None:
    raw = pack_depth(42, DepthImage(b"PNG", 0.0002), {"fx": 1.0})
    assert raw.startswith(DEPTH_MAGIC)
    size = int.from_bytes(raw[4:8], "big")
    header = json.loads(raw[8 : 8 + size])
    assert header == {"v": 1, "type": "depth", "pts": 42, "format": "png16", "scale_m": 0.0002,
                      "intrinsics": {"fx": 1.0}}  # fmt: skip
    assert raw[8 + size :] == b"PNG"
