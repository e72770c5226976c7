"""OnnxDetector end to end through cv2.dnn, with tiny models the tests build with onnx.helper.

The "yolo" model outputs three fixed boxes whose class scores are the mean of the R, G and B
input channels, so the frame's colour decides what is detected: the real input path is tested.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from vision import Intrinsics, Telemetry  # noqa: E402
from vision.detector import DetectorLoadError, OnnxDetector, read_labels  # noqa: E402
from vision.stages import FrameContext  # noqa: E402

W, H = 320, 240
# cx, cy, w, h in input pixels; boxes 0 and 1 overlap heavily (NMS keeps one).
BOXES = np.array([[[80, 60, 40, 30], [82, 61, 40, 30], [200, 150, 100, 80]]], np.float32)


def yolo_model(path: Path, transposed: bool = False, classes: int = 3) -> Path:
    n = BOXES.shape[1]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axis1"], ["mean1"]),
        helper.make_node("Expand", ["mean1", "shape"], ["scores"]),
        helper.make_node(
            "Concat", ["boxes", "scores"], ["out" if transposed else "output"], axis=2
        ),
    ]
    if transposed:
        nodes.append(helper.make_node("Transpose", ["out"], ["output"], perm=[0, 2, 1]))
    out_shape = [1, 4 + 3, n] if transposed else [1, n, 4 + 3]
    graph = helper.make_graph(
        nodes,
        "tiny-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        initializer=[
            numpy_helper.from_array(BOXES, "boxes"),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
            numpy_helper.from_array(np.array([1, n, 3], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def ssd_model(path: Path) -> Path:
    boxes = np.array([[[0.1, 0.2, 0.3, 0.6], [0.5, 0.5, 0.9, 0.8]]], np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axis1"], ["mean1"]),
        helper.make_node("Expand", ["mean1", "shape"], ["scores"]),
        helper.make_node("Identity", ["const_boxes"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-ssd",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, H, W])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 2, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 3]),
        ],
        initializer=[
            numpy_helper.from_array(boxes, "const_boxes"),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
            numpy_helper.from_array(np.array([1, 2, 3], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def labels(path: Path, names: str = "person\nvalve\ngauge\n") -> Path:
    path.write_text(names, encoding="utf-8")
    return path


def frame(rgb: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> FrameContext:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:, :] = rgb[::-1]  # BGR
    return FrameContext(image, Telemetry(0), Intrinsics.from_fov(*size), "fov-default")


@pytest.mark.parametrize("transposed", [False, True])
def test_yolo_layout_end_to_end(tmp_path: Path, transposed: bool) -> None:
    det = OnnxDetector(
        yolo_model(tmp_path / "m.onnx", transposed), labels(tmp_path / "l.txt"), (W, H)
    )
    red = frame((255, 0, 0))
    det.run(red)
    # Class 0 ("person") scores 1.0 on a red frame; NMS merges the two overlapping boxes.
    assert [o.label for o in red.objects] == ["person", "person"]
    assert {o.source for o in red.objects} == {"person-detector"}
    first = min(red.objects, key=lambda o: o.bbox[0])
    assert first.bbox == pytest.approx((60 / W, 45 / H, 100 / W, 75 / H), abs=0.01)
    assert first.score == pytest.approx(1.0)

    green = frame((0, 200, 0), size=(1280, 720))  # any frame size; bbox stays normalized
    det.run(green)
    assert {o.label for o in green.objects} == {"valve"}
    assert {o.source for o in green.objects} == {"detector"}
    assert green.objects[0].score == pytest.approx(200 / 255, abs=1e-3)

    dark = frame((40, 40, 40))
    det.run(dark)
    assert dark.objects == ()


def test_boxes_scores_layout_and_appending(tmp_path: Path) -> None:
    det = OnnxDetector(
        ssd_model(tmp_path / "ssd.onnx"),
        labels(tmp_path / "l.txt"),
        (W, H),
        output_format="boxes_scores",
    )
    ctx = frame((0, 0, 255))
    earlier = det.detect(frame((0, 0, 255)).bgr)
    ctx.objects = earlier[:1]  # another stage already wrote here
    det.run(ctx)
    assert len(ctx.objects) == 3
    assert ctx.objects[0] == earlier[0]
    assert {o.label for o in ctx.objects} == {"gauge"}
    assert sorted(o.bbox for o in ctx.objects[1:])[0] == pytest.approx((0.1, 0.2, 0.3, 0.6))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"this is not a protobuf")
    with pytest.raises(DetectorLoadError, match="not an ONNX model"):
        OnnxDetector(bogus, labels(tmp_path / "l.txt"), (W, H))
    with pytest.raises(DetectorLoadError, match="does not exist"):
        OnnxDetector(tmp_path / "missing.onnx", labels(tmp_path / "l.txt"), (W, H))


def test_wrong_layout_and_label_count(tmp_path: Path) -> None:
    model = yolo_model(tmp_path / "m.onnx")
    with pytest.raises(DetectorLoadError, match="C=2 labels"):
        OnnxDetector(model, labels(tmp_path / "l.txt", "person\nvalve\n"), (W, H))
    with pytest.raises(DetectorLoadError, match="expects 2 outputs"):
        OnnxDetector(model, labels(tmp_path / "l.txt"), (W, H), output_format="boxes_scores")
    with pytest.raises(DetectorLoadError, match="expects 1 output"):
        OnnxDetector(ssd_model(tmp_path / "s.onnx"), labels(tmp_path / "l.txt"), (W, H))


def test_wrong_input_size_is_a_load_error(tmp_path: Path) -> None:
    # The graph's Expand/Concat shapes are fixed; a different input still reduces to [1, 3],
    # so this model accepts any size. A reshape-bound model does not: build one.
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["output"])],
        "fixed-input",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, H * W * 3 // 7, 7])],
        initializer=[numpy_helper.from_array(np.array([1, -1, 7], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "fixed.onnx"
    onnx.save(model, str(path))
    with pytest.raises(DetectorLoadError):
        OnnxDetector(path, labels(tmp_path / "l.txt"), (W + 1, H))


def test_labels_file_errors(tmp_path: Path) -> None:
    assert read_labels(labels(tmp_path / "a.txt", "person\n valve \n\n")) == ("person", "valve")
    with pytest.raises(DetectorLoadError, match="blank line 2"):
        read_labels(labels(tmp_path / "b.txt", "person\n\nvalve\n"))
    with pytest.raises(DetectorLoadError, match="empty"):
        read_labels(labels(tmp_path / "c.txt", "\n"))
    with pytest.raises(DetectorLoadError, match="cannot read"):
        read_labels(tmp_path / "missing.txt")


def test_bad_arguments(tmp_path: Path) -> None:
    model, names = yolo_model(tmp_path / "m.onnx"), labels(tmp_path / "l.txt")
    with pytest.raises(DetectorLoadError, match="output_format"):
        OnnxDetector(model, names, (W, H), output_format="detr")  # type: ignore[arg-type]
    with pytest.raises(DetectorLoadError, match="input_size"):
        OnnxDetector(model, names, (0, H))
    with pytest.raises(DetectorLoadError, match="score_threshold"):
        OnnxDetector(model, names, (W, H), score_threshold=1.5)
