"""Schema migrations on SQLite and PostgreSQL: fresh databases, databases made before migrations
existed (by ``create_all``), downgrades, repeated and concurrent upgrades."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    ForeignKeyConstraint,
    MetaData,
    Table,
    UniqueConstraint,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection

from sessions import (
    Base,
    Database,
    Event,
    EventLog,
    Role,
    SchemaError,
    UserStore,
)
from sessions.migrate import (
    BASELINE_COLUMNS,
    BASELINE_REVISION,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)

REPO = Path(__file__).resolve().parents[3]


def _diff(metadata: MetaData) -> Any:
    def run(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return [
            d
            for d in compare_metadata(context, metadata)
            # alembic_version is the migrations' own table, in no model.
            if not (d[0] == "remove_table" and d[1].name == "alembic_version")
        ]

    return run


def _baseline_metadata() -> MetaData:
    """The tables ``create_all`` made before migrations: today's models minus revision 0002."""
    metadata = MetaData()
    for table in Base.metadata.sorted_tables:
        keep = BASELINE_COLUMNS.get(table.name)
        if keep is None:
            continue
        columns: list[Column[Any]] = [c._copy() for c in table.columns if c.name in keep]
        uniques = [
            UniqueConstraint(*(c.name for c in uc.columns), name=uc.name)
            for uc in table.constraints
            if isinstance(uc, UniqueConstraint)
        ]
        foreign_keys = [
            ForeignKeyConstraint(
                [c.name for c in fk.columns],
                [element.target_fullname for element in fk.elements],
                name=fk.name,
            )
            for fk in table.foreign_key_constraints
            if all(c.name in keep for c in fk.columns)
        ]
        Table(table.name, metadata, *columns, *uniques, *foreign_keys)
    return metadata


def _schema(conn: Connection) -> dict[str, Any]:
    """Tables, columns (name, loose type, nullable), indexes, unique constraints and FKs."""
    inspector = inspect(conn)
    schema: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        if name == "alembic_version":
            continue
        schema[name] = {
            "columns": sorted(
                (c["name"], type(c["type"]).__name__, c["nullable"])
                for c in inspector.get_columns(name)
            ),
            "pk": inspector.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)
            ),
            "uniques": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(name)
            ),
        }
    return schema


async def _run(db: Database, fn: Any) -> Any:
    async with db.engine.connect() as conn:
        return await conn.run_sync(fn)


async def _legacy_database(url: str, metadata: MetaData | None = None) -> None:
    """A database as the server made it before migrations, with a user, a session and events."""
    metadata = metadata or _baseline_metadata()
    async with Database(url) as db:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(
                metadata.tables["users"].insert(),
                {
                    "username": "ana",
                    "password_hash": "h",
                    "role": Role.MENTOR,
                    "display_name": "Ana",
                    "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                    "disabled": False,
                },
            )
            await conn.execute(
                metadata.tables["sessions"].insert(),
                [
                    {
                        "id": sid,
                        "room": "bay-3",
                        "started_at": datetime(2026, 1, 2, 3, 5, tzinfo=UTC),
                        "ended_at": ended,
                    }
                    for sid, ended in (
                        ("a" * 32, datetime(2026, 1, 2, 4, 0, tzinfo=UTC)),
                        ("b" * 32, None),
                    )
                ],
            )
        # The old code path wrote the events (JSON, pts, seq).
        log = EventLog(db)
        old = {"allow_ended": True}  # the session ended before: these stand for its old events
        await log.append("a" * 32, "ink", {"uv": [0.5, 0.25]}, actor="ana", media_pts=3000, **old)
        await log.append("a" * 32, "note", {"text": "valve"}, **old)


async def test_fresh_database_migrates_to_exactly_the_models(database_url: str) -> None:
    async with Database(database_url) as db:
        result = await db.migrate()
        assert (result.before, result.after, result.adopted) == (None, head_revision(), False)
        assert await current_revision(db) == head_revision()
        assert await _run(db, _diff(Base.metadata)) == []
        migrated = await _run(db, _schema)

    assert set(migrated) == set(Base.metadata.tables)
    assert ("session_id",) in [i[0] for i in migrated["recordings"]["indexes"]]
    assert (("previous_session_id",), "sessions", ("id",)) in migrated["sessions"]["fks"]


