"""Procurement: open purchase suggestions and purchase orders by status,
with Approve and Cancel. Both go through ``apply_as_hq`` as the logged-in
user, so the role matrix, the drafter's exclusion and the second-approval
rule decide; a refusal comes back to the page (a 303, as a success does)
with its reason. An order's total is what its lines come to (HQ keeps it
so, ``server.rollups``); its drafter is shown, and is shown no Approve."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from sqlalchemy import func, select

from schema import HQ_SITE
from schema.model import Who
from schema.people import allowed
from schema.procurement import approval
from schema.retail import PO_MACHINE, SECOND_APPROVAL_ABOVE

from ..admin import apply_as_hq
from .auth import Ctx
from .common import label, product_labels
from .html import Html, id_cell, join, money, post_button, short_id, table, tag

OPEN = ("draft", "first_approved")
"""Orders waiting for procurement (the default view)."""

APPROVABLE = frozenset(OPEN)
CANCELLABLE = frozenset(t.source for t in PO_MACHINE.transitions if t.target == "cancelled")
ROWS = 200


def _roles(action: str) -> frozenset[str]:
    return allowed("purchase_order", action) or frozenset({"*"})


def may_move(ctx: Ctx, source: str, target: str, drafter: str | None = None) -> bool:
    """Whether the user may move an order from ``source`` to ``target`` as the
    apply path decides it: a role allowed the move (``schema.people``), HQ
    staff where the state machine leaves the move to HQ (``Who.HQ``: every
    approval, cancelling an approved order), and someone other than the
    order's ``drafter`` where the move is not the drafter's
    (``not_by_creator``: every approval); a store's procurement manager, or
    the manager who drafted the order, is not shown a button the server
    always refuses."""
    moves = [t for t in PO_MACHINE.transitions if (t.source, t.target) == (source, target)]
    roles = _roles(f"move:{target}")
    return bool(moves) and ("*" in roles or ctx.user.role in roles) and (
        ctx.user.site == HQ_SITE or any(t.who is not Who.HQ for t in moves)) and (
        drafter != ctx.user.login or any(not t.not_by_creator for t in moves))


def total_cell(total: int | None, lines: list[Any]) -> str:
    """What an order comes to, from the lines HQ holds ("no lines" while it
    has none); the order's own figure too, should it say otherwise (one
    approved before totals followed the lines)."""
    if not lines:
        return "no lines"
    came_to = sum(int(r.qty) * int(r.unit_cost) for r in lines)
    if total == came_to:
        return money(came_to)
    return f"{money(came_to)} (order says {money(total) or 'nothing'})"


def render(ctx: Ctx, status: str | None = None, *, error: str | None = None,
           code: int = 200) -> Response[str]:
    db = ctx.db
    site = ctx.user.site_filter
    po, line = db.entities["purchase_order"], db.entities["po_line"]
    sug = db.entities["purchase_suggestion"]
    wanted = [status] if status in PO_MACHINE.states else list(OPEN)
    with db.reading() as conn:
        cq = select(po.c.status, func.count()).group_by(po.c.status)
        oq = (select(po.c.id, po.c.site, po.c.supplier, po.c.total, po.c.status,
                     po.c.approved_by, po.c.drafted_by).where(po.c.status.in_(wanted))
              .order_by(po.c._seq.desc()).limit(ROWS + 1))
        sq = (select(sug.c.site, sug.c.product_id, sug.c.qty, sug.c.on_hand)
              .where(sug.c.status == "open").order_by(sug.c.site, sug.c._seq).limit(ROWS + 1))
        if site:
            cq, oq, sq = cq.where(po.c.site == site), oq.where(po.c.site == site), sq.where(
                sug.c.site == site)
        counts: dict[str, int] = {str(k): int(v) for k, v in conn.execute(cq).all()}
        orders = conn.execute(oq).all()
        suggestions = conn.execute(sq).all()
        lines: dict[str, list[Any]] = defaultdict(list)
        ids = [o.id for o in orders]
        for start in range(0, len(ids), 500):
            for r in conn.execute(select(line.c.po_id, line.c.product_id, line.c.qty,
                                         line.c.unit_cost)
                                  .where(line.c.po_id.in_(ids[start:start + 500]))):
                lines[r.po_id].append(r)
        labels = product_labels(db, [s.product_id for s in suggestions]
                                + [r.product_id for rs in lines.values() for r in rs], conn)

    def actions(o: Any) -> Html:
        buttons = []
        if o.status in APPROVABLE and (may_move(ctx, o.status, "approved", o.drafted_by)
                                       or may_move(ctx, o.status, "first_approved",
                                                   o.drafted_by)):
            buttons.append(post_button(f"/procurement/orders/{o.id}/approve",
                                       "Approve" if o.status == "draft" else "Second approval",
                                       ctx.csrf))
        if o.status in CANCELLABLE and may_move(ctx, o.status, "cancelled"):
            buttons.append(post_button(f"/procurement/orders/{o.id}/cancel", "Cancel",
                                       ctx.csrf))
        return join(buttons)

    tabs = [tag("a", f"open ({sum(counts.get(s, 0) for s in OPEN)})", href="/procurement"),
            *(tag("a", f"{s} ({counts.get(s, 0)})", href=f"/procurement?status={s}")
              for s in sorted(PO_MACHINE.states))]
    body = [
        tag("h2", "Purchase orders: " + (status if status in PO_MACHINE.states
                                         else "waiting for approval")),
        tag("p", *(join([" · ", t]) if i else t for i, t in enumerate(tabs))),
        tag("p", f"An order's total is what its lines come to. Orders above "
                 f"{money(SECOND_APPROVAL_ABOVE)} need a second approval by another "
                 "procurement manager; nobody approves an order they drafted."),
        table(["order", "site", "supplier", "lines", "total", "status", "drafted by",
               "first approver", ""],
              [[id_cell(o.id, class_="po", data_id=o.id), o.site,
                o.supplier,
                "; ".join(f"{label(labels, r.product_id)} x {r.qty}" for r in lines[o.id]),
                total_cell(o.total, lines[o.id]), o.status, o.drafted_by or "",
                o.approved_by or "", actions(o)] for o in orders],
              empty="no purchase orders", limit=ROWS, more="the latest first"),
        tag("h2", "Open purchase suggestions (stock at or below the reorder level)"),
        table(["site", "product", "suggested qty", "on hand when raised"],
              [[s.site, label(labels, s.product_id), s.qty, s.on_hand] for s in suggestions],
              empty="no open suggestions", limit=ROWS,
              more="/api/procurement/suggestions has them all"),
    ]
    return ctx.page("procurement", "Procurement", join(body), error=error, status=code)


@get("/procurement", sync_to_thread=True, opt={"page": "procurement"})
def procurement(ctx: NamedDependency[Ctx], status: FromQuery[str | None] = None
                ) -> Response[str]:
    """Purchase orders waiting for approval (or of one status) and open suggestions."""
    return render(ctx, status)


def _refused(ctx: Ctx, why: str) -> Response[Any]:
    """Back to the orders with the reason (a reload shows it again and sends nothing)."""
    return ctx.redirect("/procurement", error=why)


def _decide(ctx: Ctx, po_id: str, change: dict[str, Any], done: str) -> Response[Any]:
    ack = apply_as_hq(ctx.db, "purchase_order", po_id, change, ctx.user.login, ctx.hub)
    if ack.status == "rejected":
        return _refused(ctx, f"purchase order {short_id(po_id)}: {ack.reason}")
    return ctx.redirect("/procurement", f"purchase order {short_id(po_id)} {done}")


def _order(ctx: Ctx, po_id: str) -> dict[str, Any] | None:
    """The order's fields; None when there is none this user may see."""
    with ctx.db.transaction(write=False) as store:
        row = store.load("purchase_order", po_id)
    site = ctx.user.site_filter
    if row is None or (site is not None and row.fields.get("site") != site):
        return None
    return dict(row.fields)


@post("/procurement/orders/{po_id:str}/approve", sync_to_thread=True,
      opt={"page": "procurement"})
def approve(ctx: NamedDependency[Ctx], po_id: FromPath[str]) -> Response[Any]:
    """Approve (or give the second approval of) a purchase order."""
    order = _order(ctx, po_id)
    if order is None:
        return _refused(ctx, f"no purchase order {po_id}")
    try:
        change = approval(order, ctx.user.login, SECOND_APPROVAL_ABOVE)
    except ValueError as exc:
        return _refused(ctx, f"purchase order {short_id(po_id)}: {exc}")
    done = ("has its first approval; another procurement manager must approve it too"
            if change["status"] == "first_approved" else "approved")
    return _decide(ctx, po_id, change, done)


@post("/procurement/orders/{po_id:str}/cancel", sync_to_thread=True,
      opt={"page": "procurement"})
def cancel(ctx: NamedDependency[Ctx], po_id: FromPath[str]) -> Response[Any]:
    """Cancel a purchase order."""
    if _order(ctx, po_id) is None:
        return _refused(ctx, f"no purchase order {po_id}")
    return _decide(ctx, po_id, {"status": "cancelled"}, "cancelled")
