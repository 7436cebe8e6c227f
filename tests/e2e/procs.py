"""Real processes on loopback: a Branchline server and edge CLIs, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> float:
    """Poll ``check`` until true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class ServerProc:
    """``branchline server`` in its own process."""

    def __init__(self, db_url: str, workdir: Path, *args: str) -> None:
        """``args``: more options of ``branchline server``."""
        self.db_url = db_url
        self.args = args
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    def start(self) -> ServerProc:
        with open(self.workdir / f"server-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "branchline"), "server", "--db", self.db_url,
                 "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )
        wait_for(self.healthy, 30, "the server to answer /health", step=0.1)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}: {self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
            data: dict[str, Any] = json.load(r)
            return data

    def log(self) -> str:
        return (self.workdir / f"server-{self.port}.log").read_text(errors="replace")[-3000:]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def add_user(self, login: str, role: str, site: str) -> None:
        subprocess.run(
            [str(BIN / "branchline"), "user", "add", "--db", self.db_url, "--login", login,
             "--role", role, "--site", site],
            check=True, capture_output=True, text=True, cwd=self.workdir, timeout=60,
        )

    def add_device(self, device: str, site: str) -> str:
        out = subprocess.run(
            [str(BIN / "branchline"), "device", "add", "--db", self.db_url,
             "--device", device, "--site", site],
            check=True, capture_output=True, text=True, cwd=self.workdir, timeout=60,
        )
        return out.stdout.strip().splitlines()[-1].split()[-1]


class EdgeProc:
    """One edge device: its SQLite file and the ``branchline-edge`` CLI."""

    def __init__(self, workdir: Path, device: str, site: str) -> None:
        self.device = device
        self.site = site
        self.db = workdir / f"{device}.db"
        self.workdir = workdir
        self.daemon: subprocess.Popen[bytes] | None = None
        self.user = "clerk"
        """The user this device's CLI acts as (``--user``)."""

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(BIN / "branchline-edge"), "--db", str(self.db), *args],
            capture_output=True, text=True, cwd=self.workdir, timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and out.returncode != 0:
            raise AssertionError(f"branchline-edge {' '.join(args)} failed: {out.stderr}")
        return out

    def init(self, server: ServerProc, token: str) -> EdgeProc:
        self.run("init", "--server", server.ws_url, "--device", self.device,
                 "--site", self.site, "--token", token)
        return self

    def put(self, entity: str, key: str, **fields: Any) -> None:
        self.run("put", entity, key, *(f"{k}={json.dumps(v)}" for k, v in fields.items()),
                 "--user", self.user)

    def sync(self, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run("sync", timeout=timeout)

    def start_daemon(self) -> EdgeProc:
        with open(self.workdir / f"{self.device}-daemon.log", "ab") as log:
            self.daemon = subprocess.Popen(
                [str(BIN / "branchline-edge"), "--db", str(self.db), "daemon"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )
        return self

    def stop_daemon(self, sig: int = signal.SIGTERM) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(10)
        self.daemon = None

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the edge database directly, as the sqlite3 shell would."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def pending(self) -> int:
        return int(self.query("select count(*) from _outbox")[0][0])
