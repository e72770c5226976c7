"""A session's export as a zip, and an admin's erasure of a session."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

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

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 30
VOICE = b"voice" * 100
OVERLAYS = b'{"type":"ink","pts":1}\n{"type":"ink","pts":2}\n'


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(tmp_path)


def _recorded(client: TestClient, room: str = "pump-7") -> tuple[str, list[str]]:
    sid = session(client, room)
    ids = [
        recording(client, sid, "worker-video", VIDEO),
        recording(client, sid, "audio-mentor-1", VOICE, kind="audio"),
    ]
    (services(client).settings.data_dir / "recordings" / sid / "overlays.jsonl").write_bytes(
        OVERLAYS
    )
    return sid, ids


def test_export_holds_every_part_with_checksums(client: TestClient) -> None:
    sid, ids = _recorded(client)
    r = client.get(f"/api/sessions/{sid}/export", headers=auth(client, "worker"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert f"session-{sid}.zip" in r.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == [
        "events.jsonl",
        "manifest.json",
        "overlays.jsonl",
        "recordings/audio-mentor-1.mp4",
        "recordings/worker-video.mp4",
    ]
    events = [json.loads(line) for line in archive.read("events.jsonl").decode().splitlines()]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert set(events[0]) == {"seq", "wall_time", "media_pts", "actor", "type", "payload"}
    assert events[2]["media_pts"] == 0 and events[2]["payload"] == {"text": "m0"}
    assert events[0]["wall_time"].endswith("+00:00")
    assert archive.read("recordings/worker-video.mp4") == VIDEO
    assert archive.read("recordings/audio-mentor-1.mp4") == VOICE
    assert archive.read("overlays.jsonl") == OVERLAYS

    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format_version"] == 1 and manifest["exported_by"] == "worker"
    assert manifest["exported_at"]
    assert manifest["session"]["id"] == sid and manifest["session"]["room"] == "pump-7"
    assert manifest["session"]["end_reason"] == "closed"
    assert manifest["events"]["count"] == 5
    assert manifest["events"]["sha256"] == hashlib.sha256(archive.read("events.jsonl")).hexdigest()
    by_id = {entry["id"]: entry for entry in manifest["recordings"]}
    assert list(by_id) == ids
    for entry, data in zip(manifest["recordings"], (VIDEO, VOICE), strict=True):
        digest = hashlib.sha256(archive.read(entry["file"])).hexdigest()
        assert (
            entry["sha256"]
            == entry["exported_sha256"]
            == digest
            == hashlib.sha256(data).hexdigest()
        )
        assert entry["size_bytes"] == entry["exported_size_bytes"] == len(data)
        assert entry["problem"] is None
    assert manifest["overlays"]["sha256"] == hashlib.sha256(OVERLAYS).hexdigest()
    assert not any((services(client).settings.data_dir / "tmp").iterdir())  # temp file gone


def test_export_lists_what_it_could_not_include(client: TestClient, tmp_path: Path) -> None:
    sid, (video, voice) = _recorded(client)
    (tmp_path.parent / "x.mp4").write_bytes(b"not yours")
    tamper(client, video, "../x.mp4")
    (tmp_path / "recordings" / sid / "audio-mentor-1.mp4").unlink()
    r = client.get(f"/api/sessions/{sid}/export", headers=auth(client, "mentor"))
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(archive.namelist()) == ["events.jsonl", "manifest.json", "overlays.jsonl"]
    problems = [e["problem"] for e in json.loads(archive.read("manifest.json"))["recordings"]]
    assert "outside the recordings folder" in problems[0] and problems[1] == "the file is missing"


def test_export_of_a_session_without_recordings(client: TestClient) -> None:
    sid = session(client, events=1200)  # more than one page of events
    r = client.get(f"/api/sessions/{sid}/export", headers=auth(client, "trainer"))
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(archive.namelist()) == ["events.jsonl", "manifest.json"]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["events"]["count"] == 1202 and manifest["overlays"] is None
    seqs = [json.loads(line)["seq"] for line in archive.read("events.jsonl").splitlines()]
    assert seqs == list(range(1, 1203))


def test_delete_is_for_admins_and_leaves_an_audit_event(client: TestClient, tmp_path: Path) -> None:
    sid, ids = _recorded(client)
    other, other_ids = _recorded(client, "pump-8")
    folder = tmp_path / "recordings" / sid
    for role in ("worker", "mentor", "trainer"):
        r = client.delete(f"/api/sessions/{sid}", headers=auth(client, role))
        assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert client.delete(f"/api/sessions/{sid}").status_code == 401
    assert folder.is_dir()

    twins = tmp_path / "twins"
    twins.mkdir(exist_ok=True)
    (twins / f"{sid}.glb").write_bytes(b"glTF-twin")
    (twins / f"{other}.glb").write_bytes(b"glTF-other")
    root = admin(client)
    r = client.delete(f"/api/sessions/{sid}?reason=worker%20asked", headers=root)
    assert r.status_code == 200, r.text
    assert not (twins / f"{sid}.glb").exists() and (twins / f"{other}.glb").exists()
    size = len(VIDEO) + len(VOICE) + len(OVERLAYS) + len(b"glTF-twin")
    assert r.json() == {
        "session_id": sid,
        "events_removed": 5,
        "recordings_removed": 2,
        "bytes_removed": size,
        "audit_seq": 6,
        "failed_files": [],
    }
    assert not folder.exists()  # files and overlays gone
    assert client.get(f"/api/sessions/{sid}/recordings", headers=root).json()["recordings"] == []
    events = client.get(f"/api/sessions/{sid}/events", headers=root).json()["events"]
    assert len(events) == 1
    audit = events[0]
    assert (audit["seq"], audit["type"], audit["actor"]) == (6, "session_deleted", "root")
    assert audit["payload"] == {
        "by": "root",
        "at": audit["payload"]["at"],
        "events_removed": 5,
        "recordings_removed": 2,
        "bytes_removed": size,
        "reason": "worker asked",
    }
    detail = client.get(f"/api/sessions/{sid}", headers=root).json()  # the session stays
    assert detail["id"] == sid and detail["event_types"] == {"session_deleted": 1}

    # The other session is untouched.
    assert [
        e["seq"] for e in client.get(f"/api/sessions/{other}/events", headers=root).json()["events"]
    ] == [1, 2, 3, 4, 5]
    rows = client.get(f"/api/sessions/{other}/recordings", headers=root).json()["recordings"]
    assert [row["id"] for row in rows] == other_ids
    assert (tmp_path / "recordings" / other / "overlays.jsonl").read_bytes() == OVERLAYS
    assert client.get(rows[0]["url"], headers=root).content == VIDEO

    # Deleting again removes only the audit event of the first time, and says so.
    again = client.delete(f"/api/sessions/{sid}", headers=root).json()
    assert (again["events_removed"], again["recordings_removed"], again["audit_seq"]) == (1, 0, 7)


def test_delete_refuses_live_sessions(client: TestClient) -> None:
    root = admin(client)
    live = session(client, end=False)
    r = client.delete(f"/api/sessions/{live}", headers=root)
    assert r.status_code == 409 and "still live" in r.json()["detail"]
    assert len(client.get(f"/api/sessions/{live}/events", headers=root).json()["events"]) == 5

    # A room of the hub still running on an ended session (the database lags) counts as live.
    ended, _ = _recorded(client)

    class Room:
        name = "pump-7"
        session_id = ended

    services(client).hub.rooms["pump-7"] = Room()  # type: ignore[assignment]
    try:
        r = client.delete(f"/api/sessions/{ended}", headers=root)
    finally:
        del services(client).hub.rooms["pump-7"]
    assert r.status_code == 409 and "live in room pump-7" in r.json()["detail"]
    assert (
        len(client.get(f"/api/sessions/{ended}/recordings", headers=root).json()["recordings"]) == 2
    )


def test_delete_never_touches_files_outside_the_recordings(
    client: TestClient, tmp_path: Path
) -> None:
    sid, (video, _) = _recorded(client)
    outside = tmp_path / "fieldsight-keep.txt"
    outside.write_bytes(b"keep me")
    tamper(client, video, "fieldsight-keep.txt")
    r = client.delete(f"/api/sessions/{sid}", headers=admin(client))
    assert r.status_code == 200 and r.json()["recordings_removed"] == 2
    assert outside.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/sessions/" + "0" * 32, 404),
        ("/api/sessions/not-hex", 422),
        ("/api/sessions/" + "0" * 32 + "?reason=", 422),
        ("/api/sessions/" + "0" * 32 + "?reason=" + "r" * 501, 422),
    ],
)
def test_delete_bad_inputs(client: TestClient, url: str, status: int) -> None:
    r = client.delete(url, headers=admin(client))
    assert r.status_code == status
    assert r.json()["detail"]


def test_erasure_survives_a_file_it_cannot_delete(client: TestClient, tmp_path: Path) -> None:
    sid, _ = _recorded(client)
    folder = tmp_path / "recordings" / sid
    (folder / "worker-video.mp4").unlink()  # already gone: not a failure
    r = client.delete(f"/api/sessions/{sid}", headers=admin(client))
    assert r.status_code == 200 and r.json()["failed_files"] == []
    assert r.json()["bytes_removed"] == len(VOICE) + len(OVERLAYS)
    assert call(client, services(client).recordings.list_for_session, sid) == []


def test_delete_removes_links_not_what_they_point_at(client: TestClient, tmp_path: Path) -> None:
    sid, _ = _recorded(client)
    other, _ = _recorded(client, "pump-8")
    theirs = tmp_path / "recordings" / other / "worker-video.mp4"
    mine = tmp_path / "recordings" / sid / "worker-video.mp4"
    mine.unlink()
    mine.symlink_to(theirs)
    r = client.delete(f"/api/sessions/{sid}", headers=admin(client))
    assert r.status_code == 200
    assert not mine.is_symlink() and theirs.read_bytes() == VIDEO
