"""Declarative models: users, live sessions of a room, the append-only event log, recordings.

Every change to a table here needs a migration revision in ``sessions/migrations/versions``; a test
compares a migrated database with these models.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Event",
    "OrganisationSettings",
    "Recording",
    "RecordingKind",
    "RecordingStatus",
    "Role",
    "Session",
    "User",
    "UTCDateTime",
    "utcnow",
]

USERNAME_MAX = 64
DISPLAY_NAME_MAX = 128
ROOM_MAX = 64
EVENT_TYPE_MAX = 32
END_REASON_MAX = 32
TRACK_MAX = 128
CODEC_MAX = 32
CONTAINER_MAX = 16
PATH_MAX = 1024
ORGANISATION_MAX = 64
DEFAULT_ORGANISATION = "default"


def utcnow() -> datetime:
    """The current time as a tz-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that refuses naive values and always returns tz-aware UTC.

    SQLite has no time zone type: values are stored there as UTC wall time and get ``UTC`` attached
    again when read, so both backends hand back the same aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; pass a tz-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Metadata of every table of the package."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Role(enum.StrEnum):
    """What a user may do; stored as its lowercase string value."""

    WORKER = "worker"
    MENTOR = "mentor"
    TRAINER = "trainer"
    ADMIN = "admin"


class User(Base):
    """An account. The password hash is produced and checked by the server, never here."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            native_enum=False,
            length=16,
            values_callable=lambda roles: [role.value for role in roles],
            validate_strings=True,
        )
    )
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(default=False)

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, username={self.username!r}, role={self.role.value!r})"


def _new_session_id() -> str:
    return uuid.uuid4().hex


class Session(Base):
    """One live session of a room, from the first participant joining to the room closing."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_session_id)
    room: Mapped[str] = mapped_column(String(ROOM_MAX), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[str | None] = mapped_column(String(END_REASON_MAX), default=None)
    """Why it ended: ``"closed"``, ``"server_restart"`` …; ``None`` while it runs."""
    ended_abnormally: Mapped[bool] = mapped_column(default=False, server_default=false())
    previous_session_id: Mapped[str | None] = mapped_column(
        ForeignKey("sessions.id", name="fk_sessions_previous_session_id"), default=None
    )
    """The session this one continues (after a crash ended that one abnormally)."""
    recording_consent: Mapped[bool | None] = mapped_column(default=None)
    """The worker's current consent to recording; ``None`` until asked."""


class Event(Base):
    """One entry of a session's append-only log; ``seq`` runs 1, 2, 3 … per session."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("session_id", "seq", name="uq_events_session_seq"),)

    # BIGINT on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"))
    seq: Mapped[int]
    wall_time: Mapped[datetime]
    media_pts: Mapped[int | None] = mapped_column(BigInteger)
    """Presentation timestamp (90 kHz clock) of the video frame the event refers to, if any."""
    actor: Mapped[str | None] = mapped_column(String(USERNAME_MAX))
    """Username of whoever caused the event; ``None`` for the system."""
    type: Mapped[str] = mapped_column(String(EVENT_TYPE_MAX))
    payload: Mapped[dict[str, Any]]


class RecordingKind(enum.StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


class RecordingStatus(enum.StrEnum):
    """``recording`` while written; then ``complete``, ``interrupted`` (cut short) or ``failed``."""

    RECORDING = "recording"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


def _string_enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Recording(Base):
    """One recorded track of a session: a media file under the data dir, and what is known of it."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_session_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    track: Mapped[str] = mapped_column(String(TRACK_MAX))
    """``"worker-video"``, ``"worker-audio"``, ``"mentor-audio:<username>"`` …"""
    kind: Mapped[RecordingKind] = mapped_column(_string_enum(RecordingKind, "recording_kind"))
    participant: Mapped[str] = mapped_column(String(USERNAME_MAX))
    codec: Mapped[str] = mapped_column(String(CODEC_MAX))
    container: Mapped[str] = mapped_column(String(CONTAINER_MAX))
    path: Mapped[str] = mapped_column(String(PATH_MAX))
    """Where the file is, relative to the data dir."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[RecordingStatus] = mapped_column(
        _string_enum(RecordingStatus, "recording_status"), default=RecordingStatus.RECORDING
    )
    error: Mapped[str | None] = mapped_column(Text, default=None)


class OrganisationSettings(Base):
    """Settings of one organisation; a deployment has one, named :data:`DEFAULT_ORGANISATION`."""

    __tablename__ = "organisation_settings"

    organisation: Mapped[str] = mapped_column(String(ORGANISATION_MAX), primary_key=True)
    retention_days: Mapped[int | None] = mapped_column(Integer, default=None)
    """Days recordings are kept after their session; ``None``: kept until deleted by hand."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(USERNAME_MAX), default=None)
