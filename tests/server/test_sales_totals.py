"""HQ's sales report (``server.reports.sales_by_site``) reads the receipts,
net and tax kept per (site, day) and the cost of goods kept per site
(``server.tables.SITE_DAY_SALES_TABLE``, ``SALE_COST_TABLE``), and must give
exactly what summing the receipts of the range and their lines gives -- of
all time, of one site, of any range of days -- on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from schema import SCHEMA
from server import totals
from server.reports import SiteSales, sale_filters, sales_by_site
from server.store import Database
from sync.server import apply_ops
from tests.sync.kit import PRODUCT, S1_TILL1, S2_TILL1, op

from .conftest import GROWING, Backend

TILLS = {"S1": S1_TILL1, "S2": S2_TILL1}
DAYS = ("2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02")

Line = tuple[int, int]
"""qty (negative on a return), unit cost"""
Receipt = tuple[str, str, list[Line]]
"""site, day, lines"""


def _push(backend: Backend, receipts: list[Receipt]) -> None:
    """Each receipt pushed the way a till pushes it: the receipt and its lines
    in one group, its net the lines' price (3 a unit) and tax a fifth of it."""
    for site, day, lines in receipts:
        actor, sale = TILLS[site], str(uuid.uuid4())
        net = sum(3 * q for q, _ in lines)
        kind = "return" if net < 0 else "sale"
        ops = [op(actor, "sale", sale, {
            "site": site, "device": actor.device, "receipt_no": f"{site}-{sale[:8]}",
            "kind": kind, "net": net, "discount": 0, "tax": net // 5, "total": net + net // 5,
            "cash": net + net // 5, "card": 0, "on_account": 0, "cashier": "clara",
            "date": day})]
        ops += [op(actor, "sale_line", str(uuid.uuid4()), {
            "sale_id": sale, "site": site, "line_no": n, "product_id": PRODUCT, "qty": q,
            "price": 3, "discount": 0, "tax": 0, "cost": c}) for n, (q, c) in enumerate(lines)]
        ops = [_grouped(o, sale) for o in ops]
        with backend.tx() as store:
            acks = apply_ops(SCHEMA, store, actor, ops)
        assert {a.status for a in acks} == {"accepted"}, [a.reason for a in acks]


def _grouped(o: Any, group: str) -> Any:
    import msgspec

    return msgspec.structs.replace(o, group=group)


def _from_the_lines(db: Database, lo: str | None = None, hi: str | None = None,
                    site: str | None = None) -> list[SiteSales]:
    """The report as it was before the kept totals: the receipts of the range,
    and the qty x unit cost of each one's lines."""
    sale, line = db.entities["sale"], db.entities["sale_line"]
    where = sale_filters(db, lo, hi, site)
    cost_of = (select(func.sum(line.c.qty * line.c.cost))
               .where(line.c.sale_id == sale.c.id).scalar_subquery())
    q = (select(sale.c.site, func.count(), func.sum(sale.c.net), func.sum(sale.c.tax),
                func.coalesce(func.sum(cost_of), 0))
         .where(*where).group_by(sale.c.site).order_by(sale.c.site))
    with db.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [SiteSales(s, int(n), int(net), int(tax), int(c), int(net) - int(c))
            for s, n, net, tax, c in rows]


receipts = st.lists(st.tuples(
    st.sampled_from(sorted(TILLS)), st.sampled_from(DAYS),
    st.lists(st.tuples(st.integers(-6, 6).filter(bool), st.integers(0, 900)),
             min_size=1, max_size=3)), max_size=6)
ranges = st.tuples(st.none() | st.sampled_from(DAYS), st.none() | st.sampled_from(DAYS),
                   st.none() | st.sampled_from(("S1", "S2", "S3")))


def test_the_report_is_what_the_receipts_and_their_lines_add_up_to(
        sql_backend: Backend) -> None:
    db = sql_backend.staffed()

    @GROWING
    @given(receipts, st.lists(ranges, min_size=1, max_size=4))
    def more(batch: list[Receipt], asked: list[tuple[str | None, str | None, str | None]]
             ) -> None:
        _push(sql_backend, batch)  # the ledger only grows: each example adds to it
        assert sales_by_site(db) == _from_the_lines(db)
        for lo, hi, site in asked:
            assert sales_by_site(db, lo, hi, site) == _from_the_lines(db, lo, hi, site)

    more()
    with db.engine.connect() as conn:
        assert totals.drifts(conn, db.metadata) == []


def test_a_day_a_site_and_a_return_in_the_figures(sql_backend: Backend) -> None:
    db = sql_backend.staffed()
    _push(sql_backend, [("S1", "2026-02-28", [(2, 100), (1, 50)]),  # net 9, cost 250
                        ("S1", "2026-03-01", [(4, 100)]),  # net 12, cost 400
                        ("S1", "2026-03-01", [(-1, 100)]),  # a return: net -3, cost -100
                        ("S2", "2026-03-02", [(5, 10)])])  # net 15, cost 50
    assert sales_by_site(db) == [SiteSales("S1", 3, 18, 2, 550, -532),
                                 SiteSales("S2", 1, 15, 3, 50, -35)]
    assert sales_by_site(db, "2026-03-01", "2026-03-01") == [SiteSales("S1", 2, 9, 1, 300, -291)]
    assert sales_by_site(db, hi="2026-02-28") == [SiteSales("S1", 1, 9, 1, 250, -241)]
    assert sales_by_site(db, site="S2") == [SiteSales("S2", 1, 15, 3, 50, -35)]
    assert sales_by_site(db, "2026-03-03") == []


def test_a_line_too_costly_for_the_sums_is_refused_with_its_receipt(
        sql_backend: Backend) -> None:
    """A line's cost (qty x unit cost) beyond 10^15 minor units would overflow
    the 64-bit cost kept per site: the till's transaction is refused whole,
    with the reason, and the figures stay as they were."""
    db = sql_backend.staffed()
    _push(sql_backend, [("S1", "2026-03-01", [(2, 100)])])
    before = sales_by_site(db)
    with sql_backend.tx() as store:
        sale = str(uuid.uuid4())
        acks = apply_ops(SCHEMA, store, S1_TILL1, [_grouped(o, sale) for o in (
            op(S1_TILL1, "sale", sale, {
                "site": "S1", "device": "s1-till1", "receipt_no": "S1-big", "kind": "sale",
                "net": 3, "discount": 0, "tax": 0, "total": 3, "cash": 3, "card": 0,
                "on_account": 0, "cashier": "clara", "date": "2026-03-01"}),
            op(S1_TILL1, "sale_line", str(uuid.uuid4()), {
                "sale_id": sale, "site": "S1", "line_no": 1, "product_id": PRODUCT,
                "qty": 2**40, "price": 3, "discount": 0, "tax": 0, "cost": 10**9}))])
    assert {a.status for a in acks} == {"rejected"}
    assert "qty x cost is beyond 1,000,000,000,000,000" in acks[1].reason
    assert sales_by_site(db) == before == _from_the_lines(db)
