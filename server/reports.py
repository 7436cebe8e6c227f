"""HQ reports over the REST API (OpenAPI at /schema): trial balance, the
journal, sales and margin, stock on hand with its exceptions, valuation and
purchase suggestions. Every figure comes from the ledgers (journal lines,
sale lines, stock movements): all-time figures through the running totals the
store keeps beside them in the same transactions (``server.totals``, checked
by ``branchline check-totals``); figures over a date range from the totals
kept per day where there are (sales, margin, the journal's sums), else from
the lines of that range.

Every report needs an API token; who may read which report is decided by
``schema.people.REPORTS`` through ``server.api_auth.report_guard`` (401
without a token, 403 naming the roles that may), and an employee of a store
or warehouse reads that site's figures only."""

from __future__ import annotations

import datetime
from typing import Any, Literal, cast

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.params import FromQuery
from sqlalchemy import ColumnElement, Connection, Select, func, select

from schema.finance import CHART, COGS, RETURNS, REVENUE, average_cost

from . import on_hand
from .api_auth import report_guard
from .hq_api import SECURITY, Limit, Offset, page
from .store import Database
from .tables import (
    ACCOUNT_BALANCE_TABLE,
    JOURNAL_DAY_TABLE,
    LATE_POSTING_TABLE,
    SALE_COST_TABLE,
    SITE_DAY_SALES_TABLE,
)


class AccountBalance(msgspec.Struct):
    code: str
    name: str
    type: str
    debit: int
    credit: int
    balance: int


class TrialBalance(msgspec.Struct):
    site: str | None
    accounts: list[AccountBalance]
    debit: int
    credit: int
    balanced: bool


class SiteSales(msgspec.Struct):
    site: str
    receipts: int
    net: int
    tax: int
    cost: int
    margin: int


class JournalLine(msgspec.Struct):
    id: str
    entry_id: str
    """the document posted (a sale, a receipt, ...)"""
    site: str
    account: str
    debit: int
    credit: int
    memo: str
    date: str
    posted: str | None = None
    """the day the line counts on in the books when that is not its date: it
    reached HQ dated inside a period finance had closed (``server.periods``)"""


class JournalPage(msgspec.Struct):
    lines: list[JournalLine]
    total: int
    """lines matching the filters, on every page"""
    debit: int
    """sum of the debits of every matching line"""
    credit: int
    limit: int
    offset: int


class SiteMargin(msgspec.Struct):
    site: str
    period: str
    """yyyy-mm-dd, yyyy-mm, or "all" (the whole range asked for)"""
    revenue: int
    """net sales revenue: sales less returns, before tax"""
    cogs: int
    """cost of goods sold"""
    margin: int
    margin_bp: int
    """margin as basis points of revenue (2500 = 25%)"""


class Suggestion(msgspec.Struct):
    id: str
    site: str
    product_id: str
    qty: int
    on_hand: int
    status: str


class SuggestionPage(msgspec.Struct):
    items: list[Suggestion]
    total: int
    """suggestions matching the filters, on every page"""
    limit: int
    offset: int


class Valuation(msgspec.Struct):
    site: str
    product_id: str
    on_hand: int
    average_cost: int
    value: int


class StockLevel(msgspec.Struct):
    site: str
    product_id: str
    on_hand: int


class StockPage(msgspec.Struct):
    items: list[StockLevel]
    total: int
    """(site, product) balances matching the filters, on every page"""
    limit: int
    offset: int


def _db(state: State) -> Database:
    db: Database = state.db
    return db


def _date(text: str | None, name: str) -> str | None:
    if text is None:
        return None
    try:
        msgspec.convert(text, type=datetime.date)
    except msgspec.ValidationError:
        raise ValidationException(f"{name} must be a date yyyy-mm-dd, got {text!r}") from None
    return text


