"""The reference headset: logs in, joins a room as the worker and streams over WebRTC.

It speaks to the server only over the wire (HTTP login, WebSocket signaling, WebRTC media and
data channels), as a device in the field would.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect

from headset_client import rtp
from headset_client.report import Report
from headset_client.rgbd import pack_depth
from headset_client.sources import Source

__all__ = ["HeadsetClient", "HeadsetOptions", "JoinRefused"]

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
VIDEO_RATE = 90_000
CHANNELS = {"telemetry": (0, False, 0), "overlay": (1, False, 0), "annotations": (2, True, None)}


class JoinRefused(Exception):
    """The server refused the login or the join; the message says why."""


@dataclass
class HeadsetOptions:
    server: str = "http://127.0.0.1:8000"
    username: str = "worker"
    password: str = ""
    room: str = "pump-7"
    role: str = "worker"
    hfov_deg: float = 60.0
    """Horizontal field of view used for the intrinsics sent in telemetry."""
    ice_servers: list[str] = field(default_factory=list)
    host_addresses: list[str] | None = None
    """Addresses to offer as ICE host candidates. None: loopback when the server is on this
    machine (127.0.0.1, ::1, localhost), else every interface."""
    depth_fps: float = 5.0
    """Most depth images a second sent with an RGB-D source (0: none)."""


class _TappedVideo(MediaStreamTrack):
    """Passes frames through with 90 kHz pts, noting each frame's send time and telemetry."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, client: HeadsetClient) -> None:
        super().__init__()
        self._source = source
        self._client = client

    async def recv(self) -> av.VideoFrame:
        frame = await self._source.recv()
        if not isinstance(frame, av.VideoFrame):
            raise TypeError("the video source produced a non-video frame")
        base = frame.time_base or fractions.Fraction(1, VIDEO_RATE)
        pts = round((frame.pts or 0) * base * VIDEO_RATE)
        frame.pts, frame.time_base = pts, fractions.Fraction(1, VIDEO_RATE)
        self._client._on_frame_sent(frame)
        return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class HeadsetClient:
    def __init__(self, options: HeadsetOptions, source: Source) -> None:
        rtp.install()
        addresses = options.host_addresses
        if addresses is None and _is_loopback(options.server):
            addresses = ["127.0.0.1"]
        if addresses:
            rtp.pin_host_addresses(addresses)
        self.options = options
        self.source = source
        self.report = Report()
        self.strokes: list[dict[str, Any]] = []
        self.anchors: dict[str, dict[str, Any]] = {}
        """Where each stroke is fixed in the world (``frame``, ``xyz``), by stroke id."""
        self.last_overlay: dict[str, Any] | None = None
        self.messages: deque[dict[str, Any]] = deque(maxlen=500)
        """Chat, freeze, step and error messages received (newest 500)."""
        self.acks: dict[str, int] = {}
        """Event seq of each of our messages the server has stored, by id."""
        self.recording: dict[str, Any] | None = None
        """Whether the session is recorded now (``on``, ``reason``), as the server last said."""
        self.joined: dict[str, Any] | None = None
        self.on_overlay: Callable[[dict[str, Any]], None] | None = None
        self.on_stroke: Callable[[dict[str, Any]], None] | None = None
        self._sent: OrderedDict[int, float] = OrderedDict()
        self._last_depth = 0.0
        self._message_count = 0
        self.depth_pts: deque[int] = deque(maxlen=1000)
        """pts of the frames whose depth image was sent (newest 1000)."""
        self._pc: RTCPeerConnection | None = None
        self._ws: ClientConnection | None = None
        self._channels: dict[str, RTCDataChannel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._audio_sink: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()

    # --- wire --------------------------------------------------------------------------------

    def _login(self) -> str:
        url = self.options.server.rstrip("/") + "/api/auth/login"
        body = json.dumps({"username": self.options.username, "password": self.options.password})
        request = urllib.request.Request(
            url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                token: str = json.loads(response.read())["access_token"]
                return token
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise JoinRefused(f"login refused ({exc.code}): {detail}") from None

    async def start(self) -> None:
        """Log in, join the room, offer media; returns once the answer is applied."""
        token = await asyncio.to_thread(self._login)
        ws_url = self.options.server.replace("http", "ws", 1).rstrip("/") + "/ws"
        self._ws = await connect(ws_url, max_size=2**20)
        await self._send(
            {"type": "join", "token": token, "room": self.options.room, "role": self.options.role}
        )
        joined = await self._expect("joined")
        self.joined = joined
        self.recording = joined.get("recording")
        self._pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()
            elif pc.connectionState in ("failed", "closed"):
                self.closed.set()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # The mentors' voices. Consume at once (aiortc's receive queue is unbounded).
            self._audio_sink = asyncio.create_task(self._hear(track))

        for label, (channel_id, ordered, retransmits) in CHANNELS.items():
            channel = pc.createDataChannel(
                label, negotiated=True, id=channel_id, ordered=ordered, maxRetransmits=retransmits
            )
            self._channels[label] = channel
            channel.on("message", lambda m, label=label: self._on_channel(label, m))
        if self.source.video is not None:
            pc.addTrack(_TappedVideo(self.source.video, self))
        if self.source.audio is not None:
            pc.addTrack(self.source.audio)
        else:
            pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        await self._send({"type": "offer", "sdp": pc.localDescription.sdp})
        answer = await self._expect("answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self._tasks.add(asyncio.create_task(self._read_signaling(), name="headset-signaling"))

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps({"v": PROTOCOL_VERSION, **message}))

    async def _expect(self, kind: str) -> dict[str, Any]:
        assert self._ws is not None
        while True:
            try:
                raw = await self._ws.recv()
            except Exception as exc:
                rcvd = getattr(exc, "rcvd", None)
                reason = f"{rcvd.code} {rcvd.reason}" if rcvd is not None else str(exc)
                raise JoinRefused(f"server closed the connection: {reason}") from None
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") == kind:
                return message
            if message.get("type") == "error":
                raise JoinRefused(f"{message['code']}: {message['message']}")

    async def _read_signaling(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if message.get("type") == "error":
                    logger.warning("server: %s: %s", message.get("code"), message.get("message"))
        except Exception:
            logger.debug("signaling closed", exc_info=True)
        finally:
            self.closed.set()

    # --- media and data ----------------------------------------------------------------------

    def _on_frame_sent(self, frame: av.VideoFrame) -> None:
        now_ms = time.time() * 1000
        pts = int(frame.pts or 0)  # 90 kHz, set by _TappedVideo
        self._sent[pts] = now_ms
        while len(self._sent) > 600:
            self._sent.popitem(last=False)
        self.report.frames_sent += 1
        if self.report.first_frame_ms is None:
            self.report.first_frame_ms = now_ms
        channel = self._channels.get("telemetry")
        if channel is not None and channel.readyState == "open":
            intrinsics = self._intrinsics(frame.width, frame.height)
            channel.send(
                json.dumps(
                    {
                        "v": PROTOCOL_VERSION,
                        "type": "telemetry",
                        "pts": pts,
                        "t_capture_ms": now_ms,
                        "intrinsics": intrinsics,
                    }
                )
            )
            self._send_depth(channel, pts)

    def _intrinsics(self, width: int, height: int) -> dict[str, Any]:
        known = self.source.intrinsics
        if known is not None:
            sx, sy = width / known["width"], height / known["height"]
            return {
                "fx": known["fx"] * sx,
                "fy": known["fy"] * sy,
                "cx": known["cx"] * sx,
                "cy": known["cy"] * sy,
                "width": width,
                "height": height,
            }
        fx = width / (2 * _tan_half(self.options.hfov_deg))
        return {"fx": fx, "fy": fx, "cx": width / 2, "cy": height / 2, "width": width,
                "height": height}  # fmt: skip

    def _send_depth(self, channel: RTCDataChannel, pts: int) -> None:
        depth_for, fps = self.source.depth_for, self.options.depth_fps
        if depth_for is None or fps <= 0:
            return
        depth = depth_for(pts)
        now = time.monotonic()
        if depth is None or now - self._last_depth < 1.0 / fps:
            return
        self._last_depth = now
        channel.send(pack_depth(pts, depth))
        self.depth_pts.append(pts)
        self.report.depth_sent += 1

    async def _hear(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    self.report.audio_frames_received += 1
                    level = int(abs(frame.to_ndarray().astype("int32")).max())
                    self.report.audio_peak = max(self.report.audio_peak, level)
        except MediaStreamError:
            pass

    def _on_channel(self, label: str, raw: Any) -> None:
        now_ms = time.time() * 1000
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("unreadable message on %s", label)
            return
        kind = message.get("type")
        if label == "overlay" and kind == "overlay":
            self.report.overlays_received += 1
            self.report.markers_seen += len(message.get("markers", []))
            sent = self._sent.get(int(message["pts"]))
            if sent is not None:
                self.report.overlay_latency.append(now_ms - sent)
            else:
                self.report.overlays_unmatched += 1
            self.last_overlay = message
            if self.on_overlay is not None:
                self.on_overlay(message)
        elif label == "annotations" and kind == "anchor":
            self.anchors[str(message["id"])] = message
        elif label == "annotations" and kind == "ack":
            self.acks[str(message["id"])] = int(message["seq"])
        elif label == "annotations" and kind == "recording":
            self.recording = message
        elif label == "annotations" and kind in ("chat", "freeze", "step", "error"):
            self.messages.append(message)
        elif label == "annotations" and kind == "stroke":
            self.report.annotations_received += 1
            if message.get("t_sent_ms") is not None:
                self.report.annotation_latency.append(now_ms - float(message["t_sent_ms"]))
            message["received_ms"] = now_ms
            self.strokes.append(message)
            if self.on_stroke is not None:
                self.on_stroke(message)

    def send_message(self, kind: str, **fields: Any) -> str:
        """Send a chat (``text``) or consent (``recording``) message; returns its id (the ack
        lands in ``acks`` once the server stored it)."""
        self._message_count += 1
        message_id = f"h{self._message_count}-{int(time.time() * 1000) % 10**8}"
        channel = self._channels.get("annotations")
        if channel is None or channel.readyState != "open":
            raise RuntimeError("the annotations channel is not open yet")
        body = {"v": PROTOCOL_VERSION, "type": kind, "id": message_id, **fields}
        channel.send(json.dumps(body))
        return message_id

    async def run_for(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.closed.wait(), seconds)
        except TimeoutError:
            pass

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._audio_sink is not None:
            self._audio_sink.cancel()
        await asyncio.gather(
            *self._tasks, *(t for t in [self._audio_sink] if t), return_exceptions=True
        )
        if self._ws is not None:
            try:
                await self._send({"type": "leave"})
            except Exception:
                pass
            await self._ws.close()
        if self._pc is not None:
            await self._pc.close()
        self.source.stop()


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def _tan_half(hfov_deg: float) -> float:
    import math

    return math.tan(math.radians(hfov_deg) / 2)
