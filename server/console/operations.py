"""Operations: stock by site, stock exceptions (on hand below zero: the
open ``stock_exception`` records, which operations resolves here, and the
current negative balances) and transfers in transit with their quantities."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, URLEncodedBody
from sqlalchemy import or_, select

from schema.people import allowed

from .. import on_hand
from ..admin import apply_as_hq, refused_status
from .auth import Ctx
from .common import label, product_labels
from .html import Html, hidden_csrf, id_cell, join, table, tag

ROWS = 200


def render(ctx: Ctx, *, error: str | None = None, code: int = 200) -> Response[str]:
    db = ctx.db
    site = ctx.user.site_filter
    tr = db.entities["transfer"]
    by_site = on_hand.by_site(db.metadata, site or None)
    negative = on_hand.levels(db.metadata, site or None, negative_only=True).limit(ROWS + 1)
    transit = (select(tr.c.id, tr.c.from_site, tr.c.to_site, tr.c.product_id, tr.c.qty)
               .where(tr.c.status == "shipped").order_by(tr.c._seq.desc()).limit(ROWS + 1))
    if site:
        transit = transit.where(or_(tr.c.from_site == site, tr.c.to_site == site))
    se = db.entities.get("stock_exception")
    with db.reading() as conn:
        stock = conn.execute(by_site).all()
        exceptions = conn.execute(negative).all()
        moving = conn.execute(transit).all()
        raised: list[Any] = []
        if se is not None:
            rq = (select(se.c.id, se.c.site, se.c.product_id, se.c.on_hand, se.c.reason)
                  .where(se.c.status == "open").order_by(se.c.site, se.c._seq)
                  .limit(ROWS + 1))
            raised = list(conn.execute(rq.where(se.c.site == site) if site else rq).all())
        labels = product_labels(db, [r.product_id for r in exceptions]
                                + [r.product_id for r in moving]
                                + [r.product_id for r in raised], conn)
    may_resolve = ctx.user.role in (allowed("stock_exception", "move:resolved")
                                    or frozenset({ctx.user.role}))

    def resolve_form(exception_id: str) -> Html | str:
        if not may_resolve:
            return ""
        return tag("form", hidden_csrf(ctx.csrf),
                   tag("input", name="resolution", required=True, size=28,
                       placeholder="counted / transferred / written off",
                       aria_label="resolution"),
                   tag("button", "Resolve", type="submit"), method="post",
                   action=f"/operations/exceptions/{exception_id}/resolve", class_="inline")
    body = [
        tag("h2", "Stock by site"),
        table(["site", "products", "units on hand", "movements"],
              [[s, n, int(q or 0), m] for s, n, q, m in stock]),
        tag("h2", "Open stock exceptions (stock driven below zero; count or transfer, "
                  "then resolve)"),
        table(["site", "product", "on hand when raised", "by", ""],
              [[r.site, label(labels, r.product_id), r.on_hand, r.reason, resolve_form(r.id)]
               for r in raised], empty="no open stock exceptions", limit=ROWS,
              more="/api/operations/stock-exceptions has them all"),
        tag("h2", "Negative stock now"),
        table(["site", "product", "on hand"],
              [[r.site, label(labels, r.product_id), int(r.on_hand)] for r in exceptions],
              empty="no stock exceptions", limit=ROWS,
              more="/api/reports/stock?negative_only=true has them all"),
        tag("h2", "Transfers in transit"),
        table(["transfer", "from", "to", "product", "qty"],
              [[id_cell(r.id), r.from_site, r.to_site, label(labels, r.product_id), r.qty]
               for r in moving], empty="nothing in transit", limit=ROWS, more="the latest first"),
    ]
    return ctx.page("operations", "Operations", join(body), error=error, status=code)


@get("/operations", sync_to_thread=True, opt={"page": "operations"})
def operations(ctx: NamedDependency[Ctx]) -> Response[str]:
    """Stock per site, the exceptions HQ must resolve, goods in transit."""
    return render(ctx)


@post("/operations/exceptions/{exception_id:str}/resolve", sync_to_thread=True,
      opt={"page": "operations"})
def resolve(ctx: NamedDependency[Ctx], exception_id: FromPath[str],
            data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    """Resolve an open stock exception with a note (operations managers)."""
    note = data.get("resolution", "").strip()
    if not note:
        return render(ctx, error="say how the exception was resolved", code=400)
    with ctx.db.transaction(write=False) as store:
        found = store.load("stock_exception", exception_id)
    site = ctx.user.site_filter
    if found is None or (site is not None and found.fields.get("site") != site):
        return render(ctx, error=f"no stock exception {exception_id}", code=404)
    ack = apply_as_hq(ctx.db, "stock_exception", exception_id,
                      {"status": "resolved", "resolution": note,
                       "resolved_by": ctx.user.login}, ctx.user.login, ctx.hub)
    if ack.status == "rejected":
        return render(ctx, error=f"stock exception not resolved: {ack.reason}",
                      code=refused_status(ack))
    return ctx.redirect("/operations", "stock exception resolved")
