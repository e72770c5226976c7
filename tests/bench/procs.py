"""Processes of the bench: the server under test (ours or the naive baseline) and session clients.

The server always runs in a process of its own, so that its CPU time (read from
``/proc/<pid>/stat``) is the server's alone and the clients cannot steal its event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CpuSampler", "ServerProcess", "cpu_seconds", "run_sessions"]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "bench-password-1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


async def wait_quiet(max_wait_s: float, busy_below: float = 0.25) -> dict[str, Any]:
    """Wait (up to ``max_wait_s``) until the machine has been below ``busy_below`` for 3 s.

    The bench shares the machine with whatever else runs; this does not make others stop, it
    only picks a quieter moment. Returns what it saw.
    """
    started = time.monotonic()
    quiet = 0
    busy = None
    last = machine_jiffies()
    while True:
        await asyncio.sleep(1.0)
        now = machine_jiffies()
        busy = round((now[0] - last[0]) / max(1, now[1] - last[1]), 3)
        last = now
        quiet = quiet + 1 if busy < busy_below else 0
        waited = time.monotonic() - started
        if quiet >= 3 or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "machine_busy": busy, "quiet": quiet >= 3}


def _share(samples: list[tuple[float, float]], start_ms: float, end_ms: float) -> float | None:
    inside = [s for s in samples if start_ms <= s[0] <= end_ms]
    if len(inside) < 2:
        return None
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / ((t1 - t0) / 1000)


@dataclass
class CpuSampler:
    """Samples processes' CPU time (and the machine's) once a second, for any window later.

    ``pid`` is the server; client processes join with :meth:`watch`.
    """

    pid: int
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    clients: set[int] = field(default_factory=set)
    machine: list[tuple[float, int, int]] = field(default_factory=list)  # (wall ms, busy, total)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.samples[self.pid] = []
        self._task = asyncio.create_task(self._run(), name="cpu-sampler")

    def watch(self, pid: int) -> None:
        self.samples.setdefault(pid, [])
        self.clients.add(pid)

    async def _run(self) -> None:
        while True:
            now = time.time() * 1000
            self.machine.append((now, *machine_jiffies()))
            for pid, samples in self.samples.items():
                try:
                    samples.append((now, cpu_seconds(pid)))
                except (OSError, ValueError, IndexError):
                    pass  # the process has ended
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def share(self, start_ms: float, end_ms: float) -> float | None:
        """The server's CPU time / wall time between two instants (1.0 = one full core)."""
        value = _share(self.samples[self.pid], start_ms, end_ms)
        return None if value is None else round(value, 3)

    def clients_share(self, start_ms: float, end_ms: float) -> float | None:
        """The same, summed over the client processes watched in that window."""
        shares = [_share(self.samples[pid], start_ms, end_ms) for pid in self.clients]
        known = [v for v in shares if v is not None]
        return round(sum(known), 3) if known else None

    def machine_busy(self, start_ms: float, end_ms: float) -> float | None:
        """Busy share of all the machine's cores between two instants (1.0 = all cores busy)."""
        inside = [s for s in self.machine if start_ms <= s[0] <= end_ms]
        if len(inside) < 2:
            return None
        (_, b0, t0), (_, b1, t1) = inside[0], inside[-1]
        return round((b1 - b0) / max(1, t1 - t0), 3)


