"""Fieldsight server settings: one ``Settings`` object, read from ``FIELDSIGHT_*`` variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEV_SECRET_KEY", "Settings"]

#: The secret a laptop runs with. Production mode refuses to start with it.
DEV_SECRET_KEY = "fieldsight-dev-secret-change-me-0000000000"


class Settings(BaseSettings):
    """Everything the server can be told: safe laptop defaults; production refuses unsafe ones."""

    model_config = SettingsConfigDict(env_prefix="FIELDSIGHT_", extra="ignore")

    mode: Literal["dev", "prod"] = "dev"
    """``dev`` creates demo accounts and allows the built-in secret; ``prod`` refuses both."""

    host: str = "127.0.0.1"
    """Interface the HTTP server listens on."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port of the HTTP/WebSocket server (0 = any free port, used by tests)."""

    data_dir: Path = Path("data")
    """Local files: the SQLite database and, later, recordings."""

    database_url: str = ""
    """SQLAlchemy async URL. Empty = SQLite file ``<data_dir>/fieldsight.db``."""

    secret_key: str = DEV_SECRET_KEY
    """Key that signs access tokens (HS256). At least 32 characters."""

    token_ttl_s: int = Field(default=12 * 3600, ge=60)
    """Lifetime of an access token in seconds."""

    demo_password: str = "fieldsight"
    """Password of the demo accounts created in dev mode (``worker``, ``mentor``, ``trainer``)."""

    ice_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """STUN/TURN URLs for the hub's peers, e.g. ``stun:stun.example.org:3478``. Empty: host only."""

    ice_host_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses the media hub offers as ICE host candidates (empty = all interfaces)."""

    vision_fps: float = Field(default=10.0, gt=0, le=60)
    """How many frames per second of a worker's video the vision pipeline analyses."""

    vision_stages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["markers", "tracking", "anchors"]
    )
    """Vision stages of rooms without settings of their own (see ``/api/vision/stages``)."""

    vision_workers: int = Field(default=2, ge=1, le=32)
    """Threads that run vision work for all rooms of this process."""

    pose_model: Literal["full", "lite"] = "full"
    """Landmark model of the ``pose`` stage (``lite`` is ~1.5x faster, less precise)."""

    pose_landmark_every: int = Field(default=1, ge=1, le=10)
    """Run the pose landmark model on each person every N-th analysed frame; optical flow
    carries the landmarks in between (2 halves the pose cost; see ``assets/pose/README.md``)."""

    marker_family: str = "aruco_4x4_50"
    """Fiducial family detected by the marker stage."""

    marker_size_m: float = Field(default=0.10, gt=0)
    """Default printed marker side length in metres."""

    detector_model: str | None = None
    """An ONNX object detector run by the ``detector`` stage (see ``vision/detector.py``)."""

    detector_labels: str | None = None
    """Its labels file, one label a line."""

    max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest signaling or data channel message accepted."""

    max_depth_bytes: int = Field(default=256 * 1024, ge=16 * 1024, le=256 * 1024)
    """Largest depth image message (16-bit PNG + header) accepted from a headset; 256 KiB is
    what the WebRTC data channel of the hub accepts at most."""

    max_participants_per_room: int = Field(default=16, ge=2)
    """Participants one room accepts (one worker plus mentors and observers)."""

    retention_interval_s: float = Field(default=3600.0, gt=0)
    """How often the server deletes recordings older than the retention period (seconds; the
    period itself is stored in the database: ``python -m server admin retention``)."""

    @field_validator("ice_servers", "ice_host_addresses", "vision_stages", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if len(self.secret_key) < 32:
            raise ValueError("FIELDSIGHT_SECRET_KEY must be at least 32 characters long")
        if self.mode == "prod" and self.secret_key == DEV_SECRET_KEY:
            raise ValueError(
                "FIELDSIGHT_MODE=prod refuses the built-in development secret: "
                "set FIELDSIGHT_SECRET_KEY to a long random value (e.g. `openssl rand -hex 32`)"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'fieldsight.db').resolve()}"
