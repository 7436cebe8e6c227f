"""Whether HQ's database can serve (``probe``), and what it raises when it,
not a request, is the trouble."""

from __future__ import annotations

import sqlite3

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .db_limits import SQLITE_BUSY_MS
from .store import Database

PROBE_BUSY_MS = 1_000
"""How long /health's write probe waits for another writer on SQLite."""

DB_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
"""Errors of a database that is down, cut off, read-only, full, locked too
long or too busy (not a bug of ours, nor anything a client did): answered
"retry shortly" -- 503 over HTTP, close 1013 on the sync socket -- and logged
in one line, without a traceback."""


def short_reason(exc: BaseException) -> str:
    """The driver's message in one line, without SQLAlchemy's SQL and link."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return (lines[0] if lines else type(orig).__name__)[:200]


class NotWritable(Exception):
    """The database answers, but this server cannot write to it."""


def probe(db: Database) -> int:
    """The head, once sure this server can write here: raises ``NotWritable``
    (a read-only file or standby), or the driver's error when unreachable.
    Cheap and lock-free on PostgreSQL; on SQLite a write that is rolled back
    (``BEGIN IMMEDIATE`` alone succeeds on a read-only file), waiting at most
    ``PROBE_BUSY_MS`` for another writer: a database busy writing is writable."""
    changes = db.t["changes"]
    head_sql = select(func.coalesce(func.max(changes.c.seq), 0))
    if not db.is_sqlite:
        with db.engine.connect() as conn:
            recovery, read_only, head = conn.execute(select(
                func.pg_is_in_recovery(), func.current_setting("transaction_read_only"),
                head_sql.scalar_subquery())).one()
            conn.rollback()
        if recovery:
            raise NotWritable("PostgreSQL is a standby in recovery (read-only)")
        if read_only == "on":
            raise NotWritable("transactions are read-only (default_transaction_read_only)")
        return int(head)
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.execute(f"PRAGMA busy_timeout={PROBE_BUSY_MS}")
        head = 0
        try:
            head = raw.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT OR REPLACE INTO server_meta (name, value) "
                        "VALUES ('health probe', '')")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return int(head)  # another writer holds the lock: it writes
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise NotWritable(str(exc)) from exc
            raise
        finally:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    return int(head)
