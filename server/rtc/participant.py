"""One participant of a room: its peer connection, data channels and outbound slots."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.protocol import DATA_CHANNELS, ParticipantInfo, ServerMessage
from server.rtc.tracks import VideoSlot

if TYPE_CHECKING:
    from server.rtc.room import Room

__all__ = ["Participant", "PeerOptions"]

logger = logging.getLogger(__name__)

SendSignal = Callable[[ServerMessage], Awaitable[None]]


@dataclass(frozen=True)
class PeerOptions:
    ice_servers: tuple[str, ...] = ()
    max_message_bytes: int = 64 * 1024


class TokenBucket:
    """``rate`` events a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Participant:
    """Owns one ``RTCPeerConnection`` (the client offers, the server answers)."""

    def __init__(
        self,
        *,
        username: str,
        display_name: str,
        role: str,
        send_signal: SendSignal,
        options: PeerOptions,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.username = username
        self.display_name = display_name
        self.role = role
        self.room: Room | None = None
        self._send_signal = send_signal
        self._options = options
        self._pc: RTCPeerConnection | None = None
        self.channels: dict[str, RTCDataChannel] = {}
        self.video_slot: VideoSlot | None = None
        self._sinks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._negotiation = asyncio.Lock()
        self.ink_budget = TokenBucket(rate=20.0, burst=60)
        self.record_lock = asyncio.Lock()
        """Held while one of this participant's messages is stored, so the log keeps their order."""

    @property
    def info(self) -> ParticipantInfo:
        return ParticipantInfo(
            id=self.id,
            username=self.username,
            display_name=self.display_name,
            role=self.role,  # type: ignore[arg-type]
        )

    @property
    def connection_state(self) -> str:
        return "new" if self._pc is None else str(self._pc.connectionState)

    @property
    def is_viewer(self) -> bool:
        return self.role in ("mentor", "observer")

    async def signal(self, message: ServerMessage) -> None:
        if self._closed:
            return
        try:
            await self._send_signal(message)
        except Exception:  # the socket may already be gone; leaving is handled elsewhere
            logger.debug("could not signal %s", self.id, exc_info=True)

    def send(self, label: str, payload: str) -> bool:
        """Send on a data channel if it is open. Returns False when the message was dropped."""
        channel = self.channels.get(label)
        if channel is None or channel.readyState != "open":
            return False
        # Lossy channels drop when the SCTP buffer grows: a stale overlay is worth nothing.
        if label != "annotations" and channel.bufferedAmount > 256 * 1024:
            return False
        channel.send(payload)
        return True

    async def handle_offer(self, sdp: str) -> str:
        """Apply an offer (first one or renegotiation) and return the answer SDP."""
        room = self.room
        if room is None:
            raise RuntimeError("participant is not in a room")
        _check_offer(sdp)
        async with self._negotiation:
            first = self._pc is None
            if first:
                self._pc = self._create_peer_connection(room)
            pc = self._pc
            assert pc is not None
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                if first:
                    self._create_channels(pc, room)
                    self._attach_outbound(pc, room)
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
            except Exception:
                if first:  # leave no half-built connection behind: the client may offer again
                    self._pc, self.channels, self.video_slot = None, {}, None
                    await pc.close()
                raise
            return str(pc.localDescription.sdp)

    def _create_peer_connection(self, room: Room) -> RTCPeerConnection:
        servers = [RTCIceServer(urls=url) for url in self._options.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._on_track(room, track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            logger.info("peer %s %s", self.id, pc.connectionState, extra={"peer_id": self.id})
            if pc.connectionState == "failed":
                await room.remove(self, reason="connection_failed")

        return pc

    def _create_channels(self, pc: RTCPeerConnection, room: Room) -> None:
        for label, (channel_id, ordered, retransmits) in DATA_CHANNELS.items():
            channel = pc.createDataChannel(
                label,
                negotiated=True,
                id=channel_id,
                ordered=ordered,
                maxRetransmits=retransmits,
            )
            self.channels[label] = channel

            @channel.on("message")
            def on_message(message: Any, label: str = label) -> None:
                room.on_channel_message(self, label, message)

            if label == "annotations":

                @channel.on("open")
                def on_open() -> None:
                    room.on_annotations_open(self)

    def _attach_outbound(self, pc: RTCPeerConnection, room: Room) -> None:
        kinds = {t.kind for t in pc.getTransceivers()}
        if "audio" in kinds:
            pc.addTrack(room.audio.listener(self.id))
        if "video" in kinds and self.is_viewer:
            self.video_slot = VideoSlot()
            pc.addTrack(self.video_slot)
            room.attach_viewer(self)

    def _on_track(self, room: Room, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self.role == "worker":
            room.publish_worker_video(self, track)
        elif track.kind == "audio":
            room.add_voice(self, track)
        else:
            # Only the worker publishes video. Consume what others send so that aiortc's
            # unbounded receive queue never grows, and drop it.
            self._sinks.add(asyncio.create_task(_drain(track), name=f"drain-{self.id}"))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.video_slot is not None:
            self.video_slot.stop()
        for task in self._sinks:
            task.cancel()
        await asyncio.gather(*self._sinks, return_exceptions=True)
        if self._pc is not None:
            await self._pc.close()


def _check_offer(sdp: str) -> None:
    lines = sdp.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].startswith("v=0"):
        raise ValueError("not an SDP offer (it must start with v=0)")
    media = [line.split()[0][2:] for line in lines if line.startswith("m=") and line.split()]
    if not media:
        raise ValueError("the offer has no media sections")
    if "application" not in media:
        raise ValueError(
            "the offer has no data channel section: create the negotiated channels "
            "(telemetry 0, overlay 1, annotations 2) before creating the offer"
        )


async def _drain(track: MediaStreamTrack) -> None:
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass
