"""The room's media timeline: one pts that only ever increases, whoever is streaming.

A worker's video carries its own pts (its RTP timestamps). When a worker leaves and another joins,
the new stream starts over near 0. Every viewer's encoder, every browser's jitter buffer and the
session's event log need time to go forward, so the room shifts each worker's stream past the end
of the previous one. For the first worker the shift is 0: room pts equal the headset's own.

Everything on the server speaks room pts; only messages to the worker are shifted back, so the
headset always hears about frames by the pts it gave them.
"""

from __future__ import annotations

import fractions

import av
from aiortc.mediastreams import MediaStreamTrack

from server.rtc.clock import pts90k

__all__ = ["RoomTimeline", "ShiftedTrack"]

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)


class RoomTimeline:
    def __init__(self) -> None:
        self._offset: int | None = None
        self._next = 0  # the smallest room pts the next frame may take

    def new_worker(self) -> None:
        """A new stream begins: its offset is fixed by its first frame."""
        self._offset = None

    @property
    def offset(self) -> int:
        return self._offset or 0

    def to_room(self, worker_pts: int) -> int:
        if self._offset is None:
            self._offset = max(0, self._next - worker_pts)
        room_pts = worker_pts + self._offset
        self._next = max(self._next, room_pts + 1)
        return room_pts

    def to_worker(self, room_pts: int) -> int:
        return room_pts - self.offset


class ShiftedTrack(MediaStreamTrack):
    """The worker's received video, re-stamped on the room timeline (once, for every consumer)."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, timeline: RoomTimeline) -> None:
        super().__init__()
        self._source = source
        self._timeline = timeline

    async def recv(self) -> av.VideoFrame:
        while True:
            frame = await self._source.recv()
            if isinstance(frame, av.VideoFrame):
                break
        frame.pts = self._timeline.to_room(pts90k(frame))
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()
