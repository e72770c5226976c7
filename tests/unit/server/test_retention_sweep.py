"""Retention: the sweep (one function for the CLI and the server's task), the CLI, the admin API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.__main__ import main
from server.retention import RetentionReport, RetentionTask, apply_retention
from tests.unit.server.session_records import (
    admin,
    auth,
    call,
    make_client,
    recording,
    services,
    session,
    tamper,
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(tmp_path)


def _sweep(client: TestClient, **kwargs: object) -> RetentionReport:
    svc = services(client)
    report: RetentionReport = call(
        client,
        apply_retention,
        events=svc.events,
        recordings=svc.recordings,
        retention=svc.retention,
        data_dir=svc.settings.data_dir,
        **kwargs,
    )
    return report


def _aged(client: TestClient) -> dict[str, tuple[str, str]]:
    """Two sessions: old (recordings 40 and 10 days old) and new (2 days)."""
    old, new = session(client), session(client, "pump-8")
    return {
        "old-40": (old, recording(client, old, "worker-video", b"a" * 400, age_days=40)),
        "old-10": (old, recording(client, old, "audio-x-1", b"b" * 100, kind="audio", age_days=10)),
        "new-2": (new, recording(client, new, "worker-video", b"c" * 50, age_days=2)),
    }


def _left(client: TestClient, ids: dict[str, tuple[str, str]]) -> list[str]:
    svc = services(client)
    return [name for name, (_, rid) in ids.items() if call(client, svc.recordings.get, rid)]


def _files(tmp_path: Path) -> list[str]:
    return sorted(
        p.relative_to(tmp_path / "recordings").as_posix()
        for p in (tmp_path / "recordings").rglob("*.mp4")
    )


def test_dry_run_changes_nothing(client: TestClient, tmp_path: Path) -> None:
    ids = _aged(client)
    before = _files(tmp_path)
    report = _sweep(client, days=7, dry_run=True)
    assert [e.recording.id for e in report.expired] == [ids["old-40"][1], ids["old-10"][1]]
    assert report.bytes == 500
    assert _left(client, ids) == ["old-40", "old-10", "new-2"]
    assert _files(tmp_path) == before
    old = ids["old-40"][0]
    assert (
        "retention"
        not in client.get(f"/api/sessions/{old}", headers=auth(client, "mentor")).json()[
            "event_types"
        ]
    )


def test_real_run_deletes_only_the_expired_and_logs_it(client: TestClient, tmp_path: Path) -> None:
    ids = _aged(client)
    call(client, services(client).retention.set, 20)
    report = _sweep(client)  # the stored period
    assert report.days == 20
    assert [e.recording.track for e in report.expired] == ["worker-video"]
    assert _left(client, ids) == ["old-10", "new-2"]
    old, new = ids["old-40"][0], ids["new-2"][0]
    assert _files(tmp_path) == sorted([f"{old}/audio-x-1.mp4", f"{new}/worker-video.mp4"])
    events = client.get(
        f"/api/sessions/{old}/events?type=retention", headers=auth(client, "mentor")
    ).json()["events"]
    assert len(events) == 1
    payload = events[0]["payload"]
    assert payload["bytes"] == 400 and payload["retention_days"] == 20
    assert [d["recording_id"] for d in payload["deleted"]] == [ids["old-40"][1]]
    assert (
        payload["deleted"][0]["track"] == "worker-video"
        and payload["deleted"][0]["size_bytes"] == 400
    )
    # Nothing logged where nothing was deleted; a second run finds nothing.
    assert (
        client.get(
            f"/api/sessions/{new}/events?type=retention", headers=auth(client, "mentor")
        ).json()["events"]
        == []
    )
    assert _sweep(client).expired == ()


def test_forever_keeps_everything(client: TestClient, tmp_path: Path) -> None:
    ids = _aged(client)
    report = _sweep(client)  # never set: forever
    assert (report.days, report.expired) == (None, ())
    call(client, services(client).retention.set, None)
    assert _sweep(client).expired == ()
    assert _left(client, ids) == list(ids) and len(_files(tmp_path)) == 3


def test_a_tampered_row_goes_but_its_target_stays(client: TestClient, tmp_path: Path) -> None:
    ids = _aged(client)
    keep = tmp_path / "keep.mp4"
    keep.write_bytes(b"keep")
    tamper(client, ids["old-40"][1], "keep.mp4")
    report = _sweep(client, days=20)
    assert [e.path for e in report.expired] == [None]
    assert _left(client, ids) == ["old-10", "new-2"] and keep.read_bytes() == b"keep"


def test_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for client in make_client(tmp_path):
        ids = _aged(client)
    # The server has stopped; the CLI opens the same database.
    monkeypatch.setenv("FIELDSIGHT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FIELDSIGHT_DATABASE_URL", raising=False)

    assert main(["admin", "retention"]) == 0
    out = capsys.readouterr().out
    assert "kept forever" in out and "deleted 0 recording(s)" in out

    assert main(["admin", "retention", "--days", "5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "kept 5 days (was forever) [dry run: not stored]" in out
    assert out.count("would delete: ") == 2
    assert f"{ids['old-40'][0]}  worker-video" in out and "40 days old" in out and "400 B" in out
    assert "would delete 2 recording(s), 500 bytes" in out
    assert len(_files(tmp_path)) == 3

    assert main(["admin", "retention", "--days", "30"]) == 0
    out = capsys.readouterr().out
    assert "kept 30 days (was forever)" in out and "deleted 1 recording(s), 400 bytes" in out
    assert len(_files(tmp_path)) == 2

    assert main(["admin", "retention", "--forever"]) == 0
    assert "kept forever (was 30)" in capsys.readouterr().out

    assert main(["admin", "retention", "--days", "0"]) == 2
    assert "--days must be from 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["admin", "retention", "--days", "5", "--forever"])
    with pytest.raises(SystemExit):
        main(["admin", "retention", "--days", "x"])


def test_admin_api_reads_and_sets_the_period(client: TestClient) -> None:
    root = admin(client)
    assert client.get("/api/admin/retention", headers=root).json() == {
        "days": None,
        "forever": True,
        "sweep_interval_s": 3600.0,
    }
    r = client.put("/api/admin/retention", json={"days": 30}, headers=root)
    assert r.status_code == 200 and r.json()["days"] == 30
    assert client.get("/api/admin/retention", headers=root).json()["days"] == 30
    assert call(client, services(client).retention.get) == 30
    assert client.put("/api/admin/retention", json={"days": None}, headers=root).json()["forever"]
    for role in ("mentor", "trainer"):
        headers = auth(client, role)
        assert client.get("/api/admin/retention", headers=headers).status_code == 403
        assert (
            client.put("/api/admin/retention", json={"days": 1}, headers=headers).status_code == 403
        )


@pytest.mark.parametrize(
    "body",
    [
        {"days": 0},
        {"days": -3},
        {"days": 36501},
        {"days": "30"},
        {"days": 1.5},
        {"days": True},
        {},
        {"days": 3, "x": 1},
    ],
)
def test_admin_api_refuses_bad_days(client: TestClient, body: object) -> None:
    r = client.put("/api/admin/retention", json=body, headers=admin(client))
    assert r.status_code == 422, body
    assert r.json()["detail"]
    assert call(client, services(client).retention.get) is None


def test_the_server_sweeps_on_its_own(tmp_path: Path) -> None:
    task: RetentionTask | None = None
    for client in make_client(tmp_path, retention_interval_s=0.05):
        ids = _aged(client)
        task = services(client).retention_task
        assert task is not None and task.running
        client.put("/api/admin/retention", json={"days": 7}, headers=admin(client))
        deadline = time.monotonic() + 10
        while _left(client, ids) != ["new-2"]:
            assert time.monotonic() < deadline, "the retention task never ran"
            time.sleep(0.02)
        old = ids["old-40"][0]
        events = client.get(
            f"/api/sessions/{old}/events?type=retention", headers=auth(client, "mentor")
        ).json()
        assert len(events["events"]) == 1 and events["events"][0]["payload"]["bytes"] == 500
    assert task is not None and task.runs > 1
    assert not task.running  # cancelled and awaited on shutdown
