"""A first HQ console page: what the chain looks like right now.

Read-only and server-rendered (no JavaScript): devices, sync position, stock
per site, open conflicts and the latest audit records. Department views
(finance, procurement, ...) grow from here.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import func, select

from .devices import list_devices
from .fanout import Hub
from .reports import sales_by_site, trial_balance
from .store import Database

_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:1.6em}
table{border-collapse:collapse} td,th{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left}
.num{text-align:right} .bad{color:#b00}
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='num'>{v:,}</td>" if isinstance(v, int) and not isinstance(v, bool)
            else f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td>none</td></tr>'}</table>"


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def render(db: Database, hub: Hub) -> str:
    t = db.t
    with db.engine.connect() as conn:
        head = conn.execute(select(func.coalesce(func.max(t["changes"].c.seq), 0))).scalar_one()
        sm = db.entities["stock_movement"]
        stock = conn.execute(
            select(sm.c.site, func.count(func.distinct(sm.c.product_id)), func.sum(sm.c.qty),
                   func.count()).group_by(sm.c.site).order_by(sm.c.site)).all()
        negative = conn.execute(
            select(sm.c.site, sm.c.product_id, func.sum(sm.c.qty).label("on_hand"))
            .group_by(sm.c.site, sm.c.product_id).having(func.sum(sm.c.qty) < 0)
            .limit(20)).all()
        conflicts = conn.execute(
            select(t["conflicts"]).where(t["conflicts"].c.resolved.is_(False))
            .order_by(t["conflicts"].c.id.desc()).limit(20)).all()
        audit = conn.execute(
            select(t["audit"]).order_by(t["audit"].c.id.desc()).limit(25)).all()
        counts = {e: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                  for e, tbl in db.entities.items()}
    devices = list_devices(db)
    tb = trial_balance(db, None)
    sales = sales_by_site(db)
    parts = [
        f"<h1>Branchline HQ</h1><p>change sequence at <b>{head:,}</b>; "
        f"{hub.connected} device(s) connected now; schema version {db.schema.version}</p>",
        "<h2>Stock by site</h2>",
        _table(["site", "products", "units on hand", "movements"],
               [[s, n, int(q or 0), m] for s, n, q, m in stock]),
        "<h2>Sales by site</h2>",
        _table(["site", "receipts", "net", "tax", "cost", "margin"],
               [[r.site, r.receipts, _money(r.net), _money(r.tax), _money(r.cost),
                 _money(r.margin)] for r in sales]),
        f"<h2>Trial balance, company ({'balanced' if tb.balanced else 'NOT BALANCED'})</h2>",
        _table(["account", "name", "debit", "credit", "balance"],
               [[a.code, a.name, _money(a.debit), _money(a.credit), _money(a.balance)]
                for a in tb.accounts]),
        "<h2>Stock exceptions (on hand below zero)</h2>",
        _table(["site", "product", "on hand"], [[s, p, int(q)] for s, p, q in negative]),
        "<h2>Conflict queue</h2>",
        _table(["entity", "key", "field", "HQ value", "proposed", "device"],
               [[c.entity, c.key[:8], c.field, c.server_value, c.proposed_value, c.device]
                for c in conflicts]),
        "<h2>Devices</h2>",
        _table(["device", "site", "state"],
               [[d.device, d.site, "revoked" if d.revoked_ms else "active"] for d in devices]),
        "<h2>Latest audit records</h2>",
        _table(["#", "device", "site", "entity", "key", "status", "policy", "reason"],
               [[a.id, a.device, a.site, a.entity, a.key[:8], a.status, a.policy, a.reason]
                for a in audit]),
        "<h2>Rows per entity</h2>",
        _table(["entity", "rows"], [[e, n] for e, n in counts.items()]),
    ]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Branchline HQ</title>"
            f"<meta http-equiv='refresh' content='5'><style>{_STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>")