class ServerProcess:
    """``python -m server`` (ours) or ``python -m tests.bench.naive_server`` on a loopback port."""

    def __init__(self, kind: str, workdir: Path, scenario: str) -> None:
        if kind not in ("fieldsight", "naive"):
            raise ValueError(kind)
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir / f"{kind}-{scenario}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "server.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.cpu: CpuSampler | None = None
        self._token: str | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        env = {
            "FIELDSIGHT_VISION_FPS": "10",  # unless the caller sets it
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "FIELDSIGHT_PORT": str(self.port),
            "FIELDSIGHT_DATA_DIR": str(self.workdir / "data"),
            "FIELDSIGHT_DEMO_PASSWORD": PASSWORD,
            "FIELDSIGHT_ICE_HOST_ADDRESSES": "127.0.0.1",
        }
        module = "server" if self.kind == "fieldsight" else "tests.bench.naive_server"
        log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, cwd=REPO, env=env, stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"{self.kind} server exited: {self.log_tail()}")
            try:
                await asyncio.to_thread(_get_json, self.url + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.kind} server not ready: {self.log_tail()}") from None
                await asyncio.sleep(0.1)
        self.cpu = CpuSampler(self.pid)
        self.cpu.start()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_count(self, needle: str) -> int:
        try:
            return sum(needle in line for line in self.log_path.read_text().splitlines())
        except OSError:
            return 0

    async def metrics(self, reset: bool = False) -> dict[str, Any] | None:
        """Our server's ``/api/metrics`` (event-loop lag, vision stats); None for the baseline."""
        if self.kind != "fieldsight":
            return None
        try:
            return await asyncio.to_thread(self._metrics, reset)
        except OSError as exc:
            return {"error": str(exc)}

    def _metrics(self, reset: bool) -> dict[str, Any] | None:
        if self._token is None:
            request = urllib.request.Request(
                self.url + "/api/auth/login",
                data=json.dumps({"username": "mentor", "password": PASSWORD}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                self._token = str(json.loads(response.read())["access_token"])
        headers = {"Authorization": f"Bearer {self._token}"}
        if reset:
            request = urllib.request.Request(
                self.url + "/api/metrics/reset", method="POST", headers=headers
            )
            urllib.request.urlopen(request, timeout=5).close()
            return None
        request = urllib.request.Request(self.url + "/api/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def log_problems(self, limit: int = 5) -> dict[str, Any]:
        """ERROR/WARNING lines of the server's log (counts and the first few, deduplicated)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        out: dict[str, Any] = {}
        for level in ("ERROR", "WARNING"):
            found = [line for line in lines if f" {level} " in line]
            seen: dict[str, None] = {}
            for line in found:
                seen.setdefault(line.split(f" {level} ", 1)[1][:200], None)
            out[level.lower()] = {"count": len(found), "first": list(seen)[:limit]}
        out["tracebacks"] = sum(line.startswith("Traceback") for line in lines)
        return out

    async def stop(self) -> None:
        if self.cpu is not None:
            await self.cpu.stop()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


@dataclass
class SessionProcess:
    """A running ``python -m tests.bench.session`` and where it will write its result."""

    room: str
    proc: asyncio.subprocess.Process
    out: Path
    log: Path

    async def result(self) -> dict[str, Any]:
        await self.proc.wait()
        if self.out.exists():
            data: dict[str, Any] = json.loads(self.out.read_text())
            return data
        tail = self.log.read_text(errors="replace")[-800:]
        return {"room": self.room, "errors": [f"no result; log: {tail}"]}


async def start_session(
    server: ServerProcess,
    room: str,
    seconds: float,
    workdir: Path,
    *,
    mentor: bool = True,
    stroke_interval: float = 1.0,
) -> SessionProcess:
    out = workdir / f"{server.kind}-{room}.json"
    log = workdir / f"{server.kind}-{room}.log"
    out.unlink(missing_ok=True)
    args = ["--server", server.url, "--room", room, "--password", PASSWORD]
    args += ["--seconds", f"{seconds:.2f}", "--out", str(out)]
    args += ["--stroke-interval", str(stroke_interval)]
    if not mentor:
        args.append("--no-mentor")
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bench.session", *args, cwd=REPO, stdout=sink, stderr=sink
        )
    if server.cpu is not None:
        server.cpu.watch(proc.pid)
    return SessionProcess(room, proc, out, log)


async def run_sessions(
    server: ServerProcess,
    rooms: list[str],
    seconds: float,
    workdir: Path,
    *,
    stroke_interval: float = 1.0,
    stagger_s: float = 0.3,
) -> list[dict[str, Any]]:
    """One client process per session (headset + mentor), started a little apart; the later
    ones run shorter so that all end together. Returns their raw results."""
    running = []
    for i, room in enumerate(rooms):
        extra = (len(rooms) - 1 - i) * stagger_s
        running.append(
            await start_session(
                server, room, seconds + extra, workdir, stroke_interval=stroke_interval
            )
        )
        await asyncio.sleep(stagger_s)
    return list(await asyncio.gather(*(s.result() for s in running)))
