"""Shared pieces of the benchmarks: a server process, device tokens, raw sync clients.

The benchmark clients speak the protocol directly with ``sync`` messages over
``websockets`` so that they measure the server, not the edge's SQLite.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from schema import SCHEMA
from sync.hlc import Clock
from sync.ids import new_id
from sync.messages import (
    MAX_MESSAGE_BYTES,
    Hello,
    Op,
    ServerMessage,
    Welcome,
    decode_server,
    encode,
)

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class RssSampler:
    """Samples a process's RSS every ``every`` seconds in a thread."""

    pid: int
    every: float = 0.25
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(rss_mb(self.pid))
            except OSError:
                return
            self._stop.wait(self.every)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self) -> dict[str, float]:
        s = self.samples or [0.0]
        third = max(1, len(s) // 3)
        return {
            "rss_start_mb": round(s[0], 1),
            "rss_max_mb": round(max(s), 1),
            "rss_end_mb": round(s[-1], 1),
            "rss_first_third_mean_mb": round(sum(s[:third]) / third, 1),
            "rss_last_third_mean_mb": round(sum(s[-third:]) / third, 1),
        }


class Server:
    """``branchline server`` on a fresh SQLite file in a temporary folder."""

    def __init__(self, db_url: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="branchline-bench-"))
        self.db_url = db_url or f"sqlite:///{self.dir / 'hq.db'}"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    def __enter__(self) -> Server:
        log = open(self.dir / "server.log", "wb")
        cmd = [str(BIN / "branchline"), "server", "--db", self.db_url, "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "warning"]
        profile = os.environ.get("BENCH_PROFILE")  # py-spy flame graph of the server
        if profile:
            cmd = [str(BIN / "py-spy"), "record", "--threads", "--format", "raw", "-o", profile,
                   "--", *cmd]
        self.proc = subprocess.Popen(
            cmd,
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "server.log").read_text()[-2000:])
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            # py-spy writes its profile on SIGINT (and stops the server with it)
            self.proc.send_signal(signal.SIGINT if os.environ.get("BENCH_PROFILE")
                                  else signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not os.environ.get("BENCH_KEEP"):  # a seeded server's file is gigabytes
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def add_devices(self, devices: list[tuple[str, str]]) -> dict[str, str]:
        """Register devices (device, site) -> tokens, through the server's own API
        (one process instead of one ``branchline device add`` per device)."""
        from schema import SCHEMA
        from server.admin import hire
        from server.devices import issue_token
        from server.store import Database

        db = Database(self.db_url, SCHEMA)
        try:
            hire(db, "bench", "hq_admin", "HQ")
            return {device: issue_token(db, device, site) for device, site in devices}
        finally:
            db.dispose()


class RawDevice:
    """A device speaking the protocol directly, without a local database."""

    def __init__(self, url: str, device: str, site: str, token: str) -> None:
        self.url, self.device, self.site, self.token = url, device, site, token
        self.clock = Clock(device)
        self.ws: ClientConnection | None = None

    async def connect(self, cursor: int = -1) -> Welcome:
        self.ws = await connect(self.url, max_size=MAX_MESSAGE_BYTES, compression=None)
        await self.ws.send(encode(Hello(self.device, self.site, self.token,
                                        SCHEMA.version, max(cursor, 0))))
        msg = await self.recv()
        if not isinstance(msg, Welcome):
            raise RuntimeError(f"{self.device}: expected Welcome, got {msg!r}")
        return msg

    async def recv(self) -> ServerMessage:
        assert self.ws is not None
        data = await self.ws.recv()
        assert isinstance(data, bytes)
        return decode_server(data)

    async def send(self, msg: Any) -> None:
        assert self.ws is not None
        await self.ws.send(encode(msg))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def op(self, entity: str, key: str, fields: dict[str, Any]) -> Op:
        return Op(new_id(int(time.time() * 1000)), entity, key, 0, fields,
                  self.clock.now(int(time.time() * 1000)), "bench", self.device, SCHEMA.version)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
