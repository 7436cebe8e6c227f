"""The edge's local database: ``sync.replica.LocalStore`` on SQLite (sqlite-utils).

It behaves exactly like the reference ``sync.memory.MemoryLocalStore`` (the
shared suite in ``tests/client/test_local_store_contract.py`` proves it), and
keeps the entity view tables and the stock cache in step with every visible
row it stores.

The connection runs in autocommit mode and every caller wraps its work in
``transaction()`` (``BEGIN IMMEDIATE``; nested blocks are savepoints), so a
local write, its outbox entry and its stock cache change commit together or
not at all. WAL and a busy timeout let the CLI and the daemon share one file.
"""

from __future__ import annotations

import contextlib
import operator
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec
import sqlite_utils

from schema import Schema
from sync.messages import Op, Row, decode_op, decode_row, encode

from .errors import NeedsUpgrade
from .migrate import needs_upgrade, upgrade
from .sqlite_file import connect, fast_sqlite_binding

KEEP_SENT_DAYS = 7
"""How long a device keeps the ops HQ acknowledged: what ``Edge.rejoin`` can
send again to an HQ restored from a backup (a nightly backup is a day old)."""
REFUSED_STATE = "refused"
"""``_state`` entry holding HQ's last refusal of this device ("<ms> <why>"),
cleared by the next Welcome."""
TAKEN_OVER_STATE = "taken_over"
"""``_state`` entry holding the last time another connection of this device
took over from this till's ("<ms> <HQ's reason>"), for ``status``."""
REJOINING_STATE = "rejoining"
"""``_state`` entry set by ``Edge.rejoin`` until its snapshot is stored whole."""
SNAPSHOT_ROWS_STATE = "snapshot_rows"
"""``_state`` entry counting the snapshot rows stored so far (committed with
each page): how far an unfinished bootstrap got, and where its progress
resumes after a restart."""
LAST_SYNC_STATE = "last_sync_ms"
"""``_state`` entry: when this device was last wholly in sync with HQ (every
op it had sent and answered, HQ's changes all pulled)."""
FOLLOWED = ("cursor", "cursor_mark", "acked", "bootstrapped", "snapshot_after",
            "snapshot_at", REFUSED_STATE, SNAPSHOT_ROWS_STATE)
"""The sync state that says how far this device followed HQ's history."""
_CHUNK = 10_000
"""Most keys in one ``IN (...)`` list."""
_ROWS_PER_INSERT = 100
"""Most rows in one multi-row ``INSERT`` of the bulk path (fewer if the
connection allows fewer parameters per statement). 50 to 200 cost about
the same; one row per statement costs 40% more for the base blobs."""


_BASE_INSERT = ("INSERT OR REPLACE INTO _base (entity, key, version, row) ", "(?, ?, ?, ?)", "")
"""The bulk path's base rows of entities with no view table (of a newer schema)."""


def _statement(head: str, values: str, tail: str) -> str:
    return f"{head}VALUES {values}{tail}"


