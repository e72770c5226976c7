"""``python -m tests.bench.event_log``: event-log appends on SQLite and PostgreSQL.

Each append is a committed transaction (the server acknowledges an event only after it), so
the figures are commit latency and committed events a second: one writer on one session (a
mentor drawing), 8 writers on one session (a busy room: appends to one session serialize), and
8 writers on 8 sessions (a busy node). SQLite is a WAL file with ``synchronous=FULL`` under a
temporary folder on this disk; PostgreSQL is the local server (``FIELDSIGHT_TEST_POSTGRES_URL``,
default ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``; a fresh database, dropped
after). Prints a table; writes ``bench-results/event-log-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from sessions import Database, EventLog, sqlite_url
from tests.bench.report import machine_facts
from tests.bench.stats import percentile

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = {"tool": "pen", "points": [[0.1 * i, 0.2] for i in range(20)], "color": "#ff3b30"}


def _log(message: str) -> None:
    print(f"[bench-events {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _scenario(db: Database, writers: int, sessions: int, per_writer: int) -> dict[str, Any]:
    log = EventLog(db)
    ids = [(await log.open_session(f"bench-{i}")).id for i in range(sessions)]
    latencies: list[float] = []

    async def writer(index: int) -> None:
        session_id = ids[index % sessions]
        for _ in range(per_writer):
            started = time.perf_counter()
            await log.append(session_id, "ink", PAYLOAD, actor="mentor", media_pts=index)
            latencies.append((time.perf_counter() - started) * 1000.0)

    wall0 = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    wall = time.perf_counter() - wall0
    for session_id in ids:  # nothing lost, no gap
        events = await log.events(session_id, limit=1000)
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1))
    return {
        "writers": writers,
        "sessions": sessions,
        "events": len(latencies),
        "events_per_s": round(len(latencies) / wall, 1),
        "commit_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": round(max(latencies), 2),
        },
    }


async def _run_backend(url: str, quick: bool) -> dict[str, Any]:
    n = 50 if quick else 300
    db = Database(url)
    try:
        await db.migrate()
        return {
            "1 writer, 1 session": await _scenario(db, 1, 1, n),
            "8 writers, 1 session": await _scenario(db, 8, 1, n // 4),
            "8 writers, 8 sessions": await _scenario(db, 8, 8, n // 4),
        }
    finally:
        await db.aclose()


async def _postgres(quick: bool) -> dict[str, Any]:
    server = make_url(
        os.environ.get("FIELDSIGHT_TEST_POSTGRES_URL")
        or "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"bench_{uuid.uuid4().hex[:8]}"
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = server.set(database=name).render_as_string(hide_password=False)
            return await _run_backend(url, quick)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def run(quick: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine_facts(), "backends": {}}
    with tempfile.TemporaryDirectory(dir=REPO) as folder:
        _log("sqlite")
        result["backends"]["sqlite"] = await _run_backend(
            sqlite_url(Path(folder) / "bench.db"), quick
        )
    _log("postgresql")
    try:
        result["backends"]["postgresql"] = await _postgres(quick)
    except (OSError, asyncpg.PostgresError) as exc:
        result["backends"]["postgresql"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


def render(result: dict[str, Any]) -> str:
    lines = [
        "Event log appends (each one committed before it returns)",
        f"{'backend':<11} {'scenario':<22} {'events/s':>9} {'commit ms p50':>14} {'p99':>8} "
        f"{'max':>8}",
    ]
    for backend, scenarios in result["backends"].items():
        if "error" in scenarios:
            lines.append(f"{backend:<11} error: {scenarios['error']}")
            continue
        for name, r in scenarios.items():
            c = r["commit_ms"]
            lines.append(
                f"{backend:<11} {name:<22} {r['events_per_s']:>9} {c['p50']:>14} {c['p99']:>8} "
                f"{c['max']:>8}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.event_log", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench-results")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.quick))
    print(render(result))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "event-log-latest.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
