"""Send RTP timestamps equal to frame pts (no random origin), so the server can name frames.

The server tags overlays with the RTP timestamp it receives. aiortc's sender adds a random origin
to every stream; with origin 0 a frame's RTP timestamp is its own pts, and the headset can match
overlays to the frames it sent without any other bookkeeping.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["install"]

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
    _installed = True