class SqliteLocalStore:
    """``LocalStore`` over one SQLite connection, plus the bulk and status reads
    the daemon and the CLI need."""

    def __init__(self, db: sqlite_utils.Database | sqlite3.Connection, schema: Schema, *,
                 may_upgrade: bool = True) -> None:
        """``may_upgrade=False``: raise ``NeedsUpgrade`` rather than bring the file up
        to date (a read-only connection)."""
        fast_sqlite_binding()
        if isinstance(db, sqlite3.Connection):
            db = sqlite_utils.Database(db, execute_plugins=False)
        if db.conn.in_transaction:
            raise ValueError("open the store on a connection with no transaction open")
        db.conn.isolation_level = None  # transactions are begun by transaction() only
        self.db = db
        self.conn = db.conn
        self.schema = schema
        self._depth = 0
        self.upgraded: list[str] = []
        """What opening this store did to bring the file up to date."""
        if needs_upgrade(db, schema):
            if not may_upgrade:
                raise NeedsUpgrade("the file must be brought up to date first")
            with self.transaction():
                if needs_upgrade(db, schema):  # another process may have done it meanwhile
                    self.upgraded = upgrade(db, schema)
        self._fields = {e.name: tuple(f.name for f in e.fields) for e in schema.entities}
        self._upserts: dict[tuple[str, frozenset[int]], tuple[str, str, str]] = {}
        self._upsert_sql = {name: _statement(*self._upsert(name)) for name in self._fields}
        self._base_sql = {name: f'SELECT row, version, 0 FROM _base WHERE entity = ? AND key = ? '
                                f'UNION ALL SELECT _row, _version, 1 FROM "{name}" '
                                f'WHERE id = ? AND _row IS NOT NULL LIMIT 1'
                          for name in self._fields}
        self._getters = {name: operator.itemgetter(*names)
                         for name, names in self._fields.items() if len(names) > 1}
        self._max_params = self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._multi_sql: dict[tuple[tuple[str, str, str], int], str] = {}
        self.rows_per_insert = _ROWS_PER_INSERT
        """Most rows in one multi-row ``INSERT`` of the bulk path (tests lower it)."""

    @classmethod
    def open(cls, path: str | Path, schema: Schema) -> SqliteLocalStore:
        return cls(connect(path), schema)

    def close(self) -> None:
        self.conn.close()

    def _upsert(self, entity: str, unset: frozenset[int] = frozenset()) -> tuple[str, str, str]:
        """The view table's upsert, as (``INSERT ... ``, ``(?, ...)``, `` ON CONFLICT ...``).
        The columns at the positions in ``unset`` are left out of the VALUES, so
        they are NULL (no view column has a default), and still set (to NULL) on
        a conflict: the same effect as binding None to each, for less."""
        parts = self._upserts.get((entity, unset))
        if parts is None:
            cols = ["id", *self._fields[entity], "_version", "_deleted", "_row"]
            given = [c for i, c in enumerate(cols) if i not in unset]
            names = ", ".join(f'"{c}"' for c in given)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols[1:])
            parts = (f'INSERT INTO "{entity}" ({names}) ', f'({", ".join("?" * len(given))})',
                     f" ON CONFLICT (id) DO UPDATE SET {sets}")
            if len(self._upserts) >= 1024:  # patterns of unset columns are data-made
                self._upserts.clear()
            self._upserts[(entity, unset)] = parts
        return parts

    def _put_view_rows(self, entity: str, rows: list[Row],
                       blobs: Sequence[bytes | msgspec.Raw]) -> None:
        """Upsert many rows into their view table, each with its base blob as
        ``_row`` (``blobs[i]`` is ``rows[i]`` encoded). Built column by column: a column
        that is None in every row is left out of the statement (see ``_upsert``),
        as sqlite3 binds None (and any value that is not a str, int or float)
        through a slower path, and most rows leave most fields unset."""
        names = self._fields[entity]
        fields = [r.fields for r in rows]
        values: list[tuple[Any, ...]] | None = None
        if (get := self._getters.get(entity)) is not None:
            with contextlib.suppress(KeyError):  # a row of an older schema lacks a field
                values = list(map(get, fields))
        if values is None:
            values = [tuple(map(f.get, names)) for f in fields]
        columns: list[Sequence[Any]] = [[r.key for r in rows], *zip(*values, strict=True),
                                        [r.version for r in rows],
                                        [int(r.deleted) for r in rows], blobs]
        unset: frozenset[int] = frozenset()
        if len(rows) >= self.rows_per_insert:  # a bulk page: few patterns of unset columns
            unset = frozenset(i for i, c in enumerate(columns) if c.count(None) == len(c))
            columns = [c for i, c in enumerate(columns) if i not in unset]
        self._insert_many(self._upsert(entity, unset), list(zip(*columns, strict=True)))

    def _insert_many(self, sql: tuple[str, str, str], rows: list[tuple[Any, ...]]) -> None:
        """``executemany`` of ``INSERT ... VALUES (?, ...) ...`` (``sql`` in three
        parts, see ``_upsert``) for many rows, sent as statements of up to
        ``rows_per_insert`` rows each (``VALUES (...), (...)``): each run of a
        statement costs about as much as binding a whole row again, so a
        10,000-row page pays it 100 times instead of 10,000. The rows are
        written in the same order, with the same effect."""
        head, values, tail = sql
        width = len(rows[0]) if rows else 1
        per = min(self.rows_per_insert, self._max_params // width)
        whole = len(rows) - len(rows) % per if per > 1 else 0
        if whole:
            multi = self._multi_sql.get((sql, per))
            if multi is None:
                multi = _statement(head, ", ".join([values] * per), tail)
                if len(self._multi_sql) >= 1024:  # as many as the upserts, see _upsert
                    self._multi_sql.clear()
                self._multi_sql[(sql, per)] = multi
            flat = list(chain.from_iterable(rows[:whole]))
            step = per * width
            self.conn.executemany(multi, [flat[i : i + step] for i in range(0, len(flat), step)])
        if whole < len(rows):
            self.conn.executemany(_statement(*sql), rows[whole:])

    @contextmanager
    def transaction(self) -> Iterator[SqliteLocalStore]:
        """One write transaction; a nested block is a savepoint inside it (an
        exception undoes the nested block's writes only, if caught outside)."""
        if self._depth:
            name = f"bl_{self._depth}"
            self.conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                raise
            else:
                self.conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    @contextmanager
    def resendable(self) -> Iterator[None]:
        """Commit the transaction opened inside without syncing the disk
        (``synchronous=NORMAL``): for data the server can always send again.

        In WAL mode NORMAL keeps the file consistent; a power cut can only lose
        the newest transactions, a suffix of the log (the next FULL commit
        syncs everything before it too). A snapshot page qualifies: its
        progress marker (``snapshot_after``) commits with its rows, so a lost
        page is requested again, and the rows with pending ops are rebuilt
        from the outbox, which was synced when it was written. Local writes
        (sales, the outbox) must stay FULL, so the previous level comes back
        in ``finally``; the caller must not await in between, or another
        write on this connection could commit unsynced. Does nothing inside
        an open transaction, whose own writes may not be resendable."""
        level = int(self.conn.execute("PRAGMA synchronous").fetchone()[0])
        if self._depth or self.conn.in_transaction or level <= 1:  # 1: NORMAL, 0: OFF
            yield
            return
        self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA synchronous={level}")

    # -- rows ----------------------------------------------------------------------
    def base(self, entity: str, key: str) -> Row | None:
        blob = self._stored_base(entity, key, settle=False)
        return None if blob is None else decode_row(blob)

    def _stored_base(self, entity: str, key: str, settle: bool) -> bytes | None:
        """A row's base as stored: from ``_base``, else from its view row's
        ``_row`` (where the bulk path and ``put_view`` leave a row whose view is
        its base; ``_base`` is never older, so it is read first), in one
        statement. ``settle``: the row is about to be written one by one, so a
        base found in ``_row`` is copied to ``_base`` first (the per-row upsert
        clears ``_row``, and a removed view row takes it along)."""
        found = self._base_entry(entity, key)
        if found is None:
            return None
        blob, version, in_view_row = found
        if settle and in_view_row:
            self._settle(entity, key, version, blob)
        return blob

    def _base_entry(self, entity: str, key: str) -> tuple[bytes, int, bool] | None:
        """(base, its version, True if it is kept in the view row's ``_row``)."""
        if entity not in self._fields:
            found = self.conn.execute("SELECT row, version, 0 FROM _base "
                                      "WHERE entity = ? AND key = ?", (entity, key)).fetchone()
        else:
            found = self.conn.execute(self._base_sql[entity], (entity, key, key)).fetchone()
        return None if found is None else (bytes(found[0]), int(found[1]), bool(found[2]))

    def _settle(self, entity: str, key: str, version: int, blob: bytes) -> None:
        self.conn.execute("INSERT INTO _base (entity, key, version, row) VALUES (?, ?, ?, ?)",
                          (entity, key, version, blob))

    def put_base(self, row: Row) -> None:
        # The visible row does not change with the base: where it was the old base
        # (or nothing), pin it as an override; the put_view that follows in the
        # replica's rebase removes the pin again when the view equals the new base.
        e, k = row.entity, row.key
        old = self._stored_base(e, k, settle=True)
        self.conn.execute("INSERT OR IGNORE INTO _view_override (entity, key, row) "
                          "VALUES (?, ?, ?)", (e, k, old))
        self.conn.execute("INSERT OR REPLACE INTO _base (entity, key, version, row) "
                          "VALUES (?, ?, ?, ?)", (e, k, row.version, encode(row)))

    def view(self, entity: str, key: str) -> Row | None:
        found = self.conn.execute("SELECT row FROM _view_override WHERE entity = ? AND key = ?",
                                  (entity, key)).fetchone()
        if found is not None:
            return None if found[0] is None else decode_row(found[0])
        return self.base(entity, key)

    def put_view(self, entity: str, key: str, row: Row | None) -> None:
        visible = entity in self._fields  # else an entity of a newer schema: no view table
        found = self._base_entry(entity, key)
        base = None if found is None else found[0]
        at_base = row == (None if base is None else decode_row(base))
        if at_base:
            self.conn.execute("DELETE FROM _view_override WHERE entity = ? AND key = ?",
                              (entity, key))
        else:
            self.conn.execute("INSERT OR REPLACE INTO _view_override (entity, key, row) "
                              "VALUES (?, ?, ?)",
                              (entity, key, None if row is None else encode(row)))
        if not visible:
            return
        if row is not None and at_base:
            # the visible row is its base (an acked op, a server row with nothing
            # pending): stored once, as the bulk path stores it, in the view
            # row's _row; an entry in _base would be read first, so it goes
            assert base is not None
            self.conn.execute(self._upsert_sql[entity], self._values(entity, key, row, base))
            if found is not None and not found[2]:
                self.conn.execute("DELETE FROM _base WHERE entity = ? AND key = ?", (entity, key))
            return
        if found is not None and found[2]:  # the upsert or the delete clears _row
            self._settle(entity, key, found[1], found[0])
        if row is None:
            self.conn.execute(f'DELETE FROM "{entity}" WHERE id = ?', (key,))
        else:
            self.conn.execute(self._upsert_sql[entity], self._values(entity, key, row))

    def _values(self, entity: str, key: str, row: Row, base: bytes | None = None
                ) -> tuple[Any, ...]:
        return (key, *map(row.fields.get, self._fields[entity]), row.version, int(row.deleted),
                base)

    def apply_rows(self, rows: list[Row], check_versions: bool = True,
                   blobs: Sequence[bytes | msgspec.Raw] | None = None) -> list[Row]:
        """Bulk path (snapshot pages, batches of changes): the rows with no pending
        ops that are newer than the base become base and view in a few statements;
        the others are returned for the per-row rebase. ``check_versions=False``
        trusts the caller that no row is older than what is stored (a snapshot).
        ``blobs[i]``, when given, is ``rows[i]`` as received: stored as the base
        as it is, not encoded again."""
        if not rows:
            return []
        if not check_versions:
            self._note_snapshot(rows)
        if blobs is not None and len(blobs) != len(rows):
            blobs = None
        pending = self._pending_keys()
        keys = [(r.entity, r.key) for r in rows]
        later: list[Row] = []
        if len(set(keys)) == len(keys) and pending.isdisjoint(keys):
            picked = list(range(len(rows)))  # the usual page: every row once, none pending
        else:
            newest: dict[tuple[str, str], int] = {}
            for i, (r, k) in enumerate(zip(rows, keys, strict=True)):
                if k in pending:
                    later.append(r)
                elif (seen := newest.get(k)) is None or rows[seen].version < r.version:
                    newest[k] = i
            picked = list(newest.values())
        if check_versions:
            stored = self._versions([rows[i] for i in picked])
            picked = [i for i in picked if stored.get(keys[i], -1) < rows[i].version]
        if not picked:
            return later
        if self.conn.execute("SELECT 1 FROM _view_override LIMIT 1").fetchone():
            self.conn.executemany("DELETE FROM _view_override WHERE entity = ? AND key = ?",
                                  [keys[i] for i in picked])
        by_entity: dict[str, list[int]] = {}
        for i in picked:
            by_entity.setdefault(rows[i].entity, []).append(i)
        for entity, taken in by_entity.items():
            got = ([blobs[i] for i in taken] if blobs is not None else
                   [encode(rows[i]) for i in taken])
            if entity not in self._fields:  # an entity of a newer schema: kept whole
                self._insert_many(_BASE_INSERT, [
                    (entity, rows[i].key, rows[i].version, b)
                    for i, b in zip(taken, got, strict=True)])
                continue
            # the base goes with the view row (its _row); an older one in _base
            # (the row was last written one by one) would be read first: it goes
            if self.conn.execute("SELECT 1 FROM _base WHERE entity = ? LIMIT 1",
                                 (entity,)).fetchone():
                self.conn.executemany("DELETE FROM _base WHERE entity = ? AND key = ?",
                                      [keys[i] for i in taken])
            self._put_view_rows(entity, [rows[i] for i in taken], got)
        return later

    def _pending_keys(self) -> set[tuple[str, str]]:
        return {(e, k) for e, k in self.conn.execute("SELECT DISTINCT entity, key FROM _outbox")}

    def _versions(self, rows: list[Row]) -> dict[tuple[str, str], int]:
        keys: dict[str, list[str]] = {}
        for r in rows:
            keys.setdefault(r.entity, []).append(r.key)
        found: dict[tuple[str, str], int] = {}
        for entity, names in keys.items():
            for start in range(0, len(names), _CHUNK):
                chunk = names[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                stored = list(self.conn.execute(
                    f"SELECT key, version FROM _base WHERE entity = ? AND key IN ({marks})",
                    [entity, *chunk]))
                if entity in self._fields:
                    stored += self.conn.execute(
                        f'SELECT id, _version FROM "{entity}" WHERE id IN ({marks}) '
                        f'AND _row IS NOT NULL', chunk).fetchall()
                for k, v in stored:  # a key in both: _base holds the newer
                    found[(entity, k)] = max(v, found.get((entity, k), v))
        return found

    # -- outbox ----------------------------------------------------------------------
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

    def drop_outbox(self, op_id: str, sent_ms: int | None = None) -> Op | None:
        """Take an answered op out of the outbox. One HQ took (``sent_ms``: when
        its answer came) is kept in ``_sent`` for ``KEEP_SENT_DAYS``, for
        ``rejoin``; every op of one answer shares that time, so a business
        transaction (never split across pushes) is kept and forgotten whole."""
        found = self.conn.execute(
            "DELETE FROM _outbox WHERE op_id = ? RETURNING pos, entity, key, op, created_ms",
            (op_id,)).fetchone()
        if found is None:
            return None
        pos, entity, key, blob, created = found
        if sent_ms is not None:
            self.conn.execute(
                "INSERT OR REPLACE INTO _sent (pos, op_id, entity, key, op, created_ms, "
                "acked_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (pos, op_id, entity, key, blob, created, sent_ms))
        return decode_op(blob)

    def kept_sent(self) -> tuple[int, int | None]:
        """How many ops HQ took are kept for a rejoin, and when the oldest was acked."""
        count, oldest = self.conn.execute("SELECT count(*), min(acked_ms) FROM _sent").fetchone()
        return int(count), None if oldest is None else int(oldest)

    def forget_sent(self, now_ms: int, keep_ms: int) -> int:
        """Forget the acknowledged ops acked more than ``keep_ms`` before
        ``now_ms`` -- and before the last ack, so a clock that jumped ahead
        (acks are dated by HQ's clock, ``Replica.on_ack``) cannot forget what
        was acked lately -- unless HQ refused this device as diverged or a
        rejoin is under way (they are then what it needs); returns how many
        were forgotten."""
        if self.get_state(REJOINING_STATE) or "diverged" in (self.get_state(REFUSED_STATE)
                                                            or ""):
            return 0
        return int(self.conn.execute(
            "DELETE FROM _sent WHERE acked_ms < min(?, (SELECT max(acked_ms) FROM _sent)) - ?",
            (now_ms, keep_ms)).rowcount)

    def rejoin(self) -> tuple[int, int | None]:
        """Start following HQ's history afresh (``Edge.rejoin``): the kept ops go
        back into the outbox at their old positions, ahead of the ops made
        since; the rows they touch lose their server row, so that whatever HQ
        now answers is taken whatever its version; the sync state is reset so
        the next sync bootstraps. HQ's rows stay visible until the snapshot is
        stored whole (``snapshot_done``). Returns how many ops were queued
        again, and when the oldest of them was acked (None: none kept)."""
        oldest = self.kept_sent()[1]
        again = self.conn.execute(
            "INSERT OR IGNORE INTO _outbox (pos, op_id, entity, key, op, created_ms) "
            "SELECT pos, op_id, entity, key, op, created_ms FROM _sent ORDER BY pos").rowcount
        self.conn.execute("DELETE FROM _sent")
        pending = "(SELECT key FROM _outbox WHERE entity = ?)"
        self.conn.execute("DELETE FROM _base WHERE (entity, key) IN "
                          "(SELECT entity, key FROM _outbox)")
        for entity in self.schema.entities:
            self.conn.execute(f'UPDATE "{entity.name}" SET _row = NULL WHERE id IN {pending}',
                              (entity.name,))
        self.conn.executemany("DELETE FROM _state WHERE name = ?", [(n,) for n in FOLLOWED])
        self.conn.execute("DELETE FROM _rejoin_seen")
        self.set_state(REJOINING_STATE, "1")
        return int(again), oldest

    def take_over(self) -> None:
        """Set the file up afresh for another device or site
        (``Edge.configure(force=True)``); the outbox must be empty. What the
        old device had HQ take is not the new one's to send again at a rejoin
        (``_sent`` goes); the sync state is reset, so the next sync loads the
        new scope's rows; and, as at a rejoin, once that snapshot is stored
        whole every row it did not hold goes (``snapshot_done``): the old
        site's rows stay visible until then. Receipt numbers carry the site
        and the device, so their sequence goes on."""
        if self.pending_count():
            raise ValueError("the outbox is not empty: taking the file over would drop its ops")
        self.conn.execute("DELETE FROM _sent")
        self.conn.executemany("DELETE FROM _state WHERE name = ?",
                              [(n,) for n in (*FOLLOWED, LAST_SYNC_STATE)])
        self.conn.execute("DELETE FROM _rejoin_seen")
        self.set_state(REJOINING_STATE, "1")

    def _note_snapshot(self, rows: list[Row]) -> None:
        """During a rejoin, remember which rows HQ's snapshot holds."""
        if self.get_state(REJOINING_STATE):
            self.conn.executemany("INSERT OR IGNORE INTO _rejoin_seen (entity, key) "
                                  "VALUES (?, ?)", [(r.entity, r.key) for r in rows])

    def snapshot_done(self) -> None:
        """The snapshot is stored whole: at the end of a rejoin, every row HQ
        did not send (it lost it) and no pending op holds goes."""
        if not self.get_state(REJOINING_STATE):
            return
        for entity in self.schema.entities:
            self.conn.execute(
                f'DELETE FROM "{entity.name}" WHERE id NOT IN (SELECT key FROM _rejoin_seen '
                "WHERE entity = :e) AND id NOT IN (SELECT key FROM _outbox WHERE entity = :e)",
                {"e": entity.name})
        for table in ("_base", "_view_override"):
            self.conn.execute(
                f"DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM _rejoin_seen s WHERE "
                f"s.entity = {table}.entity AND s.key = {table}.key) AND NOT EXISTS (SELECT 1 "
                f"FROM _outbox o WHERE o.entity = {table}.entity AND o.key = {table}.key)")
        self.conn.execute("DELETE FROM _rejoin_seen")
        self.conn.execute("DELETE FROM _state WHERE name = ?", (REJOINING_STATE,))

    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM _outbox").fetchone()[0])

    def outbox_seq(self) -> int:
        """Position of the newest op ever queued, by any process sharing the file;
        it never goes back, so a change means a new local write."""
        found = self.conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = '_outbox'").fetchone()
        return int(found[0]) if found else 0

    # -- state and rejections --------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        found = self.conn.execute("SELECT value FROM _state WHERE name = ?", (name,)).fetchone()
        return None if found is None else str(found[0])

    def set_state(self, name: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO _state (name, value) VALUES (?, ?)",
                          (name, value))

    def add_rejection(self, op: Op, reason: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO _rejections (op_id, entity, key, reason, op, "
                          "at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                          (op.op_id, op.entity, op.key, reason, encode(op),
                           int(time.time() * 1000)))

    def rejections(self) -> list[tuple[Op, str, int]]:
        """Ops HQ refused: (op, reason, when in ms), oldest first."""
        return [(decode_op(blob), str(reason), int(at)) for blob, reason, at in self.conn.execute(
            "SELECT op, reason, at_ms FROM _rejections ORDER BY at_ms, rowid")]

    def rejection_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM _rejections").fetchone()[0])
