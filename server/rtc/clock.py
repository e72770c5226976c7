"""One media clock for the whole room: a frame's ``pts`` is its RTP timestamp, end to end.

Overlays and ink name frames by ``pts``. For that name to mean the same frame to the headset, the
server and every browser, the RTP timestamp must survive each hop unchanged:

* aiortc's receiver rebases incoming RTP timestamps so the first frame it happens to decode gets
  pts 0. If that first frame is lost, every later pts is off by a frame or more. We keep the raw
  RTP timestamp instead (unwrapped to 64 bits), so a received frame's pts is exactly the
  sender's RTP timestamp.
* aiortc's sender adds a random origin to each outgoing stream. We use origin 0, so the RTP
  timestamp a browser sees in ``requestVideoFrameCallback``'s ``rtpTimestamp`` is the frame's pts
  modulo 2**32.
* The video encoders hand frames to FFmpeg, which rebases their pts to microseconds, and aiortc
  converts back to 90 kHz by truncation: 3000 becomes 2999, and every hop loses a tick. Rounding
  to the nearest tick is exact (a tick is 11.1 us). FFmpeg rebases the frame object in place, and
  the relay shares one frame among every consumer: always read a frame's pts with :func:`pts90k`.

:func:`install` applies both to aiortc once per process. It checks that the aiortc internals it
relies on are still there and fails loudly otherwise (tests cover it against the pinned range).
"""

from __future__ import annotations

import inspect
import logging
from fractions import Fraction
from typing import Any

__all__ = ["RawTimestampMapper", "install", "installed", "pts90k", "unwrap_near"]

logger = logging.getLogger(__name__)

_installed = False


class RawTimestampMapper:
    """Unwraps 32-bit RTP timestamps into a monotonic 64-bit pts without rebasing them."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._wraps = 0

    def map(self, timestamp: int) -> int:
        if self._last is not None:
            # A jump back by more than half the range is a wrap, not reordering.
            if timestamp < self._last and self._last - timestamp > (1 << 31):
                self._wraps += 1
            elif timestamp > self._last and timestamp - self._last > (1 << 31) and self._wraps:
                # A late packet from before the last wrap.
                return (self._wraps - 1) * (1 << 32) + timestamp
        self._last = timestamp
        return self._wraps * (1 << 32) + timestamp


def pts90k(frame: Any) -> int:
    """The frame's pts in 90 kHz ticks, whatever time base an encoder rebased it to."""
    if frame.pts is None:
        return 0
    base = frame.time_base
    if base is None or (base.numerator == 1 and base.denominator == 90_000):
        return int(frame.pts)
    return round(Fraction(frame.pts) * Fraction(base.numerator, base.denominator) * 90_000)


def unwrap_near(pts: int, reference: int | None) -> int:
    """Place a 32-bit RTP timestamp (as a browser reports it) on the 64-bit pts timeline.

    Picks the value congruent to ``pts`` modulo 2**32 that lies nearest to ``reference`` (the
    newest pts the server has seen). Values already past 32 bits are returned as they are.
    """
    if reference is None or pts >= 1 << 32:
        return pts
    base = reference - (reference % (1 << 32))
    candidates = (base - (1 << 32) + pts, base + pts, base + (1 << 32) + pts)
    return min((c for c in candidates if c >= 0), key=lambda c: abs(c - reference))


def _rounding_convert_timebase(pts: int, from_base: Any, to_base: Any) -> int:
    if from_base != to_base:
        from_fraction = Fraction(from_base.numerator, from_base.denominator)
        to_fraction = Fraction(to_base.numerator, to_base.denominator)
        return round(pts * from_fraction / to_fraction)
    return pts


def _zero_origin_random32(original: Any) -> Any:
    def random32() -> int:
        # Only the timestamp origin drawn inside RTCRtpSender._run_rtp becomes 0; SSRCs and
        # everything else stay random.
        caller = inspect.currentframe()
        if caller is not None and caller.f_back is not None:
            if caller.f_back.f_code.co_name == "_run_rtp":
                return 0
        value: int = original()
        return value

    random32.__wrapped__ = original  # type: ignore[attr-defined]
    return random32


def install() -> None:
    """Make aiortc keep RTP timestamps as frame pts (see the module docstring). Idempotent."""
    global _installed
    if _installed:
        return
    from aiortc import rtcrtpreceiver, rtcrtpsender
    from aiortc.codecs import h264, vpx

    if not hasattr(rtcrtpreceiver, "TimestampMapper") or not hasattr(rtcrtpsender, "random32"):
        raise RuntimeError(
            "this aiortc version lacks the internals Fieldsight's media clock relies on "
            "(rtcrtpreceiver.TimestampMapper, rtcrtpsender.random32); pin aiortc to a tested range"
        )
    if "timestamp_origin = random32()" not in inspect.getsource(rtcrtpsender.RTCRtpSender._run_rtp):
        raise RuntimeError("aiortc's RTCRtpSender no longer draws its timestamp origin as expected")
    for codec in (vpx, h264):
        if not hasattr(codec, "convert_timebase"):
            raise RuntimeError(f"{codec.__name__} no longer converts time bases as expected")
        setattr(codec, "convert_timebase", _rounding_convert_timebase)  # noqa: B010
    rtcrtpreceiver.TimestampMapper = RawTimestampMapper  # type: ignore[misc,assignment]
    rtcrtpsender.random32 = _zero_origin_random32(rtcrtpsender.random32)
    _installed = True
    logger.debug("media clock installed: RTP timestamps are kept as frame pts")


def installed() -> bool:
    return _installed
