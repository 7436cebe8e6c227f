"""The edge's local database: ``sync.replica.LocalStore`` on SQLite (sqlite-utils).

The connection runs in autocommit mode and every caller wraps its work in
``transaction()`` (``BEGIN IMMEDIATE``), so a local write, its outbox entry and
its stock cache change commit together or not at all. WAL and a busy timeout
let the CLI and the daemon share one file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from schema import Schema
from sync.messages import Op, Row, decode_op, decode_row, encode

from .tables import create_all


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteLocalStore:
    """LocalStore over one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection, schema: Schema) -> None:
        self.conn = conn
        self.schema = schema
        self.db = sqlite_utils.Database(conn)
        create_all(self.db, schema)
        self._upsert_sql = {e.name: self._upsert(e.name) for e in schema.entities}
        self._depth = 0

    def _upsert(self, entity: str) -> str:
        cols = ["id", *(f.name for f in self.schema[entity].fields), "_version", "_deleted"]
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols[1:])
        return (f'INSERT INTO "{entity}" ({", ".join(repr(c) for c in cols)}) '
                f'VALUES ({", ".join("?" * len(cols))}) ON CONFLICT (id) DO UPDATE SET {sets}')

    @contextmanager
    def transaction(self) -> Iterator[SqliteLocalStore]:
        """One write transaction (nested calls join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    # -- rows ----------------------------------------------------------------
    def base(self, entity: str, key: str) -> Row | None:
        found = self.conn.execute("SELECT row FROM _base WHERE entity = ? AND key = ?",
                                  (entity, key)).fetchone()
        return decode_row(found[0]) if found else None

    def put_base(self, row: Row) -> None:
        self.conn.execute("INSERT OR REPLACE INTO _base (entity, key, version, row) "
                          "VALUES (?, ?, ?, ?)", (row.entity, row.key, row.version, encode(row)))

    def view(self, entity: str, key: str) -> Row | None:
        found = self.conn.execute("SELECT row FROM _pending_view WHERE entity = ? AND key = ?",
                                  (entity, key)).fetchone()
        if found:
            return decode_row(found[0])
        if self.conn.execute("SELECT 1 FROM _outbox WHERE entity = ? AND key = ? LIMIT 1",
                             (entity, key)).fetchone():
            return None  # pending ops whose row does not exist (e.g. a refused create)
        return self.base(entity, key)

    def put_view(self, entity: str, key: str, row: Row | None) -> None:
        pending = self.conn.execute("SELECT 1 FROM _outbox WHERE entity = ? AND key = ? LIMIT 1",
                                    (entity, key)).fetchone()
        if pending and row is not None:
            self.conn.execute("INSERT OR REPLACE INTO _pending_view (entity, key, row) "
                              "VALUES (?, ?, ?)", (entity, key, encode(row)))
        else:
            self.conn.execute("DELETE FROM _pending_view WHERE entity = ? AND key = ?",
                              (entity, key))
        if self.schema.get(entity) is None:
            return
        if row is None:
            self.conn.execute(f'DELETE FROM "{entity}" WHERE id = ?', (key,))
        else:
            self.conn.execute(self._upsert_sql[entity], self._values(row))

    def _values(self, row: Row) -> tuple[Any, ...]:
        return (row.key, *(row.fields.get(f.name) for f in self.schema[row.entity].fields),
                row.version, int(row.deleted))

    def apply_rows(self, rows: list[Row], check_versions: bool = True) -> list[Row]:
        """Bulk path for snapshot pages: store rows that have no pending ops in a
        few statements; return the others for the per-row rebase."""
        if not rows:
            return []
        pending = {(e, k) for e, k in self.conn.execute("SELECT DISTINCT entity, key FROM _outbox")}
        later = [r for r in rows if (r.entity, r.key) in pending]
        fast = [r for r in rows if (r.entity, r.key) not in pending]
        versions: dict[tuple[str, str], int] = {}
        keys_by_entity: dict[str, list[str]] = {}
        for r in fast:
            keys_by_entity.setdefault(r.entity, []).append(r.key)
        for entity, keys in keys_by_entity.items() if check_versions else ():
            for start in range(0, len(keys), 10_000):
                chunk = keys[start : start + 10_000]
                marks = ",".join("?" * len(chunk))
                versions.update(((entity, k), v) for k, v in self.conn.execute(
                    f"SELECT key, version FROM _base WHERE entity = ? AND key IN ({marks})",
                    [entity, *chunk]))
        fast = [r for r in fast if versions.get((r.entity, r.key), -1) < r.version]
        self.conn.executemany(
            "INSERT OR REPLACE INTO _base (entity, key, version, row) VALUES (?, ?, ?, ?)",
            [(r.entity, r.key, r.version, encode(r)) for r in fast])
        by_entity: dict[str, list[tuple[Any, ...]]] = {}
        for r in fast:
            if self.schema.get(r.entity) is not None:
                by_entity.setdefault(r.entity, []).append(self._values(r))
        for entity, values in by_entity.items():
            self.conn.executemany(self._upsert_sql[entity], values)
        return later

    # -- outbox ----------------------------------------------------------------
    def add_outbox(self, op: Op) -> None:
        self.conn.execute("INSERT INTO _outbox (op_id, entity, key, op, created_ms) "
                          "VALUES (?, ?, ?, ?, ?)",
                          (op.op_id, op.entity, op.key, encode(op), int(time.time() * 1000)))

    def outbox(self, after: int, limit: int) -> list[tuple[int, Op]]:
        return [(pos, decode_op(blob)) for pos, blob in self.conn.execute(
            "SELECT pos, op FROM _outbox WHERE pos > ? ORDER BY pos LIMIT ?", (after, limit))]

    def outbox_for(self, entity: str, key: str) -> list[Op]:
        return [decode_op(blob) for (blob,) in self.conn.execute(
            "SELECT op FROM _outbox WHERE entity = ? AND key = ? ORDER BY pos", (entity, key))]

    def drop_outbox(self, op_id: str) -> Op | None:
        found = self.conn.execute("DELETE FROM _outbox WHERE op_id = ? RETURNING op",
                                  (op_id,)).fetchone()
        return decode_op(found[0]) if found else None

    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM _outbox").fetchone()[0])

    def last_outbox_pos(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(pos), 0) FROM _outbox").fetchone()[0])

    # -- state -----------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        found = self.conn.execute("SELECT value FROM _state WHERE name = ?", (name,)).fetchone()
        return str(found[0]) if found else None

    def set_state(self, name: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO _state (name, value) VALUES (?, ?)",
                          (name, value))

    def add_rejection(self, op: Op, reason: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO _rejections (op_id, entity, key, reason, op, "
                          "at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                          (op.op_id, op.entity, op.key, reason, encode(op),
                           int(time.time() * 1000)))
