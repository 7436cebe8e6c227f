"""Sales: receipts, net sales, tax, cost and margin per site and period."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from sqlalchemy import func, select

from ..reports import sale_filters, sales_by_site
from .auth import Ctx
from .common import parse_date
from .html import Num, join, money, table, tag

DAYS = 31
DAY_ROWS = DAYS * 10
"""Rows of the "By day" table: a month of ten sites."""


@get("/sales", sync_to_thread=True, opt={"page": "sales"})
def sales(ctx: NamedDependency[Ctx], date_from: FromQuery[str | None] = None,
          date_to: FromQuery[str | None] = None) -> Response[str]:
    """Sales per site for a period (default: everything), and per day."""
    db = ctx.db
    error = None
    try:
        lo, hi = parse_date(date_from, "from"), parse_date(date_to, "to")
    except ValueError as exc:
        lo = hi = None
        error = str(exc)
    site = ctx.user.site_filter
    sale = db.entities["sale"]
    q = (select(sale.c.date, sale.c.site, func.count(), func.sum(sale.c.net),
                func.sum(sale.c.tax)).where(*sale_filters(db, lo, hi, site))
         .group_by(sale.c.date, sale.c.site).order_by(sale.c.date.desc(), sale.c.site))
    with db.reading() as conn:  # the period's totals and its days agree
        rows = sales_by_site(db, lo, hi, site, conn)
        days = conn.execute(q.limit(DAY_ROWS + 1)).all()
    total = [sum(getattr(r, f) for r in rows) for f in ("receipts", "net", "tax", "cost",
                                                         "margin")]
    period = f"{lo or 'the beginning'} to {hi or 'today'}"
    body = [
        tag("form",
            tag("label", "From ", tag("input", type="date", name="date_from", value=lo or "")),
            " ",
            tag("label", "To ", tag("input", type="date", name="date_to", value=hi or "")),
            " ", tag("button", "Show", type="submit"), method="get", action="/sales"),
        tag("h2", f"Sales by site, {period}"),
        table(["site", "receipts", "net", "tax", "cost", "margin"],
              [[r.site, r.receipts, Num(money(r.net)), Num(money(r.tax)), Num(money(r.cost)),
                Num(money(r.margin))] for r in rows]
              + ([["all sites", total[0], *(Num(money(v)) for v in total[1:])]] if rows else []),
              empty="no sales in this period"),
        tag("h2", "By day"),
        table(["date", "site", "receipts", "net", "tax"],
              [[d, s, int(n), Num(money(int(net))), Num(money(int(tax)))]
               for d, s, n, net, tax in days], empty="no sales in this period",
              limit=DAY_ROWS, more="the latest days first; choose dates to see others"),
    ]
    return ctx.page("sales", "Sales", join(body), error=error)
