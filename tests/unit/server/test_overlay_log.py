"""The overlay sidecar: lines in order, nothing blocks, a failing disk stops it quietly."""

from __future__ import annotations

import json
from pathlib import Path

from server.rtc.overlay_log import OverlayLog


def test_overlays_are_written_in_order(tmp_path: Path) -> None:
    log = OverlayLog(tmp_path / "s" / "overlays.jsonl", max_pending=4)
    for i in range(1000):
        log.write(json.dumps({"pts": i * 3000}))
    log.close()
    log.close()  # twice is fine
    lines = (tmp_path / "s" / "overlays.jsonl").read_text().splitlines()
    pts = [json.loads(line)["pts"] for line in lines]
    assert len(pts) == log.written and log.written + log.dropped == 1000
    assert pts == sorted(pts) and pts[-1] == 999 * 3000  # the newest is never the one dropped
    log.write("{}")  # after close: ignored
    assert len((tmp_path / "s" / "overlays.jsonl").read_text().splitlines()) == len(pts)


def test_a_disk_error_stops_the_log_not_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    log = OverlayLog(blocker / "overlays.jsonl")
    log.write("{}")
    log.close()
    assert log.error is not None and log.written == 0
    log.write("{}")  # still fine to call
