"""World-anchored ink against ground truth over a 10 s rendered camera path.

The stream is 30 fps; the pipeline analyses every third frame (10 fps), as the server's sampler
does. A stroke is drawn on one frame at the uv where known plane points appear; its re-projection
into every later analysed frame is compared with where those plane points really are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from test_tracking import (
    CAMERA,
    MARKER_M,
    TICKS_PER_FRAME,
    PlaneScene,
    context,
)

from vision import Anchor, MarkerDetector, MarkerStage
from vision.anchors import AnchorBook, AnchorStage
from vision.tracking import CameraTracker, FrameState

Mat = npt.NDArray[np.float64]

MAX_P95_PX = 5.0
STEP = 3  # analysed every third frame of 30 fps
SIZE = np.array([CAMERA.width, CAMERA.height], np.float64)


def stroke(cx: float, cy: float, n: int = 12) -> Mat:
    """A zigzag of n plane points around (cx, cy), metres."""
    t = np.linspace(0.0, 1.0, n)
    return np.stack([cx - 0.1 + 0.2 * t, cy + 0.04 * np.sign(np.sin(t * 9)), 0 * t], axis=1)


class Run:
    """Runs markers + tracking + anchors over the path, timing the two new stages."""

    def __init__(self, scene: PlaneScene, *, with_markers: bool) -> None:
        self.scene = scene
        self.book = AnchorBook()
        self.markers = (
            MarkerStage(MarkerDetector("aruco_4x4_50", MARKER_M)) if with_markers else None
        )
        self.tracker = CameraTracker(sink=self.book.record)
        self.stage = AnchorStage(self.book)
        self.ms: list[float] = []

    def step(self, index: int) -> tuple[Anchor, ...]:
        frame = context(self.scene.render(index), index)
        if self.markers is not None:
            self.markers.run(frame)
        started = time.perf_counter()
        self.tracker.run(frame)
        self.stage.run(frame)
        self.ms.append((time.perf_counter() - started) * 1000.0)
        return frame.anchors


def errors_over_path(
    run: Run, strokes: dict[str, tuple[int, Mat]], until: int = 300
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Draw each stroke on its frame (analysed or not) and collect re-projection errors (px)."""
    errors: dict[str, list[float]] = {key: [] for key in strokes}
    invisible: dict[str, int] = dict.fromkeys(strokes, 0)
    drawn: dict[str, str] = {}
    for index in range(0, until, STEP):
        anchors = {a.id: a for a in run.step(index)}
        for key, (at, xyz) in strokes.items():
            if key not in drawn and at <= index:
                uv = run.scene.project(at, xyz) / SIZE
                drawn[key] = run.book.add_stroke(key, at * TICKS_PER_FRAME, uv.tolist()).frame
            elif key in drawn:
                truth = run.scene.project(index, xyz)
                anchor = anchors[key]
                if not anchor.visible:
                    invisible[key] += 1
                    continue
                got = np.asarray(anchor.points_uv) * SIZE
                errors[key].extend(np.linalg.norm(got - truth, axis=1).tolist())
    for key in strokes:
        assert invisible[key] == 0, f"{key} ({drawn[key]}) invisible on {invisible[key]} frames"
    return errors, drawn


def p95(values: list[float]) -> float:
    assert values
    return float(np.percentile(values, 95))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


def test_marker_anchored_ink_follows_the_marker() -> None:
    run = Run(PlaneScene(markers={5: (0.0, 0.0)}), with_markers=True)
    strokes = {"near": (30, stroke(0.12, 0.08)), "on": (60, stroke(0.0, 0.0))}
    errors, frames = errors_over_path(run, strokes)
    assert frames == {"near": "marker:5", "on": "marker:5"}
    state = run.tracker.last_state  # the wall stayed tracked beside the marker all along
    assert state is not None and state.plane_id == 0
    for key, values in errors.items():
        print(f"marker-anchored {key}: p95 {p95(values):.2f} px over {len(values)} points")
        assert p95(values) <= MAX_P95_PX, key
    print(f"tracking+anchors {np.median(run.ms):.2f} ms/frame median (markers excluded)")


def test_plane_anchored_ink_without_markers() -> None:
    run = Run(PlaneScene(), with_markers=False)
    strokes = {"a": (30, stroke(0.1, 0.05)), "b": (150, stroke(-0.15, -0.1))}
    errors, frames = errors_over_path(run, strokes)
    assert frames == {"a": "plane:0", "b": "plane:0"}
    for key, values in errors.items():
        print(f"plane-anchored {key}: p95 {p95(values):.2f} px over {len(values)} points")
        assert p95(values) <= MAX_P95_PX, key
    print(f"tracking+anchors {np.median(run.ms):.2f} ms/frame median, p95 {p95(run.ms):.2f}")


def test_ink_on_a_frame_never_analysed_uses_the_nearest_analysed_frame() -> None:
    run = Run(PlaneScene(), with_markers=False)
    # Frame 31 is never analysed: the stroke is lifted with the state interpolated between
    # analysed frames 30 and 33 (frame 30 alone is 1/30 s of motion off: ~5 px p95).
    errors, frames = errors_over_path(run, {"skipped": (31, stroke(0.05, 0.0))}, until=150)
    assert frames == {"skipped": "plane:0"}
    print(f"ink on a skipped frame: p95 {p95(errors['skipped']):.2f} px")
    assert p95(errors["skipped"]) <= MAX_P95_PX


