"""HQ's SQLite file: how the server's engine opens it (WAL, every commit
synced, a busy timeout, the WAL checkpoint size, the BEGIN mode each
transaction asks for) and binds values to it without sqlite3's slow path."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Connection, Engine, event

from . import db_limits as limits


def fast_binding() -> None:
    """Bind None, bytes and bool without sqlite3's slow path.

    sqlite3 binds an exact str, int or float at once, but runs every other
    value (None, bytes, bool) through ``microprotocols_adapt``, which, with no
    adapter registered, looks up ``__adapt__`` and ``__conform__`` and fails:
    about a microsecond per value, and an ingested op binds a dozen of them
    (its NULL columns, three blobs, a flag). Registered adapters are found by
    one dict lookup instead. They bind exactly what sqlite3 binds by default:
    None as NULL, bytes as a BLOB, a bool as the integer 0 or 1 (as SQLAlchemy
    stores it). Process-wide, and idempotent. (The edge registers the same,
    plus msgspec ``Raw``, in ``client.sqlite_file.fast_sqlite_binding``: server and
    client share no module that may import sqlite3.)"""
    none: Callable[[None], None] = cast("Callable[[None], None]", {}.get)  # C: x -> None
    sqlite3.register_adapter(type(None), none)
    sqlite3.register_adapter(bytes, bytes)  # the same object back
    sqlite3.register_adapter(bool, int)


def tune(engine: Engine) -> None:
    """Every connection of ``engine``: WAL, commits synced, a busy timeout, a
    larger checkpoint; and the BEGIN mode a transaction asks for."""
    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        dbapi.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL does not sync the log at commit,
        # so a power cut could undo transactions whose acks the devices already
        # have (and whose ops they deleted from their outboxes): a lost sale.
        # FULL costs one fsync per transaction, shared by a whole batch.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={limits.SQLITE_BUSY_MS}")
        # Checkpoint the WAL into the database file every 64 MiB, not every
        # 4 MiB (SQLite's default): a group commit of a few thousand ops
        # dirties that much, so the default copied the same index pages back
        # at nearly every commit. Durability is unchanged: each commit still
        # syncs the WAL (synchronous=FULL), and a checkpoint syncs the file.
        cur.execute("PRAGMA wal_autocheckpoint=16384")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
