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

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
)

from schema import Schema
from sync.audit import GENESIS, AuditRecord, chain_hash
from sync.merge import Outcome
from sync.messages import Ack, Change, Op, Row, decode_ack, encode

from .tables import build

ADVISORY_LOCK = 7262_2024
_row_decoder = msgspec.msgpack.Decoder(Row)
_json = msgspec.json.Encoder(order="sorted")
CHUNK = 500


class Database:
    """An engine plus the generated tables; opens store transactions."""

    def __init__(self, url: str, schema: Schema) -> None:
        self.url = url
        self.schema = schema
        self.metadata, self.entities = build(schema)
        self.t = self.metadata.tables
        self.is_sqlite = url.startswith("sqlite")
        self._insert_sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._write_lock = threading.Lock()
        self.engine: Engine = create_engine(url, **self._engine_args())
        if self.is_sqlite:
            self._tune_sqlite(self.engine)
        self.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            found = conn.execute(select(self.t["server_meta"].c.value)
                                 .where(self.t["server_meta"].c.name == "schema_version")).scalar()
            if found is None:
                conn.execute(self.t["server_meta"].insert(),
                             {"name": "schema_version", "value": str(schema.version)})
            elif int(found) > schema.version:
                raise RuntimeError(
                    f"database has schema version {found}, newer than this server's "
                    f"{schema.version}: upgrade the server"
                )

    def _engine_args(self) -> dict[str, Any]:
        if self.is_sqlite:
            return {"connect_args": {"timeout": 30, "check_same_thread": False},
                    "pool_size": 8, "max_overflow": 8}
        return {"pool_size": 8, "max_overflow": 8, "pool_pre_ping": True}

    @staticmethod
    def _tune_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: an ack is only sent after the commit reached the disk
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[SqlServerStore]:
        """One transaction; a write transaction is serialized with all other writers."""
        if write and self.is_sqlite:
            # Writers queue on a lock of this process: SQLite's own busy handler
            # sleeps in steps of up to 100 ms, which leaves the file idle between
            # writers. (Other processes still wait through busy_timeout.)
            with self._write_lock, self._transaction(write) as store:
                yield store
            return
        with self._transaction(write) as store:
            yield store

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[SqlServerStore]:
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
            with conn.begin():
                if write and not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK})
                store = SqlServerStore(conn, self)
                yield store
                store.flush()
                if store.changed and not self.is_sqlite:
                    conn.execute(text("SELECT pg_notify('branchline_changes', '')"))

    def insert_sql(self, table: Table, columns: list[str]) -> str:
        """A plain INSERT in the driver's parameter style (cached)."""
        key = (table.name, tuple(columns))
        sql = self._insert_sql.get(key)
        if sql is None:
            quote = self.engine.dialect.identifier_preparer.quote
            mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
            sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
                   f"VALUES ({', '.join([mark] * len(columns))})")
            self._insert_sql[key] = sql
        return sql

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
        self._changes: list[dict[str, Any]] = []
        self._scope: list[dict[str, Any]] = []
        self._ops: list[dict[str, Any]] = []
        self._audit: list[dict[str, Any]] = []
        self._conflicts: list[dict[str, Any]] = []
        self._head: int | None = None
        self._audit_tail: tuple[int, str] | None = None
        self.changed = False
        """True once this transaction recorded a new row version (fan-out needed)."""
        self.published: list[tuple[Change, frozenset[str] | None]] = []
        """The changes this transaction made, for in-process live fan-out."""

    # -- reads -----------------------------------------------------------------
    def prefetch(self, ops: list[Op]) -> None:
        ops_t = self.db.t["ops"]
        ids = [op.op_id for op in ops if op.op_id not in self._acks]
        for chunk in _chunks(ids):
            found = dict(self.conn.execute(
                select(ops_t.c.op_id, ops_t.c.ack).where(ops_t.c.op_id.in_(chunk))
            ).all())
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
                got = {r.id: r for r in self.conn.execute(
                    select(table).where(table.c.id.in_(chunk))
                )}
                for key in chunk:
                    row = got.get(key)
                    self._remember(entity, key, row)

    def _remember(self, entity: str, key: str, db_row: Any) -> Row | None:
        if db_row is None:
            self._rows[(entity, key)] = None
            return None
        row = self._to_row(entity, db_row)
        self._rows[(entity, key)] = row
        self._stored.add((entity, key))
        return row

    def _to_row(self, entity: str, r: Any) -> Row:
        row: Row = _row_decoder.decode(r._mapping["_row"])
        return row

    def seen(self, op_id: str) -> Ack | None:
        if op_id not in self._acks:
            ops_t = self.db.t["ops"]
            blob = self.conn.execute(
                select(ops_t.c.ack).where(ops_t.c.op_id == op_id)).scalar()
            self._acks[op_id] = decode_ack(blob) if blob is not None else None
        return self._acks[op_id]

    def load(self, entity: str, key: str) -> Row | None:
        k = (entity, key)
        if k not in self._rows:
            table = self.db.entities[entity]
            found = self.conn.execute(select(table).where(table.c.id == key)).first()
            return self._remember(entity, key, found)
        return self._rows[k]

    def head(self) -> int:
        if self._head is None:
            changes = self.db.t["changes"]
            self._head = int(self.conn.execute(
                select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one())
        return self._head

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
            self._changes.append({"seq": seq, "entity": row.entity, "key": row.key,
                                  "row": blob})
            for site in sorted(sites) if sites is not None else ["*"]:
                self._scope.append({"site": site, "seq": seq})
            self.published.append((Change(seq, row), sites))
            self.changed = True
        self._acks[outcome.op.op_id] = outcome.ack
        self._ops.append({"op_id": outcome.op.op_id, "ack": encode(outcome.ack)})
        last_id, last_hash = self._audit_last()
        digest = chain_hash(last_hash, audit)
        self._audit_tail = (last_id + 1, digest)
        self._audit.append({
            "id": last_id + 1, "op_id": audit.op_id, "entity": audit.entity, "key": audit.key,
            "user": audit.user, "device": audit.device, "site": audit.site, "hlc": audit.hlc,
            "status": audit.status, "policy": audit.policy, "reason": audit.reason,
            "before": _json.encode(audit.before).decode() if audit.before is not None else None,
            "after": _json.encode(audit.after).decode() if audit.after is not None else None,
            "hash": digest,
        })
        for c in outcome.conflicts:
            self._conflicts.append({
                "op_id": c.op_id, "entity": c.entity, "key": c.key, "field": c.field,
                "server_value": _json.encode(c.server_value).decode(),
                "proposed_value": _json.encode(c.proposed_value).decode(),
                "device": c.device, "hlc": c.hlc, "resolved": False,
            })

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
        inserts: dict[str, list[dict[str, Any]]] = {}
        updates: dict[str, list[dict[str, Any]]] = {}
        for k, row in self._dirty.items():
            values = {**row.fields, "_version": row.version, "_deleted": row.deleted,
                      "_row": self._blobs[k], "_seq": self._seqs[k]}
            if k in self._stored:
                updates.setdefault(row.entity, []).append({"b_id": row.key, **values})
            else:
                inserts.setdefault(row.entity, []).append({"id": row.key, **values})
                self._stored.add(k)
        for entity, batch in inserts.items():
            self._insert(self.db.entities[entity], batch)
        for entity, batch in updates.items():
            table = self.db.entities[entity]
            # executemany: the SET columns are the keys of the parameter sets
            self.conn.execute(table.update().where(table.c.id == bindparam("b_id")), batch)
        for name, rows in (("changes", self._changes), ("change_scope", self._scope),
                           ("ops", self._ops), ("audit", self._audit),
                           ("conflicts", self._conflicts)):
            if rows:
                self._insert(t[name], rows)
        self._dirty.clear()
        self._changes, self._scope, self._ops, self._audit, self._conflicts = [], [], [], [], []

    def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """executemany through the driver: SQLAlchemy's per-row parameter
        processing costs more than SQLite's own insert on this hot path."""
        columns = list(rows[0])
        sql = self.db.insert_sql(table, columns)
        self.conn.exec_driver_sql(sql, [tuple(r[c] for c in columns) for r in rows])

    # -- change feed and snapshot ------------------------------------------------
    def changes(self, site: str | None, cursor: int, limit: int) -> tuple[list[Change], int]:
        self.flush()
        changes, scope = self.db.t["changes"], self.db.t["change_scope"]
        if site is None:
            q = (select(changes.c.seq, changes.c.row).where(changes.c.seq > cursor)
                 .order_by(changes.c.seq).limit(limit))
        else:
            q = (select(changes.c.seq, changes.c.row)
                 .join(scope, scope.c.seq == changes.c.seq)
                 .where(scope.c.site.in_(["*", site]), scope.c.seq > cursor)
                 .order_by(scope.c.seq).limit(limit))
        found = [Change(seq, _row_decoder.decode(blob)) for seq, blob in self.conn.execute(q)]
        if len(found) >= limit:
            return found, found[-1].seq
        self._head = None
        return found, max(self.head(), cursor)

    def snapshot(self, site: str | None, after: tuple[str, str], limit: int) -> list[Row]:
        self.flush()
        out: list[Row] = []
        for entity in sorted(e.name for e in self.schema.entities):
            if entity < after[0] or len(out) >= limit:
                continue
            table = self.db.entities[entity]
            q = select(table.c._row)
            if entity == after[0]:
                q = q.where(table.c.id > after[1])
            scoped = self._scope_filter(table, entity, site)
            if scoped is not None:
                q = q.where(scoped)
            q = q.order_by(table.c.id).limit(limit - len(out))
            out.extend(_row_decoder.decode(blob) for blob in self.conn.execute(q).scalars())
        return out

    def _scope_filter(self, table: Table, entity: str, site: str | None) -> Any:
        if site is None:
            return None
        e = self.schema[entity]
        if e.site_field is not None:
            return table.c[e.site_field] == site
        if e.scope_fields:
            return or_(*(table.c[f] == site for f in e.scope_fields))
        return None

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


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]

