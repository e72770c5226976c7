"""Registering equipment over REST; what a trainer uploads is what the pipeline recognizes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.unit.vision.equipment_scenes import render_plane
from vision import Intrinsics, Pipeline, Telemetry
from vision.synthetic import facing_rvec, textured_background

PASSWORD = "unit-test-password"
CAMERA = Intrinsics.from_fov(640, 480, 60.0)


def auth(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def test_register_recognize_persist_remove(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, demo_password=PASSWORD)
    texture = textured_background(400, 300, seed=11)
    with TestClient(create_app(settings)) as client:
        trainer = auth(client, "trainer")
        r = client.put("/api/equipment/Pump P-7?width_m=0.3", content=png(texture),
                       headers={**trainer, "Content-Type": "image/png"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Pump P-7" and r.json()["width_m"] == 0.3
    # A fresh process over the same data directory knows the equipment again.
    with TestClient(create_app(settings)) as client:
        trainer = auth(client, "trainer")
        assert [e["name"] for e in client.get("/api/equipment", headers=trainer).json()] == [
            "Pump P-7"
        ]
        hub = client.app.state.services.hub  # type: ignore[attr-defined]
        pipeline = Pipeline(replace(hub._new_pipeline("r")[0].options, stages=("equipment",)))
        frame = render_plane(
            textured_background(640, 480, seed=2), texture, 0.3, facing_rvec(20, 30),
            (0.02, 0.0, 0.7), CAMERA,
        )  # fmt: skip
        result = pipeline.process(frame, Telemetry(pts=0))
        pipeline.close()
        assert [o.label for o in result.objects] == ["Pump P-7"]
        assert result.objects[0].tvec is not None and abs(result.objects[0].tvec[2] - 0.7) < 0.03
        assert client.delete("/api/equipment/Pump P-7", headers=trainer).status_code == 204
        assert client.get("/api/equipment", headers=trainer).json() == []
        assert client.delete("/api/equipment/Pump P-7", headers=trainer).status_code == 404
    assert not list((tmp_path / "equipment").iterdir())


def test_bad_uploads_store_nothing(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, demo_password=PASSWORD))) as client:
        trainer = auth(client, "trainer")
        flat = np.full((300, 400, 3), 128, np.uint8)
        for body, words in [
            (png(flat), "usable features"),
            (b"not an image at all", "not an image"),
            (b"", "empty upload"),
        ]:
            r = client.put("/api/equipment/Blank?width_m=0.3", content=body, headers=trainer)
            assert r.status_code == 422 and words in r.text, r.text
        r = client.put("/api/equipment/X?width_m=0", content=png(flat), headers=trainer)
        assert r.status_code == 422
        worker = auth(client, "worker")
        r = client.put("/api/equipment/X?width_m=0.3", content=png(flat), headers=worker)
        assert r.status_code == 403
        assert client.get("/api/equipment", headers=trainer).json() == []
    assert not (tmp_path / "equipment").exists() or not list((tmp_path / "equipment").iterdir())
