"""Sales: receipts, net sales, tax, cost and margin per site and period."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from sqlalchemy import select

from ..reports import sales_by_site
from ..tables import SITE_DAY_SALES_TABLE
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
    kept = db.t[SITE_DAY_SALES_TABLE]  # by posting day, as the books and the totals above
    q = (select(kept.c.date, kept.c.site, kept.c.receipts, kept.c.net, kept.c.tax)
         .where(kept.c.receipts > 0, *(test for test in (
             kept.c.date >= lo if lo else None, kept.c.date <= hi if hi else None,
             kept.c.site == site if site else None) if test is not None))
         .order_by(kept.c.date.desc(), kept.c.site))
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
        tag("p", "A receipt counts on the day it is posted: its own date, or the first open "
                 "day when it reached HQ dated inside a closed period (see Finance, Books)."),
        table(["date", "site", "receipts", "net", "tax"],
              [[d, s, int(n), Num(money(int(net))), Num(money(int(tax)))]
               for d, s, n, net, tax in days], empty="no sales in this period",
              limit=DAY_ROWS, more="the latest days first; choose dates to see others"),
    ]
    return ctx.page("sales", "Sales", join(body), error=error)
