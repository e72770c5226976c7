"""The digital twin in a child process: :class:`TwinProcess`, a drop-in for :class:`TwinBuilder`.

Open3D's TSDF integration and mesh extraction hold Python's GIL (measured: 10-45 ms a keyframe,
150-250 ms a mesh extraction of a small room, more as it grows). In a server thread that stalls
the event loop, and with it the media of every room. So the server keeps each session's twin in
a process of its own:

- keyframes are chosen here, in the caller's thread (cheap pose arithmetic), and only they
  travel to the child, through a bounded queue; when the child falls behind, keyframes are
  dropped (``dropped`` counts them) rather than queued without end;
- marker sightings are averaged here (a few numbers per frame) and sent with each request;
- ``summary``, ``glb_bytes`` and ``ply_bytes`` are requests answered over a pipe, after every
  keyframe queued before them. The caller's thread waits without holding the GIL.

The child is spawned (not forked: the server has threads) on the first keyframe, so a stream
without depth costs nothing. If it dies, integration stops and exports raise
:class:`vision.errors.VisionError` saying so; the session carries on.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import threading
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.errors import VisionError
from vision.geometry import Mat
from vision.rgbd import DepthFrame
from vision.twin import MarkerBook, TwinBuilder, TwinOptions, keyframe_due
from vision.types import Intrinsics

__all__ = ["TwinProcess"]

logger = logging.getLogger(__name__)

_REPLY_TIMEOUT_S = 120.0


def _child(options: TwinOptions, inbox: Any, reply: Connection) -> None:  # pragma: no cover
    """The child's loop (covered by the tests through the process boundary)."""
    twin = TwinBuilder(options)
    while True:
        message = inbox.get()
        kind = message[0]
        try:
            if kind == "stop":
                return
            if kind == "integrate":
                _, color, depth, scale, pts, camera, pose, reference = message
                frame = DepthFrame(depth, pts, None, scale)
                twin.integrate(
                    color, frame, Intrinsics.from_dict(camera), pose, reference, force=True
                )
            elif kind == "markers":
                twin.set_markers(message[1])
            elif kind == "name":
                twin.name_marker(message[1], message[2])
            elif kind == "reset":
                twin.reset()
            elif kind in ("summary", "glb", "ply"):
                result: Any = (
                    twin.summary()
                    if kind == "summary"
                    else twin.glb_bytes()
                    if kind == "glb"
                    else twin.ply_bytes()
                )
                reply.send(("ok", result))
        except Exception as exc:  # report, keep serving
            logging.getLogger(__name__).exception("twin process: %s failed", kind)
            if kind in ("summary", "glb", "ply"):
                reply.send(("error", f"{type(exc).__name__}: {exc}"))


