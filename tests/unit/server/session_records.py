"""Helpers of the session-records tests: sessions with events and recordings (small files written
under the data dir and listed with RecordingStore; no media needed)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from server.app import create_app
from server.services import Services
from server.settings import Settings
from sessions import Recording, RecordingStore, Role
from sessions.models import utcnow

PASSWORD = "unit-test-password"


def make_client(tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, demo_password=PASSWORD, **settings))
    with TestClient(app) as client:
        yield client


def services(client: TestClient) -> Services:
    found: Services = client.app.state.services  # type: ignore[attr-defined]
    return found


def auth(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def admin(client: TestClient) -> dict[str, str]:
    """Headers of an admin (created on first use)."""

    async def create() -> None:
        svc = services(client)
        if await svc.users.get("root") is None:
            await svc.users.create("root", await svc.hasher.hash_async(PASSWORD), Role.ADMIN)

    client.portal.call(create)  # type: ignore[union-attr]
    return auth(client, "root")


def session(
    client: TestClient,
    room: str = "pump-7",
    people: tuple[str, ...] = ("worker", "mentor"),
    *,
    end: bool = True,
    events: int = 3,
) -> str:
    """A session of ``room`` that ``people`` joined, with ``events`` chat events; ended."""
    log = services(client).events

    async def build() -> str:
        record = await log.open_session(room)
        for person in people:
            await log.append(record.id, "join", {"role": "x"}, actor=person)
        for n in range(events):
            await log.append(record.id, "chat", {"text": f"m{n}"}, actor=people[0], media_pts=n)
        if end:
            await log.close_session(record.id)
        return record.id

    result: str = client.portal.call(build)  # type: ignore[union-attr]
    return result


def recording(
    client: TestClient,
    session_id: str,
    track: str,
    data: bytes,
    *,
    kind: str = "video",
    age_days: float = 0.0,
    write: bool = True,
) -> str:
    """A finished recording of the session whose file (``recordings/<session>/<track>.mp4``)
    holds ``data``, ended ``age_days`` ago; returns its id."""
    data_dir = services(client).settings.data_dir
    relative = f"recordings/{session_id}/{track}.mp4"
    if write:
        (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / relative).write_bytes(data)
    store = RecordingStore(services(client).db)
    ended = utcnow() - timedelta(days=age_days)

    async def index() -> str:
        rec = await store.add(
            session_id,
            track,
            kind,
            "worker",
            "h264" if kind == "video" else "aac",
            "mp4",
            relative,
            started_at=ended - timedelta(seconds=30),
        )
        await store.finish(
            rec.id,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            duration_s=30.0,
            ended_at=ended,
        )
        return rec.id

    result: str = client.portal.call(index)  # type: ignore[union-attr]
    return result


def tamper(client: TestClient, recording_id: str, path: str) -> None:
    """Point an index row at ``path`` behind RecordingStore's back (which refuses ``..``)."""
    db = services(client).db

    async def run() -> None:
        async with db.session() as s, s.begin():
            await s.execute(update(Recording).where(Recording.id == recording_id).values(path=path))

    client.portal.call(run)  # type: ignore[union-attr]


def call(client: TestClient, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``await fn(*args, **kwargs)`` on the app's event loop."""

    async def run() -> Any:
        return await fn(*args, **kwargs)

    return client.portal.call(run)  # type: ignore[union-attr]


__all__ = [
    "PASSWORD",
    "admin",
    "auth",
    "call",
    "make_client",
    "recording",
    "services",
    "session",
    "tamper",
]
