"""Procurement over REST: suppliers, reorder levels per site and product, and
purchase orders (drafted at HQ for a receiving site, approved, cancelled;
``server.hq_api`` describes the answers). An order and its lines are one sync
group: applied all or nothing, and the receiving site gets them together."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import ColumnElement, func, select

from schema.procurement import approval
from schema.retail import SECOND_APPROVAL_ABOVE

from .api_auth import readable_site
from .clock import fresh_id
from .hq_api import (
    AUTH,
    EXPLAIN,
    SECURITY,
    Limit,
    Money,
    Offset,
    Qty,
    Result,
    Text,
    changed,
    db_of,
    find,
    given,
    known,
    known_site,
    page,
    require,
    select_rows,
    write,
    write_group,
)

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType
MAX_LINES = 500


# -- suppliers ---------------------------------------------------------------

class Supplier(msgspec.Struct):
    id: str
    name: str
    email: str | None = None
    phone: str | None = None


class SupplierIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Text
    email: Text | None = None
    phone: Text | None = None


class SupplierUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Text | Unset = UNSET
    email: Text | Unset | None = UNSET
    phone: Text | Unset | None = UNSET


class SuppliersController(Controller):
    path = "/api/hq/suppliers"
    tags = ("procurement",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @post("/", sync_to_thread=True, summary="Create a supplier")
    def create_supplier(self, state: State, data: JSONBody[SupplierIn],
                        user: NamedDependency[str]) -> Response[Result]:
        """Add a supplier (buyers, procurement)."""
        return write(state, "supplier", fresh_id(), given(data), user, created=True)

    @get("/", sync_to_thread=True, summary="List suppliers")
    def list_suppliers(self, state: State, user: NamedDependency[str],
                       q: FromQuery[str | None] = None) -> list[Supplier]:
        """Suppliers by name; ``q``: part of the name, any case."""
        db = db_of(state)
        t = db.entities["supplier"]
        where = [t.c.name.icontains(q.strip(), autoescape=True)] if q else []
        rows = find(db, "supplier", *where)
        return [msgspec.convert(r, Supplier) for r in sorted(rows, key=lambda r: r["name"])]

    @get("/{supplier_id:str}", sync_to_thread=True, summary="Get a supplier")
    def get_supplier(self, state: State, supplier_id: FromPath[str],
                     user: NamedDependency[str]) -> Supplier:
        """One supplier by id."""
        row = require(db_of(state), "supplier", supplier_id)
        return msgspec.convert({"id": row.key, **row.fields}, Supplier)

    @patch("/{supplier_id:str}", sync_to_thread=True, summary="Edit a supplier")
    def update_supplier(self, state: State, supplier_id: FromPath[str],
                        data: JSONBody[SupplierUpdate], user: NamedDependency[str]
                        ) -> Response[Result]:
        """Change a supplier's name, e-mail or phone (buyers, procurement)."""
        require(db_of(state), "supplier", supplier_id)
        return write(state, "supplier", supplier_id, changed(data), user)


# -- reorder rules -----------------------------------------------------------

class ReorderRule(msgspec.Struct):
    id: str
    site: str
    product_id: str
    level: int
    """a purchase suggestion is raised when on hand falls to this"""
    order_qty: int


class ReorderRuleIn(msgspec.Struct, forbid_unknown_fields=True):
    site: str
    product_id: str
    level: Annotated[int, msgspec.Meta(ge=0, le=10**9)]
    order_qty: Qty


