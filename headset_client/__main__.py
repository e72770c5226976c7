"""``python -m headset_client``: the reference headset on the command line.

    python -m headset_client --server http://127.0.0.1:8000 --user worker --password … \
        --room pump-7 --source synthetic --duration 30 --report out.json
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from headset_client.client import HeadsetClient, HeadsetOptions, JoinRefused
from headset_client.sources import open_source


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m headset_client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--server", default="http://127.0.0.1:8000", help="server base URL")
    p.add_argument("--user", default="worker")
    p.add_argument(
        "--password",
        default=os.environ.get("FIELDSIGHT_PASSWORD", ""),
        help="password (or set FIELDSIGHT_PASSWORD)",
    )
    p.add_argument("--room", default="pump-7")
    p.add_argument(
        "--source",
        default="synthetic",
        help="synthetic | file:PATH | rgbd:FOLDER (TUM RGB-D layout) | webcam:N",
    )
    p.add_argument(
        "--depth-fps", type=float, default=5.0, help="depth images a second (rgbd sources)"
    )
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    p.add_argument("--report", type=Path, default=None, help="write measurements as JSON here")
    p.add_argument("--hfov", type=float, default=60.0, help="camera horizontal field of view, deg")
    p.add_argument(
        "--ice-host",
        action="append",
        default=None,
        help="address to offer as ICE host candidate (repeatable; default: loopback when the "
        "server is on this machine, else all interfaces)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


async def _run(args: argparse.Namespace) -> int:
    try:
        source = open_source(args.source)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    client = HeadsetClient(
        HeadsetOptions(
            server=args.server,
            username=args.user,
            password=args.password,
            room=args.room,
            hfov_deg=args.hfov,
            host_addresses=args.ice_host,
            depth_fps=args.depth_fps,
        ),
        source,
    )
    try:
        await client.start()
        print(f"streaming {source.description} into room {args.room!r}; Ctrl-C stops", flush=True)
        await client.run_for(args.duration if args.duration is not None else 10**9)
    except JoinRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
        if args.report is not None:
            client.report.write(args.report, source=source.description, room=args.room)
    summary = client.report.to_dict()
    print(
        f"sent {summary['frames_sent']} frames, {summary['overlays_received']} overlays, "
        f"{summary['annotations_received']} strokes; "
        f"overlay latency {summary['overlay_latency_ms']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
