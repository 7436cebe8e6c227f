"""Several server processes share one PostgreSQL: a change accepted by one
reaches a device connected to the other, live, through LISTEN/NOTIFY."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema import SCHEMA
from server.store import Database
from tests.pg import fresh_database
from tests.server.pg_faults import admin, customer, dbname, listeners

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
