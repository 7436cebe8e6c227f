"""Finance: trial balance per site and for the company, and the latest
journal lines with filters. Read-only: the journal is append-only."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from sqlalchemy import select

from schema.finance import CHART

from ..reports import books_by_site, trial_balance
from .auth import Ctx
from .common import parse_date
from .html import Html, Num, id_cell, join, money, table, tag

JOURNAL_ROWS = 200


def _select(name: str, options: list[tuple[str, str]], chosen: str | None) -> Html:
    return tag("select", tag("option", "all", value=""),
               *(tag("option", text, value=value, selected=value == chosen)
                 for value, text in options), name=name)


@get("/finance", sync_to_thread=True, opt={"page": "finance"})
def finance(ctx: NamedDependency[Ctx], site: FromQuery[str | None] = None,
            account: FromQuery[str | None] = None, date_from: FromQuery[str | None] = None,
            date_to: FromQuery[str | None] = None) -> Response[str]:
    """Trial balance of one site (or the company) and the journal lines that
    make it, newest first."""
    db = ctx.db
    site = ctx.user.site_filter or site or None
    account = account or None
    error = None
    try:
        lo, hi = parse_date(date_from, "from"), parse_date(date_to, "to")
    except ValueError as exc:
        lo = hi = None
        error = str(exc)
    jl = db.entities["journal_line"]
    with db.reading() as conn:  # the balances, the trial balance and the lines agree
        per_site = conn.execute(books_by_site(db)).all()  # kept, not summed
        q = select(jl.c.date, jl.c.site, jl.c.account, jl.c.debit, jl.c.credit, jl.c.memo,
                   jl.c.entry_id)
        if site:
            q = q.where(jl.c.site == site)
        if account:
            q = q.where(jl.c.account == account)
        if lo:
            q = q.where(jl.c.date >= lo)
        if hi:
            q = q.where(jl.c.date <= hi)
        lines = conn.execute(q.order_by(jl.c._seq.desc()).limit(JOURNAL_ROWS)).all()
        tb = trial_balance(db, site, conn, upto=hi)  # as at the period's end
    if ctx.user.site_filter:
        per_site = [r for r in per_site if r[0] == ctx.user.site_filter]
    sites = [str(r[0]) for r in per_site]
    filters = tag(
        "form",
        tag("label", "Site ", _select("site", [(s, s) for s in sites], site)), " ",
        tag("label", "Account ", _select("account", [(c, f"{c} {n}") for c, (n, _) in
                                                     CHART.items()], account)), " ",
        tag("label", "From ", tag("input", type="date", name="date_from", value=lo or "")), " ",
        tag("label", "To ", tag("input", type="date", name="date_to", value=hi or "")), " ",
        tag("button", "Show", type="submit"), method="get", action="/finance")
    rows: list[list[Any]] = [[s, Num(money(int(d))), Num(money(int(c))), n,
                              "balanced" if int(d) == int(c) else "NOT BALANCED"]
                             for s, d, c, n in per_site]
    body = [
        filters,
        tag("h2", "Balance per site (every journal line to date)"),
        table(["site", "debit", "credit", "lines", ""], rows),
        tag("h2", f"Trial balance, {site or 'company'}, "
                  + (f"as at {hi} (journal lines dated up to and including {hi})" if hi
                     else "to date (every journal line)")
                  + f" ({'balanced' if tb.balanced else 'NOT BALANCED'})", id="trial-balance"),
        table(["account", "name", "type", "debit", "credit", "balance"],
              [[a.code, a.name, a.type, Num(money(a.debit)), Num(money(a.credit)),
                Num(money(a.balance))] for a in tb.accounts]
              + [["", "total", "", Num(money(tb.debit)), Num(money(tb.credit)), ""]]),
        tag("h2", f"Journal lines (latest {JOURNAL_ROWS}"
                  + (f", {site}" if site else "") + (f", account {account}" if account else "")
                  + (f", dated {lo or 'the beginning'} to {hi or 'today'}" if lo or hi else "")
                  + ")"),
        table(["date", "site", "account", "debit", "credit", "memo", "entry"],
              [[r.date, r.site, f"{r.account} {CHART.get(r.account, ('', ''))[0]}",
                Num(money(r.debit)), Num(money(r.credit)), r.memo, id_cell(r.entry_id)]
               for r in lines], empty="no journal lines"),
    ]
    return ctx.page("finance", "Finance", join(body), error=error)
