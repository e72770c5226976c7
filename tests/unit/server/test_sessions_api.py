"""The sessions list (filters, cursor paging), one session, and its paged timeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings

PASSWORD = "unit-test-password"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path, demo_password=PASSWORD))) as c:
        yield c


def auth(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def make_sessions(client: TestClient) -> list[str]:
    """Five sessions: pump-7 x3 (worker + mentor), pump-8 x2 (mentor only), with events."""
    events = client.app.state.services.events  # type: ignore[attr-defined]
    ids = []

    async def build() -> None:
        for i, (room, people) in enumerate(
            [("pump-7", ["worker", "mentor"])] * 3 + [("pump-8", ["mentor"])] * 2
        ):
            record = await events.open_session(room)
            for person in people:
                await events.append(record.id, "join", {"role": "x"}, actor=person)
            for n in range(i * 3):
                await events.append(record.id, "chat", {"text": f"m{n}"}, actor=people[0])
            ids.append(record.id)

    client.portal.call(build)  # type: ignore[union-attr]
    return ids


def test_list_filters_and_pages(client: TestClient) -> None:
    ids = make_sessions(client)
    trainer = auth(client, "trainer")
    everything = client.get("/api/sessions", headers=trainer).json()
    assert [s["id"] for s in everything["sessions"]] == ids[::-1]  # newest first
    assert everything["next"] is None
    first = everything["sessions"][-1]
    assert first["participants"] == ["mentor", "worker"] and first["events"] == 2
    pump7 = client.get("/api/sessions?room=pump-7", headers=trainer).json()["sessions"]
    assert sorted(s["id"] for s in pump7) == sorted(ids[:3])
    with_worker = client.get("/api/sessions?participant=worker", headers=trainer).json()
    assert sorted(s["id"] for s in with_worker["sessions"]) == sorted(ids[:3])
    # cursor paging: 2 + 2 + 1, no repeats, no gaps
    seen, cursor = [], None
    while True:
        url = "/api/sessions?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=trainer).json()
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    recorded = client.get("/api/sessions?has_recording=true", headers=trainer).json()
    assert recorded["sessions"] == []  # nothing recorded in these
    assert len(client.get("/api/sessions?has_recording=false", headers=trainer).json()[
        "sessions"]) == 5  # fmt: skip
    future = client.get("/api/sessions?since=2999-01-01T00:00:00Z", headers=trainer).json()
    assert future["sessions"] == []


def test_workers_see_only_their_sessions(client: TestClient) -> None:
    ids = make_sessions(client)
    worker = auth(client, "worker")
    mine = client.get("/api/sessions", headers=worker).json()["sessions"]
    assert sorted(s["id"] for s in mine) == sorted(ids[:3])
    assert client.get("/api/sessions?participant=mentor", headers=worker).status_code == 403
    assert client.get(f"/api/sessions/{ids[4]}", headers=worker).status_code == 404
    assert client.get(f"/api/sessions/{ids[0]}", headers=worker).status_code == 200
    assert client.get(f"/api/sessions/{ids[4]}/events", headers=worker).status_code == 404


def test_detail_and_timeline_pages(client: TestClient) -> None:
    ids = make_sessions(client)
    mentor = auth(client, "mentor")
    detail = client.get(f"/api/sessions/{ids[4]}", headers=mentor).json()
    assert detail["event_types"] == {"join": 1, "chat": 12} and detail["live"] is True
    seqs, after = [], 0
    while True:
        page = client.get(
            f"/api/sessions/{ids[4]}/events?after_seq={after}&limit=5", headers=mentor
        ).json()
        seqs += [e["seq"] for e in page["events"]]
        after = page["next_after_seq"]
        if not page["more"]:
            break
    assert seqs == list(range(1, 14))
    chats = client.get(f"/api/sessions/{ids[4]}/events?type=chat", headers=mentor).json()
    assert [e["payload"]["text"] for e in chats["events"]][:2] == ["m0", "m1"]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/sessions/" + "0" * 32, 404),
        ("/api/sessions/not-a-session-id", 422),
        ("/api/sessions/" + "0" * 32 + "/events", 404),
        ("/api/sessions?cursor=garbage!!", 422),
        ("/api/sessions?since=2026-01-01T00:00:00", 422),  # no time zone
        ("/api/sessions?limit=0", 422),
        ("/api/sessions?room=../etc", 422),
        ("/api/sessions/" + "0" * 32 + "/events?after_seq=-1", 422),
        ("/api/sessions/" + "0" * 32 + "/events?limit=100000", 422),
    ],
)
def test_bad_requests_get_clear_errors(client: TestClient, url: str, status: int) -> None:
    r = client.get(url, headers=auth(client, "trainer"))
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_needs_a_login(client: TestClient) -> None:
    assert client.get("/api/sessions").status_code == 401