class ReorderRulesController(Controller):
    path = "/api/hq/reorder-rules"
    tags = ("procurement",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @put("/", sync_to_thread=True, summary="Set a reorder level")
    def set_rule(self, state: State, data: JSONBody[ReorderRuleIn],
                 user: NamedDependency[str]) -> Response[Result]:
        """The reorder level and order quantity of a product at a site (buyers,
        procurement): creates the rule (201) or changes the one there is (200)."""
        db = db_of(state)
        known_site(db, data.site)
        known(db, "product", data.product_id)
        t = db.entities["reorder_rule"]
        found = find(db, "reorder_rule", t.c.site == data.site,
                     t.c.product_id == data.product_id)
        if found:
            return write(state, "reorder_rule", found[0]["id"],
                         {"level": data.level, "order_qty": data.order_qty}, user)
        return write(state, "reorder_rule", fresh_id(), given(data), user, created=True)

    @get("/", sync_to_thread=True, summary="List reorder levels")
    def list_rules(self, state: State, user: NamedDependency[str],
                   site: FromQuery[str | None] = None,
                   product_id: FromQuery[str | None] = None) -> list[ReorderRule]:
        """Reorder rules, optionally of one site or one product."""
        db = db_of(state)
        site = readable_site(db, user, site or None, "reorder rules", "reorder_rules")
        t = db.entities["reorder_rule"]
        where: list[ColumnElement[bool]] = []
        if site:
            where.append(t.c.site == site)
        if product_id:
            where.append(t.c.product_id == product_id)
        rows = find(db, "reorder_rule", *where)
        rows.sort(key=lambda r: (r["site"], r["product_id"]))
        return [msgspec.convert(r, ReorderRule) for r in rows]


# -- purchase orders ---------------------------------------------------------

class PoLineIn(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str
    qty: Qty
    unit_cost: Money


class PurchaseOrderIn(msgspec.Struct, forbid_unknown_fields=True):
    site: str
    """the receiving site (a store or a warehouse)"""
    supplier_id: str
    lines: Annotated[list[PoLineIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)]


class PurchaseOrder(msgspec.Struct):
    id: str
    site: str
    supplier: str
    total: int
    """what its lines come to (qty x unit_cost), as HQ holds them; 0 while it has none"""
    status: str
    """draft, first_approved, approved, partially_received, received, cancelled"""
    supplier_id: str | None = None
    approved_by: str | None = None
    """the first approver"""
    drafted_by: str | None = None
    """who drafted it; never its approver"""


class PurchaseOrderPage(msgspec.Struct):
    items: list[PurchaseOrder]
    total: int
    limit: int
    offset: int


class PoLine(msgspec.Struct):
    id: str
    product_id: str
    qty: int
    unit_cost: int
    received: int
    """received so far against this line"""


class PurchaseOrderDetail(msgspec.Struct):
    order: PurchaseOrder
    lines: list[PoLine]


def _order(row: dict[str, Any]) -> PurchaseOrder:
    return msgspec.convert({**row, "total": row.get("total") or 0}, PurchaseOrder)


class PurchaseOrdersController(Controller):
    path = "/api/hq/purchase-orders"
    tags = ("procurement",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @post("/", sync_to_thread=True, summary="Draft a purchase order")
    def create_order(self, state: State, data: JSONBody[PurchaseOrderIn],
                     user: NamedDependency[str]) -> Response[Result]:
        """A draft order with its lines for a receiving site (buyers,
        procurement). The site, supplier and products must exist; one line per
        product. Its total is what the lines come to, worked out by HQ; the
        user is recorded as its drafter, who does not approve it. It reaches
        the receiving site at once; approval follows."""
        db = db_of(state)
        known_site(db, data.site)
        supplier = known(db, "supplier", data.supplier_id)
        products = [line.product_id for line in data.lines]
        if len(set(products)) != len(products):
            raise ValidationException("one line per product: merge the quantities")
        sites = find(db, "site", db.entities["site"].c.code == data.site)
        if sites and sites[0]["kind"] == "transit":
            raise ValidationException("goods are not ordered to the transit location")
        for product in products:
            known(db, "product", product)
        po = fresh_id()
        changes: list[tuple[str, str, dict[str, Any]]] = [("purchase_order", po, {
            "site": data.site, "supplier": supplier.fields["name"],
            "supplier_id": data.supplier_id, "status": "draft"})]
        changes += [("po_line", fresh_id(), {
            "po_id": po, "site": data.site, "product_id": line.product_id, "qty": line.qty,
            "unit_cost": line.unit_cost}) for line in data.lines]
        return write_group(state, changes, user, created=True)

    @get("/", sync_to_thread=True, summary="List purchase orders")
    def list_orders(self, state: State, user: NamedDependency[str],
                    status: FromQuery[str | None] = None, site: FromQuery[str | None] = None,
                    limit: Limit = 50, offset: Offset = 0) -> PurchaseOrderPage:
        """Purchase orders, the latest changed first, optionally by status and
        receiving site."""
        db = db_of(state)
        site = readable_site(db, user, site or None, "purchase orders", "purchase_orders")
        t = db.entities["purchase_order"]
        query = select_rows(db, "purchase_order")
        if status:
            query = query.where(t.c.status == status)
        if site:
            query = query.where(t.c.site == site)
        rows, total = page(db, query.order_by(t.c._seq.desc(), t.c.id), limit, offset)
        return PurchaseOrderPage([_order(r) for r in rows], total, limit, offset)

    @get("/{po_id:str}", sync_to_thread=True, summary="Get a purchase order")
    def get_order(self, state: State, po_id: FromPath[str],
                  user: NamedDependency[str]) -> PurchaseOrderDetail:
        """One order with its lines and what has been received against each."""
        db = db_of(state)
        row = require(db, "purchase_order", po_id)
        readable_site(db, user, str(row.fields.get("site")), "purchase orders",
                      "purchase_orders")
        gr = db.entities["goods_receipt"]
        with db.reading() as conn:  # the lines and what was received against them agree
            lines = find(db, "po_line", db.entities["po_line"].c.po_id == po_id, conn=conn)
            received = dict(conn.execute(
                select(gr.c.product_id, func.sum(gr.c.qty)).where(gr.c.po_id == po_id)
                .group_by(gr.c.product_id)).all())
        return PurchaseOrderDetail(
            _order({"id": row.key, **row.fields}),
            [PoLine(ln["id"], ln["product_id"], ln["qty"], ln["unit_cost"],
                    int(received.get(ln["product_id"]) or 0))
             for ln in sorted(lines, key=lambda ln: ln["product_id"])])

    @post("/{po_id:str}/approve", sync_to_thread=True, summary="Approve a purchase order")
    def approve(self, state: State, po_id: FromPath[str],
                user: NamedDependency[str]) -> Response[Result]:
        """Approve a purchase order (procurement managers) by what its lines
        come to; above the limit, the first call records a first approval and
        a second user completes it. Nobody approves an order they drafted
        (403), nor one with no lines or whose total HQ has not yet brought
        to its lines (409)."""
        order = require(db_of(state), "purchase_order", po_id)
        try:
            change = approval(order.fields, user, SECOND_APPROVAL_ABOVE)
        except ValueError as exc:
            return Response(Result("rejected", str(exc), po_id, order.fields), status_code=409)
        return write(state, "purchase_order", po_id, change, user)

    @post("/{po_id:str}/cancel", sync_to_thread=True, summary="Cancel a purchase order")
    def cancel(self, state: State, po_id: FromPath[str],
               user: NamedDependency[str]) -> Response[Result]:
        """Cancel a purchase order (buyers, procurement); a received order cannot be."""
        require(db_of(state), "purchase_order", po_id)
        return write(state, "purchase_order", po_id, {"status": "cancelled"}, user)
