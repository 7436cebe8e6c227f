"""Opening the edge's SQLite file: autocommit, WAL, durable commits, and a
read-only way in that works on a full disk or a read-only medium; plus the
sqlite3 adapters that keep binding values off sqlite3's slow path."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec

from .disk import wal_holds_data
from .errors import LocalDatabaseError

BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another process's transaction before giving up."""

def _same(value: Any) -> Any:
    return value



def fast_sqlite_binding() -> None:
    """Bind None, bytes, msgspec ``Raw`` and bool without sqlite3's slow path.

    sqlite3 (CPython 3.11) binds an exact str, int or float at once, but runs
    every other value through ``microprotocols_adapt``, which, with no adapter
    registered, looks up ``__adapt__`` on its protocol type and fails, building
    an AttributeError message each time: about a microsecond per value. A
    snapshot row binds seven of them (its unset fields and its blob); under
    callgrind that was a sixth of the edge's instructions during a bootstrap.
    A registered adapter is found by one dict lookup instead. Each binds exactly
    what sqlite3 binds by default: None as NULL, bytes and ``Raw`` as a BLOB (a
    buffer, bound as it is), a bool as the integer 0 or 1. Process-wide and
    idempotent. (HQ registers the same but ``Raw`` in ``server.sqlite_file``: server
    and client share no module that may import sqlite3.)"""
    none: Callable[[None], None] = cast(Callable[[None], None], {}.get)  # in C: x -> None
    sqlite3.register_adapter(type(None), none)
    sqlite3.register_adapter(bytes, bytes)  # the same object back
    sqlite3.register_adapter(bool, int)
    sqlite3.register_adapter(msgspec.Raw, _same)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to an edge database file: autocommit, WAL, durable commits.
    ``readonly``: one that writes nothing at all (``connect_readonly``)."""
    fast_sqlite_binding()
    if readonly:
        return connect_readonly(path)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        _use_wal(conn)
        conn.execute("PRAGMA synchronous=FULL")  # a committed sale survives a power cut
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection that works on a full disk or a read-only medium.

    ``mode=ro`` reads what the write-ahead log holds too, but SQLite must then
    open (and, if missing, create) the ``-shm`` index next to the file, which a
    full or read-only disk refuses. Then, if the log holds nothing (the last
    connection checkpointed it away, the usual state of a file no process
    holds), the file itself is the whole database and is opened ``immutable``:
    no lock, no side file. With changes in the log that SQLite cannot read,
    ``LocalDatabaseError`` says so (reading the file alone would show an older
    state)."""
    uri = Path(path).absolute().as_uri()
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                               timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        if conn is not None:
            conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        if wal_holds_data(path):
            raise LocalDatabaseError(
                f"{path} cannot be read: its latest changes are in {path}-wal, which SQLite "
                f"cannot open here ({exc})") from exc
    conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, attempts: int = 200) -> None:
    # Switching a new file to WAL takes a lock SQLite does not wait for (no busy
    # handler), so processes opening the same new file together retry here.
    for attempt in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] in ("wal", "memory"):
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.025)
