"""EventLog durability and multi-process writers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys

from sessions import Database, EventLog


async def test_committed_event_survives_closing_and_reopening(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        log = EventLog(db)
        s = await log.open_session("bay-3")
        record = await log.append(s.id, "ink", {"uv": [0.1, 0.2]}, actor="ana", media_pts=9000)

    async with Database(database_url) as reopened:
        log = EventLog(reopened)
        assert await log.events(s.id) == [record]
        assert await log.get_session(s.id) == s
        assert (await log.append(s.id, "next", {})).seq == 2


_APPEND_MANY = """
import asyncio, sys
from sessions import Database, EventLog

async def main() -> None:
    async with Database(sys.argv[1]) as db:
        log = EventLog(db)
        sid, tag = sys.argv[2], sys.argv[3]
        await asyncio.gather(*(log.append(sid, "tick", {"w": tag, "n": n}) for n in range(20)))

asyncio.run(main())
"""


async def test_appends_from_several_processes_never_duplicate_seq(database: Database) -> None:
    s = await EventLog(database).open_session("bay-3")
    url = database.url.render_as_string(hide_password=False)

    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _APPEND_MANY, url, s.id, str(w), stderr=asyncio.subprocess.PIPE
        )
        for w in range(3)
    ]
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)

    for proc, (_, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr.decode()
    stored = await EventLog(database).events(s.id)
    assert [e.seq for e in stored] == list(range(1, 61))
    assert sorted((e.payload["w"], e.payload["n"]) for e in stored) == sorted(
        (str(w), n) for w in range(3) for n in range(20)
    )


_APPEND_THEN_DIE = """
import asyncio, os, sys
from sessions import Database, EventLog

async def main() -> None:
    db = Database(sys.argv[1])
    record = await EventLog(db).append(sys.argv[2], "ack", {"acked": True})
    print(record.seq, flush=True)
    os._exit(0)  # no close, no checkpoint: only the commit protects the event

asyncio.run(main())
"""


async def test_acknowledged_event_survives_the_process_dying(database: Database) -> None:
    s = await EventLog(database).open_session("bay-3")
    url = database.url.render_as_string(hide_password=False)

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _APPEND_THEN_DIE,
        url,
        s.id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)

    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().split() == ["1"]
    async with Database(url) as reopened:
        stored = await EventLog(reopened).events(s.id)
    assert [(e.seq, e.type, e.payload) for e in stored] == [(1, "ack", {"acked": True})]
