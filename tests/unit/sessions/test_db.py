"""Database: URLs, SQLite durability settings, tz-aware datetimes on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from sessions import Database, Event, Session, sqlite_url


def test_sqlite_url_is_absolute_and_async(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "x.db")
    assert url == f"sqlite+aiosqlite:///{tmp_path}/x.db"
    assert url.startswith("sqlite+aiosqlite:////")


async def test_sqlite_creates_parent_directory_and_sets_durable_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "fieldsight.db"
    async with Database(sqlite_url(path)) as db:
        await db.migrate()
        async with db.session() as session:
            journal = await session.scalar(text("PRAGMA journal_mode"))
            synchronous = await session.scalar(text("PRAGMA synchronous"))
            foreign_keys = await session.scalar(text("PRAGMA foreign_keys"))
    assert path.is_file()
    assert journal == "wal"
    assert synchronous == 2  # FULL
    assert foreign_keys == 1


async def test_foreign_keys_are_enforced(database: Database) -> None:
    event = Event(
        session_id="0" * 32,
        seq=1,
        wall_time=datetime.now(UTC),
        type="note",
        payload={},
    )
    with pytest.raises(IntegrityError):
        async with database.session() as session, session.begin():
            session.add(event)


async def test_datetimes_come_back_utc_aware_and_equal_to_what_was_stored(
    database: Database,
) -> None:
    plus_two = timezone(timedelta(hours=2))
    started = datetime(2025, 3, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    async with database.session() as session, session.begin():
        session.add(Session(id="f" * 32, room="bay-3", started_at=started))

    async with database.session() as session:
        row = (await session.scalars(select(Session))).one()

    assert row.started_at == started
    assert row.started_at.tzinfo == UTC
    assert row.started_at.hour == 12
    assert row.ended_at is None


async def test_naive_datetime_is_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with database.session() as session, session.begin():
            session.add(Session(id="e" * 32, room="r", started_at=datetime(2025, 1, 1)))


async def test_aclose_is_idempotent(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "x.db"))
    await db.migrate()
    await db.aclose()
    await db.aclose()
