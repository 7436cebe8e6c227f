"""Cross-department automation run inside the push transaction that triggers it.

Low stock raises a purchase suggestion for procurement: when a committed
stock movement leaves (site, product) at or below its reorder level and no
suggestion is open for it, the server (as HQ) opens one. Being in the same
transaction, it is atomic with the movement and reaches devices the same way.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import and_, func, select

from sync.hlc import Clock
from sync.messages import Op
from sync.server import SERVER_DEVICE, apply_ops

from .admin import SYSTEM
from .store import SqlServerStore

_clock = Clock(SERVER_DEVICE)


def after_push(store: SqlServerStore) -> int:
    """Raise the purchase suggestions this transaction's movements call for.
    Returns how many were opened."""
    db = store.db
    if "reorder_rule" not in db.entities or "purchase_suggestion" not in db.entities:
        return 0
    touched = sorted({(c.row.fields["site"], c.row.fields["product_id"])
                      for c, _ in store.published if c.row.entity == "stock_movement"})
    if not touched:
        return 0
    store.flush()
    rule, sm = db.entities["reorder_rule"], db.entities["stock_movement"]
    sug = db.entities["purchase_suggestion"]
    ops = []
    for site, product in touched:
        found = store.conn.execute(select(rule.c.level, rule.c.order_qty).where(
            and_(rule.c.site == site, rule.c.product_id == product, rule.c._deleted.is_(False))
        )).first()
        if found is None:
            continue
        on_hand = store.conn.execute(select(func.coalesce(func.sum(sm.c.qty), 0)).where(
            and_(sm.c.site == site, sm.c.product_id == product))).scalar_one()
        if on_hand > found.level:
            continue
        open_ = store.conn.execute(select(sug.c.id).where(and_(
            sug.c.site == site, sug.c.product_id == product, sug.c.status == "open"))).first()
        if open_ is not None:
            continue
        ops.append(Op(str(uuid.uuid4()), "purchase_suggestion", str(uuid.uuid4()), 0, {
            "site": site, "product_id": product, "qty": int(found.order_qty),
            "on_hand": int(on_hand), "status": "open"}, _clock.now(int(time.time() * 1000)),
            "system", SERVER_DEVICE, db.schema.version))
    if ops:
        apply_ops(db.schema, store, SYSTEM, ops)
    return len(ops)
