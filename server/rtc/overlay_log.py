"""Every overlay of a session, kept beside its recording for the review page.

The review page draws skeletons, markers and ink over the recorded video in sync with playback,
so it needs the vision result of every analysed frame, not the reduced-rate summaries of the
event log. :class:`OverlayLog` appends each overlay (one JSON object a line, with its 90 kHz
``pts``) to ``overlays.jsonl`` in the session's folder, from a thread of its own behind a bounded
queue: the event loop only enqueues a string; when the disk falls behind, the oldest waiting
lines are dropped and counted (an overlay is a convenience, not a record: acknowledged events
live in the database). The file is flushed about once a second, so a crash loses at most that.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

__all__ = ["OverlayLog"]

logger = logging.getLogger(__name__)

_FLUSH_S = 1.0


class OverlayLog:
    def __init__(self, path: Path, *, max_pending: int = 256) -> None:
        self.path = path
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self._queue: queue.Queue[str | None] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="overlay-log", daemon=True)
        self._closed = False
        self._thread.start()

    def write(self, line: str) -> None:
        """Queue one overlay (a JSON object without newlines). Never blocks."""
        if self._closed or self.error is not None:
            return
        while True:
            try:
                self._queue.put_nowait(line)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, close the file (blocks up to ``timeout``: call it off the loop)."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                last_flush = time.monotonic()
                while True:
                    try:
                        line = self._queue.get(timeout=_FLUSH_S)
                    except queue.Empty:
                        line = ""
                    if line is None:
                        break
                    if line:
                        out.write(line + "\n")
                        self.written += 1
                    if time.monotonic() - last_flush >= _FLUSH_S:
                        out.flush()
                        last_flush = time.monotonic()
        except OSError as exc:  # a full disk, say: overlays stop, the session goes on
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("overlay log %s stopped: %s", self.path, self.error)
