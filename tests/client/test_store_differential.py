"""Whole replicas over the memory store and over SQLite, driven by the same random
history (local writes, other devices' writes at HQ, syncs cut short), end in
the same state after every step: bases, views, outbox, sync state, rejections.
On SQLite, the entity view tables and the stock cache also match the views."""

from __future__ import annotations

import copy
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.store import SqliteLocalStore
from client.tables import stock_mismatches
from schema import SCHEMA
from sync.client import ClientSession
from sync.memory import MemoryLocalStore, MemoryServerStore
from sync.merge import Actor
from sync.messages import Op, Row, ServerMessage
from sync.replica import LocalRejected, LocalStore, Replica
from sync.server import ServerSession, apply_op
from tests.sync.kit import HQ, PRODUCT, S1_TILL1, S1_TILL2, key, op, seeded_server

CUSTOMERS = [key(200), key(201), key(202)]
_template: sqlite3.Connection | None = None


def _sqlite_store() -> SqliteLocalStore:
    """A fresh edge database, copied from one made once (creating the tables is
    the slow part)."""
    global _template
    if _template is None:
        _template = sqlite3.connect(":memory:", isolation_level=None)
        SqliteLocalStore(_template, SCHEMA)
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    _template.backup(conn)
    store = SqliteLocalStore(conn, SCHEMA)
    store.rows_per_insert = 2  # pages of 3: multi-row and single-row inserts both run
    return store


@dataclass
class World:
    server: MemoryServerStore
    store: LocalStore
    replica: Replica

    @classmethod
    def make(cls, server: MemoryServerStore, store: LocalStore) -> World:
        return cls(server, store, Replica(SCHEMA, store, S1_TILL1.device, S1_TILL1.site))

    def atomically(self) -> Any:
        if isinstance(self.store, SqliteLocalStore):
            return self.store.transaction()
        return _undo_on_error(self.store)

    def write(self, entity: str, k: str, fields: dict[str, Any], ms: int, op_id: str,
              delete: bool = False) -> str:
        return self.transact([(entity, k, fields, op_id, delete)], ms)

    def transact(self, writes: list[tuple[str, str, dict[str, Any], str, bool]], ms: int,
                 group: str = "") -> str:
        """Local writes in one transaction (one sync group when ``group`` is set)."""
        try:
            with self.atomically():
                for entity, k, fields, op_id, delete in writes:
                    self.replica.write(entity, k, fields, "u-s1-till1", ms, delete=delete,
                                       op_id=op_id, group=group)
        except LocalRejected as exc:
            return f"refused: {exc}"
        return "queued"

    def sync(self, ms: int, budget: int | None) -> None:
        """One connection; it dies after ``budget`` server messages (None: never)."""
        client = ClientSession(self.replica, "token", batch_size=2, window=2, snapshot_page=3)
        server = ServerSession(SCHEMA, S1_TILL1, self.replica.cursor)
        client.start()
        inbox: list[ServerMessage] = [server.welcome(self.server, ms)]
        delivered = 0
        while inbox and (budget is None or delivered < budget):
            msg = inbox.pop(0)
            delivered += 1
            for early in client.ahead(msg):  # the next page, asked for before this one is stored
                inbox.extend(server.handle(self.server, early))
            with self.atomically():
                answers = client.receive(msg, ms)
            for out in answers:
                inbox.extend(server.handle(self.server, out))
            if not inbox:
                live = server.poll(self.server)
                if live is not None:
                    inbox.append(live)


@contextmanager
def _undo_on_error(store: LocalStore) -> Iterator[None]:
    """A transaction for the memory store: an exception restores what it held."""
    saved = {name: copy.copy(value) for name, value in vars(store).items()}
    try:
        yield
    except BaseException:
        vars(store).update(saved)
        raise


def dump(store: LocalStore) -> dict[str, Any]:
    """Everything a LocalStore holds, in one comparable value."""
    if isinstance(store, MemoryLocalStore):
        bases, views = dict(store.bases), dict(store.views)
        state, rejected = dict(store.state), list(store.rejections)
    else:
        assert isinstance(store, SqliteLocalStore)
        conn = store.conn
        # a base is in _base or, where the bulk path stored it, in its view row
        stored = set(conn.execute("SELECT entity, key FROM _base"))
        for entity in SCHEMA.entities:
            stored |= {(entity.name, k) for (k,) in conn.execute(
                f'SELECT id FROM "{entity.name}" WHERE _row IS NOT NULL')}
        bases = {k: b for k in stored if (b := store.base(*k)) is not None}
        keys = set(bases) | set(conn.execute("SELECT entity, key FROM _view_override"))
        views = {k: v for k in keys if (v := store.view(*k)) is not None}
        state = {n: v for n, v in conn.execute("SELECT name, value FROM _state")
                 if n not in ("layout", "schema_version")}
        rejected = [(o, reason) for o, reason, _ in store.rejections()]
    return {"bases": bases, "views": views, "outbox": store.outbox(0, 10**9),
            "state": state, "rejections": rejected}