async def test_migrated_schema_equals_create_all_on_the_same_backend(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.create_all()
        created = await _run(db, _schema)
        await _run(db, lambda conn: Base.metadata.drop_all(conn))
        await db.migrate()
        assert await _run(db, _schema) == created


async def test_baseline_revision_is_the_schema_create_all_made_before(database_url: str) -> None:
    async with Database(database_url) as db:
        assert (await upgrade(db, BASELINE_REVISION)).after == BASELINE_REVISION
        assert await _run(db, _diff(_baseline_metadata())) == []
        tables = await _run(
            db,
            lambda conn: {
                name: frozenset(c["name"] for c in inspect(conn).get_columns(name))
                for name in inspect(conn).get_table_names()
                if name != "alembic_version"
            },
        )
    assert tables == BASELINE_COLUMNS


async def test_database_made_by_old_create_all_keeps_its_data_and_reaches_head(
    database_url: str,
) -> None:
    await _legacy_database(database_url)

    async with Database(database_url) as db:
        result = await db.migrate()
        assert (result.before, result.after, result.adopted) == (None, head_revision(), True)
        assert await _run(db, _diff(Base.metadata)) == []

        user = await UserStore(db).get("ana")
        assert user is not None and user.role is Role.MENTOR and user.display_name == "Ana"
        assert user.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        log = EventLog(db)
        events = await log.events("a" * 32)
        assert [(e.seq, e.type, e.payload, e.media_pts) for e in events] == [
            (1, "ink", {"uv": [0.5, 0.25]}, 3000),
            (2, "note", {"text": "valve"}, None),
        ]
        closed, still_open = await log.sessions_for_room("bay-3")
        assert (closed.end_reason, closed.ended_abnormally) == ("closed", False)
        assert (still_open.ended_at, still_open.end_reason) == (None, None)
        assert (still_open.ended_abnormally, still_open.recording_consent) == (False, None)
        # The log keeps working on the migrated tables (the open session takes events; the
        # closed one refuses them).
        before = len(await log.events(still_open.id))
        assert (await log.append(still_open.id, "after", {})).seq == before + 1


async def test_database_made_by_an_older_create_all_gets_its_missing_tables(
    database_url: str,
) -> None:
    early = MetaData()
    for table in _baseline_metadata().sorted_tables:
        if table.name in ("users", "sessions", "events"):  # before markers, rooms, equipment
            table.to_metadata(early)
    await _legacy_database(database_url, early)

    async with Database(database_url) as db:
        result = await db.migrate()
        assert (result.after, result.adopted) == (head_revision(), True)
        assert await _run(db, _diff(Base.metadata)) == []
        assert len(await EventLog(db).events("a" * 32)) == 2


async def test_database_made_by_todays_create_all_is_stamped(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.create_all()
        session = await EventLog(db).open_session("bay-3")
        result = await db.migrate()
        assert (result.before, result.after, result.adopted) == (None, head_revision(), True)
        assert await EventLog(db).get_session(session.id) == session


async def test_unknown_schema_is_refused_and_left_untouched(database_url: str) -> None:
    async with Database(database_url) as db:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, nick TEXT)"))
        with pytest.raises(SchemaError, match=r"table 'users' has columns \['id', 'nick'\]"):
            await db.migrate()
        assert await current_revision(db) is None
        tables = await _run(db, lambda conn: sorted(inspect(conn).get_table_names()))
        assert tables == ["users"]


async def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        log = EventLog(db)
        first = await log.open_session("bay-3")
        await log.append(first.id, "ink", {"n": 1})
        await log.close_session(first.id, reason="server_restart", abnormal=True)
        second = await log.open_session("bay-3", previous_session_id=first.id)

        down = await downgrade(db, BASELINE_REVISION)
        assert (down.before, down.after) == (head_revision(), BASELINE_REVISION)
        assert await _run(db, _diff(_baseline_metadata())) == []
        async with db.session() as s:
            count = await s.scalar(text("SELECT count(*) FROM sessions"))
            assert count == 2  # the session rows survive losing the new columns
            assert await s.scalar(select(func.count()).select_from(Event)) == 1

        assert (await downgrade(db, "base")).after is None
        tables = await _run(db, lambda conn: sorted(inspect(conn).get_table_names()))
        assert tables in ([], ["alembic_version"])

        assert (await db.migrate()).after == head_revision()
        assert await _run(db, _diff(Base.metadata)) == []
        assert await EventLog(db).get_session(second.id) is None


async def test_upgrading_twice_is_a_no_op(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        session = await EventLog(db).open_session("bay-3")
        before = await _run(db, _schema)
        again = await db.migrate()
        assert (again.before, again.after, again.adopted, again.changed) == (
            head_revision(),
            head_revision(),
            False,
            False,
        )
        assert await _run(db, _schema) == before
        assert await EventLog(db).get_session(session.id) == session

    async with Database(database_url) as reopened:  # another process, later
        assert not (await reopened.migrate()).changed


_MIGRATE = """
import asyncio, sys
from sessions import Database

async def main() -> None:
    async with Database(sys.argv[1]) as db:
        result = await db.migrate()
    print(result.before, result.after, flush=True)

asyncio.run(main())
"""


async def test_processes_starting_at_once_all_succeed(database_url: str) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE,
            database_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)

    for proc, (_, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr.decode()
    outcomes = sorted(stdout.decode().split() for stdout, _ in results)
    head = head_revision()
    # Exactly one process did the work; the others waited for it and found nothing to do.
    assert outcomes == [[head, head], [head, head], ["None", head]]
    async with Database(database_url) as db:
        assert await _run(db, _diff(Base.metadata)) == []


async def test_cli_prints_the_revision_before_and_after(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FIELDSIGHT_DATA_DIR": str(tmp_path / "data"),
        "FIELDSIGHT_DATABASE_URL": database_url,
    }

    async def cli() -> tuple[int | None, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "admin",
            "migrate",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await cli()
    assert code == 0, err
    assert f"database revision: (none) -> {head_revision()} (migrated)" in out
    code, out, err = await cli()
    assert code == 0, err
    assert f"{head_revision()} -> {head_revision()} (already at the newest revision)" in out
