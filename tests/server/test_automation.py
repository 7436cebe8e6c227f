"""The push automation over many products at once: one push that moves several
(site, product) pairs raises exactly the suggestions and exceptions each pair
calls for, once, however the pairs are spread over sites."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from schema import SCHEMA
from server.admin import apply_as_hq, hire
from server.automation import CHUNK, after_push
from server.store import Database
from sync.merge import Actor
from sync.server import apply_ops
from tests.sync.kit import S1_TILL1, S2_TILL1, key, op

P1, P2, P3, P4 = (key(500 + i) for i in range(4))


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'hq.db'}", SCHEMA)
    hire(db, "u-s1-till1", "cashier", "S1")
    hire(db, "u-s2-till1", "cashier", "S2")
    for n, p in enumerate((P1, P2, P3, P4)):
        assert apply_as_hq(db, "product", p, {"sku": f"SKU-{n}", "name": f"P{n}",
                                              "price": 100}).status == "accepted"
    return db


def _rule(db: Database, n: int, site: str, product: str, level: int) -> None:
    assert apply_as_hq(db, "reorder_rule", key(600 + n), {
        "site": site, "product_id": product, "level": level, "order_qty": 10,
    }).status == "accepted"


def _push(db: Database, actor: Actor, moves: list[tuple[str, str, int]], first: int) -> int:
    ops = [op(actor, "stock_movement", key(first + i),
              {"site": site, "product_id": p, "qty": qty, "reason": "sale" if qty < 0
               else "receipt"})
           for i, (site, p, qty) in enumerate(moves)]
    with db.transaction() as store:
        acks = apply_ops(SCHEMA, store, actor, ops)
        assert all(a.status == "accepted" for a in acks), acks
        return after_push(store)


def _open(db: Database, entity: str) -> list[tuple[str, str, int]]:
    t = db.entities[entity]
    with db.transaction(write=False) as store:
        return [tuple(r) for r in store.conn.execute(
            select(t.c.site, t.c.product_id, t.c.on_hand).where(t.c.status == "open")
            .order_by(t.c.site, t.c.product_id))]


def test_one_push_over_many_products_raises_what_each_calls_for(tmp_path: Path) -> None:
    db = _db(tmp_path)
    _rule(db, 1, "S1", P1, level=5)
    _rule(db, 2, "S1", P2, level=5)
    _rule(db, 3, "S1", P3, level=5)
    _rule(db, 4, "S2", P1, level=0)
    # P3 is already low with a suggestion open; P2 is stocked well
    assert _push(db, S1_TILL1, [("S1", P2, 50), ("S1", P3, 1)], first=1000) == 1
    assert _open(db, "purchase_suggestion") == [("S1", P3, 1)]

    # one push of S1: P1 falls to its level, P2 stays above, P3 falls further,
    # P4 (no rule) goes below zero
    moved = [("S1", P1, 8), ("S1", P1, -3), ("S1", P2, -1), ("S1", P3, -1), ("S1", P4, -2)]
    assert _push(db, S1_TILL1, moved, first=2000) == 2
    assert _open(db, "purchase_suggestion") == [("S1", P1, 5), ("S1", P3, 1)]
    assert _open(db, "stock_exception") == [("S1", P4, -2)]

    # S2 sells P1 below zero: its own rule and its own exception, S1's untouched
    assert _push(db, S2_TILL1, [("S2", P1, -1)], first=3000) == 2
    assert _open(db, "purchase_suggestion") == [("S1", P1, 5), ("S1", P3, 1), ("S2", P1, -1)]
    assert _open(db, "stock_exception") == [("S1", P4, -2), ("S2", P1, -1)]

    # selling more of what is low or below zero raises nothing twice
    assert _push(db, S1_TILL1, [("S1", P1, -1), ("S1", P4, -1)], first=4000) == 0
    # P3 (0 on hand, a suggestion open) now goes below zero: only the exception
    assert _push(db, S1_TILL1, [("S1", P3, -1)], first=5000) == 1
    assert _open(db, "stock_exception") == [("S1", P3, -1), ("S1", P4, -2), ("S2", P1, -1)]
    assert len(_open(db, "purchase_suggestion")) == 3
    db.dispose()


def test_a_push_over_more_products_than_one_lookup_holds(tmp_path: Path) -> None:
    db = _db(tmp_path)
    n = CHUNK + 20  # the lookups go in two chunks
    products = [key(10_000 + i) for i in range(n)]
    moved = [("S1", p, -1) for p in products]
    assert _push(db, S1_TILL1, moved, first=20_000) == n  # each goes below zero once
    exceptions = _open(db, "stock_exception")
    assert sorted(p for _, p, _ in exceptions) == sorted(products)
    assert {q for _, _, q in exceptions} == {-1}
    db.dispose()
