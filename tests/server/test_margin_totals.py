"""HQ's margin report (``server.reports.margin_by_site``) reads the debits
and credits kept per (day, site, account) (``server.tables.JOURNAL_DAY_TABLE``)
for a range of days and by month or day, the balances kept per (site,
account) for all time, and must give exactly what summing the journal lines
the sales and returns posted gives -- of all time, of one site, of any range
of days, per month and per day -- on SQLite and PostgreSQL. So must the
journal report's number, debits and credits of the lines matching
(``server.reports.journal``), which it reads from the same totals."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import ColumnElement, Select, func, select

from schema import SCHEMA
from schema.finance import COGS, RETURNS, REVENUE, sale_posting
from server import totals
from server.reports import PERIODS, SiteMargin, journal, margin_by_site
from server.store import Database
from sync.server import apply_ops
from tests.sync.kit import S1_TILL1, S2_TILL1, op

from .conftest import GROWING, Backend

TILLS = {"S1": S1_TILL1, "S2": S2_TILL1}
DAYS = ("2025-12-31", "2026-01-31", "2026-02-01", "2026-02-28", "2026-03-01")

Entry = tuple[str, str, int, int]
"""site, day, net (negative: a return), cost of the goods"""


def _post(backend: Backend, entries: list[Entry]) -> None:
    """Each entry's journal lines pushed by the site's till in one group, as
    a sale or a return posts them (cash, revenue or returns, tax, cost of
    goods, inventory)."""
    for site, day, net, cost in entries:
        actor, entry = TILLS[site], str(uuid.uuid4())
        tax = net // 5
        ops = [msgspec.structs.replace(op(actor, "journal_line", str(uuid.uuid4()), {
            "entry_id": entry, "site": site, "account": p.account, "debit": p.debit,
            "credit": p.credit, "memo": p.memo, "date": day}), group=entry)
            for p in sale_posting(kind="sale" if net >= 0 else "return", net=net, tax=tax,
                                  cost=cost if net >= 0 else -cost,
                                  cash=net + tax, card=0, on_account=0, memo=entry[:8])]
        with backend.tx() as store:
            acks = apply_ops(SCHEMA, store, actor, ops)
        assert all(a.status == "accepted" for a in acks), [a.reason for a in acks]


def _from_the_lines(db: Database, lo: str | None = None, hi: str | None = None,
                    site: str | None = None, period: str = "all") -> list[SiteMargin]:
    """The report as it was before the kept totals: the journal lines of the
    range, by site (and period) and account."""
    jl = db.entities["journal_line"]
    width = PERIODS[period]
    keys = [jl.c.site, *([func.substr(jl.c.date, 1, width)] if width else [])]
    where: list[ColumnElement[bool]] = [jl.c.account.in_((REVENUE, RETURNS, COGS))]
    for test in (jl.c.date >= lo if lo else None, jl.c.date <= hi if hi else None,
                 jl.c.site == site if site else None):
        if test is not None:
            where.append(test)
    q: Select[Any] = (select(*keys, jl.c.account, func.sum(jl.c.debit), func.sum(jl.c.credit))
                      .where(*where).group_by(*keys, jl.c.account))
    figures: dict[tuple[str, str], dict[str, int]] = {}
    with db.engine.connect() as conn:
        for row in conn.execute(q).all():
            by = figures.setdefault((row[0], row[1] if width else "all"), {})
            by[row[-3]] = int(row[-2]) - int(row[-1])
    out = []
    for (s, when), by in sorted(figures.items()):
        revenue = -by.get(REVENUE, 0) - by.get(RETURNS, 0)
        margin = revenue - by.get(COGS, 0)
        out.append(SiteMargin(s, when, revenue, by.get(COGS, 0), margin,
                              margin * 10_000 // revenue if revenue else 0))
    return out


entries = st.lists(st.tuples(
    st.sampled_from(sorted(TILLS)), st.sampled_from(DAYS),
    st.integers(-900, 900), st.integers(0, 700)), max_size=6)
asks = st.tuples(st.none() | st.sampled_from(DAYS), st.none() | st.sampled_from(DAYS),
                 st.none() | st.sampled_from(("S1", "S2", "S3")), st.sampled_from(sorted(PERIODS)))


def test_the_margin_is_what_the_journal_lines_add_up_to(sql_backend: Backend) -> None:
    db = sql_backend.staffed()

    @GROWING
    @given(entries, st.lists(asks, min_size=1, max_size=4))
    def more(batch: list[Entry], asked: list[tuple[str | None, str | None, str | None, str]]
             ) -> None:
        _post(sql_backend, batch)  # the journal only grows: each example adds to it
        for period in PERIODS:
            assert margin_by_site(db, period=period) == _from_the_lines(db, period=period)
        for lo, hi, site, period in asked:
            assert (margin_by_site(db, lo, hi, site, period)
                    == _from_the_lines(db, lo, hi, site, period))

    more()
    with db.engine.connect() as conn:
        assert totals.drifts(conn, db.metadata) == []


def test_months_days_a_site_and_a_return_in_the_margin(sql_backend: Backend) -> None:
    db = sql_backend.staffed()
    _post(sql_backend, [("S1", "2026-01-31", 1000, 600),  # margin 400
                        ("S1", "2026-02-01", 500, 200),  # margin 300
                        ("S1", "2026-02-28", -100, 60),  # a return: revenue -100, cost -60
                        ("S2", "2026-02-28", 300, 100)])  # margin 200
    assert margin_by_site(db, period="month") == [
        SiteMargin("S1", "2026-01", 1000, 600, 400, 4000),
        SiteMargin("S1", "2026-02", 400, 140, 260, 6500),
        SiteMargin("S2", "2026-02", 300, 100, 200, 6666)]
    assert margin_by_site(db, "2026-02-28", "2026-02-28", period="day") == [
        SiteMargin("S1", "2026-02-28", -100, -60, -40, 4000),
        SiteMargin("S2", "2026-02-28", 300, 100, 200, 6666)]
    assert margin_by_site(db, "2026-02-01", site="S1") == [
        SiteMargin("S1", "all", 400, 140, 260, 6500)]
    assert margin_by_site(db) == [SiteMargin("S1", "all", 1400, 740, 660, 4714),
                                  SiteMargin("S2", "all", 300, 100, 200, 6666)]
    assert margin_by_site(db, "2026-03-01") == []


journal_asks = st.tuples(st.none() | st.sampled_from(DAYS), st.none() | st.sampled_from(DAYS),
                         st.none() | st.sampled_from(("S1", "S2", "S3")),
                         st.none() | st.sampled_from((REVENUE, RETURNS, COGS, "1000", "9999")))


def test_the_journals_sums_are_what_its_lines_add_up_to(sql_backend: Backend) -> None:
    """The journal report's total, debit and credit (from the kept totals)
    are the count and sums of the very lines it lists (every one of them on
    one page) for any range of days, site and account, or none of them."""
    db = sql_backend.staffed()

    @GROWING
    @given(entries, st.lists(journal_asks, min_size=1, max_size=6))
    def more(batch: list[Entry], asked: list[tuple[str | None, ...]]) -> None:
        _post(sql_backend, batch)
        for lo, hi, site, account in [(None, None, None, None), *asked]:
            page = journal(db, site, lo, hi, account, limit=100_000)
            lines = page.lines
            assert (page.total, page.debit, page.credit) == (
                len(lines), sum(ln.debit for ln in lines), sum(ln.credit for ln in lines))
            assert all((lo or "") <= ln.date <= (hi or "9") and site in (None, ln.site)
                       and account in (None, ln.account) for ln in lines)

    more()