def test_device_pose_with_depth_reprojects_exactly() -> None:
    scene = PlaneScene()
    book = AnchorBook()
    tracker, stage = CameraTracker(sink=book.record), AnchorStage(book)
    blank = np.zeros((480, 640, 3), np.uint8)
    xyz = stroke(0.05, 0.02)
    for index in range(0, 120, STEP):
        frame = context(blank, index, head_pose=scene.world_from_camera(index))
        tracker.run(frame)
        stage.run(frame)
        if index == 30:
            depth = (scene.camera_from_plane(30)[:3, :3] @ xyz.T).T + scene.camera_from_plane(30)[
                :3, 3
            ]
            uv = scene.project(30, xyz) / SIZE
            anchor = book.add_stroke(
                "d", 30 * TICKS_PER_FRAME, uv.tolist(), depth_m=depth[:, 2].tolist()
            )
            assert anchor.frame == "world"
            np.testing.assert_allclose(anchor.points_xyz, xyz, atol=1e-9)
        elif index > 30:
            (anchor,) = frame.anchors
            assert anchor.visible
            truth = scene.project(index, xyz)
            np.testing.assert_allclose(np.asarray(anchor.points_uv) * SIZE, truth, atol=1e-6)


def test_device_pose_without_depth_leaves_ink_on_the_image() -> None:
    book = AnchorBook()
    book.record(FrameState(0, CAMERA, np.eye(4), "device"))
    anchor = book.add_stroke("x", 0, [[0.5, 0.5], [0.6, 0.5]])
    assert anchor.frame == "image"
    (shown,) = book.project(FrameState(3000, CAMERA, np.eye(4), "device"))
    assert shown.visible and shown.points_uv == ((0.5, 0.5), (0.6, 0.5))
    assert AnchorBook(default_depth_m=1.0).add_stroke("y", 0, [[0.5, 0.5]]).frame == "image"


def test_ink_far_from_any_analysed_frame_is_not_anchored() -> None:
    book = AnchorBook()
    book.record(FrameState(0, CAMERA, np.eye(4), "device"))
    assert book.add_stroke("late", 10 * 90_000, [[0.5, 0.5]], depth_m=1.0).frame == "image"
    assert book.add_stroke("ok", 3000, [[0.5, 0.5]], depth_m=1.0).frame == "world"


def test_lost_tracking_hides_ink_instead_of_guessing() -> None:
    scene, other = PlaneScene(), PlaneScene(seed=11)
    run = Run(scene, with_markers=False)
    for index in range(0, 30, STEP):
        run.step(index)
    anchor = run.book.add_stroke("s", 27 * TICKS_PER_FRAME, [[0.4, 0.4], [0.5, 0.45]])
    assert anchor.frame == "plane:0"
    run.scene = other  # a cut: nothing of the old plane is in view any more
    for index in range(30, 60, STEP):
        (shown,) = run.step(index)
        assert not shown.visible and shown.points_uv == ()
    run.scene = scene  # the old plane does not come back as plane:0 (a new one starts)
    (shown,) = run.step(60)
    assert not shown.visible


def test_marker_anchor_seen_through_the_marker_map() -> None:
    run = Run(PlaneScene(markers={5: (0.0, 0.0), 9: (0.36, 0.12)}), with_markers=True)
    for index in range(0, 30, STEP):
        run.step(index)
    anchor = run.book.add_stroke("m", 27 * TICKS_PER_FRAME, [[0.7, 0.6]])
    assert anchor.frame.startswith("marker:")
    with_only_nine = PlaneScene(markers={9: (0.36, 0.12)})
    run.scene = with_only_nine
    (shown,) = run.step(30)
    assert shown.visible  # marker 5 is hidden; its place is known from marker 9 and the map


def test_book_is_bounded_and_removes_strokes() -> None:
    book = AnchorBook(max_anchors=3)
    for i in range(5):
        book.add_stroke(f"s{i}", 0, [[0.1 * i, 0.1]])
    assert len(book) == 3
    assert [a.id for a in book.project(FrameState(0, CAMERA))] == ["s2", "s3", "s4"]
    assert book.remove("s3") and not book.remove("s3")
    with pytest.raises(ValueError):
        book.add_stroke("bad", 0, [[float("nan"), 0.1]])
    with pytest.raises(ValueError):
        book.add_stroke("bad", 0, [])


def test_book_is_safe_to_use_from_two_threads() -> None:
    book = AnchorBook(max_anchors=50)
    state = FrameState(0, CAMERA, np.eye(4), "device")
    book.record(state)
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(500):
                book.add_stroke(f"w{i % 80}", 0, [[0.5, 0.5]], depth_m=1.0)
                book.remove(f"w{(i + 7) % 80}")
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        assert len(book.project(state)) <= 50
    thread.join()
    assert not failures
