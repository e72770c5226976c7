"""Outbound tracks of the media hub.

Each participant's peer connection has fixed slots (one video, one audio) negotiated once. What
flows through a slot changes as people come and go, so joins and leaves of others never need an
SDP renegotiation:

* :class:`VideoSlot` carries the room's worker video to a viewer. It reads a one-frame relay
  subscription (``MediaRelay.subscribe(buffered=False)``), so a slow viewer skips frames instead of
  building latency, and it waits quietly while the room has no worker.
* :class:`AudioMix` gives each participant the sum of everyone else's voice. Sources are consumed
  as they arrive into small per-listener buffers (bounded; the oldest 20 ms frame goes first) and
  mixed on a 20 ms clock.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.rtc.clock import pts90k

__all__ = ["AudioMix", "MixedAudioTrack", "VideoSlot"]

logger = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms
AUDIO_PTIME = AUDIO_SAMPLES / AUDIO_RATE
AUDIO_BUFFER_FRAMES = 6  # 120 ms of jitter room per source and listener


class VideoSlot(MediaStreamTrack):
    """A viewer's video: whatever source is attached now, or nothing (``recv`` waits)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._source: MediaStreamTrack | None = None
        self._changed = asyncio.Event()
        self._last_pts = -1

    def attach(self, source: MediaStreamTrack | None) -> None:
        old, self._source = self._source, source
        if old is not None and old is not source:
            old.stop()
        self._changed.set()

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source = self._source
            if source is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            recv = asyncio.ensure_future(source.recv())
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                done, _ = await asyncio.wait({recv, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (recv, changed):
                    if not fut.done():
                        fut.cancel()
                await asyncio.gather(recv, changed, return_exceptions=True)
            if recv in done and not recv.cancelled() and recv.exception() is None:
                frame = recv.result()
                # An encoder refuses a frame that goes back in time, and aiortc then stops the
                # sender for good: never hand one on.
                if isinstance(frame, av.VideoFrame) and pts90k(frame) > self._last_pts:
                    self._last_pts = pts90k(frame)
                    return frame
                continue
            if recv in done and isinstance(recv.exception(), MediaStreamError):
                # The source ended (worker left): wait for the next one.
                if self._source is source:
                    self._source = None
                continue
            self._changed.clear()

    def stop(self) -> None:
        super().stop()
        self.attach(None)


class MixedAudioTrack(MediaStreamTrack):
    """One listener's audio: everyone else in the room, mixed, paced at 20 ms."""

    kind = "audio"

    def __init__(self, mix: AudioMix, listener_id: str) -> None:
        super().__init__()
        self._mix = mix
        self._listener = listener_id
        self._buffers: dict[str, deque[np.ndarray]] = {}
        self._pts = 0
        self._start: float | None = None

    def push(self, source_id: str, samples: np.ndarray) -> None:
        buf = self._buffers.get(source_id)
        if buf is None:
            buf = self._buffers[source_id] = deque(maxlen=AUDIO_BUFFER_FRAMES)
        buf.append(samples)

    def forget(self, source_id: str) -> None:
        self._buffers.pop(source_id, None)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += AUDIO_SAMPLES
            wait = self._start + self._pts / AUDIO_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        mixed = np.zeros(AUDIO_SAMPLES * 2, dtype=np.int32)
        for buf in self._buffers.values():
            if buf:
                mixed += buf.popleft()
        out = np.clip(mixed, -32768, 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(out, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame

    def stop(self) -> None:
        super().stop()
        self._mix.remove_listener(self._listener)


class AudioMix:
    """The room's voice bus: sources in, one :class:`MixedAudioTrack` per listener out."""

    def __init__(self) -> None:
        self._listeners: dict[str, MixedAudioTrack] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def listener(self, participant_id: str) -> MixedAudioTrack:
        track = MixedAudioTrack(self, participant_id)
        self._listeners[participant_id] = track
        return track

    def remove_listener(self, participant_id: str) -> None:
        self._listeners.pop(participant_id, None)

    def add_source(self, participant_id: str, track: MediaStreamTrack) -> None:
        """Consume ``track`` at once (aiortc's remote track queue is unbounded) and fan it out."""
        old = self._tasks.pop(participant_id, None)
        if old is not None:
            old.cancel()
        self._tasks[participant_id] = asyncio.create_task(
            self._consume(participant_id, track), name=f"audio-source-{participant_id}"
        )

    async def _consume(self, source_id: str, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        pending = np.zeros(0, dtype=np.int16)
        chunk = AUDIO_SAMPLES * 2
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in resampler.resample(frame):
                    pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
                while pending.size >= chunk:
                    piece, pending = pending[:chunk], pending[chunk:]
                    for listener_id, listener in self._listeners.items():
                        if listener_id != source_id:
                            listener.push(source_id, piece)
        except MediaStreamError:
            pass
        except Exception:
            logger.exception("audio source %s failed", source_id)
        finally:
            for listener in self._listeners.values():
                listener.forget(source_id)

    async def remove_source(self, participant_id: str) -> None:
        task = self._tasks.pop(participant_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aclose(self) -> None:
        for pid in list(self._tasks):
            await self.remove_source(pid)
        self._listeners.clear()
