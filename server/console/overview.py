"""Overview: what the chain looks like right now (the page ``/`` used to be)."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from sqlalchemy import Connection, func, literal, select, text, union_all

from .. import on_hand
from ..devices import list_devices
from ..reports import sales_from_books, trial_balance
from ..store import Database
from .auth import Ctx
from .common import label, product_labels
from .html import Html, Num, id_cell, join, money, table, tag

EXACT_BELOW = 10_000
"""PostgreSQL: an entity table estimated smaller than this is counted exactly."""

_ESTIMATES = text(
    "SELECT name, c.reltuples, s.n_live_tup FROM unnest(CAST(:names AS text[])) AS name "
    "JOIN pg_class c ON c.oid = to_regclass(quote_ident(name)) "
    "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid")


def entity_rows(db: Database, conn: Connection) -> dict[str, tuple[int, bool]]:
    """Entity -> (rows of its table, whether that is an estimate).

    Counting walks the whole table: SQLite counts an index of a million rows
    in milliseconds, but PostgreSQL reads every row's visibility (a table
    written all day is not all-visible), about 0.1 s per million rows with
    warm caches, on every view of the overview. So on PostgreSQL a table
    is as large as its planner statistics say (``pg_class.reltuples`` of the
    last VACUUM or ANALYZE, ``pg_stat_user_tables.n_live_tup`` kept by
    every write since, whichever is larger: rows are only ever added), and
    only a table estimated below ``EXACT_BELOW`` rows is counted."""
    if db.is_sqlite:  # a plain count(*) each: SQLite counts the smallest index
        return {e: (int(conn.execute(select(func.count()).select_from(t)).scalar_one()), False)
                for e, t in db.entities.items()}
    names = {t.name: e for e, t in db.entities.items()}
    guess = {names[str(n)]: max(float(tuples), float(live or 0))
             for n, tuples, live in conn.execute(_ESTIMATES, {"names": list(names)})}
    large = {e: (_about(rows), True) for e, rows in guess.items() if rows >= EXACT_BELOW}
    counts = [select(literal(e), func.count()).select_from(t)  # the small ones in one go
              for e, t in db.entities.items() if e not in large]
    counted = {str(e): int(n) for e, n in conn.execute(union_all(*counts))} if counts else {}
    return {e: large.get(e) or (counted[e], False) for e in db.entities}


def _about(rows: float) -> int:
    """An estimate to three significant digits (1,234,567 -> 1,230,000)."""
    n = round(rows)
    return int(round(n, -max(len(str(n)) - 3, 0)))


SHORT_LIST = 20
"""Rows the overview shows of a list that other pages have whole."""
AUDIT_LIST = 25


@get("/overview", sync_to_thread=True, opt={"page": "overview"})
def overview(ctx: NamedDependency[Ctx]) -> Response[str]:
    """Sync position, stock and sales by site, the company trial balance,
    stock exceptions, conflicts, devices and the latest audit records."""
    db = ctx.db
    t = db.t
    with db.reading() as conn:  # every table of the page at one moment
        head = conn.execute(select(func.coalesce(func.max(t["changes"].c.seq), 0))).scalar_one()
        stock = conn.execute(on_hand.by_site(db.metadata)).all()
        negative = conn.execute(on_hand.levels(db.metadata, negative_only=True)
                                .limit(SHORT_LIST + 1)).all()
        conflicts = conn.execute(
            select(t["conflicts"]).where(t["conflicts"].c.resolved.is_(False))
            .order_by(t["conflicts"].c.id.desc()).limit(SHORT_LIST + 1)).all()
        audit = conn.execute(
            select(t["audit"]).order_by(t["audit"].c.id.desc()).limit(AUDIT_LIST + 1)).all()
        counts = entity_rows(db, conn)
        devices = list_devices(db, conn)
        tb = trial_balance(db, None, conn)
        sales = sales_from_books(db, conn)
        labels = product_labels(db, [p for _, p, _ in negative], conn)
    body: list[Html] = [
        tag("p", "change sequence at ", tag("b", f"{head:,}"),
            f"; {ctx.hub.connected} device(s) connected now; schema version {db.schema.version}"),
        tag("h2", "Stock by site"),
        table(["site", "products", "units on hand", "movements"],
              [[s, n, int(q or 0), m] for s, n, q, m in stock]),
        tag("h2", "Sales by site"),
        table(["site", "receipts", "net", "tax", "cost", "margin"],
              [[r.site, r.receipts, money(r.net), money(r.tax), money(r.cost), money(r.margin)]
               for r in sales]),
        tag("h2", f"Trial balance, company ({'balanced' if tb.balanced else 'NOT BALANCED'})"),
        table(["account", "name", "debit", "credit", "balance"],
              [[a.code, a.name, money(a.debit), money(a.credit), money(a.balance)]
               for a in tb.accounts]),
        tag("h2", "Stock exceptions (on hand below zero)"),
        table(["site", "product", "on hand"],
              [[s, label(labels, p), int(q)] for s, p, q in negative], limit=SHORT_LIST,
              more="Operations lists every one"),
        tag("h2", "Conflict queue"),
        table(["entity", "key", "field", "HQ value", "proposed", "device"],
              [[c.entity, id_cell(c.key), c.field, c.server_value, c.proposed_value, c.device]
               for c in conflicts], limit=SHORT_LIST,
              more="the newest first; IT admin has the whole queue"),
        tag("h2", "Devices"),
        table(["device", "site", "state"], [[d.device, d.site, d.state()] for d in devices]),
        tag("h2", "Latest audit records"),
        table(["#", "user", "device", "site", "entity", "key", "status", "policy", "reason"],
              [[a.id, a.user, a.device, a.site, a.entity, id_cell(a.key), a.status, a.policy,
                a.reason] for a in audit], limit=AUDIT_LIST, more="the newest first"),
        tag("h2", "Rows per entity"),
        table(["entity", "rows"], [[e, Num(f"about {n:,}") if about else n]
                                   for e, (n, about) in counts.items()]),
    ]
    if any(about for _, about in counts.values()):
        body.append(tag("p", "about: PostgreSQL's estimate (its statistics of the table), "
                             f"to three digits; a table of fewer than {EXACT_BELOW:,} rows is "
                             "counted"))
    return ctx.page("overview", "Overview", join(body))
