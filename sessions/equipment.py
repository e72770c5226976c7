"""Registered equipment: reference images (stored as files by the server) and their sizes."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from sessions.db import Database
from sessions.errors import NotFoundError
from sessions.models import Base, utcnow

__all__ = ["EquipmentRecord", "EquipmentStore"]


class EquipmentRow(Base):
    __tablename__ = "equipment"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    width_m: Mapped[float] = mapped_column(Float)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), default=None)


@dataclass(frozen=True)
class EquipmentRecord:
    name: str
    width_m: float
    filename: str
    sha256: str
    created_by: str | None


def _record(row: EquipmentRow) -> EquipmentRecord:
    return EquipmentRecord(row.name, row.width_m, row.filename, row.sha256, row.created_by)


class EquipmentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self, name: str, width_m: float, filename: str, sha256: str, actor: str | None
    ) -> tuple[EquipmentRecord, str | None]:
        """Store (or replace) ``name``; returns the record and the file it replaced, if any."""
        async with self._db.session() as session, session.begin():
            row = await session.get(EquipmentRow, name)
            replaced = None
            if row is None:
                row = EquipmentRow(
                    name=name, width_m=width_m, filename=filename, sha256=sha256, created_by=actor
                )
                session.add(row)
            else:
                replaced = row.filename if row.filename != filename else None
                row.width_m, row.filename, row.sha256 = width_m, filename, sha256
                row.created_by, row.created_at = actor, utcnow()
        return _record(row), replaced

    async def list(self) -> builtins.list[EquipmentRecord]:
        async with self._db.session() as session:
            rows = await session.scalars(select(EquipmentRow).order_by(EquipmentRow.name))
            return [_record(row) for row in rows]

    async def remove(self, name: str) -> EquipmentRecord:
        async with self._db.session() as session, session.begin():
            row = await session.get(EquipmentRow, name)
            if row is None:
                raise NotFoundError("equipment", name)
            record = _record(row)
            await session.execute(delete(EquipmentRow).where(EquipmentRow.name == name))
        return record
