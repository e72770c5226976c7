"""Alembic environment: runs on the connection :mod:`sessions.migrate` hands over.

:func:`sessions.migrate.upgrade` opens the connection (async engine, ``run_sync``), takes the
migration lock and passes the sync connection in ``config.attributes["connection"]``. Run from the
``alembic`` command line instead (developers generating a revision, with ``-x url=...`` or
``sqlalchemy.url`` set), this module opens its own async engine. SQLite gets ``render_as_batch``:
it cannot alter most things in place, so Alembic copies the table.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import sessions  # noqa: F401  (imports every module that defines a table)
from sessions.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=sqlite+aiosqlite:///path/to/db")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    shared = config.attributes.get("connection")
    if isinstance(shared, Connection):
        _run(shared)
    else:
        asyncio.run(_run_with_own_engine(_url()))
