"""The recordings of a session over REST: the list, and downloads with HTTP Range."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.routes.sessions import _Unsatisfiable, parse_range
from tests.unit.server.session_records import (
    auth,
    make_client,
    recording,
    services,
    session,
    tamper,
)

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(tmp_path)


@pytest.fixture
def video(client: TestClient) -> tuple[str, str]:
    sid = session(client)
    return sid, recording(client, sid, "worker-video", DATA)


def test_list_gives_the_index_rows_with_urls(client: TestClient, video: tuple[str, str]) -> None:
    sid, rid = video
    voice = recording(client, sid, "audio-mentor-1", b"aac", kind="audio")
    rows = client.get(f"/api/sessions/{sid}/recordings", headers=auth(client, "mentor")).json()
    assert [r["id"] for r in rows["recordings"]] == [rid, voice]
    first = rows["recordings"][0]
    assert first["url"] == f"/api/sessions/{sid}/recordings/{rid}"
    assert (first["track"], first["kind"], first["status"], first["size_bytes"]) == (
        "worker-video",
        "video",
        "complete",
        len(DATA),
    )
    assert {"participant", "codec", "started_at", "ended_at", "duration_s", "sha256"} <= set(first)
    audio = client.get(rows["recordings"][1]["url"], headers=auth(client, "mentor"))
    assert audio.headers["content-type"] == "audio/mp4" and audio.content == b"aac"


def test_whole_file(client: TestClient, video: tuple[str, str]) -> None:
    sid, rid = video
    r = client.get(f"/api/sessions/{sid}/recordings/{rid}", headers=auth(client, "worker"))
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(len(DATA))
    assert "content-range" not in r.headers


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),  # the first bytes
        ("bytes=1000-1999", 1000, 1999),  # the middle
        ("bytes=-100", len(DATA) - 100, len(DATA) - 1),  # a suffix
        ("bytes=10000-", 10000, len(DATA) - 1),  # open-ended
        ("bytes=10200-99999", 10200, len(DATA) - 1),  # an end past the file is cut
        ("bytes=-99999", 0, len(DATA) - 1),  # a suffix longer than the file
        ("BYTES = 5-5", 5, 5),
        ("bytes=0-", 0, len(DATA) - 1),
    ],
)
def test_single_ranges_get_206(
    client: TestClient, video: tuple[str, str], header: str, first: int, last: int
) -> None:
    sid, rid = video
    r = client.get(
        f"/api/sessions/{sid}/recordings/{rid}",
        headers={**auth(client, "mentor"), "Range": header},
    )
    assert r.status_code == 206, r.text
    assert r.content == DATA[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert r.headers["content-length"] == str(last - first + 1)
    assert r.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=99999-100000", "bytes=-0"])
def test_out_of_bounds_gets_416_with_the_size(
    client: TestClient, video: tuple[str, str], header: str
) -> None:
    sid, rid = video
    r = client.get(
        f"/api/sessions/{sid}/recordings/{rid}",
        headers={**auth(client, "mentor"), "Range": header},
    )
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(DATA)}"
    assert "outside the file" in r.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "items=0-5",
        "bytes=5-3",
        "0-5",
        "bytes=0-1,5-9",
        "bytes=0x10-",
    ],
)
def test_malformed_or_multiple_ranges_are_ignored(
    client: TestClient, video: tuple[str, str], header: str
) -> None:
    sid, rid = video
    r = client.get(
        f"/api/sessions/{sid}/recordings/{rid}",
        headers={**auth(client, "mentor"), "Range": header},
    )
    assert r.status_code == 200
    assert r.content == DATA


def test_if_range_sends_everything_once_the_file_changed(
    client: TestClient, video: tuple[str, str]
) -> None:
    sid, rid = video
    url = f"/api/sessions/{sid}/recordings/{rid}"
    mentor = auth(client, "mentor")
    etag = client.get(url, headers=mentor).headers["etag"]
    same = client.get(url, headers={**mentor, "Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == DATA[:10]
    stale = client.get(url, headers={**mentor, "Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == DATA


def test_parse_range_edges() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=9-9", 10) == (9, 9)
    assert parse_range("bytes=\u0661-", 10) is None  # only ASCII digits
    with pytest.raises(_Unsatisfiable):
        parse_range("bytes=0-", 0)  # nothing of an empty file can be sent
    with pytest.raises(_Unsatisfiable):
        parse_range("bytes=-5", 0)


@pytest.mark.parametrize("path", ["../../outside.mp4", "recordings/../fieldsight.db", "secret"])
def test_a_tampered_row_never_reaches_outside_the_recordings(
    client: TestClient, video: tuple[str, str], tmp_path: Path, path: str
) -> None:
    sid, rid = video
    (tmp_path.parent / "outside.mp4").write_bytes(b"not yours")
    (tmp_path / "secret").write_bytes(b"not yours")
    tamper(client, rid, path)
    r = client.get(f"/api/sessions/{sid}/recordings/{rid}", headers=auth(client, "mentor"))
    assert r.status_code == 409
    assert "outside the recordings folder" in r.json()["detail"]
    assert b"not yours" not in r.content


def test_a_symlink_out_of_the_recordings_is_refused(
    client: TestClient, video: tuple[str, str], tmp_path: Path
) -> None:
    sid, rid = video
    target = tmp_path / "recordings" / sid / "worker-video.mp4"
    target.unlink()
    target.symlink_to(tmp_path / "fieldsight.db")
    r = client.get(f"/api/sessions/{sid}/recordings/{rid}", headers=auth(client, "mentor"))
    assert r.status_code == 409


def test_missing_file_is_404_with_words(client: TestClient, video: tuple[str, str]) -> None:
    sid, rid = video
    (services(client).settings.data_dir / "recordings" / sid / "worker-video.mp4").unlink()
    r = client.get(f"/api/sessions/{sid}/recordings/{rid}", headers=auth(client, "mentor"))
    assert r.status_code == 404
    assert "missing" in r.json()["detail"]


def test_recordings_of_another_session_or_person(
    client: TestClient, video: tuple[str, str]
) -> None:
    sid, rid = video
    other = session(client, "pump-8", ("mentor",))
    mentor, worker = auth(client, "mentor"), auth(client, "worker")
    assert client.get(f"/api/sessions/{other}/recordings/{rid}", headers=mentor).status_code == 404
    # Workers see only sessions they took part in.
    assert client.get(f"/api/sessions/{other}/recordings", headers=worker).status_code == 404
    assert client.get(f"/api/sessions/{sid}/recordings", headers=worker).status_code == 200
    assert client.get(f"/api/sessions/{sid}/recordings").status_code == 401


@pytest.mark.parametrize(
    ("suffix", "status"),
    [
        ("/recordings", 404),
        ("/recordings/" + "f" * 32, 404),
        ("/recordings/not-hex", 422),
        ("/export", 404),
    ],
)
def test_bad_ids(client: TestClient, video: tuple[str, str], suffix: str, status: int) -> None:
    sid, _ = video
    for owner in ("0" * 32, sid):
        if owner == sid and suffix in ("/recordings", "/export"):
            continue
        r = client.get(f"/api/sessions/{owner}{suffix}", headers=auth(client, "mentor"))
        assert r.status_code == status, r.text
        assert r.json()["detail"]
    assert (
        client.get("/api/sessions/XYZ/recordings", headers=auth(client, "mentor")).status_code
        == 422
    )
