"""Per-room settings: which vision stages run on a room's video, and at what rate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.orm import Mapped, mapped_column

from sessions.db import Database
from sessions.models import ROOM_MAX, Base, utcnow

__all__ = ["RoomSettingsRecord", "RoomSettingsStore"]


class RoomSettingsRow(Base):
    __tablename__ = "room_settings"

    room: Mapped[str] = mapped_column(String(ROOM_MAX), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64), default=None)


@dataclass(frozen=True)
class RoomSettingsRecord:
    room: str
    settings: dict[str, Any]
    updated_by: str | None


class RoomSettingsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, room: str) -> RoomSettingsRecord | None:
        async with self._db.session() as session:
            row = await session.get(RoomSettingsRow, room)
            return (
                None if row is None else RoomSettingsRecord(row.room, row.settings, row.updated_by)
            )

    async def put(
        self, room: str, settings: dict[str, Any], actor: str | None
    ) -> RoomSettingsRecord:
        async with self._db.session() as session, session.begin():
            row = await session.get(RoomSettingsRow, room)
            if row is None:
                row = RoomSettingsRow(room=room, settings=settings, updated_by=actor)
                session.add(row)
            else:
                row.settings, row.updated_by, row.updated_at = settings, actor, utcnow()
        return RoomSettingsRecord(room, settings, actor)

    async def all(self) -> list[RoomSettingsRecord]:
        async with self._db.session() as session:
            rows = await session.scalars(select(RoomSettingsRow).order_by(RoomSettingsRow.room))
            return [RoomSettingsRecord(r.room, r.settings, r.updated_by) for r in rows]
