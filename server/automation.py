"""Cross-department automation run inside the push transaction that triggers it.

* Low stock raises a purchase suggestion for procurement: when a committed
  stock movement leaves (site, product) at or below its reorder level and no
  suggestion is open for it, the server (as HQ) opens one.
* Stock below zero raises a stock exception for HQ operations: when a
  committed movement leaves (site, product) below zero and no exception is
  open for it, the server opens one naming that movement and its document.
  The movement itself stands (the goods left the shop); HQ resolves the
  exception (a count, a transfer) through ``/api/operations/stock-exceptions``.

Being in the same transaction, each is atomic with the movements that caused
it and reaches devices the same way (the owning store and HQ).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, func, select

from sync.hlc import Clock
from sync.messages import Op
from sync.server import SERVER_DEVICE, apply_ops

from .admin import SYSTEM
from .clock import fresh_id
from .store import SqlServerStore

_clock = Clock(SERVER_DEVICE)


def _op(store: SqlServerStore, entity: str, fields: dict[str, Any]) -> Op:
    return Op(fresh_id(), entity, fresh_id(), 0, fields,
              _clock.now(int(time.time() * 1000)), "system", SERVER_DEVICE,
              store.db.schema.version)


def _suggestion(store: SqlServerStore, site: str, product: str, on_hand: int) -> Op | None:
    db = store.db
    if "reorder_rule" not in db.entities or "purchase_suggestion" not in db.entities:
        return None
    rule, sug = db.entities["reorder_rule"], db.entities["purchase_suggestion"]
    found = store.conn.execute(select(rule.c.level, rule.c.order_qty).where(
        and_(rule.c.site == site, rule.c.product_id == product, rule.c._deleted.is_(False))
    )).first()
    if found is None or on_hand > found.level:
        return None
    open_ = store.conn.execute(select(sug.c.id).where(and_(
        sug.c.site == site, sug.c.product_id == product, sug.c.status == "open"))).first()
    if open_ is not None:
        return None
    return _op(store, "purchase_suggestion", {
        "site": site, "product_id": product, "qty": int(found.order_qty),
        "on_hand": on_hand, "status": "open"})


def _exception(store: SqlServerStore, site: str, product: str, on_hand: int,
               movement: Any) -> Op | None:
    db = store.db
    if on_hand >= 0 or "stock_exception" not in db.entities:
        return None
    exc = db.entities["stock_exception"]
    open_ = store.conn.execute(select(exc.c.id).where(and_(
        exc.c.site == site, exc.c.product_id == product, exc.c.status == "open"))).first()
    if open_ is not None:
        return None
    return _op(store, "stock_exception", {
        "site": site, "product_id": product, "on_hand": on_hand,
        "movement_id": movement.key, "reason": str(movement.fields.get("reason") or ""),
        "document_id": movement.fields.get("document_id"), "status": "open"})


def after_push(store: SqlServerStore) -> int:
    """Raise the purchase suggestions and stock exceptions this transaction's
    movements call for. Returns how many were opened."""
    db = store.db
    last: dict[tuple[str, str], Any] = {}
    for change, _ in store.published:
        if change.row.entity == "stock_movement":
            f = change.row.fields
            last[(f["site"], f["product_id"])] = change.row
    if not last:
        return 0
    store.flush()
    sm = db.entities["stock_movement"]
    ops = []
    for (site, product), movement in sorted(last.items(), key=lambda kv: kv[0]):
        on_hand = int(store.conn.execute(select(func.coalesce(func.sum(sm.c.qty), 0)).where(
            and_(sm.c.site == site, sm.c.product_id == product))).scalar_one())
        for made in (_suggestion(store, site, product, on_hand),
                     _exception(store, site, product, on_hand, movement)):
            if made is not None:
                ops.append(made)
    if ops:
        apply_ops(db.schema, store, SYSTEM, ops)
    return len(ops)
