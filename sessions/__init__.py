"""Domain models and storage: users, live sessions and their append-only event log, recordings.

SQLAlchemy 2 async on SQLite (embedded, WAL) or PostgreSQL (asyncpg), schema migrated by Alembic
(:mod:`sessions.migrate`). Imports nothing internal.
"""

from sessions.db import Database, sqlite_url
from sessions.equipment import EquipmentRecord, EquipmentStore
from sessions.errors import (
    NotFoundError,
    SchemaError,
    SessionEndedError,
    SessionLiveError,
    SessionsError,
    StorageError,
    UserExistsError,
)
from sessions.events import MAX_PAYLOAD_BYTES, EventLog, EventRecord, PurgeResult, SessionRecord
from sessions.markers import MarkerEntry, MarkerRecord, MarkerRegistry
from sessions.migrate import MigrationResult
from sessions.models import (
    Base,
    Event,
    OrganisationSettings,
    Recording,
    RecordingKind,
    RecordingStatus,
    Role,
    Session,
    User,
)
from sessions.recordings import RecordingRecord, RecordingStore
from sessions.retention import RetentionStore
from sessions.rooms import RoomSettingsRecord, RoomSettingsStore
from sessions.users import UserStore

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "EquipmentRecord",
    "EquipmentStore",
    "MarkerEntry",
    "MarkerRecord",
    "MarkerRegistry",
    "Base",
    "Database",
    "Event",
    "EventLog",
    "MigrationResult",
    "OrganisationSettings",
    "Recording",
    "RecordingKind",
    "RecordingRecord",
    "RecordingStatus",
    "RecordingStore",
    "RetentionStore",
    "SchemaError",
    "EventRecord",
    "NotFoundError",
    "Role",
    "RoomSettingsRecord",
    "RoomSettingsStore",
    "Session",
    "PurgeResult",
    "SessionEndedError",
    "SessionLiveError",
    "SessionRecord",
    "SessionsError",
    "StorageError",
    "User",
    "UserExistsError",
    "UserStore",
    "sqlite_url",
]
