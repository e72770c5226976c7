"""BASELINE, NOT FIELDSIGHT: the naive media server design, for side-by-side comparison only.

This is the design of aiortc's ``examples/server/server.py`` applied to our use case, the design
Fieldsight's STYLE.md says never to copy:

* peers live in module-global sets (``pcs``, ``ROOMS``);
* the worker's video is wrapped in a ``MediaStreamTrack`` whose ``recv()`` runs OpenCV
  (ArUco detection + ``solvePnP`` per marker) on EVERY frame, on the event loop;
* mentors get the video through ``MediaRelay.subscribe(track)`` with its default
  ``buffered=True`` (an unbounded queue per viewer);
* the overlay is sent from inside ``recv()`` on the ``overlay`` data channel of every peer.

It speaks the subset of Fieldsight's wire protocol that the reference headset and the bench's
``ViewerPeer`` need (login, join, offer -> answer, negotiated data channels 0/1/2; strokes are
relayed as they are, without storage), so the same clients drive both servers. The only piece of
Fieldsight it borrows is the media clock (``server.rtc.clock.install``), so that its overlays
name frames by the same pts as ours: measurement plumbing, not part of the design under test.

    FIELDSIGHT_PORT=8001 python -m tests.bench.naive_server
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np
import uvicorn
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from server.rtc import clock

logger = logging.getLogger("naive_server")

CHANNELS = {"telemetry": (0, False, 0), "overlay": (1, False, 0), "annotations": (2, True, None)}
MARKER_SIZE_M = 0.10
HFOV_DEG = 60.0

# --- the naive part: module-global state, as in aiortc's example server ----------------------

pcs: set[RTCPeerConnection] = set()
relay = MediaRelay()


@dataclass
class NaiveRoom:
    worker_video: MediaStreamTrack | None = None
    video_ready: asyncio.Event = field(default_factory=asyncio.Event)
    channels: dict[str, list[RTCDataChannel]] = field(
        default_factory=lambda: {label: [] for label in CHANNELS}
    )


ROOMS: dict[str, NaiveRoom] = {}

_params = cv2.aruco.DetectorParameters()
_params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
detector = cv2.aruco.ArucoDetector(
    cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), _params
)
_h = MARKER_SIZE_M / 2
OBJECT_POINTS = np.array([[-_h, _h, 0], [_h, _h, 0], [_h, -_h, 0], [-_h, -_h, 0]], np.float64)


class MarkerTrack(MediaStreamTrack):
    """Like the example's ``VideoTransformTrack``: the OpenCV work happens inside ``recv()``."""

    kind = "video"

    def __init__(self, track: MediaStreamTrack, room: NaiveRoom) -> None:
        super().__init__()
        self.track = track
        self.room = room

    async def recv(self) -> av.VideoFrame:
        frame = await self.track.recv()
        started = time.perf_counter()
        image = frame.to_ndarray(format="bgr24")
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        height, width = gray.shape
        f = width / (2 * np.tan(np.radians(HFOV_DEG) / 2))
        camera = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)
        corners, ids, _ = detector.detectMarkers(gray)
        markers = []
        if ids is not None:
            for quad, marker_id in zip(corners, ids.ravel().tolist(), strict=True):
                pixels = np.asarray(quad, np.float64).reshape(4, 2)
                ok, rvec, tvec = cv2.solvePnP(
                    OBJECT_POINTS, pixels, camera, None, flags=cv2.SOLVEPNP_IPPE_SQUARE
                )
                if ok:
                    markers.append(
                        {
                            "id": int(marker_id),
                            "corners_uv": (pixels / [width, height]).round(5).tolist(),
                            "rvec": rvec.ravel().round(6).tolist(),
                            "tvec": tvec.ravel().round(6).tolist(),
                        }
                    )
        payload = json.dumps(
            {
                "v": 1,
                "type": "overlay",
                "pts": clock.pts90k(frame),
                "width": width,
                "height": height,
                "markers": markers,
                "timings_ms": {"markers": round((time.perf_counter() - started) * 1000, 2)},
                "camera": "none",
                "t_analysed_ms": time.time() * 1000,
            }
        )
        for channel in self.room.channels["overlay"]:
            if channel.readyState == "open":
                channel.send(payload)
        return frame


app = FastAPI(title="naive baseline (aiortc example design)")


@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "peers": len(pcs)}


@app.post("/api/auth/login")
async def login() -> dict[str, str]:
    return {"access_token": "naive", "token_type": "bearer"}


@app.websocket("/ws")
async def signaling(ws: WebSocket) -> None:
    await ws.accept()
    pc: RTCPeerConnection | None = None
    try:
        join = json.loads(await ws.receive_text())
        room = ROOMS.setdefault(join["room"], NaiveRoom())
        role = join["role"]
        await ws.send_text(
            json.dumps(
                {
                    "v": 1,
                    "type": "joined",
                    "participant_id": f"p{len(pcs)}",
                    "session_id": "naive",
                    "room": join["room"],
                    "role": role,
                    "participants": [],
                    "ice_servers": [],
                    "data_channels": {k: v[0] for k, v in CHANNELS.items()},
                }
            )
        )
        while True:
            message = json.loads(await ws.receive_text())
            if message.get("type") == "offer" and pc is None:
                pc = await _answer(ws, room, role, message["sdp"])
            elif message.get("type") == "leave":
                break
    except WebSocketDisconnect:
        pass
    finally:
        if pc is not None:
            pcs.discard(pc)
            await pc.close()


async def _answer(ws: WebSocket, room: NaiveRoom, role: str, sdp: str) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs.add(pc)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and role == "worker":
            room.worker_video = MarkerTrack(track, room)
            room.video_ready.set()

    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    for label, (cid, ordered, retransmits) in CHANNELS.items():
        channel = pc.createDataChannel(
            label, negotiated=True, id=cid, ordered=ordered, maxRetransmits=retransmits
        )
        room.channels[label].append(channel)
        if label == "annotations":
            channel.on("message", lambda m, sender=channel: _relay_stroke(room, sender, m))
    if role != "worker":
        await asyncio.wait_for(room.video_ready.wait(), 20)
        assert room.worker_video is not None
        pc.addTrack(relay.subscribe(room.worker_video))
    await pc.setLocalDescription(await pc.createAnswer())
    await ws.send_text(json.dumps({"v": 1, "type": "answer", "sdp": pc.localDescription.sdp}))
    return pc


def _relay_stroke(room: NaiveRoom, sender: RTCDataChannel, message: Any) -> None:
    for channel in room.channels["annotations"]:
        if channel is not sender and channel.readyState == "open":
            channel.send(message)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    clock.install()
    if os.environ.get("FIELDSIGHT_ICE_HOST_ADDRESSES"):
        import aioice.ice

        pinned = os.environ["FIELDSIGHT_ICE_HOST_ADDRESSES"].split(",")
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: pinned
    port = int(os.environ.get("FIELDSIGHT_PORT", "8001"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
