"""The two programs as people run them: the server and the reference headset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import PASSWORD, ServerProcess

pytestmark = pytest.mark.network


def run(
    module: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_headset_cli_streams_and_reports(server_process: ServerProcess, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run(
        "headset_client", "--server", server_process.url, "--user", "worker",
        "--password", PASSWORD, "--room", "pump-7", "--source", "synthetic",
        "--duration", "4", "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["frames_sent"] > 60
    assert data["overlays_received"] > 10 and data["overlays_unmatched"] == 0
    assert data["overlay_latency_ms"]["p50"] is not None
    for key in ("annotations_received", "annotation_latency_ms"):
        assert key in data


def test_headset_cli_wrong_password_says_so(server_process: ServerProcess) -> None:
    result = run(
        "headset_client", "--server", server_process.url, "--password", "not-the-password",
        "--duration", "1",
    )  # fmt: skip
    assert result.returncode == 1
    assert "login refused (401)" in result.stderr


def test_headset_cli_bad_source(tmp_path: Path) -> None:
    result = run("headset_client", "--source", f"file:{tmp_path}/missing.mp4")
    assert result.returncode == 2 and "cannot open video file" in result.stderr


def test_admin_create_user(tmp_path: Path) -> None:
    env = {"FIELDSIGHT_DATA_DIR": str(tmp_path)}
    create = ("admin", "create-user")
    ok = run("server", *create, "ana", "--role", "mentor", "--password-stdin",
             stdin="a-long-password\n", env=env)  # fmt: skip
    assert ok.returncode == 0 and "created mentor ana" in ok.stdout
    again = run("server", *create, "ana", "--role", "mentor", "--password-stdin",
                stdin="a-long-password\n", env=env)  # fmt: skip
    assert again.returncode == 1 and "ana" in again.stderr and "exists" in again.stderr
    short = run("server", *create, "bo", "--role", "worker", "--password-stdin",
                stdin="short\n", env=env)  # fmt: skip
    assert short.returncode == 1 and "at least 8" in short.stderr


def test_prod_mode_refuses_dev_secret(tmp_path: Path) -> None:
    env = {"FIELDSIGHT_MODE": "prod", "FIELDSIGHT_DATA_DIR": str(tmp_path),
           "FIELDSIGHT_SECRET_KEY": ""}  # fmt: skip
    result = run("server", env=env)
    assert result.returncode == 2 and "at least 32 characters" in result.stderr
    env.pop("FIELDSIGHT_SECRET_KEY")
    os_env = {k: v for k, v in os.environ.items() if k != "FIELDSIGHT_SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "server"], env={**os_env, **env}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "refuses the built-in development secret" in result.stderr