def _balances(db: Database, site: str | None, accounts: tuple[str, ...] = ()
              ) -> Select[str, str, int, int]:
    """(site, account, debit, credit) of the accounts with journal lines, from
    the balances kept per (site, account) (``server.totals``): a row per
    account and site, however many lines were posted."""
    ab = db.t[ACCOUNT_BALANCE_TABLE]
    q = select(ab.c.site, ab.c.account, ab.c.debit, ab.c.credit).where(ab.c.lines > 0)
    if site:
        q = q.where(ab.c.site == site)
    if accounts:
        q = q.where(ab.c.account.in_(accounts))
    return q.order_by(ab.c.site, ab.c.account)


def books_by_site(db: Database) -> Select[str, int, int, int]:
    """(site, debits, credits, journal lines) per site, from the kept balances."""
    ab = db.t[ACCOUNT_BALANCE_TABLE]
    return (select(ab.c.site, func.sum(ab.c.debit), func.sum(ab.c.credit), func.sum(ab.c.lines))
            .group_by(ab.c.site).having(func.sum(ab.c.lines) > 0).order_by(ab.c.site))


def trial_balance(db: Database, site: str | None, conn: Connection | None = None,
                  upto: str | None = None) -> TrialBalance:
    """Debits and credits per account (of ``site``; None: the company), read
    in ``conn``'s transaction when given (a page's other reads agree with it).
    With ``upto`` (yyyy-mm-dd), as at the end of that day: the journal lines
    posted up to and including it (a line that reached HQ dated inside a
    closed period is posted on the first open day, ``server.periods``), from
    the totals kept per (posting day, site, account); else every line, from
    the balances kept per (site, account)."""
    q: Select[Any] = (_journal_days(db, (), None, upto, site, 0) if upto
                      else cast("Select[Any]", _balances(db, site)))
    sums: dict[str, list[int]] = {}
    with db.reading(conn) as read:
        for _, code, d, c in read.execute(q):
            got = sums.setdefault(code, [0, 0])
            got[0] += int(d)
            got[1] += int(c)
    rows = [(code, d, c) for code, (d, c) in sorted(sums.items())]
    accounts = []
    for code, d, c in rows:
        name, kind = CHART.get(code, (code, "unknown"))
        accounts.append(AccountBalance(code, name, kind, int(d), int(c), int(d) - int(c)))
    debit = sum(a.debit for a in accounts)
    credit = sum(a.credit for a in accounts)
    return TrialBalance(site, accounts, debit, credit, debit == credit)


def sale_filters(db: Database, lo: str | None, hi: str | None,
                 site: str | None) -> list[ColumnElement[bool]]:
    """Sales dated from ``lo`` to ``hi`` (inclusive; None: open) at ``site`` (None: all)."""
    sale = db.entities["sale"]
    found: list[ColumnElement[bool]] = []
    if lo:
        found.append(sale.c.date >= lo)
    if hi:
        found.append(sale.c.date <= hi)
    if site:
        found.append(sale.c.site == site)
    return found


def _kept_sales(db: Database, lo: str | None = None, hi: str | None = None,
                site: str | None = None) -> Select[str, int, int, int]:
    """(site, receipts, net, tax) per site over the days from ``lo`` to ``hi``
    (inclusive; None: open) from the totals kept per (site, day): a row per
    site and day, however many receipts they had."""
    kept = db.t[SITE_DAY_SALES_TABLE]
    where = [kept.c.receipts > 0]
    for test in (kept.c.date >= lo if lo else None, kept.c.date <= hi if hi else None,
                 kept.c.site == site if site else None):
        if test is not None:
            where.append(test)
    return (select(kept.c.site, func.sum(kept.c.receipts), func.sum(kept.c.net),
                   func.sum(kept.c.tax))
            .where(*where).group_by(kept.c.site).order_by(kept.c.site))


def _sale_costs(db: Database, lo: str | None, hi: str | None,
                site: str | None) -> Select[str, int]:
    """(site, cost of the goods sold) of the receipts of the range: for all
    time from the cost kept per site; over a range of days through the lines
    of that range's receipts (``sale_line(sale_id)``), as a line has no date."""
    if not (lo or hi):
        kept = db.t[SALE_COST_TABLE]
        q = select(kept.c.site, kept.c.cost).where(kept.c.lines > 0)
        return q.where(kept.c.site == site) if site else q
    sale, line = db.entities["sale"], db.entities["sale_line"]
    where = sale_filters(db, lo, hi, site)
    # per receipt, its lines: a join let SQLite walk every line ever sold
    cost_of = (select(func.sum(line.c.qty * line.c.cost))
               .where(line.c.sale_id == sale.c.id).scalar_subquery())
    return select(sale.c.site, func.sum(cost_of)).where(*where).group_by(sale.c.site)


