"""HQ reports over the REST API (OpenAPI at /schema): trial balance, sales and
margin, stock on hand with its exceptions. Every figure is computed from the
ledgers (journal lines, sale lines, stock movements), never from a counter."""

from __future__ import annotations

import datetime
import itertools

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.params import FromQuery
from sqlalchemy import func, select

from schema.finance import CHART, moving_average

from .store import Database


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


class Suggestion(msgspec.Struct):
    id: str
    site: str
    product_id: str
    qty: int
    on_hand: int
    status: str


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


def trial_balance(db: Database, site: str | None) -> TrialBalance:
    jl = db.entities["journal_line"]
    q = select(jl.c.account, func.sum(jl.c.debit), func.sum(jl.c.credit)).group_by(jl.c.account)
    if site:
        q = q.where(jl.c.site == site)
    with db.engine.connect() as conn:
        rows = conn.execute(q.order_by(jl.c.account)).all()
    accounts = []
    for code, d, c in rows:
        name, kind = CHART.get(code, (code, "unknown"))
        accounts.append(AccountBalance(code, name, kind, int(d), int(c), int(d) - int(c)))
    debit = sum(a.debit for a in accounts)
    credit = sum(a.credit for a in accounts)
    return TrialBalance(site, accounts, debit, credit, debit == credit)


def sales_by_site(db: Database, lo: str | None = None, hi: str | None = None
                  ) -> list[SiteSales]:
    sale, line = db.entities["sale"], db.entities["sale_line"]
    cost = (select(line.c.sale_id, func.sum(line.c.qty * line.c.cost).label("cost"))
            .group_by(line.c.sale_id).subquery())
    q = (select(sale.c.site, func.count(), func.sum(sale.c.net), func.sum(sale.c.tax),
                func.coalesce(func.sum(cost.c.cost), 0))
         .outerjoin(cost, cost.c.sale_id == sale.c.id).group_by(sale.c.site)
         .order_by(sale.c.site))
    if lo:
        q = q.where(sale.c.date >= lo)
    if hi:
        q = q.where(sale.c.date <= hi)
    with db.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [SiteSales(s, int(n), int(net), int(tax), int(c), int(net) - int(c))
            for s, n, net, tax, c in rows]


class ReportsController(Controller):
    path = "/api/reports"
    tags = ("reports",)

    @get("/trial-balance", sync_to_thread=True)
    def trial_balance(self, state: State, site: FromQuery[str | None] = None) -> TrialBalance:
        """Debits and credits per account, for one site or (no site) the company."""
        return trial_balance(_db(state), site)

    @get("/sales", sync_to_thread=True)
    def sales(self, state: State, date_from: FromQuery[str | None] = None,
              date_to: FromQuery[str | None] = None) -> list[SiteSales]:
        """Receipts, net sales, tax, cost of goods and margin per site and period."""
        return sales_by_site(_db(state), _date(date_from, "date_from"), _date(date_to, "date_to"))

    @get("/valuation", sync_to_thread=True)
    def valuation(self, state: State, site: FromQuery[str | None] = None) -> list[Valuation]:
        """Stock value per (site, product) at moving-average cost: the sum of qty x
        unit cost of its movements (goods in at cost, out at the average when they
        left, as the tills record it), which is what the journal posted to the
        inventory account; a movement without a cost counts at the product's
        standard cost. The average is value / on hand."""
        db = _db(state)
        sm, product = db.entities["stock_movement"], db.entities["product"]
        q = select(sm.c.site, sm.c.product_id, sm.c.qty, sm.c.unit_cost).order_by(
            sm.c.site, sm.c.product_id, sm.c._seq)
        if site:
            q = q.where(sm.c.site == site)
        out: list[Valuation] = []
        with db.engine.connect() as conn:
            rows = conn.execute(q).all()
            standard = {str(k): int(c or 0) for k, c in
                        conn.execute(select(product.c.id, product.c.cost)).all()}
        for (s, p), group in itertools.groupby(rows, key=lambda r: (r.site, r.product_id)):
            on_hand, avg, value = moving_average([(int(r.qty), r.unit_cost) for r in group],
                                                 standard.get(str(p), 0))
            out.append(Valuation(s, p, on_hand, avg, value))
        return out

    @get("/stock", sync_to_thread=True)
    def stock(self, state: State, site: FromQuery[str | None] = None,
              negative_only: FromQuery[bool] = False) -> list[StockLevel]:
        """Stock on hand per (site, product), the sum of its movements; with
        ``negative_only``, the stock exceptions HQ must resolve."""
        db = _db(state)
        sm = db.entities["stock_movement"]
        total = func.sum(sm.c.qty)
        q = select(sm.c.site, sm.c.product_id, total).group_by(sm.c.site, sm.c.product_id)
        if site:
            q = q.where(sm.c.site == site)
        if negative_only:
            q = q.having(total < 0)
        with db.engine.connect() as conn:
            rows = conn.execute(q.order_by(sm.c.site, sm.c.product_id).limit(10_000)).all()
        return [StockLevel(s, p, int(n)) for s, p, n in rows]


class ProcurementController(Controller):
    path = "/api/procurement"
    tags = ("procurement",)

    @get("/suggestions", sync_to_thread=True)
    def suggestions(self, state: State, status: FromQuery[str] = "open") -> list[Suggestion]:
        """Purchase suggestions raised from low stock (default: the open ones)."""
        db = _db(state)
        sug = db.entities["purchase_suggestion"]
        with db.engine.connect() as conn:
            rows = conn.execute(select(sug.c.id, sug.c.site, sug.c.product_id, sug.c.qty,
                                       sug.c.on_hand, sug.c.status)
                                .where(sug.c.status == status)
                                .order_by(sug.c.site, sug.c.product_id)).all()
        return [Suggestion(*r) for r in rows]
