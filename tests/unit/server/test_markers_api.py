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


def test_trainer_registers_a_marker_everyone_reads_it(client: TestClient) -> None:
    trainer, worker = auth(client, "trainer"), auth(client, "worker")
    body = {"name": "Pump P-7 inlet valve", "size_m": 0.15}
    r = client.put("/api/markers/aruco_4x4_50/7", json=body, headers=trainer)
    assert r.status_code == 200, r.text
    assert r.json() == {**body, "family": "aruco_4x4_50", "marker_id": 7}
    listed = client.get("/api/markers", headers=worker).json()
    assert listed == [{**body, "family": "aruco_4x4_50", "marker_id": 7}]
    hub = client.app.state.services.hub  # type: ignore[attr-defined]
    assert hub.marker_label(7) == "Pump P-7 inlet valve"
    assert hub._new_pipeline()[0].options.marker_sizes[7] == 0.15
    assert client.delete("/api/markers/aruco_4x4_50/7", headers=trainer).status_code == 204
    assert hub.marker_label(7) is None
    assert client.delete("/api/markers/aruco_4x4_50/7", headers=trainer).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/markers/aruco_4x4_50/7", {"name": "x", "size_m": 0}, 422, "greater than 0"),
        ("/api/markers/aruco_4x4_50/7", {"name": "", "size_m": 0.1}, 422, "at least 1"),
        ("/api/markers/aruco_4x4_50/-3", {"name": "x", "size_m": 0.1}, 422, "greater than"),
        ("/api/markers/qr_codes/7", {"name": "x", "size_m": 0.1}, 422, "unknown marker family"),
        ("/api/markers/aruco_4x4_50/7", {"name": "x"}, 422, "size_m"),
    ],
)
def test_bad_marker_input(
    client: TestClient, path: str, body: dict[str, object], status: int, words: str
) -> None:
    r = client.put(path, json=body, headers=auth(client, "trainer"))
    assert r.status_code == status and words in r.text
    assert client.get("/api/markers", headers=auth(client, "trainer")).json() == []


def test_workers_and_mentors_cannot_edit(client: TestClient) -> None:
    for user in ("worker", "mentor"):
        r = client.put("/api/markers/aruco_4x4_50/1", json={"name": "x", "size_m": 0.1},
                       headers=auth(client, user))  # fmt: skip
        assert r.status_code == 403


def test_room_settings_choose_stages(client: TestClient) -> None:
    mentor, worker = auth(client, "mentor"), auth(client, "worker")
    stages = client.get("/api/vision/stages", headers=worker).json()
    assert "markers" in stages
    default = client.get("/api/rooms/pump-7/settings", headers=worker).json()
    assert default == {
        "room": "pump-7", "custom": False, "stages": ["markers", "tracking", "anchors"], "fps": 10.0
    }  # fmt: skip
    r = client.put("/api/rooms/pump-7/settings", json={"stages": ["markers"], "fps": 5},
                   headers=mentor)  # fmt: skip
    assert r.status_code == 200 and r.json()["fps"] == 5
    hub = client.app.state.services.hub  # type: ignore[attr-defined]
    pipeline, fps = hub._new_pipeline("pump-7")
    assert fps == 5 and pipeline.options.stages == ("markers",)
    assert client.get("/api/rooms/pump-7/settings", headers=worker).json()["custom"] is True
    for body, words in [({"stages": ["telepathy"]}, "telepathy"),
                        ({"stages": ["markers", "markers"]}, "repeated"),
                        ({"stages": [], "fps": 0}, "greater than 0")]:  # fmt: skip
        bad = client.put("/api/rooms/pump-7/settings", json=body, headers=mentor)
        assert bad.status_code == 422 and words in bad.text
    assert client.put("/api/rooms/pump-7/settings", json={"stages": []},
                      headers=worker).status_code == 403  # fmt: skip
    assert client.put("/api/rooms/bad room/settings", json={"stages": []},
                      headers=mentor).status_code in (404, 422)  # fmt: skip


def test_room_safety_zones(client: TestClient) -> None:
    mentor = auth(client, "mentor")
    zone = {"name": "press", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.6]]}
    body = {"stages": ["pose", "safety"], "safety_zones": [zone]}
    r = client.put("/api/rooms/pump-7/settings", json=body, headers=mentor)
    assert r.status_code == 200, r.text
    assert r.json()["safety_zones"] == [zone]
    hub = client.app.state.services.hub  # type: ignore[attr-defined]
    options = hub._new_pipeline("pump-7")[0].options
    assert [z.name for z in options.safety.zones] == ["press"]
    for bad, words in [
        ({"stages": ["pose"], "safety_zones": [zone]}, "need the 'safety' stage"),
        ({"stages": ["safety", "pose"], "safety_zones": [zone]}, "needs the 'pose' stage"),
        ({"stages": ["pose", "safety"], "safety_zones": [{**zone, "polygon": [[0, 0], [1, 1]]}]},
         "at least 3"),
    ]:  # fmt: skip
        r = client.put("/api/rooms/pump-7/settings", json=bad, headers=mentor)
        assert r.status_code == 422 and words in r.text, r.text


def test_room_world_safety_zones(client: TestClient) -> None:
    mentor = auth(client, "mentor")
    lane = {
        "name": "forklift lane",
        "reference": "marker:7",
        "polygon": [[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0]],
    }
    hands = {"name": "press", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.6]], "keypoints": [15]}
    body = {"stages": ["markers", "pose", "safety"], "safety_zones": [lane, hands]}
    r = client.put("/api/rooms/pump-8/settings", json=body, headers=mentor)
    assert r.status_code == 200, r.text
    effective = [{**lane, "keypoints": [27, 28, 29, 30, 31, 32]}, hands]  # feet by default
    assert r.json()["safety_zones"] == effective
    stored = client.get("/api/rooms/pump-8/settings", headers=mentor).json()
    assert stored["safety_zones"] == effective
    hub = client.app.state.services.hub  # type: ignore[attr-defined]
    safety = hub._new_pipeline("pump-8")[0].options.safety
    assert [z.name for z in safety.world_zones] == ["forklift lane"]
    assert [(z.name, z.keypoints) for z in safety.zones] == [("press", (15,))]
    for bad, words in [
        ({**lane, "polygon": [[0, 0], [1, 0], [1, 1]]}, "(x, y, z) metres"),
        ({**hands, "polygon": [[0, 0, 0], [1, 0, 0], [1, 1, 0]]}, "(u, v) pairs"),
        ({**lane, "reference": "../../etc"}, "pattern"),
        ({**lane, "polygon": [[0, 0, 0], [1e9, 0, 0], [1, 1, 0]]}, "within 1 km"),
        ({**hands, "keypoints": [40]}, "less than or equal to 32"),
    ]:
        body = {"stages": ["markers", "pose", "safety"], "safety_zones": [bad]}
        r = client.put("/api/rooms/pump-8/settings", json=body, headers=mentor)
        assert r.status_code == 422 and words in r.text, r.text