def _late_sale_costs(db: Database, conn: Connection, lo: str | None, hi: str | None,
                     site: str | None) -> dict[str, int]:
    """Per site, what turns the cost of the receipts dated lo..hi into the cost
    of those posted lo..hi: the receipts posted late (few) move between the two."""
    sale, line, late = db.entities["sale"], db.entities["sale_line"], db.t[LATE_POSTING_TABLE]
    cost_of = (select(func.sum(line.c.qty * line.c.cost))
               .where(line.c.sale_id == sale.c.id).scalar_subquery())
    q = (select(sale.c.site, sale.c.date, late.c.posted, cost_of)
         .select_from(late.join(sale, (sale.c.id == late.c.id) & (late.c.entity == "sale"))))
    if site:
        q = q.where(sale.c.site == site)
    shift: dict[str, int] = {}
    for s, dated, posted, cost in conn.execute(q):
        sign = _within(str(posted), lo, hi) - _within(str(dated), lo, hi)
        shift[str(s)] = shift.get(str(s), 0) + sign * int(cost or 0)
    return shift


def sales_from_books(db: Database, conn: Connection | None = None) -> list[SiteSales]:
    """All-time sales per site from the running totals (``server.totals``):
    receipts (sales and returns), net and tax as the receipts add up, the
    cost of goods as the books hold it (the balance of cost of goods sold);
    in ``conn``'s transaction when given."""
    with db.reading(conn) as read:
        cogs = {str(s): int(d) - int(c) for s, _, d, c in read.execute(
            _balances(db, None, (COGS,)))}
        rows = read.execute(_kept_sales(db)).all()
    return [SiteSales(s, int(n), int(net), int(tax), cogs.get(s, 0), int(net) - cogs.get(s, 0))
            for s, n, net, tax in rows]


def sales_by_site(db: Database, lo: str | None = None, hi: str | None = None,
                  site: str | None = None, conn: Connection | None = None
                  ) -> list[SiteSales]:
    """Receipts, net, tax and the cost of the goods sold per site, over the
    posting days from ``lo`` to ``hi`` (inclusive; None: open): the same
    figures as summing the receipts of the range and their lines' qty x unit
    cost, read from the totals kept per (site, day) and the cost kept per
    site (``server.totals``); a range's cost from the lines of its receipts.
    A receipt counts on its posting day, as its journal lines do: one that
    reached HQ dated inside a closed period on the first open day
    (``server.periods``), so a closed month's sales agree with its margin and
    trial balance and do not move. In ``conn``'s transaction when given."""
    with db.reading(conn) as read:
        rows = read.execute(_kept_sales(db, lo, hi, site)).all()
        cost = {str(s): int(c or 0) for s, c in read.execute(_sale_costs(db, lo, hi, site))}
        if lo or hi:  # a receipt counts on its posting day, as in the books
            for s, c in _late_sale_costs(db, read, lo, hi, site).items():
                cost[s] = cost.get(s, 0) + c
    return [SiteSales(s, int(n), int(net), int(tax), cost.get(s, 0), int(net) - cost.get(s, 0))
            for s, n, net, tax in rows]


def _journal_filters(db: Database, site: str | None, lo: str | None, hi: str | None,
                     account: str | None = None) -> list[ColumnElement[bool]]:
    jl = db.entities["journal_line"]
    where: list[ColumnElement[bool]] = []
    for column, value, test in (("site", site, "eq"), ("date", lo, "ge"), ("date", hi, "le"),
                                ("account", account, "eq")):
        if value:
            c = jl.c[column]
            where.append(c == value if test == "eq" else c >= value if test == "ge"
                         else c <= value)
    return where


