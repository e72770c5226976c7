"""Send RTP timestamps equal to frame pts, so the server can name frames as the headset does.

The server tags overlays with the RTP timestamp it receives. aiortc's sender adds a random origin
to every stream; with origin 0 a frame's RTP timestamp is its own pts, and the headset can match
overlays to the frames it sent without any other bookkeeping.
"""

from __future__ import annotations

import inspect
from fractions import Fraction
from typing import Any

__all__ = ["install", "pin_host_addresses"]

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from aiortc import rtcrtpsender

    original: Any = getattr(rtcrtpsender, "random32")  # noqa: B009
    if "timestamp_origin = random32()" not in inspect.getsource(rtcrtpsender.RTCRtpSender._run_rtp):
        raise RuntimeError("aiortc's RTCRtpSender no longer draws its timestamp origin as expected")

    def random32() -> int:
        caller = inspect.currentframe()
        if caller is not None and caller.f_back is not None:
            if caller.f_back.f_code.co_name == "_run_rtp":
                return 0
        value: int = original()
        return value

    setattr(rtcrtpsender, "random32", random32)  # noqa: B010

    # FFmpeg rebases frames to microseconds and aiortc truncates back to 90 kHz (3000 -> 2999):
    # round instead, which is exact.
    from aiortc.codecs import h264, vpx

    def convert_timebase(pts: int, from_base: Any, to_base: Any) -> int:
        if from_base == to_base:
            return pts
        return round(
            pts
            * Fraction(from_base.numerator, from_base.denominator)
            / Fraction(to_base.numerator, to_base.denominator)
        )

    for codec in (vpx, h264):
        setattr(codec, "convert_timebase", convert_timebase)  # noqa: B010
    _installed = True


def pin_host_addresses(addresses: list[str]) -> None:
    """Offer only these addresses as ICE host candidates (aioice leaves out loopback otherwise)."""
    import aioice.ice

    pinned = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    setattr(aioice.ice, "get_host_addresses", get_host_addresses)  # noqa: B010
