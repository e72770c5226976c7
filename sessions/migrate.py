"""Schema migrations: bring a database to the newest revision with Alembic, from code.

The migration environment ships inside the package (``sessions/migrations``), and the Alembic
:class:`~alembic.config.Config` is built here, so no ``alembic.ini`` is needed at run time. The
server calls :func:`upgrade` (through :meth:`Database.migrate`) when it starts.

Databases made before migrations existed (by ``Base.metadata.create_all``) have tables but no
``alembic_version``. :func:`upgrade` adopts them: one whose tables are exactly today's models is
stamped at the head; one whose tables are those of the baseline revision (possibly only some of
them: tables were added over time) is upgraded from the baseline, which creates only the missing
tables; anything else is refused with :class:`SchemaError` before a single change is made.

Several processes may start at once against one database: the whole upgrade runs in one
transaction that first takes a lock (a transaction-level advisory lock on PostgreSQL, the write lock
with ``BEGIN IMMEDIATE`` on SQLite), so the others wait and then find nothing left to do; a failed
migration is rolled back whole. On SQLite, foreign keys are switched off while batch mode copies
tables, and checked before the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from sessions.errors import SchemaError, StorageError
from sessions.models import Base

if TYPE_CHECKING:
    from sessions.db import Database

__all__ = [
    "BASELINE_REVISION",
    "MIGRATIONS_DIR",
    "MigrationResult",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "upgrade",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script location: ``env.py``, ``script.py.mako`` and ``versions/``."""

BASELINE_REVISION = "0001"
"""The first revision: the schema ``create_all`` made before migrations existed."""

_LOCK_KEY = 0x4653_4D47  # "FSMG": the PostgreSQL advisory lock that serializes migrations

#: Columns of every table of the baseline revision (checked when a database is adopted; a test
#: keeps this equal to what revision 0001 creates).
BASELINE_COLUMNS: dict[str, frozenset[str]] = {
    "users": frozenset(
        {"id", "username", "password_hash", "role", "display_name", "created_at", "disabled"}
    ),
    "sessions": frozenset({"id", "room", "started_at", "ended_at"}),
    "events": frozenset(
        {"id", "session_id", "seq", "wall_time", "media_pts", "actor", "type", "payload"}
    ),
    "markers": frozenset({"id", "family", "marker_id", "name", "size_m", "updated_at"}),
    "room_settings": frozenset({"room", "settings", "updated_at", "updated_by"}),
    "equipment": frozenset({"name", "width_m", "filename", "sha256", "created_at", "created_by"}),
}


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """The revision before and after a migration (``None``: no schema at all)."""

    before: str | None
    after: str | None
    adopted: bool = False
    """The database predates migrations (no ``alembic_version``) and was taken over."""

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the package's migrations; ``url`` only matters for the CLI path."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision the package knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StorageError(f"no migration revisions found under {MIGRATIONS_DIR}")
    return head


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _table_columns(connection: Connection) -> dict[str, frozenset[str]]:
    inspector = inspect(connection)
    return {
        name: frozenset(column["name"] for column in inspector.get_columns(name))
        for name in inspector.get_table_names()
    }


def _adopt(connection: Connection, config: Config) -> bool:
    """Stamp or check a database made by ``create_all``; ``True`` if there was one to adopt."""
    found = _table_columns(connection)
    head = {
        table.name: frozenset(column.name for column in table.columns)
        for table in Base.metadata.sorted_tables
    }
    ours = sorted(name for name in found if name in head or name in BASELINE_COLUMNS)
    if not ours:
        return False  # an empty database (or only other applications' tables): migrate from base
    if all(found.get(name) == columns for name, columns in head.items()):
        logger.warning(
            "database has today's tables but no migration history; stamping it at %s",
            head_revision(),
        )
        command.stamp(config, "head")
        return True
    problems = [
        f"table {name!r} has columns {sorted(found[name])}, the baseline revision "
        f"{BASELINE_REVISION} has {sorted(BASELINE_COLUMNS[name])}"
        if name in BASELINE_COLUMNS
        else f"table {name!r} belongs to a later revision"
        for name in ours
        if BASELINE_COLUMNS.get(name) != found[name]
    ]
    if problems:
        raise SchemaError(
            "the database has no migration history (no alembic_version table) and its tables "
            "match no known revision, so it was left untouched: "
            + "; ".join(problems)
            + ". Restore it from a backup, or migrate it by hand and stamp it with the revision it"
            " matches."
        )
    logger.warning(
        "database predates migrations (baseline tables: %s); upgrading it from revision %s",
        ", ".join(ours),
        BASELINE_REVISION,
    )
    return True


def _upgrade_sync(connection: Connection, config: Config, revision: str) -> MigrationResult:
    before = _revision(connection)
    config.attributes["connection"] = connection
    adopted = before is None and _adopt(connection, config)
    command.upgrade(config, revision)
    return MigrationResult(before, _revision(connection), adopted)


def _downgrade_sync(connection: Connection, config: Config, revision: str) -> MigrationResult:
    before = _revision(connection)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
    return MigrationResult(before, _revision(connection))


async def _locked_transaction(conn: AsyncConnection) -> None:
    """Begin the migration's transaction, waiting for any other process that migrates."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        # Take the write lock now (pysqlite would only begin at the first INSERT), so the whole
        # migration, DDL included, is one transaction and a second process waits for it.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _run(db: Database, job: str, revision: str) -> MigrationResult:
    config = alembic_config(db.url.render_as_string(hide_password=False))
    work = _upgrade_sync if job == "upgrade" else _downgrade_sync
    async with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch mode copies a table, drops it and renames the copy: foreign keys must be off
            # (and this pragma is ignored inside a transaction).
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()
        try:
            await _locked_transaction(conn)
            result = await conn.run_sync(work, config, revision)
            if sqlite:
                broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise StorageError(
                        f"migration to {revision} left {len(broken)} rows with dangling foreign "
                        f"keys (first: {tuple(broken[0])}); the database was not changed further"
                    )
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        finally:
            if sqlite:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()
    logger.log(
        logging.INFO if result.changed else logging.DEBUG,
        "database %s: revision %s -> %s",
        job,
        result.before or "(none)",
        result.after or "(none)",
        extra={"database": repr(db)},
    )
    return result


async def upgrade(db: Database, revision: str = "head") -> MigrationResult:
    """Migrate ``db`` up to ``revision`` (a no-op when it is there already) and say from where.

    Raises :class:`SchemaError` for a database without migration history whose tables match no
    known revision (nothing is changed then).
    """
    return await _run(db, "upgrade", revision)


async def downgrade(db: Database, revision: str) -> MigrationResult:
    """Migrate ``db`` down to ``revision`` (``"base"`` drops every table). Loses the data of
    whatever the undone revisions added."""
    return await _run(db, "downgrade", revision)


async def current_revision(db: Database) -> str | None:
    """The revision ``db`` is at, or ``None`` if it has no migration history."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(_revision)
