"""Recording one session: a :class:`TrackRecorder` per published track, plus the overlay log.

Files go to ``<recordings>/<session_id>/``: ``worker-video.mp4``, ``audio-<username>-<n>.mp4``
per voice, and ``overlays.jsonl`` (appended to); a later stretch of the same session (consent
given again) writes ``worker-video-2.mp4`` and so on, never over an earlier file. Every
recorder reads its own one-frame relay subscription and encodes on its own thread (see
:mod:`server.rtc.recorder`); this class only starts and stops them, keeps the recordings index
up to date, and reports the first failure (a full disk, say) once, after which the session goes
on unrecorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from server.rtc.overlay_log import OverlayLog
from server.rtc.recorder import RecordingResult, TrackRecorder

__all__ = ["RecordingIndex", "SessionRecording", "StoreIndex"]

logger = logging.getLogger(__name__)

Kind = Literal["video", "audio"]


class RecordingIndex(Protocol):
    """Where recordings are listed (the database): one row per file."""

    async def started(
        self, session_id: str, track: str, kind: str, participant: str, path: Path
    ) -> str: ...

    async def finished(self, recording_id: str, result: RecordingResult) -> None: ...


@dataclass
class _Running:
    recorder: TrackRecorder
    index_id: str | None
    participant: str
    participant_id: str


class SessionRecording:
    def __init__(
        self,
        session_id: str,
        folder: Path,
        relay: MediaRelay,
        *,
        index: RecordingIndex | None,
        on_error: Callable[[str], None],
        log_event: Callable[[str, dict[str, object]], Awaitable[object]],
    ) -> None:
        self.session_id = session_id
        self.folder = folder
        self._relay = relay
        self._index = index
        self._on_error = on_error
        self._log_event = log_event
        self._running: dict[str, _Running] = {}
        self._overlays: OverlayLog | None = None
        self._names = 0
        self._segment = 0
        """Recording stretches so far: consent withdrawn and given again starts a new one,
        whose files get a suffix (``worker-video-2.mp4``) so no earlier file is overwritten."""
        self.failed: str | None = None
        self.active = False

    async def start(
        self,
        video: MediaStreamTrack | None,
        voices: dict[str, tuple[str, MediaStreamTrack]],
        *,
        transform: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] | None = None,
    ) -> None:
        """Start recording the worker's ``video`` (through ``transform``, e.g. a face blur, on
        the recorder's thread) and every voice (participant id -> (username, audio track))."""
        if self.active:
            return
        self.active = True
        self._segment += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        self._overlays = OverlayLog(self.folder / "overlays.jsonl")
        if video is not None:
            await self._add("worker-video", "video", "worker", video, transform=transform)
        for participant_id, (username, track) in voices.items():
            await self.add_voice(participant_id, username, track)
        await self._log_event("recording_started", {"tracks": sorted(self._running)})

    async def add_voice(self, participant_id: str, username: str, track: MediaStreamTrack) -> None:
        if not self.active:
            return
        self._names += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", username)[:40]
        await self._add(f"audio-{safe}-{self._names}", "audio", username, track, participant_id)

    async def remove_voice(self, participant_id: str) -> None:
        for name, running in list(self._running.items()):
            if name.startswith("audio-") and running.participant_id == participant_id:
                await self._finish(name)

    def write_overlay(self, line: str) -> None:
        if self.active and self._overlays is not None:
            self._overlays.write(line)

    async def stop(self) -> list[RecordingResult]:
        """Finish every file (playable as written so far) and update the index."""
        if not self.active:
            return []
        self.active = False
        results = [r for r in [await self._finish(name) for name in list(self._running)] if r]
        overlays, self._overlays = self._overlays, None
        if overlays is not None:
            await asyncio.get_running_loop().run_in_executor(None, overlays.close)
        await self._log_event(
            "recording_stopped",
            {
                "files": [
                    {
                        "file": r.path.name,
                        "status": r.status,
                        "duration_s": round(r.duration_s, 3),
                        "first_pts": r.first_pts,
                    }
                    for r in results
                ]
            },
        )
        return results

    async def _add(
        self,
        name: str,
        kind: Kind,
        participant: str,
        source: MediaStreamTrack,
        participant_id: str = "worker",
        *,
        transform: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] | None = None,
    ) -> None:
        if self._segment > 1:
            name = f"{name}-{self._segment}"
        path = self.folder / f"{name}.mp4"
        recorder = TrackRecorder(
            self._relay.subscribe(source, buffered=False),
            path,
            kind=kind,
            on_error=self._failed,
            transform=transform,
            name=f"rec-{participant_id}",
        )
        index_id = None
        if self._index is not None:
            try:
                index_id = await self._index.started(self.session_id, name, kind, participant, path)
            except Exception:
                logger.exception("could not index recording %s", path)
        recorder.start()
        self._running[name] = _Running(recorder, index_id, participant, participant_id)

    async def _finish(self, name: str) -> RecordingResult | None:
        running = self._running.pop(name, None)
        if running is None:
            return None
        result = await running.recorder.aclose()
        if self._index is not None and running.index_id is not None:
            try:
                await self._index.finished(running.index_id, result)
            except Exception:
                logger.exception("could not update the index of %s", result.path)
        return result

    def _failed(self, message: str) -> None:
        if self.failed is None:
            self.failed = message
            self._on_error(message)


class StoreIndex:
    """:class:`RecordingIndex` on the database's recordings table (paths relative to
    ``data_dir``)."""

    def __init__(self, store: RecordingStoreLike, data_dir: Path) -> None:
        self._store = store
        self._data_dir = data_dir

    async def started(
        self, session_id: str, track: str, kind: str, participant: str, path: Path
    ) -> str:
        codec = "h264" if kind == "video" else "aac"
        relative = path.relative_to(self._data_dir).as_posix()
        record = await self._store.add(session_id, track, kind, participant, codec, "mp4", relative)
        return str(record.id)

    async def finished(self, recording_id: str, result: RecordingResult) -> None:
        await self._store.finish(
            recording_id,
            size_bytes=result.size_bytes,
            sha256=result.sha256,
            duration_s=result.duration_s,
            status="complete" if result.status == "complete" else "failed",
            error=result.error,
        )


class RecordingStoreLike(Protocol):
    async def add(
        self,
        session_id: str,
        track: str,
        kind: str,
        participant: str,
        codec: str,
        container: str,
        path: str,
    ) -> Any: ...

    async def finish(
        self,
        recording_id: str,
        *,
        size_bytes: int | None,
        sha256: str | None,
        duration_s: float | None,
        status: str = ...,
        error: str | None = None,
    ) -> Any: ...
