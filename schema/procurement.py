"""Procurement: suppliers, reorder levels, purchase order lines, goods
receipts and the purchase suggestions raised when stock runs low."""

from __future__ import annotations

from .model import (
    MAX_LEDGER_MONEY,
    Entity,
    Field,
    Kind,
    Parent,
    Policy,
    ProductBound,
    Scope,
    StateMachine,
    Transition,
    Who,
)

L, W, H, S = Policy.LEDGER, Policy.LWW, Policy.HQ_OWNED, Policy.STATE

SUPPLIER = Entity(
    "supplier",
    fields=(
        Field("name", Kind.TEXT, H),
        Field("email", Kind.TEXT, H, required=False),
        Field("phone", Kind.TEXT, H, required=False),
    ),
    owner_hq=True,
    deletable=False,
    doc="A supplier, kept by procurement at HQ.",
)

REORDER_RULE = Entity(
    "reorder_rule",
    fields=(
        Field("site", Kind.REF, H),
        Field("product_id", Kind.UUID, H),
        Field("level", Kind.INT, H, minimum=0, doc="raise a suggestion when on hand falls to this"),
        Field("order_qty", Kind.INT, H, minimum=1, doc="quantity to suggest"),
    ),
    owner_hq=True,
    scope=Scope.OWNER,
    site_field="site",
    doc="The reorder level of a product at a site.",
)

PO_LINE = Entity(
    "po_line",
    fields=(
        Field("po_id", Kind.UUID, L),
        Field("site", Kind.REF, L),
        Field("product_id", Kind.UUID, L),
        Field("qty", Kind.INT, L, minimum=1),
        Field("unit_cost", Kind.MONEY, L, minimum=0),
    ),
    scope=Scope.OWNER,
    site_field="site",
    parent=Parent("purchase_order", "po_id", same=("site",)),
    bounded_products=(ProductBound(("qty", "unit_cost"), MAX_LEDGER_MONEY),),
    deletable=False,
    doc="One product ordered on a purchase order (while it is a draft); the order's "
        "total is the sum of its lines (``Entity.rollup``).",
)

GOODS_RECEIPT = Entity(
    "goods_receipt",
    fields=(
        Field("po_id", Kind.UUID, L),
        Field("site", Kind.REF, L),
        Field("product_id", Kind.UUID, L),
        Field("qty", Kind.INT, L, minimum=1),
        Field("unit_cost", Kind.MONEY, L, minimum=0),
        Field("received_by", Kind.TEXT, L),
        Field("date", Kind.DATE, L),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    doc="Goods received against a purchase order (partial receipts allowed).",
)

PURCHASE_SUGGESTION = Entity(
    "purchase_suggestion",
    fields=(
        Field("site", Kind.REF, W),
        Field("product_id", Kind.UUID, W),
        Field("qty", Kind.INT, W),
        Field("on_hand", Kind.INT, W, doc="stock when the suggestion was raised"),
        Field("status", Kind.TEXT, S),
    ),
    scope=Scope.OWNER,
    site_field="site",
    machine=StateMachine(
        field="status", initial="open",
        transitions=(Transition("open", "ordered", Who.HQ), Transition("open", "dismissed")),
        editable_in=("open",),
    ),
    deletable=False,
    doc="Raised automatically when stock falls to the reorder level; procurement acts.",
)


def approval(order: dict[str, object], user: str, second_above: int) -> dict[str, object]:
    """The change that approving ``order`` means for ``user``: the first approval
    of a large order, the second one, or the only one of a small order."""
    status = order.get("status")
    if status == "first_approved":
        return {"status": "approved"}
    if status != "draft":
        raise ValueError(f"the purchase order is {status}; there is nothing to approve")
    total = order.get("total")
    big = isinstance(total, int) and total > second_above
    return {"status": "first_approved" if big else "approved", "approved_by": user}

SUPPLIER_RETURN = Entity(
    "supplier_return",
    fields=(
        Field("site", Kind.REF, L),
        Field("supplier", Kind.TEXT, L),
        Field("po_id", Kind.UUID, L, required=False),
        Field("product_id", Kind.UUID, L),
        Field("qty", Kind.INT, L, minimum=1),
        Field("unit_cost", Kind.MONEY, L, minimum=0,
              doc="what the supplier credits a unit at: the order's price against an "
                  "order, else the moving average (the stock movement carries the average)"),
        Field("reason", Kind.TEXT, L),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    doc="Goods sent back to a supplier; the payable is reduced by what it credits.",
)
