"""Database fixtures, as a pytest plugin (registered from ``tests/conftest.py``).

``database_url`` runs a test twice: on a SQLite file under ``tmp_path`` and on a fresh database of a
real PostgreSQL server (``FIELDSIGHT_TEST_POSTGRES_URL``, default
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``; the user must be allowed to CREATE
DATABASE). An unreachable server skips the PostgreSQL half loudly, or fails it when
``FIELDSIGHT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from sessions import Database, sqlite_url

POSTGRES_URL_ENV = "FIELDSIGHT_TEST_POSTGRES_URL"
REQUIRE_SERVICES_ENV = "FIELDSIGHT_REQUIRE_SERVICES"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 5.0


def _server_url() -> URL:
    return make_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)


def _asyncpg_dsn(url: URL) -> str:
    """The plain ``postgresql://`` DSN asyncpg understands (no ``+asyncpg`` driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


#: Why a server (by URL) was unreachable: a dead server costs one timeout, not one per test.
_unreachable: dict[str, str] = {}


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(reason)
    pytest.skip(reason)


async def _admin_connect(url: URL) -> asyncpg.Connection:
    key = url.render_as_string(hide_password=False)
    if key in _unreachable:
        _skip_or_fail(_unreachable[key])
    try:
        return await asyncpg.connect(_asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = _unreachable[key] = (
            f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)} "
            f"({type(exc).__name__}: {exc}); start it, or set {POSTGRES_URL_ENV} to a server "
            f"whose user may CREATE DATABASE. Set {REQUIRE_SERVICES_ENV}=1 to make this a failure."
        )
        _skip_or_fail(reason)


@asynccontextmanager
async def _postgres_database(server: URL) -> AsyncIterator[str]:
    name = f"fieldsight_test_{uuid.uuid4().hex}"
    admin = await _admin_connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await _admin_connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """URL of an empty database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "db" / "fieldsight.db")
        return
    async with _postgres_database(_server_url()) as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on ``database_url``, migrated to the head revision; closed afterwards."""
    db = Database(database_url)
    try:
        await db.migrate()
        yield db
    finally:
        await db.aclose()
