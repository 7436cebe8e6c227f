"""PostgreSQL time limits: a writer behind a stuck write lock, a table lock
held by maintenance or a runaway statement fails with a clear error instead of
waiting for good; a writer merely queued behind a slow one does not."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from schema import SCHEMA
from server import db_limits as limits_module
from server.db_limits import ADVISORY_LOCK
from server.store import Database
from tests.pg import fresh_database
from tests.server.pg_faults import customer, libpq

pytestmark = pytest.mark.postgres


def test_a_writer_behind_a_stuck_write_lock_fails_clearly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The advisory write lock held past ``WRITE_QUEUE_TIMEOUT``: the write fails
    with "lock timeout" instead of waiting for good; a write queued for longer
    than ``STATEMENT_TIMEOUT`` (but within the queue's limit) goes through."""
    monkeypatch.setattr(limits_module, "STATEMENT_TIMEOUT", 0.4)
    monkeypatch.setattr(limits_module, "LOCK_TIMEOUT", 0.3)
    monkeypatch.setattr(limits_module, "WRITE_QUEUE_TIMEOUT", 2.0)
    with fresh_database() as url, psycopg.connect(libpq(url)) as holder:
        db = Database(url, SCHEMA)
        try:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
            start = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"):
                customer(db, "stuck")
            assert 1.8 < time.monotonic() - start < 5
            holder.rollback()

            # queued 1 s (> STATEMENT_TIMEOUT) behind a slow writer: not a timeout
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
            threading.Timer(1.0, holder.rollback).start()
            customer(db, "waited its turn")

            # a table lock held by maintenance: LOCK_TIMEOUT, not forever
            holder.execute("LOCK TABLE customer IN ACCESS EXCLUSIVE MODE")
            start = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"):
                customer(db, "table locked")
            assert time.monotonic() - start < 3
            holder.rollback()

            # a statement that runs away: STATEMENT_TIMEOUT
            with pytest.raises(OperationalError, match="statement timeout"), \
                    db.transaction(write=False) as store:
                store.conn.execute(text("SELECT pg_sleep(3)"))
            customer(db, "fine again")
        finally:
            db.dispose()
