"""What `status` says about syncing: whether a daemon runs for the file, why
the last one stopped, when the till was last wholly in sync, how far an
unfinished bootstrap got."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from client import cli, daemon
from client.daemon import DaemonLock, _Link, daemon_state, run_daemon
from client.edge import Edge
from client.errors import AlreadyRunning, LocalDatabaseError
from schema import SCHEMA
from sync.messages import (
    Ack,
    Acks,
    Changes,
    Row,
    ServerMessage,
    SnapshotPage,
    Status,
    Welcome,
    encode,
)
from tests.sync.kit import key


class _Socket:
    """Stands in for the websocket: keeps what the link sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, frame: bytes) -> None:
        self.sent.append(frame)


def _link(edge: Edge, progress: Any = None) -> _Link:
    link = _Link(edge, _Socket(), progress, None)  # type: ignore[arg-type]
    asyncio.run(link.send(link.session.start()))
    return link


def _hear(link: _Link, *messages: ServerMessage) -> None:
    for msg in messages:
        asyncio.run(link.handle(encode(msg)))


def _status(edge: Edge, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["--db", str(edge.path), "status", "--timeout", "0.2"])
    return code, capsys.readouterr().out


def test_one_daemon_per_file_and_status_sees_it(edge: Edge,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon_state(edge.path) == (False, "")
    with DaemonLock(edge.path):
        assert daemon_state(edge.path)[0]
        with pytest.raises(AlreadyRunning, match="a daemon already syncs"), \
                DaemonLock(edge.path):
            pass
        code, out = _status(edge, capsys)
        assert code == 0 and "daemon running (pid" in out
    running, note = daemon_state(edge.path)
    assert not running and note.startswith("running pid")  # ended without a word
    assert "ended without saying why" in _status(edge, capsys)[1]


def test_status_says_the_daemon_stopped_on_a_local_fault(
        edge: Edge, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    edge.write("customer", key(1), {"name": "Ada"})

    async def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(daemon, "_sync", full)
    with pytest.raises(LocalDatabaseError, match="database or disk is full"):
        asyncio.run(run_daemon(edge))
    code, out = _status(edge, capsys)
    assert code == 6, out
    assert "daemon not running: it stopped at " in out
    assert ": local fault: local database" in out and "database or disk is full" in out
    assert "syncing has stopped: 1 ops wait to be sent" in out


def test_a_daemon_asked_to_stop_says_so(edge: Edge, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    async def body() -> None:
        stop = asyncio.Event()

        async def connected(*args: object, **kwargs: object) -> None:
            assert daemon_state(edge.path)[0]
            stop.set()

        monkeypatch.setattr(daemon, "_sync", connected)
        await run_daemon(edge, None, stop)

    asyncio.run(body())
    code, out = _status(edge, capsys)
    assert code == 0 and "it stopped at" in out and "asked to stop" in out


def test_last_sync_is_when_all_was_sent_and_hqs_changes_in(edge: Edge) -> None:
    op = edge.write("customer", key(1), {"name": "Ada"})
    link = _link(edge)
    _hear(link, Welcome(head=0, schema_version=SCHEMA.version, snapshot_required=False),
          Changes(changes=[], cursor=0))  # caught up: the push goes out
    assert link.session.in_flight and edge.status().last_sync_ms is None
    _hear(link, Acks(batch=1, acks=[Ack(op.op_id, Status.REJECTED, reason="no")]))
    assert edge.status().pending == 0 and edge.status().last_sync_ms is not None


def test_bootstrap_progress_counts_from_what_is_stored_and_status_shows_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[str, int, int]] = []
    welcome = Welcome(head=50, schema_version=SCHEMA.version, snapshot_required=True)

    def page(first: int, n: int, done: bool = False) -> SnapshotPage:
        return SnapshotPage(rows=[Row("customer", key(i), 1, {"name": f"c{i}"})
                                  for i in range(first, first + n)], at=50, done=done)

    with Edge(tmp_path / "new.db") as e:
        e.configure("ws://127.0.0.1:1/sync", "s1-till1", "S1", "bl_x")
        _hear(_link(e, lambda *a: seen.append(a)), welcome, page(1, 3), page(4, 2))
        assert seen == [("bootstrap", 3, 50), ("bootstrap", 5, 50)]
        out = _status(e, capsys)[1]
        assert "snapshot taken no: under way, 5 rows stored so far" in out
        _hear(_link(e, lambda *a: seen.append(a)), welcome, page(6, 2), page(8, 1, done=True))
        assert seen[2:] == [("bootstrap", 7, 50), ("bootstrap", 8, 8)]  # on from 5, not 0
        assert "snapshot taken yes (8 rows)" in _status(e, capsys)[1]