def journal(db: Database, site: str | None = None, lo: str | None = None,
            hi: str | None = None, account: str | None = None, limit: int = 100,
            offset: int = 0) -> JournalPage:
    """Journal lines in the order HQ recorded them, filtered, a page at a time,
    with the number, debits and credits of every line matching, read from the
    totals kept of the journal (``server.totals``): a row per site and account
    (and day, of a range of days), however many lines they had."""
    jl = db.entities["journal_line"]
    where = _journal_filters(db, site, lo, hi, account)
    cols = [jl.c[n] for n in ("id", "entry_id", "site", "account", "debit", "credit", "memo",
                              "date")]
    # the sums from a kept total, not the lines: of a range of days, the totals
    # kept per (day, site, account), whose key the day leads; else the balances
    # kept per (site, account)
    kept = db.t[JOURNAL_DAY_TABLE if lo or hi else ACCOUNT_BALANCE_TABLE]
    tests = [kept.c[k] == v for k, v in (("site", site), ("account", account)) if v]
    tests += [*([kept.c.date >= lo] if lo else []), *([kept.c.date <= hi] if hi else [])]
    sums = select(*(func.coalesce(func.sum(kept.c[c]), 0) for c in ("lines", "debit", "credit"))
                  ).where(*tests)
    late = db.t[LATE_POSTING_TABLE]
    with db.reading() as conn:  # the sums and the page agree
        total, debit, credit = conn.execute(sums).one()
        if lo or hi:  # the kept total counts a late line on its posting day
            total, debit, credit = map(sum, zip((total, debit, credit), _late_shift(
                db, conn, site, lo, hi, account), strict=True))
        rows = conn.execute(select(*cols, late.c.posted).where(*where)
                            .select_from(jl.outerjoin(late, late.c.id == jl.c.id))
                            .order_by(jl.c._seq, jl.c.id).limit(limit).offset(offset)).all()
    return JournalPage([JournalLine(*r[:8], posted=r[8]) for r in rows], int(total),
                       int(debit), int(credit),
                       limit, offset)


def _late_shift(db: Database, conn: Connection, site: str | None, lo: str | None,
                hi: str | None, account: str | None) -> tuple[int, int, int]:
    """(lines, debit, credit) that turn sums of posting days lo..hi into sums of
    the lines dated lo..hi: the lines posted late (few) move between the two."""
    jl, late = db.entities["journal_line"], db.t[LATE_POSTING_TABLE]
    q = (select(jl.c.date, late.c.posted, jl.c.debit, jl.c.credit)
         .select_from(late.join(jl, jl.c.id == late.c.id))
         .where(*(jl.c[k] == v for k, v in (("site", site), ("account", account)) if v)))
    lines = debit = credit = 0
    for dated, posted, d, c in conn.execute(q):
        sign = _within(str(dated), lo, hi) - _within(str(posted), lo, hi)
        lines, debit, credit = lines + sign, debit + sign * int(d), credit + sign * int(c)
    return lines, debit, credit


def _within(day: str, lo: str | None, hi: str | None) -> int:
    return int((lo is None or day >= lo) and (hi is None or day <= hi))


PERIODS = {"all": 0, "month": 7, "day": 10}
"""Period -> how many characters of the date (yyyy-mm-dd) name it."""


def valuation(db: Database, site: str | None = None) -> list[Valuation]:
    """Stock value and moving-average cost per (site, product), from the sums
    ``on_hand`` keeps (one row each, however many movements it had): the same
    figures as ``schema.finance.moving_average`` over its movements in any
    order, with the product's standard cost for those without a cost."""
    out: list[Valuation] = []
    with db.reading() as conn:
        for s, p, qty, costed, uncosted, cost in conn.execute(on_hand.values(db.metadata, site)):
            standard = int(cost or 0)
            value = int(costed) + int(uncosted) * standard
            out.append(Valuation(s, p, int(qty), average_cost(int(qty), value, standard), value))
    return out


