"""Inventory documents beyond the movement ledger: stock counts and transfer
discrepancies. Both are ledger entries: facts recorded once."""

from __future__ import annotations

from .model import Entity, Field, Kind, Policy, Scope

L = Policy.LEDGER

STOCK_COUNT = Entity(
    "stock_count",
    fields=(
        Field("site", Kind.REF, L),
        Field("product_id", Kind.UUID, L),
        Field("counted", Kind.INT, L),
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
