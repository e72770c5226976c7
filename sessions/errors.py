"""Domain errors of the storage package.

The server turns these into HTTP status codes or WebSocket close codes at its edge; the messages are
written for the person who has to act on them.
"""

from __future__ import annotations

__all__ = [
    "NotFoundError",
    "SchemaError",
    "SessionEndedError",
    "SessionLiveError",
    "SessionsError",
    "StorageError",
    "UserExistsError",
]


class SessionsError(Exception):
    """Base class of every error raised on purpose by :mod:`sessions`."""


class UserExistsError(SessionsError):
    """A user with this username already exists."""

    def __init__(self, username: str) -> None:
        super().__init__(
            f"a user named {username!r} already exists; choose another username "
            "or update the existing account"
        )
        self.username = username


class NotFoundError(SessionsError):
    """The user, session or other record asked for does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key!r} exists; check the {kind} id or name")
        self.kind = kind
        self.key = key


class StorageError(SessionsError):
    """The database could not complete an operation that should have succeeded."""


class SchemaError(StorageError):
    """The database's tables match no known schema revision, so it cannot be migrated safely."""


class SessionLiveError(SessionsError):
    """The session is still running, so its records cannot be removed yet."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} is still live: wait until everyone has left its room "
            "(the session ends then), and try again"
        )
        self.session_id = session_id


class SessionEndedError(SessionsError):
    """An event was added to a session that has ended: its record is closed."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} has ended; its record is closed and takes no more events "
            "(a client that comes back starts a new session)"
        )
        self.session_id = session_id
