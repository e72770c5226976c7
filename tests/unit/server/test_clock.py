from __future__ import annotations

import fractions

import av
import numpy as np

from server.rtc import clock


def test_raw_mapper_keeps_timestamps_and_unwraps() -> None:
    mapper = clock.RawTimestampMapper()
    assert mapper.map(123_000) == 123_000  # not rebased to 0
    assert mapper.map(126_000) == 126_000
    near_end = 2**32 - 3000
    mapper = clock.RawTimestampMapper()
    assert mapper.map(near_end) == near_end
    assert mapper.map(0) == 2**32  # wrapped
    assert mapper.map(near_end) == near_end  # a late frame from before the wrap
    assert mapper.map(3000) == 2**32 + 3000


def test_small_reordering_is_not_a_wrap() -> None:
    mapper = clock.RawTimestampMapper()
    mapper.map(9000)
    assert mapper.map(6000) == 6000
    assert mapper.map(12000) == 12000


def frame(pts: int, base: fractions.Fraction) -> av.VideoFrame:
    f = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="bgr24")
    f.pts, f.time_base = pts, base
    return f


def test_pts90k_survives_rebasing_to_microseconds() -> None:
    assert clock.pts90k(frame(3000, fractions.Fraction(1, 90_000))) == 3000
    # FFmpeg rebases to 1/1000000 with rounding: 3000 ticks -> 33333 us.
    assert clock.pts90k(frame(33_333, fractions.Fraction(1, 1_000_000))) == 3000
    assert clock.pts90k(frame(66_667, fractions.Fraction(1, 1_000_000))) == 6000


def test_install_makes_encoders_exact() -> None:
    from aiortc.codecs.vpx import Vp8Encoder

    clock.install()
    encoder = Vp8Encoder()
    stamps = []
    for index in range(4):
        f = frame(index * 3000, fractions.Fraction(1, 90_000)).reformat(format="yuv420p")
        f.pts, f.time_base = index * 3000, fractions.Fraction(1, 90_000)
        _, timestamp = encoder.encode(f)
        stamps.append(timestamp)
    assert stamps == [0, 3000, 6000, 9000]
    assert clock.installed()


def test_unwrap_near_places_browser_timestamps_on_the_timeline() -> None:
    assert clock.unwrap_near(3000, None) == 3000
    assert clock.unwrap_near(3000, 6000) == 3000
    ref = 5 * 2**32 + 1000
    assert clock.unwrap_near(500, ref) == 5 * 2**32 + 500
    assert clock.unwrap_near(2**32 - 100, ref) == 5 * 2**32 - 100  # just before the last wrap
    assert clock.unwrap_near(7 * 2**32, ref) == 7 * 2**32  # already 64-bit
