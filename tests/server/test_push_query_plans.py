"""Every statement a push runs on SQLite is served by an index that narrows it
to the rows the push touches: none walks a whole table, and none walks every
row of a site. Such a walk grows with history (years of sales, thousands of
reorder rules, every suggestion ever raised), and a push pays it inside the
single write transaction that every store's pushes queue behind.

The plans are SQLite's own (EXPLAIN QUERY PLAN), for the statements the push
really issued: the ops, their dedupe and row reads, the stock balance, and
the automation that raises a purchase suggestion and a stock exception."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event

from schema import SCHEMA
from server.admin import apply_as_hq, hire
from server.automation import after_push
from server.store import Database
from sync.messages import Push
from sync.server import ServerSession
from tests.sync.kit import PRODUCT, S1_TILL1, key, op

WALKS = (
    re.compile(r"^SCAN (?!CONSTANT ROW)"),  # a whole table (or a whole index)
    re.compile(r"USING (?:COVERING )?INDEX ix_\w+_site_id \(site=\?\)$"),  # a whole site
)
LAST_ROW = re.compile(r"ORDER BY (\w+)\.id DESC\s+LIMIT \?", re.S)
"""The audit chain's tail, read backwards by its integer key and stopped after
one row: SQLite calls it a SCAN, but it reads one row."""


def _plans(path: Path, statements: list[tuple[str, Any]]) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        return {sql: [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
                for sql, params in statements}
    finally:
        conn.close()


def test_a_push_and_its_automation_read_only_the_rows_they_touch(tmp_path: Path) -> None:
    path = tmp_path / "hq.db"
    db = Database(f"sqlite:///{path}", SCHEMA)
    hire(db, "u-s1-till1", "cashier", "S1")
    for entity, k, fields in [
        ("product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk", "price": 250, "cost": 120}),
        ("reorder_rule", key(9), {"site": "S1", "product_id": PRODUCT, "level": 2,
                                  "order_qty": 12}),
    ]:
        assert apply_as_hq(db, entity, k, fields).status == "accepted"

    reads: list[tuple[str, Any]] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("SELECT") and not many:
            reads.append((sql, params))

    session = ServerSession(SCHEMA, S1_TILL1, 0)
    sales = [op(S1_TILL1, "stock_movement", key(100 + i),
                {"site": "S1", "product_id": PRODUCT, "qty": -1, "reason": "sale"})
             for i in range(3)]  # 0 - 3 = -3: below the reorder level and below zero
    with db.transaction() as store:
        [acks] = session.handle(store, Push(batch=1, ops=sales))
        opened = after_push(store)
    event.remove(db.engine, "before_cursor_execute", _seen)
    db.dispose()
    assert [a.status for a in acks.acks] == ["accepted"] * 3  # type: ignore[union-attr]
    assert opened == 2  # a purchase suggestion and a stock exception

    plans = _plans(path, reads)
    tables = {m for sql in plans for m in re.findall(r"FROM (\w+)", sql)}
    # the path really went through the automation's lookups and the balance
    assert {"audit", "stock_movement", "on_hand", "reorder_rule", "purchase_suggestion",
            "stock_exception"} <= tables, tables
    def last_row(sql: str, step: str) -> bool:
        found = LAST_ROW.search(sql)
        return found is not None and step == f"SCAN {found[1]}"

    walks = [(sql, step) for sql, steps in plans.items() for step in steps
             if any(w.search(step) for w in WALKS) and not last_row(sql, step)]
    assert walks == []
