"""Overview: what the chain looks like right now (the page ``/`` used to be)."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from sqlalchemy import func, select

from schema import HQ_SITE

from .. import on_hand
from ..devices import list_devices
from ..reports import sales_from_books, trial_balance
from .auth import Ctx
from .html import Html, join, money, table, tag


@get("/overview", sync_to_thread=True, opt={"page": "overview"})
def overview(ctx: NamedDependency[Ctx]) -> Response[str]:
    """Sync position, stock and sales by site, the company trial balance,
    stock exceptions, conflicts, devices and the latest audit records."""
    if ctx.user.site != HQ_SITE:
        return ctx.page("overview", "Overview", tag(
            "p", f"The overview shows every site; staff of {ctx.user.site} use the other pages."),
            status=403)
    db = ctx.db
    t = db.t
    with db.reading() as conn:  # every table of the page at one moment
        head = conn.execute(select(func.coalesce(func.max(t["changes"].c.seq), 0))).scalar_one()
        stock = conn.execute(on_hand.by_site(db.metadata)).all()
        negative = conn.execute(on_hand.levels(db.metadata, negative_only=True).limit(20)).all()
        conflicts = conn.execute(
            select(t["conflicts"]).where(t["conflicts"].c.resolved.is_(False))
            .order_by(t["conflicts"].c.id.desc()).limit(20)).all()
        audit = conn.execute(
            select(t["audit"]).order_by(t["audit"].c.id.desc()).limit(25)).all()
        counts = {e: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                  for e, tbl in db.entities.items()}
        devices = list_devices(db, conn)
        tb = trial_balance(db, None, conn)
        sales = sales_from_books(db, conn)
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
        table(["site", "product", "on hand"], [[s, p, int(q)] for s, p, q in negative]),
        tag("h2", "Conflict queue"),
        table(["entity", "key", "field", "HQ value", "proposed", "device"],
              [[c.entity, c.key[:8], c.field, c.server_value, c.proposed_value, c.device]
               for c in conflicts]),
        tag("h2", "Devices"),
        table(["device", "site", "state"], [[d.device, d.site, d.state()] for d in devices]),
        tag("h2", "Latest audit records"),
        table(["#", "user", "device", "site", "entity", "key", "status", "policy", "reason"],
              [[a.id, a.user, a.device, a.site, a.entity, a.key[:8], a.status, a.policy,
                a.reason] for a in audit]),
        tag("h2", "Rows per entity"),
        table(["entity", "rows"], [[e, n] for e, n in counts.items()]),
    ]
    return ctx.page("overview", "Overview", join(body))
