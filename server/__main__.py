"""``python -m server``: run the server, or administer it.

python -m server                       # serve (same as `python -m server serve`)
python -m server admin create-user NAME --role mentor [--password-stdin]
python -m server admin migrate         # bring the database schema to the newest revision
python -m server admin retention [--days N | --forever] [--dry-run]
                                       # set/show how long recordings are kept; delete older ones
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys

import uvicorn

from server.app import create_app
from server.settings import Settings

__all__ = ["main"]


def _serve(settings: Settings) -> int:
    app = create_app(settings)
    base = f"http://{settings.host}:{settings.port}"
    print(f"Fieldsight {settings.mode} server on {base}")
    print(f"  mentor page:  {base}/mentor/")
    print(f"  API docs:     {base}/docs")
    print(
        f"  data:         {settings.data_dir.resolve()} "
        f"({settings.resolved_database_url.split(':')[0]})"
    )
    if settings.mode == "dev":
        print(
            "  demo accounts (dev mode): worker, mentor, trainer — password from "
            "FIELDSIGHT_DEMO_PASSWORD"
            + ("" if settings.demo_password != "fieldsight" else " (unset: 'fieldsight')")
        )
    sys.stdout.flush()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_message_bytes * 2,
        log_level="info",
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0


async def _create_user(settings: Settings, username: str, role: str, password: str) -> None:
    from server.auth import PasswordHasher
    from sessions import Database, Role, UserStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        password_hash = await PasswordHasher().hash_async(password)
        await UserStore(db).create(username, password_hash, Role(role))
    finally:
        await db.aclose()


async def _migrate(settings: Settings) -> tuple[str | None, str | None]:
    from sessions import Database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        result = await db.migrate()
    finally:
        await db.aclose()
    return result.before, result.after


async def _retention(settings: Settings, change: bool, days: int | None, dry_run: bool) -> int:
    """With ``change``, set the period to ``days`` (``None``: forever; only for this run with
    ``dry_run``); then delete (or list) the recordings older than the period."""
    from server.retention import STORED, apply_retention, describe
    from sessions import Database, EventLog, RecordingStore, RetentionStore
    from sessions.retention import MAX_RETENTION_DAYS

    if change and days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(f"--days must be from 1 to {MAX_RETENTION_DAYS}, got {days}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        store = RetentionStore(db)
        stored = await store.get()
        period = days if change else stored
        if change and not dry_run:
            await store.set(period, actor="cli")
        shown = "forever" if period is None else f"{period} days"
        was = "" if period == stored else f" (was {'forever' if stored is None else stored})"
        note = " [dry run: not stored]" if change and dry_run and period != stored else ""
        print(f"retention: recordings are kept {shown}{was}{note}")
        report = await apply_retention(
            events=EventLog(db),
            recordings=RecordingStore(db),
            retention=store,
            data_dir=settings.data_dir,
            days=period if change else STORED,
            dry_run=dry_run,
        )
    finally:
        await db.aclose()
    verb = "would delete" if dry_run else "deleted"
    for item in report.expired:
        print(f"  {verb}: {describe(item)}")
    print(f"{verb} {len(report.expired)} recording(s), {report.bytes} bytes")
    for name in report.failed_files:
        print(f"error: could not delete {name} (see the log)", file=sys.stderr)
    return 1 if report.failed_files else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="Fieldsight server")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP/WebSocket server (default)")
    admin = sub.add_parser("admin", help="administration")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create-user", help="create a user account")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=["worker", "mentor", "trainer", "admin"])
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    admin_sub.add_parser(
        "migrate", help="migrate the database schema to the newest revision (the server also does)"
    )
    retention = admin_sub.add_parser(
        "retention",
        help="set or show how long recordings are kept, and delete the older ones",
        description="Without --days/--forever the stored period is kept. Expired recordings "
        "(files and index rows) are deleted and each is printed: session, track, size, age; "
        "their sessions' logs get a `retention` event.",
    )
    period = retention.add_mutually_exclusive_group()
    period.add_argument("--days", type=int, help="keep recordings N days after they end")
    period.add_argument("--forever", action="store_true", help="keep recordings forever")
    retention.add_argument(
        "--dry-run", action="store_true", help="only print what would be deleted; change nothing"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2

    if args.command in (None, "serve"):
        return _serve(settings)
    if args.admin_command == "migrate":
        try:
            before, after = asyncio.run(_migrate(settings))
        except Exception as exc:
            print(f"error: migration failed: {exc}", file=sys.stderr)
            return 1
        state = "already at the newest revision" if before == after else "migrated"
        print(f"database revision: {before or '(none)'} -> {after or '(none)'} ({state})")
        return 0
    if args.admin_command == "retention":
        change = args.forever or args.days is not None
        try:
            return asyncio.run(_retention(settings, change, args.days, args.dry_run))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:
            print(f"error: retention failed: {exc}", file=sys.stderr)
            return 1
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
    try:
        asyncio.run(_create_user(settings, args.username, args.role, password))
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created {args.role} {args.username}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
