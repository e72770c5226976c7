"""The database handle: one async engine and a session factory per process.

SQLite (the embedded default) is opened in WAL mode with ``synchronous=FULL`` so that a commit is on
disk when it returns (the event log acknowledges an event only after that), and with foreign keys
enforced. PostgreSQL (``postgresql+asyncpg://``) needs no such setup.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from sessions.models import Base

if TYPE_CHECKING:
    from sessions.migrate import MigrationResult

__all__ = ["Database", "sqlite_url"]

logger = logging.getLogger(__name__)

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """Return the async SQLAlchemy URL of the SQLite file at ``path`` (made absolute)."""
    absolute = Path(path).expanduser().absolute()
    return URL.create("sqlite+aiosqlite", database=str(absolute)).render_as_string()


def _sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for an in-memory or URI-style database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


class Database:
    """An async engine plus a session factory (``expire_on_commit=False``).

    ``url`` is an async SQLAlchemy URL, e.g. ``sqlite+aiosqlite:///data/fieldsight.db`` (see
    :func:`sqlite_url`) or ``postgresql+asyncpg://user:password@host/dbname``. Call :meth:`aclose`
    (or use ``async with``) when done.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = _sqlite_file(self.url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(self.url)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _set_sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        logger.debug("database opened: %s", self.url.render_as_string(hide_password=True))

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    async def migrate(self, revision: str = "head") -> MigrationResult:
        """Bring the schema to ``revision`` with the package's Alembic migrations (a no-op when it
        is there); adopts a database made by :meth:`create_all`. See :mod:`sessions.migrate`."""
        from sessions.migrate import upgrade

        return await upgrade(self, revision)

    async def create_all(self) -> None:
        """Create every missing table straight from the models, without migration history.

        For throwaway databases only (and to reproduce databases made before migrations existed);
        the server uses :meth:`migrate`, which also adopts what this made.
        """
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    def session(self) -> AsyncSession:
        """A new :class:`AsyncSession`; use it as ``async with db.session() as s:``."""
        return self._sessions()

    async def aclose(self) -> None:
        """Close every pooled connection. Safe to call more than once."""
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
