"""Server-side domain errors, turned into HTTP statuses or WebSocket close codes at the edge."""

from __future__ import annotations

__all__ = ["AuthError", "FieldsightError", "ForbiddenError", "RoomConflictError", "RoomFullError"]


class FieldsightError(Exception):
    """Base class. ``code`` is stable and machine-readable; the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AuthError(FieldsightError):
    """Missing, invalid or expired credentials."""


class ForbiddenError(FieldsightError):
    """Valid credentials, but the role does not allow this."""


class RoomConflictError(FieldsightError):
    """The room cannot take this participant (e.g. it already has a worker)."""


class RoomFullError(FieldsightError):
    """The room has reached its participant limit."""
