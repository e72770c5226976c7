"""The media hub: every live room of this process, and the shared vision executor."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from server.rtc import clock, jitter
from server.rtc.participant import Participant
from server.rtc.room import Room, RoomOptions
from sessions import EventLog
from vision import AnchorBook, Pipeline, PipelineOptions, SafetyOptions, WorldZone, Zone
from vision.twin_process import TwinProcess

__all__ = ["MediaHub", "RoomVision", "pin_host_addresses", "save_twin", "twin_paths"]


@dataclasses.dataclass(frozen=True)
class RoomVision:
    """Which vision stages run on one room's video, and how often (None: the node's rate)."""

    stages: tuple[str, ...]
    fps: float | None = None
    zones: tuple[Zone | WorldZone, ...] = ()
    """Safety zones (image uv or world) checked by the ``safety`` stage."""
    blur_faces: bool = False
    """Blur the faces the ``pose`` stage finds in the stored video (not in the live view)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomVision:
        fps = data.get("fps")
        zones = tuple(_zone(z) for z in data.get("safety_zones", ()))
        return cls(
            stages=tuple(data.get("stages", ())),
            fps=None if fps is None else float(fps),
            zones=zones,
            blur_faces=bool(data.get("blur_faces", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": list(self.stages),
            "fps": self.fps,
            "safety_zones": [_zone_dict(z) for z in self.zones],
            "blur_faces": self.blur_faces,
        }

    @property
    def safety(self) -> SafetyOptions:
        return SafetyOptions(
            zones=tuple(z for z in self.zones if isinstance(z, Zone)),
            world_zones=tuple(z for z in self.zones if isinstance(z, WorldZone)),
        )


def _zone(data: dict[str, Any]) -> Zone | WorldZone:
    keypoints = data.get("keypoints")
    polygon = [tuple(float(c) for c in p) for p in data["polygon"]]
    if data.get("reference") is None:
        uv = tuple((p[0], p[1]) for p in polygon)
        return Zone(data["name"], uv, tuple(keypoints or ()))
    xyz = tuple((p[0], p[1], p[2]) for p in polygon)
    if keypoints:
        return WorldZone(data["name"], data["reference"], xyz, tuple(keypoints))
    return WorldZone(data["name"], data["reference"], xyz)


def _zone_dict(zone: Zone | WorldZone) -> dict[str, Any]:
    out: dict[str, Any] = {"name": zone.name, "polygon": [list(p) for p in zone.polygon]}
    if isinstance(zone, WorldZone):
        out["reference"] = zone.reference
    if zone.keypoints:
        out["keypoints"] = list(zone.keypoints)
    return out


logger = logging.getLogger(__name__)


class MediaHub:
    """Owns rooms (no module globals): created with the app, closed with it."""

    def __init__(
        self,
        events: EventLog,
        *,
        room_options: RoomOptions,
        pipeline_options: PipelineOptions,
        vision_workers: int = 2,
        vision_fps: float = 10.0,
        ice_host_addresses: tuple[str, ...] = (),
        twin_dir: Path | None = None,
    ) -> None:
        clock.install()
        jitter.install()
        if ice_host_addresses:
            pin_host_addresses(ice_host_addresses)
        self._events = events
        self.twin_dir = twin_dir
        """Where each session's digital twin is saved when its room closes (None: not saved)."""
        self._room_options = room_options
        self._pipeline_options = pipeline_options
        self._executor = ThreadPoolExecutor(
            max_workers=vision_workers, thread_name_prefix="fieldsight-vision"
        )
        self.rooms: dict[str, Room] = {}
        self._marker_table: dict[int, tuple[str, float]] = {}
        self._room_settings: dict[str, RoomVision] = {}
        self._vision_fps = vision_fps
        self._lock = asyncio.Lock()
        self._closed = False
        self._pending: set[asyncio.Task[None]] = set()

    def set_marker_table(self, table: dict[int, tuple[str, float]]) -> None:
        """Registered markers (id -> equipment name, size in metres) of the detected family.

        Pipelines built from now on (a worker starting to stream) use the new sizes."""
        self._marker_table = dict(table)

    def marker_label(self, marker_id: int) -> str | None:
        entry = self._marker_table.get(marker_id)
        return None if entry is None else entry[0]

    @property
    def default_stages(self) -> tuple[str, ...]:
        return self._pipeline_options.stages

    def set_room_settings(self, room: str, settings: RoomVision | None) -> None:
        """Vision settings of one room (None: the defaults). Applied when its video next
        (re)starts; call :meth:`Room.restart_vision` to apply them at once."""
        if settings is None:
            self._room_settings.pop(room, None)
        else:
            self._room_settings[room] = settings

    def _new_pipeline(
        self, room: str = "", twin: TwinProcess | None = None
    ) -> tuple[Pipeline, float]:
        sizes = {**self._pipeline_options.marker_sizes}
        sizes.update({marker_id: size for marker_id, (_, size) in self._marker_table.items()})
        if twin is not None:
            for marker_id, (name, _) in self._marker_table.items():
                twin.name_marker(marker_id, name)
        options = dataclasses.replace(
            self._pipeline_options, marker_sizes=sizes, anchor_book=AnchorBook(), twin=twin
        )
        fps = self._vision_fps
        custom = self._room_settings.get(room)
        if custom is not None:
            options = dataclasses.replace(options, stages=custom.stages, safety=custom.safety)
            fps = custom.fps or fps
        return Pipeline(options), fps

    async def join(self, room_name: str, participant: Participant) -> Room:
        """Add a participant, opening the room (and its recorded session) on first join."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the media hub is shutting down")
            room = self.rooms.get(room_name)
            created = room is None
            if room is None:
                record = await self._events.open_session(
                    room_name, previous_session_id=await self._cut_off_part(room_name)
                )
                room = Room(
                    room_name,
                    record.id,
                    events=self._events,
                    executor=self._executor,
                    pipeline_factory=functools.partial(self._new_pipeline, room_name),
                    blur_faces=functools.partial(self._blur_faces, room_name),
                    marker_label=self.marker_label,
                    options=self._room_options,
                )
                self.rooms[room_name] = room
            try:
                await room.add(participant)
            except Exception:
                if created and room.empty:
                    await self._close_room(room)
                raise
            return room

    def _blur_faces(self, room: str) -> bool:
        custom = self._room_settings.get(room)
        return custom is not None and custom.blur_faces

    async def _cut_off_part(self, room_name: str) -> str | None:
        """The room's latest session, if a crash cut it off: the new session continues it."""
        try:
            sessions = await self._events.sessions_for_room(room_name)
        except Exception:
            logger.exception("could not look up the earlier sessions of %s", room_name)
            return None
        if not sessions:
            return None
        latest = max(sessions, key=lambda s: s.started_at)
        return latest.id if latest.ended_abnormally else None

    def leave_soon(self, participant: Participant, *, reason: str = "left") -> asyncio.Task[None]:
        """Leave as a task of the hub's own, so that a cancelled caller cannot cut it short."""
        task = asyncio.create_task(self.leave(participant, reason=reason), name="leave")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def leave(self, participant: Participant, *, reason: str = "left") -> None:
        room = participant.room
        if room is None:
            await participant.aclose()
            return
        await room.remove(participant, reason=reason)
        async with self._lock:
            if room.empty and self.rooms.get(room.name) is room:
                await self._close_room(room)

    async def _close_room(self, room: Room) -> None:
        self.rooms.pop(room.name, None)
        await room.aclose()
        loop = asyncio.get_running_loop()
        if self.twin_dir is not None and room.twin.keyframes:
            try:
                await loop.run_in_executor(
                    self._executor, save_twin, room.twin, self.twin_dir, room.session_id
                )
            except Exception:
                logger.exception("could not save the digital twin of session %s", room.session_id)
        await loop.run_in_executor(self._executor, room.twin.close)
        try:
            await self._events.close_session(room.session_id)
        except Exception:
            logger.exception("could not close session %s", room.session_id)

    async def aclose(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)
        async with self._lock:
            self._closed = True
            for room in list(self.rooms.values()):
                await self._close_room(room)
        self._executor.shutdown(wait=True, cancel_futures=True)


def twin_paths(twin_dir: Path, session_id: str) -> dict[str, Path]:
    """Where a session's saved twin lives: ``glb``, ``ply`` and ``json`` (its summary)."""
    return {ext: twin_dir / f"{session_id}.{ext}" for ext in ("glb", "ply", "json")}


def save_twin(twin: TwinProcess, twin_dir: Path, session_id: str) -> None:
    """Write the twin as GLB, PLY and a JSON summary (each file complete or absent)."""
    twin_dir.mkdir(parents=True, exist_ok=True)
    paths = twin_paths(twin_dir, session_id)
    facts = twin.summary()
    files = []
    if facts["triangles"]:  # keyframes that gave no surface yet: the summary only
        files += [("glb", twin.glb_bytes()), ("ply", twin.ply_bytes())]
    files.append(("json", json.dumps(facts, indent=1).encode()))  # last: the twin is complete
    for ext, data in files:
        partial = paths[ext].with_suffix(f".{ext}.part")
        partial.write_bytes(data)
        os.replace(partial, paths[ext])
    logger.info("saved the digital twin of session %s in %s", session_id, twin_dir)


def pin_host_addresses(addresses: tuple[str, ...]) -> None:
    """Offer only these addresses as ICE host candidates (e.g. the public interface)."""
    import aioice.ice

    pinned = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses
