"""Server storage through SQLAlchemy Core: the ``sync.server.ServerStore`` protocol.

One ``SqlServerStore`` lives for one transaction. It reads lazily, buffers its
writes in memory and flushes them with ``executemany`` when the transaction
ends, so a push of a thousand ops costs a handful of statements.

Ordering guarantee: change sequence numbers are assigned inside the write
transaction, and write transactions are serialized (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: ``pg_advisory_xact_lock``). Without that, two
PostgreSQL transactions could take seqs 9 and 10 and commit 10 first: a reader
would move its cursor to 10 and never see 9.
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

import msgspec
from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Table,
    bindparam,
    create_engine,
    func,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import DBAPIError

from schema import Schema
from sync.audit import GENESIS, AuditRecord, chain_hash
from sync.merge import Outcome
from sync.messages import Ack, Change, Op, Row, decode_ack, encode, mark_of

from . import db_limits as limits
from . import on_hand, periods, sqlite_file, totals
from .clock import now_ms
from .migrate import upgrade
from .tables import (
    DEVICE_ACTIVITY_TABLE,
    EVERY_SITE,
    LATE_POSTING_TABLE,
    build,
    param_mark,
)
from .tally import Tally

log = logging.getLogger("branchline.store")
_row_decoder = msgspec.msgpack.Decoder(Row)
_json = msgspec.json.Encoder(order="sorted")
CHUNK = 500
MULTI_ROW = 100
"""Rows per multi-row INSERT on SQLite (fewer for a table so wide that they
would bind more than ``MAX_VARIABLES`` values)."""
MAX_VARIABLES = 32_766
"""SQLite's default limit of bound values in one statement (since 3.32)."""
BOOKKEEPING = ("_version", "_deleted", "_row", "_seq")
CHANGE_COLUMNS = ("seq", "entity", "key", "row")
SCOPE_COLUMNS = ("site", "seq")
AUDIT_COLUMNS = ("id", "op_id", "entity", "key", "user", "device", "site", "hlc", "status",
                 "policy", "reason", "before", "after", "hash", "ack")
CONFLICT_COLUMNS = ("op_id", "entity", "key", "field", "server_value", "proposed_value",
                    "device", "hlc", "resolved")


def _activity_sql(dialect: Dialect) -> str:
    """Record a device's latest audit record unless a later one is recorded
    already (another process may have committed one meanwhile): one statement
    for SQLite and PostgreSQL alike, in the driver's style."""
    mark = param_mark(dialect)
    t = DEVICE_ACTIVITY_TABLE
    return (f"INSERT INTO {t} (device, audit_id, hlc) VALUES ({mark}, {mark}, {mark}) "
            f"ON CONFLICT (device) DO UPDATE SET audit_id = excluded.audit_id, "
            f"hlc = excluded.hlc WHERE excluded.audit_id > {t}.audit_id")


class Database:
    """An engine plus the generated tables; opens store transactions."""

    def __init__(self, url: str, schema: Schema, *, timeouts: bool = True) -> None:
        """``timeouts``: bound PostgreSQL statements and lock waits (``STATEMENT_TIMEOUT``,
        ``LOCK_TIMEOUT``, ``WRITE_QUEUE_TIMEOUT``); off for maintenance commands
        that may rightly run long (``check-totals --rebuild`` of a big ledger)."""
        self.url = url
        self.timeouts = timeouts
        self.schema = schema
        self.metadata, self.entities = build(schema)
        self.t = self.metadata.tables
        self.is_sqlite = url.startswith("sqlite")
        self._insert_sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self.columns = {e.name: ("id", *e.names, *BOOKKEEPING)
                        for e in schema.entities}
        """Insert column order of each entity table."""
        self.field_names = {e.name: e.names for e in schema.entities}
        """The declared fields of each entity, in column order."""
        self._write_lock = threading.Lock()
        self.engine: Engine = create_engine(
            url, **limits.engine_args(self.is_sqlite, self.timeouts))
        kept = totals.kept(self.metadata)
        self.totals = totals.by_ledger(kept)
        """Ledger entity -> the running totals kept of it (``server.totals``)."""
        self.upsert_sql = {t.table: totals.upsert_sql(self.engine.dialect, t) for t in kept}
        """Total's table -> the statement that adds a transaction's tallies to it."""
        self.activity_sql = _activity_sql(self.engine.dialect)
        """Moves each device's latest audit record forward (``device_activity``)."""
        if self.is_sqlite:
            sqlite_file.fast_binding()
            sqlite_file.tune(self.engine)
        # under the write lock, so servers starting together create and upgrade once
        try:
            with self.transaction(bounded=False) as store:
                self.metadata.create_all(store.conn)
                self.applied = upgrade(store.conn, self.metadata, schema)
                """What opening did to bring the database up to date (``server.migrate``)."""
                ops = self.t["ops"]
                self.legacy_acks = store.conn.execute(select(ops.c.op_id).limit(1)).first() \
                    is not None
                """True while the old ``ops`` table still holds acks (ops without an
                audit row, which the upgrade could not move): dedupe reads it too."""
        except BaseException:
            self.engine.dispose()
            raise

    @contextmanager
    def transaction(self, write: bool = True, *, bounded: bool = True
                    ) -> Iterator[SqlServerStore]:
        """One transaction; a write transaction is serialized with all other writers.
        ``bounded=False`` lifts the PostgreSQL time limits (migrations)."""
        if write and self.is_sqlite:
            # Writers queue on a lock of this process: SQLite's own busy handler
            # sleeps in steps of up to 100 ms, which leaves the file idle between
            # writers. (Other processes still wait through busy_timeout.)
            with self._write_lock, self._transaction(write, bounded) as store:
                yield store
            return
        with self._transaction(write, bounded) as store:
            yield store

    @contextmanager
    def reading(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A connection in one read transaction (``transaction(write=False)``):
        every statement sees the database as at the first one, on PostgreSQL
        too, so a page's total agrees with its rows and a page's tables with
        each other. Given ``conn``, a read the caller holds already, that one:
        a helper takes an optional connection and reads in its caller's
        snapshot, or in its own when called alone."""
        if conn is not None:
            yield conn
            return
        with self._transaction(write=False) as store:
            yield store.conn

    @contextmanager
    def _transaction(self, write: bool, bounded: bool = True) -> Iterator[SqlServerStore]:
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
            elif not write:
                # one snapshot for every statement of a read, as SQLite's WAL
                # reads have: a count and its page, a head and its changes agree
                # (PostgreSQL's default READ COMMITTED takes one per statement).
                # Writers stay READ COMMITTED: they must see the commit of the
                # writer they queued behind on the advisory lock.
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if write and not self.is_sqlite:
                    try:
                        conn.exec_driver_sql(limits.lock_sql(self.timeouts, bounded))
                    except DBAPIError as exc:
                        if "lock timeout" in str(exc.orig):
                            log.warning("no write lock within %g s: another transaction holds "
                                        "it (pg_locks, locktype advisory)",
                                        limits.WRITE_QUEUE_TIMEOUT)
                        raise
                store = SqlServerStore(conn, self)
                yield store
                store.flush()
                if store.changed and not self.is_sqlite:
                    conn.execute(text("SELECT pg_notify('branchline_changes', '')"))

    def insert_sql(self, table: Table, columns: tuple[str, ...], rows: int = 1) -> str:
        """A plain INSERT of ``rows`` rows in the driver's parameter style (cached)."""
        key = (table.name, (*columns, str(rows)))
        sql = self._insert_sql.get(key)
        if sql is None:
            quote = self.engine.dialect.identifier_preparer.quote
            mark = param_mark(self.engine.dialect)
            one = f"({', '.join([mark] * len(columns))})"
            sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
                   f"VALUES {', '.join([one] * rows)}")
            self._insert_sql[key] = sql
        return sql

    def lookup_sql(self, table: Table, columns: tuple[str, ...], key: str, n: int,
                   tail: str = "") -> str:
        """``SELECT columns FROM table WHERE key IN (n markers) tail`` in the
        driver's parameter style (cached): the hot reads of a push skip
        SQLAlchemy's statement compilation."""
        cache_key = (table.name, (*columns, key, tail, str(n)))
        sql = self._insert_sql.get(cache_key)
        if sql is None:
            quote = self.engine.dialect.identifier_preparer.quote
            mark = param_mark(self.engine.dialect)
            sql = (f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table.name)} "
                   f"WHERE {quote(key)} IN ({', '.join([mark] * n)}){tail}")
            self._insert_sql[cache_key] = sql
        return sql

    def head(self) -> int:
        """The last change sequence number committed."""
        with self.transaction(write=False) as store:
            return store.head()

    def dispose(self) -> None:
        self.engine.dispose()



class SqlServerStore:
    """The ServerStore protocol over one SQLAlchemy connection in a transaction."""

    def __init__(self, conn: Connection, db: Database) -> None:
        self.conn = conn
        self.db = db
        self.schema = db.schema
        self._acks: dict[str, Ack | None] = {}
        self._rows: dict[tuple[str, str], Row | None] = {}
        self._stored: set[tuple[str, str]] = set()
        self._dirty: dict[tuple[str, str], Row] = {}
        self._seqs: dict[tuple[str, str], int] = {}
        self._blobs: dict[tuple[str, str], bytes] = {}
        self._changes: list[tuple[Any, ...]] = []
        self._scope: list[tuple[Any, ...]] = []
        self._audit: list[tuple[Any, ...]] = []
        self._conflicts: list[tuple[Any, ...]] = []
        self._tally = Tally(db.totals, lambda: (periods.closed_through(conn, db.t),
                                                periods.today()))
        """What this transaction adds to the running totals (``server.tally``)."""
        self._activity: dict[str, tuple[int, str]] = {}
        """device -> (audit id, HLC) of its latest audit record in this transaction."""
        self._head: int | None = None
        self._audit_tail: tuple[int, str] | None = None
        self.changed = False
        """True once this transaction recorded a new row version (fan-out needed)."""
        self.published: list[tuple[Change, frozenset[str] | None]] = []
        """The changes this transaction made, for in-process live fan-out."""

    # -- reads -----------------------------------------------------------------
    def prefetch(self, ops: list[Op]) -> None:
        ids = [op.op_id for op in ops if op.op_id not in self._acks]
        for chunk in _chunks(ids):
            found = self._stored_acks(chunk)
            for op_id in chunk:
                blob = found.get(op_id)
                self._acks[op_id] = decode_ack(blob) if blob is not None else None
        by_entity: dict[str, list[str]] = {}
        for op in ops:
            if (op.entity, op.key) not in self._rows and self.schema.get(op.entity):
                by_entity.setdefault(op.entity, []).append(op.key)
        for entity, keys in by_entity.items():
            table = self.db.entities[entity]
            for chunk in _chunks(sorted(set(keys))):
                got: dict[str, bytes] = dict(self.conn.exec_driver_sql(
                    self.db.lookup_sql(table, ("id", "_row"), "id", len(chunk)),
                    tuple(chunk)).all())
                for key in chunk:
                    self._remember(entity, key, got.get(key))

    def _remember(self, entity: str, key: str, blob: bytes | None) -> Row | None:
        if blob is None:
            self._rows[(entity, key)] = None
            return None
        row: Row = _row_decoder.decode(blob)
        self._rows[(entity, key)] = row
        self._stored.add((entity, key))
        return row

    def seen(self, op_id: str) -> Ack | None:
        if op_id not in self._acks:
            blob = self._stored_acks([op_id]).get(op_id)
            self._acks[op_id] = decode_ack(blob) if blob is not None else None
        return self._acks[op_id]

    def _stored_acks(self, op_ids: Sequence[str]) -> dict[str, bytes]:
        """The acks committed for these op ids: each op id's latest audit row
        (and the old ``ops`` table, while it holds any)."""
        audit = self.db.t["audit"]
        found: dict[str, bytes] = dict(self.conn.exec_driver_sql(  # in id order: latest wins
            self.db.lookup_sql(audit, ("op_id", "ack"), "op_id", len(op_ids),
                               " AND ack IS NOT NULL ORDER BY id"),
            tuple(op_ids)).all())
        if self.db.legacy_acks:
            ops_t = self.db.t["ops"]
            rest = [i for i in op_ids if i not in found]
            if rest:
                found.update(self.conn.execute(
                    select(ops_t.c.op_id, ops_t.c.ack).where(ops_t.c.op_id.in_(rest))).all())
        return found

    def load(self, entity: str, key: str) -> Row | None:
        k = (entity, key)
        if k not in self._rows:
            table = self.db.entities.get(entity)
            if table is None:
                return None
            found = self.conn.execute(select(table.c._row).where(table.c.id == key)).scalar()
            return self._remember(entity, key, found)
        return self._rows[k]

    def children(self, entity: str, field: str, key: str) -> list[Row]:
        """Read through the index on ``field`` (``tables.READS``: an order's lines), after
        writing what this transaction buffered."""
        self.flush()
        table = self.db.entities.get(entity)
        if table is None:
            return []
        q = select(table.c._row).where(table.c[field] == key).order_by(table.c.id)
        return [_row_decoder.decode(blob) for blob in self.conn.execute(q).scalars()]

    def head(self) -> int:
        if self._head is None:
            changes = self.db.t["changes"]
            self._head = int(self.conn.execute(
                select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one())
        return self._head

    def mark(self, seq: int) -> str:
        self.flush()
        changes = self.db.t["changes"]
        blob = self.conn.execute(select(changes.c.row).where(changes.c.seq == seq)).scalar()
        return mark_of(_row_decoder.decode(blob)) if blob is not None else ""

    # -- writes ------------------------------------------------------------------
    def record(self, outcome: Outcome, audit: AuditRecord, sites: frozenset[str] | None) -> None:
        if outcome.changed and outcome.after is not None:
            row = outcome.after
            k = (row.entity, row.key)
            seq = self.head() + 1
            self._head = seq
            self._rows[k] = row
            self._dirty[k] = row
            self._seqs[k] = seq
            blob = encode(row)
            self._blobs[k] = blob
            self._changes.append((seq, row.entity, row.key, blob))
            for site in sorted(sites) if sites is not None else [EVERY_SITE]:
                self._scope.append((site, seq))
            self.published.append((Change(seq, row), sites))
            self.changed = True
            if row.entity in self.db.totals:
                self._tally.add(outcome.before, row)
        # An op id recorded twice in one transaction gets a second audit row,
        # whose (latest) ack answers later resends, as in the memory store.
        self._acks[outcome.op.op_id] = outcome.ack
        last_id, last_hash = self._audit_last()
        digest = chain_hash(last_hash, audit)
        self._audit_tail = (last_id + 1, digest)
        self._activity[audit.device] = (last_id + 1, audit.hlc)
        self._audit.append((
            last_id + 1, audit.op_id, audit.entity, audit.key, audit.user, audit.device,
            audit.site, audit.hlc, audit.status, audit.policy, audit.reason,
            _json.encode(audit.before).decode() if audit.before is not None else None,
            _json.encode(audit.after).decode() if audit.after is not None else None,
            digest, encode(outcome.ack),
        ))
        for c in outcome.conflicts:
            self._conflicts.append((
                c.op_id, c.entity, c.key, c.field, _json.encode(c.server_value).decode(),
                _json.encode(c.proposed_value).decode(), c.device, c.hlc, False,
            ))

    def on_hand(self, site: str, product: str) -> int:
        """Stock on hand at (site, product), this transaction's movements included."""
        self.flush()
        return on_hand.level(self.conn, self.db.metadata, site, product)

    def _audit_last(self) -> tuple[int, str]:
        if self._audit_tail is None:
            audit = self.db.t["audit"]
            found = self.conn.execute(
                select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1)).first()
            self._audit_tail = (int(found[0]), str(found[1])) if found else (0, GENESIS)
        return self._audit_tail

    def flush(self) -> None:
        """Write everything buffered; called once at the end of the transaction."""
        t = self.db.t
        inserts: dict[str, list[tuple[Any, ...]]] = {}
        updates: dict[str, list[dict[str, Any]]] = {}
        for k, row in self._dirty.items():
            # every declared column, also those a row stored by an older schema lacks
            values = (row.key, *map(row.fields.get, self.db.field_names[row.entity]),
                      row.version, row.deleted, self._blobs[k], self._seqs[k])
            if k in self._stored:
                names = self.db.columns[row.entity]
                updates.setdefault(row.entity, []).append(
                    {"b_id": row.key, **dict(zip(names[1:], values[1:], strict=True))})
            else:
                inserts.setdefault(row.entity, []).append(values)
                self._stored.add(k)
        # In key order: the random UUID keys then walk each index once, page
        # after page, instead of jumping to a random page per row.
        for entity, batch in inserts.items():
            batch.sort(key=_first)
            self._insert(self.db.entities[entity], self.db.columns[entity], batch)
        for entity, changed in updates.items():
            table = self.db.entities[entity]
            # executemany: the SET columns are the keys of the parameter sets
            self.conn.execute(table.update().where(table.c.id == bindparam("b_id")), changed)
        self._audit.sort(key=_second)  # by op id, for its index (ids stay as numbered)
        for name, columns, rows in (("changes", CHANGE_COLUMNS, self._changes),
                                    ("change_scope", SCOPE_COLUMNS, self._scope),
                                    ("audit", AUDIT_COLUMNS, self._audit),
                                    ("conflicts", CONFLICT_COLUMNS, self._conflicts)):
            if rows:
                self._insert(t[name], columns, rows)
        sums, late = self._tally.take()
        for total, rows in sums.items():
            if rows:
                self.conn.exec_driver_sql(self.db.upsert_sql[total], rows)
        if late:
            arrived = now_ms()
            self._insert(t[LATE_POSTING_TABLE], periods.LATE_COLUMNS,
                         [(*posted, arrived) for posted in late])
        if self._activity:
            self.conn.exec_driver_sql(self.db.activity_sql, [
                (device, audit_id, hlc) for device, (audit_id, hlc)
                in sorted(self._activity.items())])
            self._activity.clear()
        self._dirty.clear()
        self._changes, self._scope, self._audit, self._conflicts = [], [], [], []

    def _insert(self, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
                ) -> None:
        """Insert through the driver: SQLAlchemy's per-row parameter processing
        costs more than SQLite's own insert on this hot path.

        On SQLite, rows go ``MULTI_ROW`` at a time in one multi-row INSERT:
        executemany steps the statement once per row, and each step resets it,
        lets go of the GIL and takes it back (behind the event loop); one step
        per block inserts the same rows in about half the time. The rest of
        the rows, fewer than a block, go through executemany."""
        db = self.db
        per = min(MULTI_ROW, MAX_VARIABLES // len(columns))
        whole = len(rows) - len(rows) % per if db.is_sqlite else 0
        if whole:
            flat = list(chain.from_iterable(rows[:whole]))
            step = per * len(columns)
            blocks = [tuple(flat[i : i + step]) for i in range(0, len(flat), step)]
            self.conn.exec_driver_sql(db.insert_sql(table, columns, per), blocks)
        if whole < len(rows):
            self.conn.exec_driver_sql(db.insert_sql(table, columns), rows[whole:])

    # -- change feed and snapshot ------------------------------------------------
    def changes(self, site: str | None, cursor: int, limit: int) -> tuple[list[Change], int]:
        self.flush()
        limit = max(1, limit)  # as the memory store: a page holds at least one change
        # The head first, and the page read up to it: a page that is not full
        # then has every change up to the head. (Read after the page, the head
        # could include a commit the page missed -- PostgreSQL's READ COMMITTED
        # takes a new snapshot per statement -- and the device would skip it.)
        # Writers take sequence numbers in turn, each after the last committed,
        # so every change up to the head read is committed.
        self._head = None
        head = self.head()
        changes, scope = self.db.t["changes"], self.db.t["change_scope"]
        q = select(changes.c.seq, changes.c.row)
        if site is None:
            q = q.where(changes.c.seq > cursor, changes.c.seq <= head)
        else:
            # Two ranges of the (site, seq) index, each read in order and cut at
            # ``limit``: a device far behind costs O(limit) per page, not a sort
            # of everything it has not seen yet.
            ranges = [
                select(scope.c.seq).where(scope.c.site == s, scope.c.seq > cursor,
                                          scope.c.seq <= head)
                .order_by(scope.c.seq).limit(limit).subquery()
                for s in (EVERY_SITE, site)
            ]
            q = q.where(changes.c.seq.in_(union_all(*(select(r.c.seq) for r in ranges))))
        q = q.order_by(changes.c.seq).limit(limit)
        found = [Change(seq, _row_decoder.decode(blob)) for seq, blob in self.conn.execute(q)]
        if len(found) >= limit:
            return found, found[-1].seq
        return found, max(head, cursor)

    def snapshot(self, site: str | None, after: tuple[str, str], limit: int) -> list[Row]:
        return [_row_decoder.decode(blob) for blob in self.stored_snapshot(site, after, limit)]

    def stored_snapshot(self, site: str | None, after: tuple[str, str], limit: int
                        ) -> list[msgspec.Raw]:
        """The page's rows as stored (``_row``), sent without decoding them."""
        self.flush()
        out: list[msgspec.Raw] = []
        for entity in sorted(e.name for e in self.schema.entities):
            if entity < after[0] or len(out) >= limit:
                continue
            q = self._snapshot_page(entity, site, after[1] if entity == after[0] else None,
                                    limit - len(out))
            out.extend(map(msgspec.Raw, self.conn.execute(q).scalars()))
        return out

    def _snapshot_page(self, entity: str, site: str | None, after: str | None,
                       limit: int) -> Any:
        """Rows of one entity visible to ``site`` with keys after ``after``, in
        key order, each scope field read through its (field, id) index."""
        table = self.db.entities[entity]
        e = self.schema[entity]
        fields = [e.site_field] if e.site_field is not None else list(e.scope_fields)

        def keyset(q: Any) -> Any:
            q = q.where(table.c.id > after) if after is not None else q
            return q.order_by(table.c.id).limit(limit)

        if site is None or not fields:  # HQ, or an entity every site receives
            return keyset(select(table.c._row))
        if len(fields) == 1:
            return keyset(select(table.c._row).where(table.c[fields[0]] == site))
        ranges = [keyset(select(table.c.id).where(table.c[f] == site)).subquery()
                  for f in fields]
        ids = union_all(*(select(r.c.id) for r in ranges))
        return select(table.c._row).where(table.c.id.in_(ids)).order_by(table.c.id).limit(limit)

    # -- inspection (console, tests) -----------------------------------------------
    def audit_chain(self) -> list[tuple[AuditRecord, str]]:
        """The whole audit log in order, for verification."""
        self.flush()
        audit = self.db.t["audit"]
        out = []
        for r in self.conn.execute(select(audit).order_by(audit.c.id)):
            m = r._mapping
            out.append((AuditRecord(
                op_id=m["op_id"], entity=m["entity"], key=m["key"], user=m["user"],
                device=m["device"], site=m["site"], hlc=m["hlc"], status=m["status"],
                policy=m["policy"], reason=m["reason"],
                before=msgspec.json.decode(m["before"]) if m["before"] is not None else None,
                after=msgspec.json.decode(m["after"]) if m["after"] is not None else None,
            ), str(m["hash"])))
        return out


_first, _second = operator.itemgetter(0), operator.itemgetter(1)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]

