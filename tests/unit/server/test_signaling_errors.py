"""Every kind of bad signaling input gets a clear answer, and hurts no one else."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from server.settings import Settings

PASSWORD = "unit-test-password"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, demo_password=PASSWORD, max_message_bytes=4096)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def token(client: TestClient, username: str) -> str:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def join(username: str, tok: str, room: str = "pump-7", role: str | None = None) -> str:
    return json.dumps(
        {"v": 1, "type": "join", "token": tok, "room": room, "role": role or username}
    )


def closed_with(ws: Any) -> tuple[int, str]:
    """Read until the server closes; return (code, reason)."""
    with pytest.raises(WebSocketDisconnect) as info:
        for _ in range(10):
            ws.receive_json()
    return info.value.code, info.value.reason


def test_login_and_me(client: TestClient) -> None:
    tok = token(client, "mentor")
    r = client.get("/api/auth/me", headers={"Authorization": f"Bearer {tok}"})
    assert r.json() == {"username": "mentor", "role": "mentor"}
    bad = client.post("/api/auth/login", json={"username": "mentor", "password": "nope-nope"})
    assert bad.status_code == 401 and "wrong username or password" in bad.text
    assert client.get("/api/auth/me").status_code == 401
    assert client.get("/api/rooms", headers={"Authorization": "Bearer junk"}).status_code == 401


def test_healthz_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200


def test_join_then_ping(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(join("mentor", token(client, "mentor")))
        joined = ws.receive_json()
        assert joined["type"] == "joined" and joined["room"] == "pump-7"
        assert joined["data_channels"] == {"telemetry": 0, "overlay": 1, "annotations": 2}
        ws.send_text('{"type":"ping","id":3}')
        assert ws.receive_json() == {"v": 1, "type": "pong", "id": 3}


@pytest.mark.parametrize(
    ("first", "code", "words"),
    [
        ("{nope", 4000, "not valid JSON"),
        ('{"v":9,"type":"join"}', 4002, "version 9 is not supported"),
        ('{"type":"offer","sdp":"v=0"}', 4005, "first message must be join"),
        ('{"type":"answer","sdp":"v=0"}', 4000, "answer is not expected"),
        (join("mentor", "not-a-token"), 4001, "not valid"),
        ("x" * 5000, 4009, "exceeds"),
    ],
)
def test_bad_first_message_closes_with_reason(
    client: TestClient, first: str, code: int, words: str
) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(first)
        got_code, reason = closed_with(ws)
    assert got_code == code
    assert words in reason


def test_expired_token(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    old, _ = services.tokens.issue("mentor", "mentor", now=time.time() - 10 * 86400)
    with client.websocket_connect("/ws") as ws:
        ws.send_text(join("mentor", old))
        code, reason = closed_with(ws)
    assert code == 4001 and "expired" in reason


def test_role_decides_what_one_may_join_as(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(join("worker", token(client, "worker"), role="mentor"))
        code, reason = closed_with(ws)
    assert code == 4003 and "worker account cannot join as mentor" in reason
    with client.websocket_connect("/ws") as ws:
        ws.send_text(join("mentor", token(client, "mentor"), role="worker"))
        assert closed_with(ws)[0] == 4003


def test_errors_after_join_keep_the_connection(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(join("mentor", token(client, "mentor")))
        assert ws.receive_json()["type"] == "joined"
        for raw, code in [
            ("{broken", "bad_json"),
            ('{"type":"dance"}', "unknown_type"),
            ('{"type":"answer","sdp":"v=0"}', "out_of_order"),
            ('{"type":"offer"}', "invalid"),
            ('{"type":"offer","sdp":"this is not SDP"}', "bad_offer"),
            (join("mentor", "x"), "already_joined"),
        ]:
            ws.send_text(raw)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["code"] == code, (raw, reply)
            assert reply["message"]
        ws.send_text('{"type":"ping","id":1}')
        assert ws.receive_json()["type"] == "pong"


def test_too_many_errors_close(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(join("mentor", token(client, "mentor")))
        ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as info:
            for _ in range(40):
                ws.send_text("{bad")
                ws.receive_json()
        assert info.value.code == 4007


def test_second_worker_refused_first_unharmed(client: TestClient) -> None:
    worker_token = token(client, "worker")
    with client.websocket_connect("/ws") as first:
        first.send_text(join("worker", worker_token))
        assert first.receive_json()["type"] == "joined"
        with client.websocket_connect("/ws") as second:
            second.send_text(join("worker", worker_token))
            code, reason = closed_with(second)
        assert code == 4004 and "already has a worker" in reason
        first.send_text('{"type":"ping","id":7}')
        assert first.receive_json()["id"] == 7
        rooms = client.get("/api/rooms", headers={"Authorization": f"Bearer {worker_token}"}).json()
        assert rooms[0]["has_worker"] and len(rooms[0]["participants"]) == 1


def test_joins_and_leaves_are_logged(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(join("mentor", token(client, "mentor"), room="log-room"))
        session_id = ws.receive_json()["session_id"]
        ws.send_text("{bad")  # a bad message loses nothing already stored
        ws.receive_json()
    services = client.app.state.services  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while True:  # the leave is logged as the server notices the closed socket
        events = client.portal.call(services.events.events, session_id)  # type: ignore[union-attr]
        if len(events) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert [(e.seq, e.type) for e in events] == [(1, "join"), (2, "leave")]
