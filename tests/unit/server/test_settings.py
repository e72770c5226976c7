from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import DEV_SECRET_KEY, Settings


def test_defaults_are_for_a_laptop(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FIELDSIGHT_PORT", "FIELDSIGHT_DATA_DIR", "FIELDSIGHT_MODE"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert (s.host, s.port, s.mode) == ("127.0.0.1", 8000, "dev")
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert s.resolved_database_url.endswith("data/fieldsight.db")


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FIELDSIGHT_PORT", "9123")
    monkeypatch.setenv("FIELDSIGHT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FIELDSIGHT_ICE_SERVERS", "stun:a.example:3478, turn:b.example")
    monkeypatch.setenv("FIELDSIGHT_ICE_HOST_ADDRESSES", '["192.0.2.1"]')
    s = Settings()
    assert s.port == 9123 and s.data_dir == tmp_path
    assert s.ice_servers == ["stun:a.example:3478", "turn:b.example"]
    assert s.ice_host_addresses == ["192.0.2.1"]


def test_production_refuses_the_dev_secret() -> None:
    with pytest.raises(ValueError, match="refuses the built-in development secret"):
        Settings(mode="prod", secret_key=DEV_SECRET_KEY)
    assert Settings(mode="prod", secret_key="x" * 40).mode == "prod"


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Settings(secret_key="short")


def test_database_url_wins() -> None:
    url = "postgresql+asyncpg://u@h/db"
    assert Settings(database_url=url).resolved_database_url == url