class TwinProcess:
    """A :class:`TwinBuilder` running in a child process; the same methods the stage and the
    server use. Thread-safe."""

    def __init__(self, options: TwinOptions | None = None, *, queue_size: int = 8) -> None:
        self.options = options if options is not None else TwinOptions()
        self.options.validate()
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._request_lock = threading.Lock()
        self._process: Any = None
        self._inbox: Any = None
        self._reply: Connection | None = None
        self._dead = False
        self.reference: str | None = None
        self._last_key: Mat | None = None
        self._since_key = 0
        self._keyframes = 0
        self.dropped = 0
        """Keyframes the child was too busy for."""
        self._names: dict[int, str] = {}
        self._markers = MarkerBook()

    # --- the stage's side --------------------------------------------------------------------

    @property
    def keyframes(self) -> int:
        """Keyframes handed to the child so far (0: nothing to export)."""
        with self._lock:
            return self._keyframes

    def name_marker(self, marker_id: int, name: str) -> None:
        with self._lock:
            self._names[marker_id] = name
            if self._process is not None:
                self._put(("name", marker_id, name), block=True)

    def is_keyframe(self, world_from_camera: Mat, reference: str) -> bool:
        with self._lock:
            return self._is_keyframe(np.asarray(world_from_camera, np.float64), reference)

    def _is_keyframe(self, pose: Mat, reference: str) -> bool:
        if self.reference is not None and reference != self.reference:
            return False
        return keyframe_due(self.options, self._last_key, self._since_key, pose)

    def integrate(
        self,
        color: npt.NDArray[np.uint8],
        depth: DepthFrame,
        camera: Intrinsics,
        world_from_camera: Mat,
        reference: str = "rgbd",
        *,
        force: bool = False,
    ) -> bool:
        """Send the frame to the child if it is a keyframe; returns whether it was sent."""
        pose = np.asarray(world_from_camera, np.float64)
        with self._lock:
            if self._dead or (self.reference is not None and reference != self.reference):
                return False
            if not force and not self._is_keyframe(pose, reference):
                self._since_key += 1
                return False
            self._ensure_started()
            message = (
                "integrate",
                np.ascontiguousarray(color),
                np.ascontiguousarray(depth.depth),
                depth.scale_m,
                depth.pts,
                camera.to_dict(),
                pose,
                reference,
            )
            if not self._put(message, block=False):
                self.dropped += 1
                return False
            self.reference = reference
            self._last_key, self._since_key = pose, 0
            self._keyframes += 1
            return True

    def place_marker(self, marker_id: int, world_from_marker: Mat, reference: str = "rgbd") -> bool:
        pose = np.asarray(world_from_marker, np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise ValueError("world_from_marker must be a finite 4x4 matrix")
        with self._lock:
            if self.reference is not None and reference != self.reference:
                return False
            if self.reference is None:
                self.reference = reference
            self._markers.add(marker_id, pose)
            return True

    def reset(self) -> None:
        with self._lock:
            self.reference, self._last_key, self._since_key, self._keyframes = None, None, 0, 0
            self._markers = MarkerBook()
            if self._process is not None:
                self._put(("reset",), block=True)

    # --- the server's side -------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        if self._process is None:
            return {"reference": None, "keyframes": 0, "vertices": 0, "triangles": 0,
                    "bounds": None, "markers": [], "dropped": 0}  # fmt: skip
        result = self._request("summary")
        return {**result, "dropped": self.dropped}

    def glb_bytes(self) -> bytes:
        data: bytes = self._request("glb")
        return data

    def ply_bytes(self) -> bytes:
        data: bytes = self._request("ply")
        return data

    def close(self) -> None:
        """Stop the child (waits up to 5 s, then kills it). Safe to call twice."""
        with self._lock:
            process = self._process
            if process is None:
                self._dead = True
                return
            self._put(("stop",), block=True, timeout=1.0)
            self._process, self._dead = None, True
        process.join(5.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)
        if self._reply is not None:
            self._reply.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._process is not None:
            return
        context = mp.get_context("spawn")
        self._inbox = context.Queue(self._queue_size)
        receive, send = context.Pipe(duplex=False)
        self._reply = receive
        self._process = context.Process(
            target=_child,
            args=(self.options, self._inbox, send),
            name="fieldsight-twin",
            daemon=True,
        )
        self._process.start()
        send.close()  # the child holds its end
        for marker_id, name in self._names.items():
            self._put(("name", marker_id, name), block=True)

    def _put(self, message: tuple[Any, ...], *, block: bool, timeout: float = 10.0) -> bool:
        if self._process is None or not self._process.is_alive():
            self._died()
            return False
        try:
            self._inbox.put(message, block=block, timeout=timeout if block else None)
        except queue.Full:
            return False
        return True

    def _died(self) -> None:
        if not self._dead:
            self._dead = True
            code = None if self._process is None else self._process.exitcode
            logger.error("the digital twin process stopped (exit code %s)", code)

    def _request(self, kind: str) -> Any:
        with self._request_lock:
            with self._lock:
                if self._dead or self._reply is None:
                    raise VisionError("the digital twin process is not running")
                markers = self._markers.entries()
                if not self._put(("markers", markers), block=True) or not self._put(
                    (kind,), block=True
                ):
                    raise VisionError("the digital twin process is not answering")
                reply = self._reply
            if not reply.poll(_REPLY_TIMEOUT_S):
                raise VisionError(
                    f"the digital twin process did not answer in {_REPLY_TIMEOUT_S} s"
                )
            status, result = reply.recv()
        if status != "ok":
            raise VisionError(f"the digital twin could not be exported: {result}")
        return result
