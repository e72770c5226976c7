"""Domain errors of the vision package.

The server turns these into log lines or error replies at its edge; the messages are written for
the person who has to fix the input (a headset developer, an operator editing settings).
"""

from __future__ import annotations

__all__ = [
    "DepthError",
    "InvalidFrameError",
    "InvalidIntrinsicsError",
    "Open3DUnavailableError",
    "VisionError",
]


class VisionError(Exception):
    """Base class of every error the vision package raises on purpose."""


class InvalidFrameError(VisionError):
    """The image handed to the pipeline is not a frame it can analyse (type, dtype, shape)."""


class InvalidIntrinsicsError(VisionError):
    """Camera intrinsics are missing fields, not finite, or physically impossible."""


class DepthError(VisionError):
    """A depth frame is not one the pipeline can use (not a 16-bit grayscale PNG, bad size)."""


class Open3DUnavailableError(VisionError):
    """Open3D (RGB-D odometry, the digital twin) cannot be imported; the message says what to
    install."""