def suggestions(db: Database, status: str, site: str | None, limit: int,
                offset: int) -> SuggestionPage:
    """One page of the purchase suggestions of a status (and site), by site,
    product and id, with how many match in all."""
    sug = db.entities["purchase_suggestion"]
    q = (select(*(sug.c[n] for n in ("id", "site", "product_id", "qty", "on_hand", "status")))
         .where(sug.c.status == status, *([sug.c.site == site] if site else [])))
    rows, total = page(db, q.order_by(sug.c.site, sug.c.product_id, sug.c.id), limit, offset)
    return SuggestionPage([msgspec.convert(r, Suggestion) for r in rows], total, limit, offset)


def _journal_days(db: Database, accounts: tuple[str, ...], lo: str | None, hi: str | None,
                  site: str | None, width: int) -> Select[Any]:
    """(site[, period], account, debit, credit) of ``accounts`` (none: every
    account) over the days from ``lo`` to
    ``hi`` (inclusive; None: open) at ``site`` (None: all), the period being the
    first ``width`` characters of the day (none when 0), from the totals kept
    per (day, site, account): a row per day, site and account, however many
    lines they had. A key has a row where it had a line, as the lines do."""
    kept = db.t[JOURNAL_DAY_TABLE]
    keys = [kept.c.site, *([func.substr(kept.c.date, 1, width).label("period")] if width
                           else [])]
    where = [kept.c.lines > 0, *([kept.c.account.in_(accounts)] if accounts else [])]
    for test in (kept.c.date >= lo if lo else None, kept.c.date <= hi if hi else None,
                 kept.c.site == site if site else None):
        if test is not None:
            where.append(test)
    return (select(*keys, kept.c.account, func.sum(kept.c.debit), func.sum(kept.c.credit))
            .where(*where).group_by(*keys, kept.c.account))


def stock_levels(db: Database, site: str | None, negative_only: bool, limit: int,
                 offset: int) -> StockPage:
    """One page of the stock on hand per (site, product), by site and product,
    with how many (site, product) balances match in all."""
    q = cast("Select[Any]", on_hand.levels(db.metadata, site, negative_only=negative_only))
    rows, total = page(db, q, limit, offset)
    return StockPage([msgspec.convert(r, StockLevel) for r in rows], total, limit, offset)


