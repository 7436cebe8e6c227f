"""Finance: trial balance per site and for the company, the latest journal
lines with filters, and closing the books (``server.periods``): where they
stand, which tills may still hold sales of the period, and the close itself.
The journal is append-only; a line that reached HQ dated inside a closed
period shows the day it was posted on."""

from __future__ import annotations

import datetime
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, URLEncodedBody
from sqlalchemy import select

from schema.finance import CHART, next_day
from sync.authorize import Staff

from .. import periods
from ..devices import when
from ..reports import books_by_site, trial_balance
from ..tables import LATE_POSTING_TABLE
from .auth import Ctx
from .common import parse_date
from .html import Html, Num, hidden_csrf, id_cell, join, money, table, tag

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
    jl, late = db.entities["journal_line"], db.t[LATE_POSTING_TABLE]
    with db.reading() as conn:  # the balances, the trial balance and the lines agree
        per_site = conn.execute(books_by_site(db)).all()  # kept, not summed
        q = (select(jl.c.date, late.c.posted, jl.c.site, jl.c.account, jl.c.debit,
                    jl.c.credit, jl.c.memo, jl.c.entry_id)
             .select_from(jl.outerjoin(late, late.c.id == jl.c.id)))
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
        books = _books(ctx, conn)
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
        books,
        filters,
        tag("h2", "Balance per site (every journal line to date)"),
        table(["site", "debit", "credit", "lines", ""], rows),
        tag("h2", f"Trial balance, {site or 'company'}, "
                  + (f"as at {hi} (journal lines posted up to and including {hi})" if hi
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
        table(["date", "posted on", "site", "account", "debit", "credit", "memo", "entry"],
              [[r.date, r.posted or "", r.site,
                f"{r.account} {CHART.get(r.account, ('', ''))[0]}",
                Num(money(r.debit)), Num(money(r.credit)), r.memo, id_cell(r.entry_id)]
               for r in lines], empty="no journal lines"),
    ]
    return ctx.page("finance", "Finance", join(body), error=error)


def _may_close(ctx: Ctx) -> bool:
    return periods.may_close(Staff(ctx.user.role, ctx.user.site))


def _month_end_before(day: str) -> str:
    """The last day of the month before the one ``day`` is in."""
    return (datetime.date.fromisoformat(day).replace(day=1)
            - datetime.timedelta(days=1)).isoformat()


def _books(ctx: Ctx, conn: Any) -> Html:
    """Where the books stand, and for finance at HQ the close of the last
    month, with the tills that may still hold sales of it."""
    now = periods.state(ctx.db, conn)
    said = (f"The books are closed through {now.through} (by {now.closed_by}, "
            f"{when(now.closed_ms or 0)})." if now.through else "The books have never been closed.")
    if now.late_lines:
        said += (f" {now.late_lines} journal lines are posted on another day than their date "
                 "(the \u201cposted on\u201d column): they reached HQ dated inside a closed "
                 "period, or after HQ's tomorrow (a till's clock far ahead).")
    parts: list[Any] = [tag("h2", "Books", id="books"), tag("p", said)]
    if not _may_close(ctx):
        return join(parts)
    proposal = _month_end_before(next_day(periods.last_day_over()))
    if now.through is not None and proposal <= now.through:
        parts.append(tag("p", "Nothing to close yet: the month after the close is not over."))
        return join(parts)
    quiet = periods.quiet_devices(ctx.db, conn, proposal)
    if quiet:
        parts.append(tag("p", f"{len(quiet)} device(s) have sent nothing dated after {proposal}: "
                              "their sales up to that day may still be on their way. After the "
                              f"close they are posted on {next_day(proposal)}."))
        parts.append(table(["device", "site", "latest op"],
                           [[q.device, q.site, when(q.last_op_ms) if q.last_op_ms else "never"]
                            for q in quiet]))
    parts.append(tag(
        "form", hidden_csrf(ctx.csrf),
        tag("label", "Close the books through ",
            tag("input", type="date", name="through", value=proposal, required=True)), " ",
        tag("button", "Close", type="submit"), method="post", action="/finance/close"))
    return join(parts)


@post("/finance/close", sync_to_thread=True, opt={"page": "finance"})
def close_books(ctx: NamedDependency[Ctx], data: URLEncodedBody[dict[str, str]]
                ) -> Response[Any]:
    """Close the books through a day; journal lines dated up to it that reach
    HQ later are posted on the day after."""
    through = data.get("through", "").strip()
    try:
        periods.close(ctx.db, through, ctx.user.login, Staff(ctx.user.role, ctx.user.site))
    except (PermissionError, periods.CloseRefused) as exc:
        return ctx.redirect("/finance#books", error=f"books not closed: {exc}")
    return ctx.redirect("/finance#books", f"the books are closed through {through}; lines dated "
                                          f"up to it that arrive now are posted on "
                                          f"{next_day(through)}")
