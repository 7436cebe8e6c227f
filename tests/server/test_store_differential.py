"""The SQL store against the reference on random histories.

Random pushes from HQ and store devices (creates, updates, deletes, state
moves, ledger entries, transfers between sites including one named "*",
resends, all-or-nothing groups, ops that are refused) are applied in random
transactions to a MemoryServerStore and to a SqlServerStore. Every answer must
be equal: acks, reads made inside a transaction, every page of the change feed
and of the snapshot for every site at several page sizes, the audit chain
(hashes included) and the conflict queue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from schema import SCHEMA
from schema.people import employee_key
from server import on_hand, totals
from server.tables import ACCOUNT_BALANCE_TABLE
from sync.hlc import Clock
from sync.memory import MemoryServerStore
from sync.merge import Actor
from sync.messages import Op
from sync.server import ServerStore, apply_ops
from tests.server.conftest import Backend
from tests.sync.kit import HQ, PRODUCT, S1_TILL1, S1_TILL2, S2_TILL1, STAFF, SYSTEM, key

ACTORS = [HQ, S1_TILL1, S1_TILL2, S2_TILL1]
SITES = ["S1", "S2", "S3", "*"]
VIEWS = [None, "S1", "S2", "S3", "*"]
"""Who reads: HQ (None) and sites, one with no device and one named "*"."""


@dataclass(frozen=True)
class Spec:
    """An op before it gets its id and clock."""

    actor: int
    entity: str
    key: str
    fields: dict[str, Any]
    base: int = 0
    delete: bool = False
    ms: int = 1_000
    group: str = ""


def _spec(draw: st.DrawFn, actor: int) -> Spec:
    site = ACTORS[actor].site
    ms = draw(st.integers(1_000, 1_010))
    kind = draw(st.sampled_from(
        ["product", "customer", "delete", "transfer", "move", "sale", "sale", "po", "journal"]))
    if kind == "product":
        k = draw(st.sampled_from([PRODUCT, key(101)]))
        fields: dict[str, Any] = draw(st.sampled_from([
            {"sku": "S", "name": "N", "price": draw(st.integers(0, 9))},
            {"price": draw(st.integers(0, 9))},
            {"description": draw(st.sampled_from(["a", "b"]))},
        ]))
        return Spec(actor, "product", k, fields, ms=ms)
    if kind in ("customer", "delete"):
        k = draw(st.sampled_from([key(200), key(201)]))
        if kind == "delete":
            return Spec(actor, "customer", k, {}, delete=True, ms=ms)
        names = draw(st.sets(st.sampled_from(["name", "phone", "credit_limit"]), min_size=1))
        fields = {n: (draw(st.integers(0, 3)) if n == "credit_limit" else draw(st.text("xy", max_size=2)))
                  for n in sorted(names)}
        return Spec(actor, "customer", k, fields, base=draw(st.integers(0, 3)), ms=ms)
    if kind in ("transfer", "move"):
        k = draw(st.sampled_from([key(400), key(401), key(402)]))
        if kind == "move":
            status = draw(st.sampled_from(["received", "cancelled"]))
            return Spec(actor, "transfer", k, {"status": status}, ms=ms)
        source = site if site != "HQ" else draw(st.sampled_from(SITES))
        fields = {"from_site": source, "to_site": draw(st.sampled_from(SITES)),
                  "product_id": PRODUCT, "qty": 1, "status": "shipped"}
        return Spec(actor, "transfer", k, fields, ms=ms)
    if kind == "journal":  # a posting line; some repeat a key (refused: ledger rows never change)
        fields = {"entry_id": key(500), "site": site if site != "HQ" else "S1",
                  "account": draw(st.sampled_from(["1000", "4000", "5000"])),
                  "debit": draw(st.integers(0, 9)), "credit": draw(st.integers(0, 9)),
                  "memo": "m", "date": "2026-11-26"}
        return Spec(actor, "journal_line", key(600 + draw(st.integers(0, 30))), fields, ms=ms)
    if kind == "po":
        fields = draw(st.sampled_from([
            {"site": "S1", "supplier": "O", "total": 5, "status": "draft"},
            {"status": draw(st.sampled_from(["approved", "cancelled", "received"]))},
        ]))
        return Spec(actor, "purchase_order", key(300), fields, ms=ms)
    fields = {"site": draw(st.sampled_from(["S1", "S2"])) if site == "HQ" else site,
              "product_id": PRODUCT, "qty": draw(st.integers(-3, 3)), "reason": "sale"}
    return Spec(actor, "stock_movement", key(1_000 + draw(st.integers(0, 40))), fields, ms=ms)


@st.composite
def histories(draw: st.DrawFn) -> list[list[tuple[int, list[Spec | int]]]]:
    """Transactions of pushes; a push is (actor, specs), an int resends an
    earlier op of the history."""
    made = 0
    txs = []
    for _ in range(draw(st.integers(1, 5))):
        pushes = []
        for _ in range(draw(st.integers(1, 3))):
            actor = draw(st.integers(0, len(ACTORS) - 1))
            items: list[Spec | int] = []
            group = draw(st.sampled_from(["", "", f"g{made}"]))
            for _ in range(draw(st.integers(1, 6))):
                if made and draw(st.integers(0, 5)) == 0:
                    items.append(draw(st.integers(0, made - 1)))
                else:
                    spec = _spec(draw, actor)
                    if group:
                        spec = Spec(**{**spec.__dict__, "group": group})
                    items.append(spec)
                    made += 1
            pushes.append((actor, items))
        txs.append(pushes)
    return txs


def _staff() -> list[Op]:
    clock = Clock(SYSTEM.device)
    return [Op(str(uuid.UUID(int=n + 1)), "employee", employee_key(login), 0,
               {"login": login, "name": login, "department": "ops", "site": site,
                "role": role}, clock.now(500), "system", SYSTEM.device, SCHEMA.version)
            for n, (login, role, site) in enumerate(STAFF)]


def _ops(history: list[list[tuple[int, list[Spec | int]]]]
         ) -> list[list[tuple[Actor, list[Op]]]]:
    clocks = {a.device: Clock(a.device) for a in ACTORS}
    made: list[Op] = []
    out = []
    for tx in history:
        pushes = []
        for actor_index, items in tx:
            actor = ACTORS[actor_index]
            ops = []
            for item in items:
                if isinstance(item, int):
                    ops.append(made[item])
                    continue
                op = Op(str(uuid.UUID(int=10_000 + len(made))), item.entity, item.key,
                        item.base, item.fields, clocks[actor.device].now(item.ms),
                        f"u-{actor.device}", actor.device, SCHEMA.version, item.delete,
                        item.group)
                made.append(op)
                ops.append(op)
            pushes.append((actor, ops))
        out.append(pushes)
    return out


def _apply(store: ServerStore, actor: Actor, ops: list[Op], prefetch: bool) -> list[Any]:
    if prefetch:
        store.prefetch(ops)
    acks = apply_ops(SCHEMA, store, actor, ops)
    # reads inside the transaction see its own writes
    return [acks, store.head(), store.changes("S1", 0, 1_000), store.load("customer", key(200))]


def _pages_of_changes(store: ServerStore, site: str | None, limit: int) -> list[Any]:
    pages, cursor = [], 0
    while True:
        changes, new = store.changes(site, cursor, limit)
        pages.append((changes, new))
        if new == cursor or not changes:
            return pages
        cursor = new


def _pages_of_snapshot(store: ServerStore, site: str | None, limit: int) -> list[Any]:
    pages, after = [], ("", "")
    while True:
        rows = store.snapshot(site, after, limit)
        pages.append(rows)
        if len(rows) < limit:
            return pages
        after = (rows[-1].entity, rows[-1].key)


def _reads(store: ServerStore) -> list[Any]:
    out: list[Any] = [store.head()]
    for site in VIEWS:
        for limit in (1, 2, 5, 1_000):
            out.append(_pages_of_changes(store, site, limit))
        for limit in (1, 3, 1_000):
            out.append(_pages_of_snapshot(store, site, limit))
        out.append(store.changes(site, store.head() // 2, 3))
    return out


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories(), prefetch=st.booleans())
def test_sql_store_answers_like_the_reference(
    sql_backend: Backend, history: list[list[tuple[int, list[Spec | int]]]], prefetch: bool
) -> None:
    sql_backend.reset()
    memory = MemoryServerStore()
    txs = [[(SYSTEM, _staff())], *_ops(history)]
    for tx in txs:
        expected = [_apply(memory, actor, ops, prefetch) for actor, ops in tx]
        with sql_backend.tx() as store:
            got = [_apply(store, actor, ops, prefetch) for actor, ops in tx]
        assert got == expected
    with sql_backend.tx(write=False) as store:
        assert _reads(store) == _reads(memory)
    assert sql_backend.audit() == memory.audit
    assert sql_backend.conflicts() == [
        (c.op_id, c.field, c.server_value, c.proposed_value) for c in memory.conflicts]
    # the SQL store's stock balances are the sums of the movements the reference holds
    want: dict[tuple[str, str], int] = {}
    for (entity, _), row in memory.rows.items():
        if entity == "stock_movement" and not row.deleted:
            k = (row.fields["site"], row.fields["product_id"])
            want[k] = want.get(k, 0) + row.fields["qty"]
    db = sql_backend.db
    assert db is not None
    # and its account balances the sums of the journal lines the reference holds
    books: dict[tuple[str, str], list[int]] = {}
    for (entity, _), row in memory.rows.items():
        if entity == "journal_line" and not row.deleted:
            f = row.fields
            got_lines = books.setdefault((f["site"], f["account"]), [0, 0, 0])
            for n, v in enumerate((f["debit"], f["credit"], 1)):
                got_lines[n] += v
    balances = db.t[ACCOUNT_BALANCE_TABLE]
    with db.transaction(write=False) as sql:
        got = {(s, p): int(n) for s, p, n in sql.conn.execute(on_hand.levels(db.metadata))}
        kept = {(s, a): [int(d), int(c), int(n)] for s, a, d, c, n in sql.conn.execute(
            select(balances).where(balances.c.lines > 0))}
        assert totals.drifts(sql.conn, db.metadata) == []
    assert got == want
    assert kept == books
