"""Live servers for network tests: uvicorn in the test loop, or `python -m server` apart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import open_source
from server.app import create_app
from server.settings import Settings

PASSWORD = "test-password-1"


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: object

    @property
    def services(self):  # type: ignore[no-untyped-def]
        return self.app.state.services  # type: ignore[attr-defined]

    def login(self, username: str, password: str = PASSWORD) -> str:
        request = urllib.request.Request(
            self.url + "/api/auth/login",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["access_token"])

    async def login_async(self, username: str, password: str = PASSWORD) -> str:
        return await asyncio.to_thread(self.login, username, password)


async def start_server(
    tmp_path: Path, **overrides: object
) -> tuple[uvicorn.Server, asyncio.Task[None], LiveServer]:
    settings = Settings(
        port=0,
        data_dir=tmp_path / "data",
        demo_password=PASSWORD,
        ice_host_addresses=["127.0.0.1"],
        **overrides,  # type: ignore[arg-type]
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws_max_size=settings.max_message_bytes * 2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, LiveServer(url=f"http://127.0.0.1:{port}", settings=settings, app=app)


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    server, task, live = await start_server(tmp_path)
    try:
        yield live
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: object

    def login(self, username: str, password: str = PASSWORD) -> str:
        return LiveServer.login(self, username, password)  # type: ignore[arg-type]

    async def login_async(self, username: str, password: str = PASSWORD) -> str:
        return await asyncio.to_thread(self.login, username, password)

    def get(self, path: str, token: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {token}"}, method=method
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return json.loads(body) if body else None


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """The server in its own process, as deployed: its figures are its own."""
    port = free_port()
    env = {
        **os.environ,
        "FIELDSIGHT_PORT": str(port),
        "FIELDSIGHT_DATA_DIR": str(tmp_path / "srv"),
        "FIELDSIGHT_DEMO_PASSWORD": PASSWORD,
        "FIELDSIGHT_ICE_HOST_ADDRESSES": "127.0.0.1",
    }
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError((tmp_path / "server.log").read_text())
                try:
                    urllib.request.urlopen(url + "/healthz", None, 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield ServerProcess(url=url, process=process)
        finally:
            process.terminate()
            process.wait(20)


@pytest.fixture(autouse=True, scope="session")
def _ice_on_loopback() -> None:
    """Peers in the test process offer 127.0.0.1 (aioice leaves loopback out by itself)."""
    from server.rtc.hub import pin_host_addresses

    pin_host_addresses(("127.0.0.1",))


def headset_for(server: LiveServer | ServerProcess, room: str = "pump-7") -> HeadsetClient:
    """The reference headset (synthetic source) as the demo worker."""
    return HeadsetClient(
        HeadsetOptions(server=server.url, username="worker", password=PASSWORD, room=room),
        open_source("synthetic"),
    )
