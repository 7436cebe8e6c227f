"""/health tells the truth about the database (503 with the reason, within
seconds even when it hangs), a server does not start on a database it cannot
write, and a database down is a 503 "retry shortly" for the API and console."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from litestar.testing import TestClient

from schema import SCHEMA
from server.app import Unusable, create_app
from server.console.auth import set_password
from server.store import Database
from tests.pg import fresh_database
from tests.server.pg_faults import admin, dbname, libpq
from tests.server.rest_kit import open_api

postgres = pytest.mark.postgres


def _down(name: str, down: bool) -> None:
    """Refuse connections to this test's database and end its sessions (or allow again)."""
    admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if down else "true"}')
    if down:
        admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
              "AND pid <> pg_backend_pid()", name)


@postgres
def test_a_database_down_is_a_503_with_its_reason_everywhere() -> None:
    """/health, the REST API and the console answer 503 saying HQ's database is
    unavailable (not a bare 500), and 200 again once it is back."""
    with fresh_database() as url, open_api(url) as api:
        assert api.client.get("/health").json()["database"] == "ok"
        set_password(api.db, "admin", "admin-pass-123456")
        page = api.client.get("/login").text
        csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        api.client.post("/login", data={"login": "admin", "password": "admin-pass-123456",
                                        "_csrf_token": csrf.group(1), "next": "/"})
        assert api.client.get("/").status_code == 200
        _down(dbname(url), True)
        try:
            r = api.client.get("/health")
            assert r.status_code == 503, r.text
            assert r.json()["database"].startswith("unreachable: "), r.json()
            assert "not currently accepting connections" in r.json()["database"]
            code, body = api.call("GET", "/api/reports/trial-balance", "fay")
            assert code == 503, body
            assert body["detail"].startswith("HQ's database is unavailable: ")
            assert body["detail"].endswith("retry shortly")
            r = api.client.get("/")
            assert r.status_code == 503
            assert r.headers["content-type"].startswith("text/html")
            assert "HQ&#x27;s database is unavailable" in r.text or \
                "HQ's database is unavailable" in r.text
        finally:
            _down(dbname(url), False)
        r = api.client.get("/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        api.ok("GET", "/api/reports/trial-balance", "fay")


@postgres
def test_health_answers_in_bounded_time_when_the_database_hangs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from server import app as app_module

    monkeypatch.setattr(app_module, "HEALTH_TIMEOUT", 1.0)
    with fresh_database() as url, TestClient(create_app(url)) as client, \
            psycopg.connect(libpq(url)) as holder:
        holder.execute("LOCK TABLE changes IN ACCESS EXCLUSIVE MODE")
        start = time.monotonic()
        r = client.get("/health")
        assert r.status_code == 503, r.text
        assert r.json()["database"] == "unreachable: no answer within 1 s"
        assert time.monotonic() - start < 3
        r = client.get("/health")  # the first check still hangs: no second thread
        assert r.status_code == 503
        assert "has not returned" in r.json()["database"]
        holder.rollback()
        deadline = time.monotonic() + 15  # the hung check ends at LOCK_TIMEOUT
        while (r := client.get("/health")).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)
        assert r.json()["database"] == "ok" and r.json()["head"] == 0


@postgres
def test_health_says_a_read_only_postgres_is_not_writable() -> None:
    with fresh_database() as url, TestClient(create_app(url)) as client:
        db: Database = client.app.state.db
        admin(f'ALTER DATABASE "{dbname(url)}" SET default_transaction_read_only = on')
        db.engine.dispose()  # new sessions take the setting
        r = client.get("/health")
        assert r.status_code == 503
        assert r.json()["database"].startswith("not writable: transactions are read-only")
        with pytest.raises(Unusable, match="not writable"):
            create_app(url)
        admin(f'ALTER DATABASE "{dbname(url)}" SET default_transaction_read_only = off')


def test_a_server_on_a_sqlite_file_it_cannot_write_does_not_start(tmp_path: Path) -> None:
    """A read-only SQLite file opens and even takes BEGIN IMMEDIATE: the probe
    writes (and rolls back) to know."""
    path = tmp_path / "hq.db"
    create_app(f"sqlite:///{path}").state.db.dispose()  # a server ran here once
    with pytest.raises(Unusable, match="not writable: attempt to write a readonly database"):
        create_app(f"sqlite:///file:{path}?mode=ro&uri=true")


def test_health_on_sqlite_is_ok_and_a_busy_writer_is_no_failure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    with TestClient(create_app(url)) as client:
        r = client.get("/health")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "database": "ok", "schema_version": SCHEMA.version,
                            "connected": 0, "head": 0}
        other = sqlite3.connect(tmp_path / "hq.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing
        try:
            start = time.monotonic()
            assert client.get("/health").status_code == 200
            assert time.monotonic() - start < 2.5
        finally:
            other.execute("ROLLBACK")
            other.close()


@postgres
def test_a_tills_status_says_hq_answers_but_its_database_does_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store manager whose sales will not go through must not read
    "reachable yes": ``branchline-edge status`` asks HQ's /health too."""
    from client import cli
    from tests.e2e.procs import ServerProc

    with fresh_database() as url:
        server = ServerProc(url, tmp_path).start()
        try:
            token = server.add_device("s1-till1", "S1")
            db = str(tmp_path / "till.db")
            assert cli.main(["--db", db, "init", "--server", server.ws_url, "--device",
                             "s1-till1", "--site", "S1", "--token", token]) == 0
            assert cli.main(["--db", db, "status", "--timeout", "5"]) == 0
            assert "reachable yes" in capsys.readouterr().out
            _down(dbname(url), True)
            try:
                cli.main(["--db", db, "status", "--timeout", "5"])
                out = capsys.readouterr().out
            finally:
                _down(dbname(url), False)
            assert "reachable no (HQ answers, but its database does not: unreachable: " \
                in out, out
        finally:
            server.stop()