def check_tables(store: SqliteLocalStore, views: dict[tuple[str, str], Row]) -> None:
    """The entity view tables hold exactly the visible rows; the stock cache is right."""
    for entity in SCHEMA.entities:
        names = [f.name for f in entity.fields]
        got = {r[0]: tuple(r[1:]) for r in store.conn.execute(
            f'SELECT id, {", ".join(names)}, _version, _deleted FROM "{entity.name}"')}
        want = {k: (*(row.fields.get(n) for n in names), row.version, int(row.deleted))
                for (e, k), row in views.items() if e == entity.name}
        assert got == want, entity.name
    assert stock_mismatches(store.db) == []


def _fields(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.sets(st.sampled_from(["name", "phone", "email"]), min_size=1))
    return {n: draw(st.sampled_from(["Ada", "Bo", "x@y.z", "555"])) for n in sorted(names)}


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    steps: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(3, 14))):
        kind = draw(st.sampled_from(["write", "write", "delete", "move", "product", "group",
                                     "other", "other", "hq-delete", "sync", "sync"]))
        if kind in ("write", "delete", "group"):
            steps.append((kind, draw(st.sampled_from(CUSTOMERS)), _fields(draw)))
        elif kind == "move":
            steps.append((kind, draw(st.integers(-3, 5))))
        elif kind == "product":
            steps.append((kind, draw(st.integers(1, 500))))
        elif kind == "hq-delete":
            steps.append((kind, draw(st.sampled_from(CUSTOMERS))))
        elif kind == "other":
            who = draw(st.sampled_from([HQ, S1_TILL2]))
            steps.append((kind, who, draw(st.sampled_from(CUSTOMERS)), _fields(draw),
                          draw(st.integers(-2, 2))))
        else:
            steps.append((kind, draw(st.none() | st.integers(1, 6))))
    return steps


def _other(who: Actor, k: str, fields: dict[str, Any], qty: int, ms: int) -> list[Op]:
    ops = [op(who, "customer", k, fields, ms=ms)]
    if qty:
        ops.append(op(who, "stock_movement", str(uuid.uuid4()), {
            "site": "S1", "product_id": PRODUCT, "qty": qty, "reason": "sale"}, ms=ms))
    return ops


@pytest.fixture(scope="module")
def seeded() -> Iterator[MemoryServerStore]:
    server = seeded_server()
    for k in CUSTOMERS[1:]:
        apply_op(SCHEMA, server, HQ, op(HQ, "customer", k, {"name": "Cy"}))
    yield server


@settings(max_examples=150, deadline=None)
@given(history=histories())
def test_memory_and_sqlite_replicas_never_differ(seeded: MemoryServerStore,
                                                 history: list[tuple[Any, ...]]) -> None:
    sqlite_store = _sqlite_store()
    worlds = [World.make(copy.deepcopy(seeded), MemoryLocalStore()),
              World.make(copy.deepcopy(seeded), sqlite_store)]
    ms = 5_000
    for n, step in enumerate(history):
        ms += 10
        outcomes: list[str] = []
        for w in worlds:
            match step:
                case ("write" | "delete") as kind, k, fields:
                    outcomes.append(w.write("customer", k, {} if kind == "delete" else fields,
                                            ms, str(uuid.UUID(int=10_000 + n)), kind == "delete"))
                case "move", qty:
                    outcomes.append(w.write("stock_movement", str(uuid.UUID(int=20_000 + n)),
                                            {"site": "S1", "product_id": PRODUCT, "qty": qty,
                                             "reason": "sale"}, ms, str(uuid.UUID(int=n)), False))
                case "product", price:
                    outcomes.append(w.write("product", PRODUCT, {"price": price}, ms,
                                            str(uuid.UUID(int=30_000 + n)), False))
                case "group", k, fields:
                    # a new customer and an edit of another, all or nothing at HQ
                    outcomes.append(w.transact([
                        ("customer", str(uuid.UUID(int=40_000 + n)), {"name": "New"},
                         str(uuid.UUID(int=50_000 + n)), False),
                        ("customer", k, fields, str(uuid.UUID(int=60_000 + n)), False),
                    ], ms, group=f"g{n}"))
                case ("other", *_) | ("hq-delete", _):
                    pass
                case "sync", budget:
                    w.sync(ms, budget)
        if step[0] == "other":
            _, who, k, fields, qty = step
            for o in _other(who, k, fields, qty, ms):
                for w in worlds:
                    apply_op(SCHEMA, w.server, who, o)
        elif step[0] == "hq-delete":
            gone = op(HQ, "customer", step[1], {}, ms=ms, delete=True)
            for w in worlds:
                apply_op(SCHEMA, w.server, HQ, gone)
        assert len(set(outcomes)) <= 1, outcomes
        memory, sqlite = (dump(w.store) for w in worlds)
        assert sqlite == memory, f"after step {n}: {step}"
        check_tables(sqlite_store, sqlite["views"])
    sqlite_store.close()
