"""A scripted mentor/observer peer on aiortc, for integration tests and benchmarks.

It speaks the wire protocol like the mentor page does: join, offer (video recvonly + audio,
negotiated data channels), then receives the worker's video and overlays and sends ink.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect

from headset_client.sources import decode_frame_code

CHANNELS = {"telemetry": (0, False, 0), "overlay": (1, False, 0), "annotations": (2, True, None)}


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone: a mentor's voice, recognizable in the worker's mix."""

    def __init__(self, amplitude: int = 8000) -> None:
        super().__init__()
        self._amplitude = amplitude
        self._n = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        samples = frame.samples
        t = (np.arange(samples) + self._n) / 48000
        self._n += samples
        tone = (self._amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        out = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = 48000
        out.pts = frame.pts
        out.time_base = fractions.Fraction(1, 48000)
        return out


class ViewerPeer:
    def __init__(
        self,
        url: str,
        token: str,
        room: str = "pump-7",
        role: str = "mentor",
        *,
        decode_code: bool = True,
        audio: bool = False,
    ) -> None:
        self.url = url
        self.token = token
        self.room = room
        self.role = role
        self.decode_code = decode_code
        self.send_audio = audio
        self.pc: RTCPeerConnection | None = None
        self.ws: ClientConnection | None = None
        self.channels: dict[str, RTCDataChannel] = {}
        self.joined: dict[str, Any] = {}
        self.signals: list[dict[str, Any]] = []
        self.frames: list[tuple[int, int, float, tuple[int, int]]] = []  # pts, code, t_ms, size
        self.overlays: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.recording_states: list[dict[str, Any]] = []
        self.audio_frames = 0
        self.audio_peak = 0
        self.first_frame_ms: float | None = None
        self.on_frame: Callable[[av.VideoFrame], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        ws_url = self.url.replace("http", "ws", 1) + "/ws"
        self.ws = await connect(ws_url)
        await self.ws.send(
            json.dumps(
                {"v": 1, "type": "join", "token": self.token, "room": self.room, "role": self.role}
            )
        )
        self.joined = await self._expect("joined")
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for label, (cid, ordered, retransmits) in CHANNELS.items():
            ch = pc.createDataChannel(
                label, negotiated=True, id=cid, ordered=ordered, maxRetransmits=retransmits
            )
            ch.on("message", lambda m, label=label: self._on_message(label, m))
            self.channels[label] = ch
        pc.addTransceiver("video", direction="recvonly")
        if self.send_audio:
            pc.addTrack(ToneTrack())
        else:
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = self._read_video if track.kind == "video" else self._read_audio
            self._tasks.append(asyncio.create_task(reader(track)))

        await pc.setLocalDescription(await pc.createOffer())
        await self.ws.send(json.dumps({"v": 1, "type": "offer", "sdp": pc.localDescription.sdp}))
        answer = await self._expect("answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self._tasks.append(asyncio.create_task(self._read_signals()))

    async def _expect(self, kind: str) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            message: dict[str, Any] = json.loads(await self.ws.recv())
            self.signals.append(message)
            if message["type"] == kind:
                return message
            if message["type"] == "error":
                raise RuntimeError(f"{message['code']}: {message['message']}")

    async def _read_signals(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.signals.append(json.loads(raw))

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                now = time.time() * 1000
                if self.first_frame_ms is None:
                    self.first_frame_ms = now
                code = -1
                if self.decode_code:
                    code = decode_frame_code(frame.to_ndarray(format="gray"))
                self.frames.append((int(frame.pts or 0), code, now, (frame.width, frame.height)))
                if self.on_frame is not None:
                    self.on_frame(frame)

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                self.audio_frames += 1
                peak = int(np.abs(frame.to_ndarray().astype(np.int32)).max())
                self.audio_peak = max(self.audio_peak, peak)

    def _on_message(self, label: str, raw: Any) -> None:
        message = json.loads(raw)
        message["received_ms"] = time.time() * 1000
        if label == "overlay":
            self.overlays.append(message)
        elif message.get("type") == "recording":
            self.recording_states.append(message)  # where recording stands, apart from ink
        else:
            self.annotations.append(message)

    def stroke(self, pts: int, points: list[list[float]], tool: str = "pen", sid: str = "") -> str:
        sid = sid or f"s{len(self.annotations)}{int(time.time() * 1000) % 100000}"
        self.channels["annotations"].send(
            json.dumps(
                {
                    "v": 1,
                    "type": "stroke",
                    "id": sid,
                    "pts": pts,
                    "tool": tool,
                    "points": points,
                    "t_sent_ms": time.time() * 1000,
                }
            )
        )
        return sid

    @property
    def channels_open(self) -> bool:
        return all(ch.readyState == "open" for ch in self.channels.values())

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()
        if self.pc is not None:
            await self.pc.close()
