"""QrStage on codes made by cv2.QRCodeEncoder, rotated, scaled and blurred on a busy background."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from vision import DetectedObject, Intrinsics, Telemetry
from vision.qr import QrStage
from vision.stages import FrameContext

Frame = npt.NDArray[np.uint8]
CAMERA = Intrinsics.from_fov(640, 480)


def qr_scene(
    background: Frame, text: str, module_px: float, angle_deg: float, blur: float = 0.0
) -> tuple[Frame, npt.NDArray[np.float64]]:
    """A code centred at (330, 250), rotated; returns the frame and its true pixel corners."""
    code = cv2.QRCodeEncoder.create().encode(text)  # 1 px per module, with a quiet zone
    dark = np.argwhere(code < 128)
    quiet_modules = int(dark.min())  # the quiet zone is the same on every side
    scale = 4
    big = cv2.resize(code, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    side = big.shape[0]
    quiet = quiet_modules * scale
    corners_src = (
        np.array(
            [
                [quiet, quiet],
                [side - quiet, quiet],
                [side - quiet, side - quiet],
                [quiet, side - quiet],
            ],
            np.float64,
        )
        - 0.5
    )
    zoom = module_px / scale
    rot = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), angle_deg, zoom)
    rot[:, 2] += np.array([330.0, 250.0]) - np.array([(side - 1) / 2, (side - 1) / 2])
    warped = cv2.warpAffine(big, rot, (640, 480), flags=cv2.INTER_AREA, borderValue=0)
    alpha = cv2.warpAffine(np.ones_like(big, np.float32), rot, (640, 480), flags=cv2.INTER_LINEAR)
    gray_bg = cv2.cvtColor(background, cv2.COLOR_BGR2GRAY).astype(np.float32)
    out = gray_bg * (1 - alpha) + warped.astype(np.float32) * alpha
    if blur:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    truth = np.c_[corners_src, np.ones(4)] @ rot.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), truth


def run(stage: QrStage, image: Frame) -> tuple[DetectedObject, ...]:
    ctx = FrameContext(image, Telemetry(0), CAMERA, "fov-default")
    stage.run(ctx)
    return ctx.objects


@pytest.mark.parametrize(
    ("module_px", "angle", "blur"),
    # Measured limit: ~3 px per module (2.5 px fails even unblurred).
    [(4.0, 0.0, 0.0), (3.0, 30.0, 0.0), (6.0, -45.0, 1.0), (3.0, 10.0, 0.8), (8.0, 90.0, 1.5)],
)
def test_asset_tag_is_decoded_and_mapped(
    background: Frame, module_px: float, angle: float, blur: float
) -> None:
    image, truth = qr_scene(background, "ASSET-0042", module_px, angle, blur)
    stage = QrStage({"ASSET-0042": "Hydraulic pump P-7"})
    objects = run(stage, image)
    assert [o.label for o in objects] == ["Hydraulic pump P-7"]
    obj = objects[0]
    assert obj.source == "qr"
    assert obj.score == 1.0
    corners = np.asarray(obj.corners) * [640, 480] - 0.5
    # Same corner set (decoder's starting corner follows the code's orientation).
    err = max(np.linalg.norm(truth - c, axis=1).min() for c in corners)
    assert err < 2.0 * module_px
    u0, v0, u1, v1 = obj.bbox
    assert u0 < 330.5 / 640 < u1 and v0 < 250.5 / 480 < v1


def test_unmapped_text_keep_or_drop(background: Frame) -> None:
    image, _ = qr_scene(background, "SN 12345", 4.0, 0.0)
    assert [o.label for o in run(QrStage(), image)] == ["SN 12345"]
    assert run(QrStage({"other": "x"}, unmapped="drop"), image) == ()


def test_nothing_on_garbage(background: Frame) -> None:
    stage = QrStage()
    noise = np.random.default_rng(1).integers(0, 256, (480, 640), dtype=np.uint8)
    assert run(stage, noise) == ()
    assert run(stage, background) == ()
    assert run(stage, np.zeros((480, 640, 3), np.uint8)) == ()
    assert run(stage, np.zeros((8, 8), np.uint8)) == ()


def test_appends_to_existing_objects(background: Frame) -> None:
    image, _ = qr_scene(background, "ASSET-1", 4.0, 0.0)
    ctx = FrameContext(image, Telemetry(0), CAMERA, "fov-default")
    other = DetectedObject("pump", 0.9, (0.0, 0.0, 0.1, 0.1), "equipment")
    ctx.objects = (other,)
    QrStage().run(ctx)
    objects: tuple[DetectedObject, ...] = ctx.objects
    assert objects[0] is other and objects[1].label == "ASSET-1"


def test_bad_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="unmapped"):
        QrStage(unmapped="maybe")
    with pytest.raises(ValueError, match="non-empty name"):
        QrStage({"ASSET-1": " "})
