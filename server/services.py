"""Per-process services of the server, built in the app's lifespan and closed with it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from server.auth import PasswordHasher, TokenService
from server.equipment import EquipmentService
from server.monitor import LoopMonitor
from server.retention import RetentionReport, RetentionTask, apply_retention
from server.rtc.hub import MediaHub, RoomVision
from server.rtc.participant import PeerOptions
from server.rtc.room import RoomOptions
from server.rtc.session_recording import StoreIndex
from server.settings import Settings
from sessions import (
    Database,
    EquipmentStore,
    EventLog,
    MarkerRegistry,
    RecordingStore,
    RetentionStore,
    Role,
    RoomSettingsStore,
    UserExistsError,
    UserStore,
)
from sessions.catalog import SessionCatalog
from vision import EquipmentLibrary, PipelineOptions, PoseOptions, available_stages

__all__ = ["DEMO_USERS", "Services"]

logger = logging.getLogger(__name__)

#: Accounts created in dev mode so that a fresh ``make run`` can be tried at once.
DEMO_USERS = (("worker", Role.WORKER), ("mentor", Role.MENTOR), ("trainer", Role.TRAINER))


@dataclass
class Services:
    settings: Settings
    db: Database
    users: UserStore
    events: EventLog
    hasher: PasswordHasher
    tokens: TokenService
    hub: MediaHub
    peer_options: PeerOptions
    loop_monitor: LoopMonitor
    markers: MarkerRegistry
    room_settings: RoomSettingsStore
    equipment: EquipmentService
    catalog: SessionCatalog
    recordings: RecordingStore
    retention: RetentionStore
    retention_task: RetentionTask | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        unknown = sorted(set(settings.vision_stages) - set(available_stages()))
        if unknown:
            raise ValueError(
                f"FIELDSIGHT_VISION_STAGES names unknown stage(s) {', '.join(unknown)}; "
                f"available: {', '.join(available_stages())}"
            )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()  # logs the revision before and after
            events = EventLog(db)
            # Before any connection is accepted: sessions still open were cut off by a crash.
            abandoned = await events.end_abandoned_sessions(reason="server_restart")
            if abandoned:
                logger.warning("ended %d session(s) left open by the last run", len(abandoned))
            cut = await RecordingStore(db).interrupt_unfinished()
            if cut:
                logger.warning("marked %d recording(s) of the last run interrupted", len(cut))
        except BaseException:
            await db.aclose()
            raise
        library = EquipmentLibrary()
        hub = MediaHub(
            events,
            room_options=RoomOptions(
                max_participants=settings.max_participants_per_room,
                max_message_bytes=settings.max_message_bytes,
                max_depth_bytes=settings.max_depth_bytes,
                recordings_dir=settings.data_dir / "recordings",
                recording_index=StoreIndex(RecordingStore(db), settings.data_dir),
            ),
            pipeline_options=PipelineOptions(
                stages=tuple(settings.vision_stages),
                marker_family=settings.marker_family,
                marker_size_m=settings.marker_size_m,
                equipment_library=library,
                detector_model=settings.detector_model,
                detector_labels=settings.detector_labels,
                pose=PoseOptions(
                    model=settings.pose_model, landmark_every=settings.pose_landmark_every
                ),
            ),
            vision_workers=settings.vision_workers,
            vision_fps=settings.vision_fps,
            ice_host_addresses=tuple(settings.ice_host_addresses),
            twin_dir=settings.data_dir / "twins",
        )
        services = cls(
            settings=settings,
            db=db,
            users=UserStore(db),
            events=events,
            hasher=PasswordHasher(),
            tokens=TokenService(settings.secret_key, settings.token_ttl_s),
            hub=hub,
            peer_options=PeerOptions(
                ice_servers=tuple(settings.ice_servers),
                max_message_bytes=settings.max_message_bytes,
            ),
            loop_monitor=LoopMonitor(),
            markers=MarkerRegistry(db),
            room_settings=RoomSettingsStore(db),
            catalog=SessionCatalog(db),
            recordings=RecordingStore(db),
            retention=RetentionStore(db),
            equipment=EquipmentService(
                EquipmentStore(db), library, settings.data_dir / "equipment"
            ),
        )
        await services.equipment.load()
        await services.refresh_markers()
        for record in await services.room_settings.all():
            hub.set_room_settings(record.room, RoomVision.from_dict(record.settings))
        services.loop_monitor.start()
        if settings.mode == "dev":
            await services.ensure_demo_users()
        # Now, then every interval: deletes the recordings older than the retention period.
        services.retention_task = RetentionTask(
            services.apply_retention, settings.retention_interval_s
        )
        services.retention_task.start()
        return services

    def settings_stages(self) -> tuple[str, ...]:
        """The stages rooms without settings of their own run."""
        return self.hub.default_stages

    async def refresh_markers(self) -> None:
        """Hand the registry's sizes and names for the detected family to the media hub."""
        entries = await self.markers.list(self.settings.marker_family)
        self.hub.set_marker_table({m.marker_id: (m.name, m.size_m) for m in entries})

    async def ensure_demo_users(self) -> list[str]:
        created = []
        for username, role in DEMO_USERS:
            if await self.users.get(username) is not None:
                continue
            password_hash = await self.hasher.hash_async(self.settings.demo_password)
            try:
                await self.users.create(
                    username, password_hash, role, display_name=username.title()
                )
                created.append(username)
            except UserExistsError:
                pass
        return created

    async def apply_retention(self) -> RetentionReport:
        """Delete the recordings older than the stored retention period (see
        :mod:`server.retention`)."""
        return await apply_retention(
            events=self.events,
            recordings=self.recordings,
            retention=self.retention,
            data_dir=self.settings.data_dir,
        )

    async def aclose(self) -> None:
        if self.retention_task is not None:
            await self.retention_task.aclose()
        await self.loop_monitor.aclose()
        await self.hub.aclose()
        await self.db.aclose()
