"""Inventory documents beyond the movement ledger: stock counts and transfer
discrepancies (ledger entries: facts recorded once), and stock exceptions
(raised by HQ's server when stock goes below zero, resolved by HQ operations)."""

from __future__ import annotations

from .model import Entity, Field, Kind, Policy, Scope, StateMachine, Transition, Who

L, H = Policy.LEDGER, Policy.HQ_OWNED

STOCK_COUNT = Entity(
    "stock_count",
    fields=(
        Field("site", Kind.REF, L),
        Field("product_id", Kind.UUID, L),
        Field("counted", Kind.INT, L, minimum=0),
        Field("expected", Kind.INT, L, doc="on hand at the device when counted"),
        Field("counted_by", Kind.TEXT, L),
        Field("date", Kind.DATE, L),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    doc="A physical count; the difference is posted as an adjustment movement.",
)

DISCREPANCY = Entity(
    "discrepancy",
    fields=(
        Field("transfer_id", Kind.UUID, L),
        Field("from_site", Kind.REF, L),
        Field("to_site", Kind.REF, L),
        Field("product_id", Kind.UUID, L),
        Field("shipped", Kind.INT, L),
        Field("received", Kind.INT, L),
    ),
    scope=Scope.NAMED,
    scope_fields=("from_site", "to_site"),
    deletable=False,
    doc="A transfer received short (or damaged): both ends and HQ see it.",
)


STOCK_EXCEPTION = Entity(
    "stock_exception",
    fields=(
        Field("site", Kind.REF, H),
        Field("product_id", Kind.UUID, H),
        Field("on_hand", Kind.INT, H, doc="stock on hand when it was raised (below zero)"),
        Field("movement_id", Kind.UUID, H, doc="the movement that took stock below zero"),
        Field("reason", Kind.TEXT, H, doc="that movement's reason: sale, transfer_out, ..."),
        Field("document_id", Kind.UUID, H, required=False,
              doc="that movement's document (the sale, the transfer, ...)"),
        Field("status", Kind.TEXT, Policy.STATE, doc="open, then resolved by HQ"),
        Field("resolution", Kind.TEXT, H, required=False,
              doc="what HQ did about it: a count, a transfer, a write-off"),
        Field("resolved_by", Kind.TEXT, H, required=False),
    ),
    owner_hq=True,
    scope=Scope.OWNER,
    site_field="site",
    machine=StateMachine(field="status", initial="open",
                         transitions=(Transition("open", "resolved", Who.HQ,
                                                 records="resolved_by", sets=("resolution",)),),
                         editable_in=("open",)),
    deletable=False,
    doc="Stock driven below zero at a site (an offline sale, say): the movement stands, "
        "HQ resolves it. At most one is open per (site, product).",
)