def margin_by_site(db: Database, lo: str | None = None, hi: str | None = None,
                   site: str | None = None, period: str = "all") -> list[SiteMargin]:
    """Revenue (sales less returns), cost of goods sold and margin per site and
    period, from the journal the sales and returns posted: the totals kept
    per (day, site, account) for a range of days or per month or day, the
    balances kept per (site, account) for all time (``server.totals``); the
    same figures as summing the journal lines of the range."""
    width = PERIODS[period]
    accounts = (REVENUE, RETURNS, COGS)
    q: Select[Any]
    if width or lo or hi:  # the days of the range, by site (and period) and account
        q = _journal_days(db, accounts, lo, hi, site, width)
    else:  # all time: the kept balances, same columns
        q = cast("Select[Any]", _balances(db, site, accounts))
    figures: dict[tuple[str, str], dict[str, int]] = {}
    with db.reading() as conn:
        for row in conn.execute(q).all():
            key = (row[0], row[1] if width else "all")
            account, debit, credit = row[-3], int(row[-2]), int(row[-1])
            figures.setdefault(key, {})[account] = debit - credit
    out = []
    for (s, when), by in sorted(figures.items()):
        revenue = -by.get(REVENUE, 0) - by.get(RETURNS, 0)
        cogs = by.get(COGS, 0)
        margin = revenue - cogs
        out.append(SiteMargin(s, when, revenue, cogs, margin,
                              margin * 10_000 // revenue if revenue else 0))
    return out


class ReportsController(Controller):
    path = "/api/reports"
    tags = ("reports",)
    guards = [report_guard]  # noqa: RUF012
    security = SECURITY

    @get("/trial-balance", sync_to_thread=True, opt={"report": "trial_balance"},
         summary="Trial balance")
    def trial_balance(self, state: State, site: FromQuery[str | None] = None,
                      date_to: FromQuery[str | None] = None) -> TrialBalance:
        """Debits and credits per account, for one site or (no site) the company;
        with ``date_to`` (yyyy-mm-dd), as at the end of that day (the journal
        lines posted up to and including it: a line that reached HQ dated
        inside a closed period counts on the first open day), else of every line."""
        return trial_balance(_db(state), site, upto=_date(date_to, "date_to"))

    @get("/sales", sync_to_thread=True, opt={"report": "sales"}, summary="Sales per site")
    def sales(self, state: State, date_from: FromQuery[str | None] = None,
              date_to: FromQuery[str | None] = None,
              site: FromQuery[str | None] = None) -> list[SiteSales]:
        """Receipts, net sales, tax, cost of goods and margin per site and period
        (dates inclusive, yyyy-mm-dd), from the receipts and their lines."""
        return sales_by_site(_db(state), _date(date_from, "date_from"), _date(date_to, "date_to"),
                             site)

    @get("/margin", sync_to_thread=True, opt={"report": "margin"},
         summary="Margin per site and period")
    def margin(self, state: State, date_from: FromQuery[str | None] = None,
               date_to: FromQuery[str | None] = None, site: FromQuery[str | None] = None,
               period: FromQuery[Literal["all", "month", "day"]] = "all") -> list[SiteMargin]:
        """Revenue, cost of goods sold and margin per site, for the whole range
        or per month or day, from the journal lines sales and returns posted."""
        return margin_by_site(_db(state), _date(date_from, "date_from"),
                              _date(date_to, "date_to"), site, period)

    @get("/journal", sync_to_thread=True, opt={"report": "journal"}, summary="Journal lines")
    def journal(self, state: State, site: FromQuery[str | None] = None,
                date_from: FromQuery[str | None] = None, date_to: FromQuery[str | None] = None,
                account: FromQuery[str | None] = None, limit: Limit = 100,
                offset: Offset = 0) -> JournalPage:
        """The double-entry journal in the order HQ recorded it, optionally for one
        site, account and date range (inclusive), a page at a time, with the
        total debit and credit of every matching line."""
        return journal(_db(state), site, _date(date_from, "date_from"),
                       _date(date_to, "date_to"), account, limit, offset)

    @get("/valuation", sync_to_thread=True, opt={"report": "valuation"},
         summary="Stock valuation at moving average")
    def valuation(self, state: State, site: FromQuery[str | None] = None) -> list[Valuation]:
        """Stock value per (site, product) at moving-average cost: the sum of qty x
        unit cost of its movements (goods in at cost, out at the average when they
        left, as the tills record it), which is what the journal posted to the
        inventory account; a movement without a cost counts at the product's
        standard cost. The average is value / on hand."""
        return valuation(_db(state), site or None)

    @get("/stock", sync_to_thread=True, opt={"report": "stock"}, summary="Stock on hand")
    def stock(self, state: State, site: FromQuery[str | None] = None,
              negative_only: FromQuery[bool] = False, limit: Limit = 100,
              offset: Offset = 0) -> StockPage:
        """Stock on hand per (site, product), the sum of its movements; with
        ``negative_only``, the stock exceptions HQ must resolve. By site and
        product, a page at a time with the number of all that match
        (``items``; it was a list cut at 10,000 rows without a word)."""
        return stock_levels(_db(state), site or None, negative_only, limit, offset)


class ProcurementController(Controller):
    path = "/api/procurement"
    tags = ("procurement",)
    guards = [report_guard]  # noqa: RUF012
    security = SECURITY

    @get("/suggestions", sync_to_thread=True, opt={"report": "suggestions"},
         summary="Purchase suggestions")
    def suggestions(self, state: State, status: FromQuery[str] = "open",
                    site: FromQuery[str | None] = None, limit: Limit = 100,
                    offset: Offset = 0) -> SuggestionPage:
        """Purchase suggestions raised from low stock (default: the open ones),
        optionally of one site, by site and product, a page at a time with the
        number of all that match (``items``; it was the whole list, unpaged)."""
        return suggestions(_db(state), status, site or None, limit, offset)
