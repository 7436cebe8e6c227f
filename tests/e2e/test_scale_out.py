"""Several server processes share one PostgreSQL: a change accepted by one
reaches a device connected to the other, live, through LISTEN/NOTIFY; a
device connecting to one takes over from its connection on the other."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema import SCHEMA
from server.store import Database
from server.takeover import recent_takeovers
from sync.messages import Push, encode
from tests.pg import fresh_database
from tests.server.pg_faults import admin, customer, dbname, listeners
from tests.server.test_sync_ws import _acks, _op, _session, _until_closed

from .procs import EdgeProc, ServerProc, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProc, ServerProc]]:
    with fresh_database() as url:
        a = ServerProc(url, tmp_path).start()
        b = ServerProc(url, tmp_path).start()
        try:
            yield a, b
        finally:
            a.stop()
            b.stop()


def test_a_change_at_one_server_reaches_a_device_on_the_other(
    two_servers: tuple[ServerProc, ServerProc], tmp_path: Path
) -> None:
    a, b = two_servers
    s1 = EdgeProc(tmp_path, "s1-till1", "S1").init(a, a.add_device("s1-till1", "S1"))
    s2 = EdgeProc(tmp_path, "s2-till1", "S2").init(b, b.add_device("s2-till1", "S2"))
    s2.sync()
    s2.start_daemon()
    try:
        wait_for(lambda: b.health()["connected"] >= 1, 10, "the S2 daemon on server B")
        key = str(uuid.uuid4())
        s1.put("customer", key, name="Made at server A")
        s1.sync()
        took = wait_for(lambda: s2.query("SELECT name FROM customer WHERE id = ?", key) == [
            ("Made at server A",)], 5, "the change at the device on server B", step=0.01)
        assert took < 1.0
        assert a.health()["head"] == b.health()["head"]
    finally:
        s2.stop_daemon()


def test_a_commit_made_while_listen_reconnects_reaches_connected_devices(tmp_path: Path) -> None:
    """The server's LISTEN backend is terminated and another process commits
    before it listens again (its NOTIFY reaches nobody): the device connected
    to the server gets the change all the same, within a couple of seconds."""
    with fresh_database() as url:
        server = ServerProc(url, tmp_path).start()
        other = Database(url, SCHEMA)  # another process's writer: pg_notify at commit
        s2 = EdgeProc(tmp_path, "s2-till1", "S2").init(server, server.add_device("s2-till1", "S2"))
        try:
            s2.sync()
            s2.start_daemon()
            wait_for(lambda: server.health()["connected"] >= 1, 10, "the S2 daemon")
            wait_for(lambda: listeners(dbname(url)) == 1, 10, "the server to LISTEN")
            killed = admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = %s AND query LIKE 'LISTEN%%'", dbname(url))
            assert killed == [(1,)]
            key = customer(other, "made while HQ was not listening")
            took = wait_for(lambda: s2.query("SELECT name FROM customer WHERE id = ?", key) == [
                ("made while HQ was not listening",)], 4, "the change at the device",
                step=0.01)
            assert took < 3
            assert "LISTEN branchline_changes lost" in server.log()
        finally:
            s2.stop_daemon()
            other.dispose()
            server.stop()


def test_a_device_connecting_to_one_server_takes_over_from_its_connection_on_the_other(
    two_servers: tuple[ServerProc, ServerProc]
) -> None:
    """The Hello accepted by B is notified to A, which closes the device's
    older connection (4410) at once, not at its next token check 5 s later;
    the device is served on B and the take-over is kept for IT."""
    a, b = two_servers
    token = a.add_device("s1-till1", "S1")
    old = _session(a, "s1-till1", "S1", token)
    sale = _op("s1-till1", "customer", {"name": "Pushed to A"})
    old.send(encode(Push(1, [sale])))
    assert [a.status for a in _acks(old).acks] == ["accepted"]
    new = _session(b, "s1-till1", "S1", token)
    started = time.monotonic()
    got, code, reason = _until_closed(old)
    took = time.monotonic() - started
    assert code == 4410 and reason.startswith(
        "another connection of device s1-till1 took over from 127.0.0.1 at ")
    assert [(type(m).__name__, getattr(m, "code", None)) for m in got] == [("Error", "replaced")]
    assert took < 2.0, f"closed after {took:.1f} s: by the token check, not the notice"
    new.send(encode(Push(2, [sale, _op("s1-till1", "customer", {"name": "Pushed to B"})])))
    assert [a.status for a in _acks(new).acks] == ["accepted"] * 2  # the first: its ack again
    db = Database(a.db_url, SCHEMA)
    try:
        kept = recent_takeovers(db)["s1-till1"]
    finally:
        db.dispose()
    assert (kept.count, kept.old_peer, kept.new_peer) == (1, "127.0.0.1", "127.0.0.1")
