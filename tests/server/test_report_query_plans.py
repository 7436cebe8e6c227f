"""HQ's reports over a period, a site or one order read that period's, site's
or order's rows through an index (``server.tables.READS``): none walks a whole
ledger, which grows with every sale, and the journal's sums over a period
count and sum no journal line (the totals kept per day have them). Without them a month's sales report
grouped every sale line ever sold (0.5 s at 500,000 lines), the finance
page sorted every journal line (1.5 s at a million), an order's detail
walked every order line.

The plans are SQLite's own (EXPLAIN QUERY PLAN) for the statements the
requests really issued."""

from __future__ import annotations

import datetime
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from server.admin import apply_as_hq, apply_group_as_hq
from tests.sync.kit import PRODUCT, key

from .rest_kit import open_api, post_sale


@contextmanager
def selects(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements ``engine`` runs meanwhile, one by one, with their
    parameters."""
    reads: list[tuple[str, Any]] = []

    def seen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("SELECT") and not many:
            reads.append((sql, params))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", seen)

LEDGERS = ("journal_line", "sale_line", "sale", "po_line", "goods_receipt")
WHOLE = re.compile(rf"^SCAN ({'|'.join(LEDGERS)})$")
"""A plan line walking a whole ledger table."""


def test_reports_of_a_period_site_or_order_read_only_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "hq.db"
    today = datetime.date.today().isoformat()
    with open_api(f"sqlite:///{path}") as api:
        assert apply_as_hq(api.db, "product", PRODUCT, {
            "sku": "OAT-1", "name": "Oat", "price": 250}).status == "accepted"
        post_sale(api.db, "S1", PRODUCT, 1, 250, 120)
        po = key(900)
        assert {a.status for a in apply_group_as_hq(api.db, [
            ("purchase_order", po, {"site": "S1", "supplier": "Acme", "total": 100,
                                    "status": "draft"}),
            ("po_line", key(901), {"po_id": po, "site": "S1", "product_id": PRODUCT,
                                   "qty": 1, "unit_cost": 100})])} == {"accepted"}
        with selects(api.db.engine) as reads:
            month = {"date_from": today[:8] + "01", "date_to": today}
            for report, params in [("journal", {"site": "S1"}), ("journal", month),
                                   ("journal", {**month, "site": "S1", "account": "4000"}),
                                   ("sales", month), ("sales", {**month, "site": "S1"}),
                                   ("margin", month), ("margin", {**month, "period": "day"})]:
                assert api.call("GET", f"/api/reports/{report}", "admin", **params)[0] == 200
            assert api.ok("GET", f"/api/hq/purchase-orders/{po}", "admin")["lines"]

    conn = sqlite3.connect(path)
    try:
        plans = {sql: [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
                 for sql, params in reads}
    finally:
        conn.close()
    read = {t for sql in plans for t in LEDGERS if re.search(rf"\b{t}\b", sql)}
    assert read == set(LEDGERS), read  # the requests really read every ledger
    walks = {" ".join(sql.split())[:120]: plan for sql, plan in plans.items()
             if any(WHOLE.match(step) for step in plan)}
    assert walks == {}
    # the journal's number, debits and credits of a range of days come from the
    # totals kept per (day, site, account), its range's days through the key
    # the day leads: no journal line is counted or summed (a month's sums
    # walked every line of the month, a year's every line of the year)
    summed = [" ".join(sql.split())[:120] for sql in plans
              if re.search(r"\bjournal_line\b", sql) and re.search(r"\b(count|sum)\(", sql, re.I)]
    assert summed == []
    kept = [plan for sql, plan in plans.items() if "sum(journal_day.lines)" in sql]
    assert len(kept) == 2, kept  # the month, and the month of a site and account
    for plan in kept:
        assert any("journal_day USING INDEX" in step and "date>?" in step for step in plan), plan
    used = " ".join(step for plan in plans.values() for step in plan)
    for index in ("ix_sale_by_date_site_id", "ix_sale_line_by_sale_id_qty_cost"):
        assert f"COVERING INDEX {index}" in used, index  # a range's cost reads no row
    for index in ("ix_journal_line_by_date", "ix_journal_line_by_site_seq",
                  "ix_sale_by_date_site_id", "ix_sale_line_by_sale_id_qty_cost", "ix_po_line_by_po_id",
                  "ix_goods_receipt_by_po_id"):
        assert index in used, index


def test_sales_of_all_time_read_the_kept_totals_not_a_receipt_or_a_line(
        tmp_path: Path) -> None:
    """The sales report of all time (the whole chain or one site) and the
    overview's sales read the totals kept per (site, day) and the cost kept
    per site: not one receipt, not one sale line (every line ever sold was
    read: 466 ms at 500,000 lines). A range of days reads the kept totals
    of its days, and its receipts' lines only for their cost."""
    today = datetime.date.today().isoformat()
    with open_api(f"sqlite:///{tmp_path / 'hq.db'}") as api:
        assert apply_as_hq(api.db, "product", PRODUCT, {
            "sku": "OAT-1", "name": "Oat", "price": 250}).status == "accepted"
        post_sale(api.db, "S1", PRODUCT, 2, 250, 120)
        post_sale(api.db, "S2", PRODUCT, 1, 250, 120)
        with selects(api.db.engine) as reads:
            whole = [api.ok("GET", "/api/reports/sales", "admin", **p)
                     for p in ({}, {"site": "S1"})]
            all_time = [sql for sql, _ in reads]
            month = api.ok("GET", "/api/reports/sales", "admin", date_from=today[:8] + "01",
                           date_to=today)
            ranged = [sql for sql, _ in reads[len(all_time):]]
    assert [(r["site"], r["receipts"], r["net"], r["cost"]) for r in whole[0]] == [
        ("S1", 1, 500, 240), ("S2", 1, 250, 120)] == [
        (r["site"], r["receipts"], r["net"], r["cost"]) for r in month]
    assert whole[1] == whole[0][:1]
    read = {t for sql in all_time for t in LEDGERS if re.search(rf"\b{t}\b", sql)}
    assert read == set() and all_time, all_time
    assert any("site_day_sales" in sql for sql in all_time)
    assert any("site_sale_cost" in sql for sql in all_time)
    assert any("site_day_sales" in sql for sql in ranged)
    assert not any(re.search(r"\bsale\b", sql) and "count(" in sql.lower() for sql in ranged)


def test_margin_by_month_day_or_range_reads_the_kept_days_not_a_journal_line(
        tmp_path: Path) -> None:
    """The margin per month or day, of all time or of a range of days, of the
    chain or one site, reads the debits and credits kept per (day, site,
    account): not one journal line (by month over all time it read every
    line ever posted: 0.9 s at 1.25 M lines). A range of days reads its own
    days through the key the day leads."""
    today = datetime.date.today().isoformat()
    with open_api(f"sqlite:///{tmp_path / 'hq.db'}") as api:
        assert apply_as_hq(api.db, "product", PRODUCT, {
            "sku": "OAT-1", "name": "Oat", "price": 250}).status == "accepted"
        post_sale(api.db, "S1", PRODUCT, 2, 250, 120)
        post_sale(api.db, "S2", PRODUCT, 1, 250, 100)
        with selects(api.db.engine) as reads:
            month = {"date_from": today[:8] + "01", "date_to": today}
            asked = [{"period": "month"}, {"period": "day", "site": "S1"}, month,
                     {**month, "period": "day"}, {**month, "period": "month", "site": "S2"}]
            got = [api.ok("GET", "/api/reports/margin", "admin", **p) for p in asked]
    assert [(m["site"], m["period"], m["margin"]) for m in got[0]] == [
        ("S1", today[:7], 260), ("S2", today[:7], 150)]
    assert [(m["site"], m["period"], m["margin"]) for m in got[1]] == [("S1", today, 260)]
    assert [(m["site"], m["period"], m["revenue"]) for m in got[3]] == [
        ("S1", today, 500), ("S2", today, 250)]
    assert all(not re.search(r"\bjournal_line\b", sql) for sql, _ in reads), reads
    margins = [(sql, params) for sql, params in reads if "journal_day" in sql]
    assert len(margins) == len(asked), margins  # one read of the kept days per request
    conn = sqlite3.connect(tmp_path / "hq.db")
    try:
        ranged = [[row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
                  for sql, params in margins[2:4]]
    finally:
        conn.close()
    for plan in ranged:  # the range's days, not every day kept
        assert any("journal_day USING INDEX" in step and "date>?" in step for step in plan), plan
