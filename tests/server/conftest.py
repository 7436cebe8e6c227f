"""Server stores under test: the memory reference, SQLite on a file, and a fresh
PostgreSQL database (created per test, dropped after it; a PostgreSQL that is
down fails the test with a message saying how to start it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from litestar.testing import TestClient
from sqlalchemy import delete, select

from schema import SCHEMA
from server.app import create_app
from server.store import Database, SqlServerStore
from sync.audit import AuditRecord
from sync.memory import MemoryServerStore
from sync.server import ServerStore
from tests.pg import fresh_database
from tests.sync import kit

from .console_kit import _staffed
from .rest_kit import Api, open_api

GROWING = settings(max_examples=25, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])
"""For a property test run inside a test, over one database that every
example adds to (a ledger only grows)."""


class Backend:
    """One store implementation, opened and reopened like a server would."""

    def __init__(self, kind: str, url: str | None = None) -> None:
        self.kind = kind
        self.url = url
        self.memory = MemoryServerStore()
        self.db = Database(url, SCHEMA) if url is not None else None

    @property
    def is_sql(self) -> bool:
        return self.db is not None

    def tx(self, write: bool = True) -> AbstractContextManager[ServerStore]:
        """One transaction (a memory store has none: it is always 'committed')."""
        if self.db is None:
            return self._memory_tx()
        return self.db.transaction(write=write)

    @contextmanager
    def _memory_tx(self) -> Iterator[ServerStore]:
        yield self.memory

    def sql(self) -> AbstractContextManager[SqlServerStore]:
        assert self.db is not None, "only for SQL stores"
        return self.db.transaction()

    def staffed(self) -> Database:
        """The SQL database, with the kit's staff hired (its ops pass the matrix)."""
        with self.tx() as store:
            kit.hire_staff(store)
        assert self.db is not None, "only for SQL stores"
        return self.db

    def reopen(self) -> None:
        """A server restart: a new engine, nothing cached (memory keeps its state)."""
        if self.db is not None and self.url is not None:
            self.db.dispose()
            self.db = Database(self.url, SCHEMA)

    def reset(self) -> None:
        """Empty every table, for one more property-test example."""
        self.memory = MemoryServerStore()
        if self.db is not None:
            with self.db.transaction() as store:
                for table in reversed(self.db.metadata.sorted_tables):
                    if table.name != "server_meta":
                        store.conn.execute(delete(table))

    def audit(self) -> list[tuple[AuditRecord, str]]:
        if self.db is None:
            return list(self.memory.audit)
        with self.db.transaction(write=False) as store:
            return store.audit_chain()

    def conflicts(self) -> list[tuple[str, str, object, object]]:
        """(op id, field, server value, proposed value) of each queued conflict."""
        if self.db is None:
            return [(c.op_id, c.field, c.server_value, c.proposed_value)
                    for c in self.memory.conflicts]
        t = self.db.t["conflicts"]
        with self.db.transaction(write=False) as store:
            rows = store.conn.execute(
                select(t.c.op_id, t.c.field, t.c.server_value, t.c.proposed_value)
                .order_by(t.c.id)).all()
        return [(o, f, msgspec.json.decode(s), msgspec.json.decode(p)) for o, f, s, p in rows]

    def close(self) -> None:
        if self.db is not None:
            self.db.dispose()


@contextmanager
def open_backend(kind: str, tmp_path: Path) -> Iterator[Backend]:
    if kind == "memory":
        yield Backend(kind)
        return
    if kind == "sqlite":
        backend = Backend(kind, f"sqlite:///{tmp_path / 'hq.db'}")
        yield backend
        backend.close()
        return
    with fresh_database() as url:
        backend = Backend(kind, url)
        yield backend
        backend.close()


@pytest.fixture(autouse=True)
def _fresh_clocks() -> None:
    """Each test starts the devices' clocks afresh (``kit.op`` keeps one per device)."""
    kit._clocks.clear()


STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as b:
        yield b


@pytest.fixture(params=SQL_STORES)
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as b:
        yield b


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite database staffed with a console user of each role (``console_kit``)."""
    return _staffed(f"sqlite:///{tmp_path / 'hq.db'}")


@pytest.fixture
def client(url: str) -> Iterator[TestClient[Any]]:
    """The app over ``url``, in-process (litestar's TestClient)."""
    with TestClient(create_app(url)) as c:
        yield c


@pytest.fixture(params=SQL_STORES)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """HQ's REST API in process with a token per ``rest_kit.STAFF``, on a fresh
    SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        with open_api(f"sqlite:///{tmp_path / 'hq.db'}") as a:
            yield a
        return
    with fresh_database() as url, open_api(url) as a:
        yield a
