"""Cross-department automation run inside the push transaction that triggers it.

* Low stock raises a purchase suggestion for procurement: when a committed
  stock movement leaves (site, product) at or below its reorder level and no
  suggestion is open for it, the server (as HQ) opens one.
* Stock below zero raises a stock exception for HQ operations: when a
  committed movement leaves (site, product) below zero and no exception is
  open for it, the server opens one naming that movement and its document.
  The movement itself stands (the goods left the shop); HQ resolves the
  exception (a count, a transfer) through ``/api/operations/stock-exceptions``.

* A purchase order's total follows its lines: when a push made a line or
  changed an order, HQ writes the draft's total as what its lines come to
  (``server.rollups``).

Being in the same transaction, each is atomic with the changes that caused
it and reaches devices the same way (the owning store and HQ).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, select

from sync.hlc import Clock
from sync.messages import Op
from sync.server import SERVER_DEVICE, apply_ops

from . import on_hand, rollups
from .admin import SYSTEM
from .clock import fresh_id
from .store import SqlServerStore

_clock = Clock(SERVER_DEVICE)


def _op(store: SqlServerStore, entity: str, fields: dict[str, Any]) -> Op:
    return Op(fresh_id(), entity, fresh_id(), 0, fields,
              _clock.now(int(time.time() * 1000)), "system", SERVER_DEVICE,
              store.db.schema.version)


Pair = tuple[str, str]
"""(site, product id)."""
CHUNK = 500


def _matching(store: SqlServerStore, table: Table, pairs: list[Pair], columns: list[Any],
              *where: ColumnElement[bool]) -> dict[Pair, Row[Any]]:
    """The row of ``table`` (its ``columns``) for each of ``pairs`` that has one
    matching ``where``: one query per site and 500 products, read through the
    table's (site, product_id[, ...]) index, whatever the number of pairs."""
    by_site: dict[str, list[str]] = {}
    for site, product in pairs:
        by_site.setdefault(site, []).append(product)
    found: dict[Pair, Row[Any]] = {}
    for site, products in by_site.items():
        for at in range(0, len(products), CHUNK):
            q = select(table.c.site, table.c.product_id, *columns).where(
                table.c.site == site, table.c.product_id.in_(products[at : at + CHUNK]), *where)
            found.update(((r.site, r.product_id), r) for r in store.conn.execute(q))
    return found


def _open(store: SqlServerStore, entity: str, pairs: list[Pair]) -> set[Pair]:
    """Which of ``pairs`` already have an open ``entity`` (suggestion, exception)."""
    if not pairs:
        return set()
    t = store.db.entities[entity]
    return set(_matching(store, t, pairs, [], t.c.status == "open"))


def after_push(store: SqlServerStore) -> int:
    """Raise the purchase suggestions and stock exceptions this transaction's
    movements call for, and bring the totals of the orders it touched to their
    lines. Returns how many suggestions and exceptions were opened."""
    rollups.derive(store)
    last: dict[Pair, Any] = {}
    for change, _ in store.published:
        if change.row.entity == "stock_movement":
            f = change.row.fields
            last[(f["site"], f["product_id"])] = change.row
    if not last:
        return 0
    store.flush()  # the balances now hold this transaction's movements
    db, pairs = store.db, sorted(last)
    balances = on_hand.table(db.metadata)
    assert balances is not None
    level = {k: int(r.qty) for k, r in _matching(store, balances, pairs, [balances.c.qty]).items()}
    rules: dict[Pair, Row[Any]] = {}
    if "reorder_rule" in db.entities and "purchase_suggestion" in db.entities:
        rule = db.entities["reorder_rule"]
        rules = _matching(store, rule, pairs, [rule.c.level, rule.c.order_qty],
                          rule.c._deleted.is_(False))
    low = {k for k in pairs if k in rules and level.get(k, 0) <= int(rules[k].level)}
    below = {k for k in pairs if level.get(k, 0) < 0} if "stock_exception" in db.entities \
        else set()
    suggested = _open(store, "purchase_suggestion", sorted(low))
    raised = _open(store, "stock_exception", sorted(below))
    ops = []
    for k in pairs:  # in (site, product) order: a suggestion, then an exception
        site, product = k
        on_hand_now = level.get(k, 0)
        if k in low and k not in suggested:
            ops.append(_op(store, "purchase_suggestion", {
                "site": site, "product_id": product, "qty": int(rules[k].order_qty),
                "on_hand": on_hand_now, "status": "open"}))
        if k in below and k not in raised:
            movement = last[k]
            ops.append(_op(store, "stock_exception", {
                "site": site, "product_id": product, "on_hand": on_hand_now,
                "movement_id": movement.key, "reason": str(movement.fields.get("reason") or ""),
                "document_id": movement.fields.get("document_id"), "status": "open"}))
    if ops:
        apply_ops(db.schema, store, SYSTEM, ops)
    return len(ops)
