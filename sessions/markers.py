"""The marker registry: which fiducial is glued to which piece of equipment, and how big it is."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from sessions.db import Database
from sessions.errors import NotFoundError
from sessions.models import Base, utcnow

__all__ = ["MarkerEntry", "MarkerRecord", "MarkerRegistry"]


class MarkerEntry(Base):
    __tablename__ = "markers"
    __table_args__ = (UniqueConstraint("family", "marker_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family: Mapped[str] = mapped_column(String(32))
    marker_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    size_m: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class MarkerRecord:
    family: str
    marker_id: int
    name: str
    size_m: float


def _record(row: MarkerEntry) -> MarkerRecord:
    return MarkerRecord(row.family, row.marker_id, row.name, row.size_m)


class MarkerRegistry:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, family: str, marker_id: int, name: str, size_m: float) -> MarkerRecord:
        """Register (or update) marker ``marker_id`` of ``family``."""
        if not 0 < size_m <= 10:
            raise ValueError(f"size_m must be in (0, 10] metres, not {size_m}")
        if marker_id < 0:
            raise ValueError("marker ids are 0 or more")
        if not name.strip() or len(name) > 128:
            raise ValueError("name must be 1-128 characters")
        async with self._db.session() as session, session.begin():
            row = await session.scalar(
                select(MarkerEntry).where(
                    MarkerEntry.family == family, MarkerEntry.marker_id == marker_id
                )
            )
            if row is None:
                row = MarkerEntry(family=family, marker_id=marker_id, name=name, size_m=size_m)
                session.add(row)
            else:
                row.name, row.size_m, row.updated_at = name, size_m, utcnow()
        return _record(row)

    async def list(self, family: str | None = None) -> builtins.list[MarkerRecord]:
        query = select(MarkerEntry).order_by(MarkerEntry.family, MarkerEntry.marker_id)
        if family is not None:
            query = query.where(MarkerEntry.family == family)
        async with self._db.session() as session:
            return [_record(row) for row in await session.scalars(query)]

    async def remove(self, family: str, marker_id: int) -> None:
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(MarkerEntry).where(
                    MarkerEntry.family == family, MarkerEntry.marker_id == marker_id
                )
            )
            if not getattr(result, "rowcount", 0):
                raise NotFoundError("marker", f"{family}/{marker_id}")
