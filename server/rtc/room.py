"""A room: one live session around one worker's view, with its mentors and observers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from server.errors import RoomConflictError, RoomFullError
from server.protocol import (
    AckMessage,
    AnchorMessage,
    ConsentMessage,
    DepthHeader,
    ErrorMessage,
    OverlayMessage,
    ParticipantJoinedMessage,
    ParticipantLeftMessage,
    ProtocolError,
    RecordedMessage,
    RecordingMessage,
    StrokeMessage,
    TelemetryMessage,
    parse_annotation,
    parse_depth,
    parse_telemetry,
)
from server.rtc.clock import unwrap_near
from server.rtc.participant import Participant
from server.rtc.session_recording import RecordingIndex, SessionRecording
from server.rtc.timeline import RoomTimeline, ShiftedTrack
from server.rtc.tracks import AudioMix
from server.rtc.vision_tap import VisionTap
from sessions import EventLog
from vision import (
    FrameResult,
    Intrinsics,
    Pipeline,
    SessionErgonomics,
    Telemetry,
    VisionError,
)
from vision.privacy import blur_faces
from vision.results import Person
from vision.rgbd import decode_depth_png
from vision.twin_process import TwinProcess

__all__ = ["Room", "RoomOptions"]

logger = logging.getLogger(__name__)

RECORDED_ROLES: dict[str, tuple[str, ...]] = {
    "chat": ("worker", "mentor", "observer"),
    "freeze": ("mentor",),
    "step": ("mentor",),
    "consent": ("worker",),
}
"""Who may send each recorded message type."""
TELEMETRY_KEEP = 300  # ~10 s of frames at 30 fps
DEPTH_KEEP = 4  # depth images waiting for their frame (newest kept; each one up to 256 KiB)


@dataclass(frozen=True)
class RoomOptions:
    max_participants: int = 16
    max_message_bytes: int = 64 * 1024
    max_depth_bytes: int = 256 * 1024
    """Largest binary depth message accepted on the telemetry channel."""
    recordings_dir: Path | None = None
    """Where sessions are recorded (``<dir>/<session_id>/``); None: never recorded."""
    recording_index: RecordingIndex | None = None
    """Lists every recorded file (the database)."""
    summary_interval_s: float = 10.0
    """How often the room logs a ``vision_summary`` event (ergonomic risk over that window)."""


class Room:
    def __init__(
        self,
        name: str,
        session_id: str,
        *,
        events: EventLog,
        executor: Executor,
        pipeline_factory: Callable[[TwinProcess], tuple[Pipeline, float]],
        options: RoomOptions,
        marker_label: Callable[[int], str | None] = lambda _: None,
        blur_faces: Callable[[], bool] = lambda: False,
    ) -> None:
        self.name = name
        self.session_id = session_id
        self.participants: dict[str, Participant] = {}
        self.worker: Participant | None = None
        self.audio = AudioMix()
        self._events = events
        self._executor = executor
        self._pipeline_factory = pipeline_factory
        self._marker_label = marker_label
        self._options = options
        self._relay = MediaRelay()
        self._worker_video: MediaStreamTrack | None = None
        self._vision: VisionTap | None = None
        self._pipeline: Pipeline | None = None
        self.timeline = RoomTimeline()
        # Telemetry is kept by the worker's own pts; frames carry room pts (see timeline.py).
        self._telemetry: OrderedDict[int, TelemetryMessage] = OrderedDict()
        # Depth images (still PNG) by the worker's pts; decoded in the vision executor.
        self._depth: OrderedDict[int, tuple[DepthHeader, bytes]] = OrderedDict()
        self.depth_stats = {"received": 0, "used": 0, "errors": 0}
        self.twin = TwinProcess()
        """The session's digital twin, fused by the ``rgbd`` stage in a process of its own
        (started on the first depth keyframe; the hub saves and closes it with the room)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_zones: set[tuple[str, int]] = set()
        self.consent: bool | None = None
        """The worker's consent to recording: None until asked, then the last answer."""
        self._voices: dict[str, tuple[str, MediaStreamTrack]] = {}
        self._blur_faces = blur_faces
        self._latest_persons: tuple[Person, ...] = ()
        """People of the newest analysed frame (read by the recorder's thread to blur faces)."""
        self.recording: SessionRecording | None = None
        if options.recordings_dir is not None:
            self.recording = SessionRecording(
                session_id,
                options.recordings_dir / session_id,
                self._relay,
                index=options.recording_index,
                on_error=self._recording_failed,
                log_event=self._log_system_event,
            )
        # Ergonomic risk, time-weighted: over the whole session and over the current window.
        self._ergonomics = SessionErgonomics()
        self._window = SessionErgonomics()
        self._window_start_pts: int | None = None
        self._last_result_pts: int | None = None
        self._window_opened = time.monotonic()

    # --- membership --------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self.participants

    async def add(self, participant: Participant) -> None:
        if len(self.participants) >= self._options.max_participants:
            raise RoomFullError(
                "room_full",
                f"room {self.name!r} already has {len(self.participants)} participants",
            )
        if participant.role == "worker":
            if self.worker is not None:
                raise RoomConflictError(
                    "room_has_worker",
                    f"room {self.name!r} already has a worker ({self.worker.username}); "
                    "only one headset can stream into a room",
                )
            self.worker = participant
        participant.room = self
        self.participants[participant.id] = participant
        await self._events.append(
            self.session_id,
            "join",
            {"participant_id": participant.id, "role": participant.role},
            actor=participant.username,
        )
        for other in list(self.participants.values()):
            if other is not participant:
                await other.signal(ParticipantJoinedMessage(participant=participant.info))

    async def remove(self, participant: Participant, *, reason: str = "left") -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        if self.worker is participant:
            self.worker = None
            await self._stop_worker_video()
            if self.consent is not None:  # consent is the worker's: the next one is asked anew
                self.consent = None
            await self._update_recording()
        await self.audio.remove_source(participant.id)
        self._voices.pop(participant.id, None)
        if self.recording is not None:
            await self.recording.remove_voice(participant.id)
        await participant.aclose()
        try:
            await self._events.append(
                self.session_id,
                "leave",
                {"participant_id": participant.id, "reason": reason},
                actor=participant.username,
            )
        except Exception:
            logger.exception("could not log leave of %s", participant.id)
        for other in list(self.participants.values()):
            await other.signal(ParticipantLeftMessage(participant_id=participant.id))

    # --- video -------------------------------------------------------------------------------

    def publish_worker_video(self, worker: Participant, track: MediaStreamTrack) -> None:
        if self.worker is not worker:
            return
        self.timeline.new_worker()
        track = ShiftedTrack(track, self.timeline)
        self._worker_video = track
        for viewer in self.participants.values():
            self.attach_viewer(viewer)
        self._start_vision(track)
        self._spawn(self._update_recording())

    def add_voice(self, participant: Participant, track: MediaStreamTrack) -> None:
        """A participant's microphone: into the room's mix, and recorded while recording."""
        self._voices[participant.id] = (participant.username, track)
        self.audio.add_source(participant.id, self._relay.subscribe(track, buffered=False))
        if self.recording is not None and self.recording.active:
            self._spawn(self.recording.add_voice(participant.id, participant.username, track))

    async def _update_recording(self) -> None:
        """Record while the worker consents and streams; stop as soon as either ends."""
        recording = self.recording
        if recording is None:
            return
        wanted = bool(self.consent) and self._worker_video is not None and not recording.failed
        if wanted and not recording.active:
            transform = self._blur if self._blur_faces() else None
            await recording.start(self._worker_video, dict(self._voices), transform=transform)
        elif not wanted and recording.active:
            await recording.stop()
        self._announce_recording()

    def _blur(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Runs on the recorder's thread: faces of the newest analysed frame, padded for motion."""
        return blur_faces(image, self._latest_persons)

    def _recording_failed(self, message: str) -> None:
        logger.error("room %s: recording stopped: %s", self.name, message)
        self._spawn(self._log_system_event("recording_failed", {"error": message}))
        self._spawn(self._update_recording())

    async def _log_system_event(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            await self._events.append(self.session_id, kind, payload)
        except Exception:
            logger.exception("could not log %s", kind)

    def _start_vision(self, track: MediaStreamTrack) -> None:
        self._pipeline, fps = self._pipeline_factory(self.twin)
        self._vision = VisionTap(
            self._relay.subscribe(track, buffered=False),
            self._pipeline,
            self._executor,
            fps=fps,
            telemetry_for=self._telemetry_for,
            wanted=self._has_depth,
            on_result=self._on_vision_result,
            name=f"vision-{self.name}",
        )
        self._vision.start()

    async def restart_vision(self) -> None:
        """Apply changed room settings now: a new pipeline on the live video, if there is one."""
        if self._worker_video is None:
            return
        await self._stop_vision()
        self._start_vision(self._worker_video)

    async def _stop_vision(self) -> None:
        if self._vision is not None:
            await self._vision.aclose()
            self._vision = None
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    def attach_viewer(self, viewer: Participant) -> None:
        if viewer.video_slot is None:
            return
        source = self._worker_video
        viewer.video_slot.attach(
            None if source is None else self._relay.subscribe(source, buffered=False)
        )

    async def _stop_worker_video(self) -> None:
        had_video = self._worker_video is not None
        self._worker_video = None
        for viewer in self.participants.values():
            if viewer.video_slot is not None:
                viewer.video_slot.attach(None)
        await self._stop_vision()
        self._telemetry.clear()
        self._depth.clear()
        if had_video:
            await self._log_session_ergonomics()

    @property
    def latest_pts(self) -> int | None:
        """The newest pts of the worker's video the server has seen."""
        return None if self._vision is None else self._vision.latest_pts

    @property
    def vision_stats(self) -> dict[str, Any] | None:
        return None if self._vision is None else vars(self._vision.stats)

    def _has_depth(self, pts: int) -> bool:
        """Frames that come with depth are analysed even between the sampler's ticks."""
        return self.timeline.to_worker(pts) in self._depth

    def _telemetry_for(self, pts: int) -> Telemetry | Callable[[], Telemetry]:
        """What the pipeline gets with frame ``pts``: telemetry, or (with a depth image to
        decode) a function the vision executor calls to build it."""
        worker_pts = self.timeline.to_worker(pts)
        msg = self._telemetry.get(worker_pts)
        telemetry = Telemetry(pts=pts)
        if msg is not None:
            try:
                telemetry = self._to_vision_telemetry(pts, msg)
            except (ValueError, VisionError) as exc:  # e.g. a degenerate camera: analyse without
                logger.warning("ignoring telemetry for pts=%d: %s", pts, exc)
        depth = self._depth.pop(worker_pts, None)
        if depth is None:
            return telemetry
        header, image = depth
        stats = self.depth_stats

        def with_depth() -> Telemetry:  # runs in the vision executor
            try:
                intrinsics = None
                if header.intrinsics is not None:
                    i = header.intrinsics
                    intrinsics = Intrinsics(
                        fx=i.fx, fy=i.fy, cx=i.cx, cy=i.cy, width=i.width, height=i.height
                    )
                frame = decode_depth_png(
                    image, pts=pts, intrinsics=intrinsics, scale_m=header.scale_m
                )
            except (ValueError, VisionError) as exc:
                stats["errors"] += 1
                logger.warning("ignoring the depth image of pts=%d: %s", pts, exc)
                return telemetry
            stats["used"] += 1
            return dataclasses.replace(telemetry, depth=frame)

        return with_depth

    @staticmethod
    def _to_vision_telemetry(pts: int, msg: TelemetryMessage) -> Telemetry:
        intrinsics = None
        if msg.intrinsics is not None:
            i = msg.intrinsics
            intrinsics = Intrinsics(
                fx=i.fx, fy=i.fy, cx=i.cx, cy=i.cy, width=i.width, height=i.height
            )
        pose = tuple(msg.head_pose) if msg.head_pose is not None else None
        return Telemetry(pts=pts, head_pose=pose, intrinsics=intrinsics)

    def _on_vision_result(self, result: FrameResult, analysed_ms: float) -> None:
        data = result.to_dict()
        for marker in data["markers"]:
            marker["label"] = self._marker_label(marker["id"])
        telemetry = self._telemetry.get(self.timeline.to_worker(result.pts))
        overlay = OverlayMessage(
            pts=result.pts,
            width=result.width,
            height=result.height,
            markers=data["markers"],
            persons=data["persons"],
            objects=data["objects"],
            camera_pose=data["camera_pose"],
            anchors=data["anchors"],
            events=data["events"],
            zones=data["zones"],
            timings_ms=data["timings_ms"],
            camera=data["camera"],
            t_capture_ms=None if telemetry is None else telemetry.t_capture_ms,
            t_analysed_ms=analysed_ms,
        )
        self._log_safety(result)
        self._add_ergonomics(result)
        self._latest_persons = result.persons
        payload = overlay.model_dump_json()
        if self.recording is not None:
            self.recording.write_overlay(payload)
        worker_payload = self._for_worker(overlay, payload)
        for participant in self.participants.values():
            participant.send("overlay", worker_payload if participant is self.worker else payload)

    def _add_ergonomics(self, result: FrameResult) -> None:
        """Feed the session's risk aggregate; log a ``vision_summary`` every window."""
        last, self._last_result_pts = self._last_result_pts, result.pts
        if last is None or not 0 < result.pts - last <= 90_000:
            seconds = 0.1  # first frame, or after a gap: a nominal analysis interval
        else:
            seconds = (result.pts - last) / 90_000
        for person in result.persons:
            if person.risk is not None:
                self._ergonomics.add(person.id, person.risk, seconds)
                self._window.add(person.id, person.risk, seconds)
        if self._window_start_pts is None:
            self._window_start_pts = result.pts
        if time.monotonic() - self._window_opened >= self._options.summary_interval_s:
            self._flush_window(result.pts)

    def _flush_window(self, pts: int | None) -> None:
        window, start = self._window, self._window_start_pts
        self._window, self._window_start_pts = SessionErgonomics(), None
        self._window_opened = time.monotonic()
        summary = window.summary()
        if summary.seconds <= 0 or start is None:
            return
        payload = {
            "kind": "ergonomics",
            "from_pts": start,
            "ergonomics": summary.to_dict(),
            "persons": {str(k): v.to_dict() for k, v in window.per_person().items()},
        }
        self._spawn(self._events.append(self.session_id, "vision_summary", payload, media_pts=pts))

    async def _log_session_ergonomics(self) -> None:
        """The whole session so far (logged when the worker's video ends)."""
        self._flush_window(self._last_result_pts)
        total = self._ergonomics.summary()
        if total.seconds <= 0:
            return
        payload = {
            "kind": "ergonomics_session",
            "ergonomics": total.to_dict(),
            "persons": {str(k): v.to_dict() for k, v in self._ergonomics.per_person().items()},
        }
        try:
            await self._events.append(
                self.session_id, "vision_summary", payload, media_pts=self._last_result_pts
            )
        except Exception:
            logger.exception("could not log the session's ergonomics summary")

    def _log_safety(self, result: FrameResult) -> None:
        """Log when a person enters or leaves a safety zone (transitions, not every frame)."""
        now = {(event.zone, event.person_id) for event in result.events}
        if now == self._in_zones:
            return
        changes = [("entered", pair) for pair in sorted(now - self._in_zones)]
        changes += [("left", pair) for pair in sorted(self._in_zones - now)]
        self._in_zones = now
        for what, (zone, person) in changes:
            self._spawn(
                self._events.append(
                    self.session_id,
                    "safety",
                    {"zone": zone, "person_id": person, "what": what},
                    media_pts=result.pts,
                )
            )

    def _for_worker(self, message: OverlayMessage | StrokeMessage, payload: str) -> str:
        """The same message with pts on the worker's own timeline."""
        if self.timeline.offset == 0:
            return payload
        return message.model_copy(
            update={"pts": self.timeline.to_worker(message.pts)}
        ).model_dump_json()

    # --- data channels -----------------------------------------------------------------------

    def on_channel_message(self, sender: Participant, label: str, raw: Any) -> None:
        try:
            if label == "telemetry":
                self._on_telemetry(sender, raw)
            elif label == "annotations":
                message = parse_annotation(raw, self._options.max_message_bytes)
                if isinstance(message, StrokeMessage):
                    self._spawn(self._on_stroke(sender, message))
                else:
                    self._spawn(self._on_recorded(sender, message))
            else:
                raise ProtocolError("wrong_channel", f"nothing may be sent on {label!r}")
        except ProtocolError as exc:
            reply = ErrorMessage(code=exc.code, message=exc.message)
            sender.send("annotations", reply.model_dump_json())

    def _on_telemetry(self, sender: Participant, raw: Any) -> None:
        if sender is not self.worker:
            raise ProtocolError("forbidden", "only the room's worker sends telemetry")
        if isinstance(raw, bytes):
            header, image = parse_depth(raw, self._options.max_depth_bytes)
            latest = self.latest_pts
            pts = unwrap_near(
                header.pts, None if latest is None else self.timeline.to_worker(latest)
            )
            self._depth[pts] = (header, image)
            self.depth_stats["received"] += 1
            while len(self._depth) > DEPTH_KEEP:
                self._depth.popitem(last=False)
            return
        msg = parse_telemetry(raw, self._options.max_message_bytes)
        latest = self.latest_pts
        pts = unwrap_near(msg.pts, None if latest is None else self.timeline.to_worker(latest))
        self._telemetry[pts] = msg
        while len(self._telemetry) > TELEMETRY_KEEP:
            self._telemetry.popitem(last=False)

    async def _on_stroke(self, author: Participant, stroke: StrokeMessage) -> None:
        """Relay at once (live guidance must not wait for a disk), then store, then ack.

        The author's ack means "stored as event ``seq``": it is sent only after the commit.
        """
        if author.role != "mentor":
            self._refuse(
                author, stroke, "forbidden", f"{author.role}s cannot draw; only mentors do"
            )
            return
        if not author.ink_budget.take():
            self._refuse(author, stroke, "rate_limited", "too many strokes too fast; slow down")
            return
        stroke = stroke.model_copy(
            update={"pts": unwrap_near(stroke.pts, self.latest_pts), "author": author.username}
        )
        payload = stroke.model_dump_json()
        worker_payload = self._for_worker(stroke, payload)
        for participant in self.participants.values():
            if participant is not author:
                participant.send(
                    "annotations", worker_payload if participant is self.worker else payload
                )
        async with author.record_lock:  # stored in the order the author sent them
            await self._store_stroke(author, stroke)

    async def _store_stroke(self, author: Participant, stroke: StrokeMessage) -> None:
        payload_for_log = stroke.model_dump(exclude={"v", "type", "seq", "author"})
        anchor = await self._anchor(stroke)
        if anchor is not None:
            payload_for_log["anchor"] = {"frame": anchor.frame, "xyz": anchor.xyz}
            message = anchor.model_dump_json()
            for participant in self.participants.values():
                participant.send("annotations", message)
        try:
            record = await self._events.append(
                self.session_id,
                "ink",
                payload_for_log,
                actor=author.username,
                media_pts=stroke.pts,
            )
        except Exception:
            logger.exception("could not store stroke %s", stroke.id)
            self._refuse(author, stroke, "not_recorded", "shown live, but the record failed")
            return
        author.send("annotations", AckMessage(id=stroke.id, seq=record.seq).model_dump_json())

    async def _on_recorded(self, author: Participant, message: RecordedMessage) -> None:
        """Chat, freeze, step and consent: relayed, stored as a session event, then acked."""
        allowed = RECORDED_ROLES[message.type]
        if author.role not in allowed:
            who = " and ".join(f"{r}s" for r in allowed)
            self._refuse(author, message, "forbidden", f"only {who} may send {message.type}")
            return
        if not author.ink_budget.take():
            self._refuse(author, message, "rate_limited", "too many messages too fast; slow down")
            return
        update: dict[str, Any] = {"author": author.username}
        pts = getattr(message, "pts", None)
        if pts is not None:
            update["pts"] = pts = unwrap_near(pts, self.latest_pts)
        message = message.model_copy(update=update)
        payload = message.model_dump_json()
        worker_payload = payload
        if pts is not None and self.timeline.offset:
            shifted = message.model_copy(update={"pts": self.timeline.to_worker(pts)})
            worker_payload = shifted.model_dump_json()
        for participant in self.participants.values():
            if participant is not author:
                participant.send(
                    "annotations", worker_payload if participant is self.worker else payload
                )
        async with author.record_lock:  # stored in the order the author sent them
            await self._store_recorded(author, message, pts)

    async def _store_recorded(
        self, author: Participant, message: RecordedMessage, pts: int | None
    ) -> None:
        try:
            record = await self._events.append(
                self.session_id,
                message.type,
                message.model_dump(exclude={"v", "type", "seq", "author", "t_sent_ms"}),
                actor=author.username,
                media_pts=pts,
            )
        except Exception:
            logger.exception("could not store %s %s", message.type, message.id)
            self._refuse(author, message, "not_recorded", "shown live, but the record failed")
            return
        author.send("annotations", AckMessage(id=message.id, seq=record.seq).model_dump_json())
        if isinstance(message, ConsentMessage):
            self.consent = message.recording
            await self._update_recording()

    @property
    def recording_state(self) -> RecordingMessage:
        """Whether this session is recorded now (needs the worker's consent), and why."""
        if self.recording is None:
            return RecordingMessage(on=False, reason="this server does not record sessions")
        if self.recording.failed is not None:
            return RecordingMessage(on=False, reason=f"recording stopped: {self.recording.failed}")
        if self.recording.active:
            return RecordingMessage(on=True, reason="the worker consented to recording")
        if self.consent is None:
            return RecordingMessage(on=False, reason="waiting for the worker's consent")
        if not self.consent:
            return RecordingMessage(on=False, reason="the worker has not consented to recording")
        return RecordingMessage(on=False, reason="waiting for the worker's video")

    def on_annotations_open(self, participant: Participant) -> None:
        """A participant can now hear state changes: tell them where recording stands (what
        changed between their ``joined`` message and now would be lost otherwise)."""
        self._announce_recording(only=participant)

    def _announce_recording(self, only: Participant | None = None) -> None:
        payload = self.recording_state.model_dump_json()
        for participant in [only] if only is not None else list(self.participants.values()):
            participant.send("annotations", payload)

    async def _anchor(self, stroke: StrokeMessage) -> AnchorMessage | None:
        """Lift the stroke off the image (in the vision pool: it is geometry, not loop work)."""
        pipeline = self._pipeline
        book = None if pipeline is None else pipeline.options.anchor_book
        if book is None:
            return None
        points = [(float(u), float(v)) for u, v in stroke.points]
        loop = asyncio.get_running_loop()
        try:
            anchor = await loop.run_in_executor(
                self._executor, book.add_stroke, stroke.id, stroke.pts, points
            )
        except ValueError as exc:
            logger.info("stroke %s not anchored: %s", stroke.id, exc)
            return None
        xyz = [[round(float(c), 5) for c in p] for p in anchor.points_xyz]
        return AnchorMessage(id=stroke.id, frame=anchor.frame, xyz=xyz)

    @staticmethod
    def _refuse(
        author: Participant, stroke: StrokeMessage | RecordedMessage, code: str, message: str
    ) -> None:
        error = ErrorMessage(
            code=code, message=f"{stroke.type} {stroke.id}: {message}", id=stroke.id
        )
        author.send("annotations", error.model_dump_json())

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("room %s task failed", self.name, exc_info=task.exception())

    async def aclose(self) -> None:
        for participant in list(self.participants.values()):
            await self.remove(participant, reason="server_shutdown")
        await self._stop_worker_video()
        if self.recording is not None:
            await self.recording.stop()
        await self.audio.aclose()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
