from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from server.rtc import jitter


def packet(seq: int, timestamp: int, marker: bool, data: bytes) -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    p._data = data  # type: ignore[attr-defined]  # set by the receiver after depayloading
    return p


def test_frame_released_on_its_marker_packet() -> None:
    jitter.install()
    buffer = JitterBuffer(capacity=128, is_video=True)
    assert buffer.add(packet(10, 3000, False, b"ab"))[1] is None
    _, frame = buffer.add(packet(11, 3000, True, b"cd"))
    assert frame is not None and (frame.data, frame.timestamp) == (b"abcd", 3000)
    # The next frame, its packets out of order: nothing until the gap is filled.
    assert buffer.add(packet(13, 6000, True, b"gh"))[1] is None
    _, frame = buffer.add(packet(12, 6000, False, b"ef"))
    assert frame is not None and (frame.data, frame.timestamp) == (b"efgh", 6000)


def test_frame_without_marker_completes_when_the_next_begins() -> None:
    jitter.install()
    buffer = JitterBuffer(capacity=128, is_video=True)
    assert buffer.add(packet(1, 3000, False, b"a"))[1] is None
    _, frame = buffer.add(packet(2, 6000, False, b"b"))
    assert frame is not None and (frame.data, frame.timestamp) == (b"a", 3000)


def test_audio_buffers_untouched() -> None:
    jitter.install()
    buffer = JitterBuffer(capacity=16, prefetch=4)
    assert buffer.add(packet(1, 960, True, b"x"))[1] is None  # audio still prefetches
