"""People and what they may do: employees, their department roles, and the
permission matrix. Authorization decisions are made from this one table
(``sync.authorize``), on the server and, for early refusals, at the edge."""

from __future__ import annotations

import functools
import uuid

from .model import Entity, Field, Kind, Policy

H = Policy.HQ_OWNED

ROLES = frozenset({
    "cashier", "store_manager", "warehouse_clerk", "buyer", "procurement_manager",
    "finance", "hr", "it_admin", "hq_admin", "operations_manager",
})

EMPLOYEE = Entity(
    "employee",
    fields=(
        Field("login", Kind.TEXT, H, doc="the user name ops carry"),
        Field("name", Kind.TEXT, H),
        Field("department", Kind.TEXT, H, doc="sales, procurement, finance, operations, it"),
        Field("site", Kind.REF, H, doc="where the employee works"),
        Field("role", Kind.TEXT, H, doc="one of ROLES"),
    ),
    owner_hq=True,
    doc="An employee, linked to a user login, a department, a site and a role.",
)

_NS = uuid.UUID("6f1c7b2e-4d3a-4b8e-9a51-0c2d9e7f1a10")


@functools.lru_cache(maxsize=4096)
def employee_key(login: str) -> str:
    """The key of a user's employee row, derived from the login (no lookup table).
    Cached: the server asks it for every op of a push that roles limit (a
    till's sales), and uuid5 costs more than the rest of that check."""
    return str(uuid.uuid5(_NS, login))


PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    ("product", "create"): frozenset({"buyer", "hq_admin"}),
    ("product", "set:price"): frozenset({"buyer", "hq_admin"}),
    ("price_change", "create"): frozenset({"buyer", "hq_admin"}),
    ("product", "set:cost"): frozenset({"buyer", "finance", "hq_admin"}),
    ("purchase_order", "create"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("purchase_order", "move:approved"): frozenset({"procurement_manager", "hq_admin"}),
    ("purchase_order", "move:first_approved"): frozenset({"procurement_manager", "hq_admin"}),
    ("supplier", "create"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("reorder_rule", "create"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("purchase_order", "move:cancelled"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("employee", "create"): frozenset({"hr", "hq_admin"}),
    ("employee", "update"): frozenset({"hr", "hq_admin"}),
    ("account", "create"): frozenset({"finance", "hq_admin"}),
    ("account", "update"): frozenset({"finance", "hq_admin"}),
    ("customer", "set:credit_limit"): frozenset({"finance", "store_manager", "hq_admin"}),
    ("stock_exception", "create"): frozenset({"hq_admin"}),
    ("stock_exception", "move:resolved"): frozenset({"operations_manager", "hq_admin"}),
    ("stock_exception", "set:resolution"): frozenset({"operations_manager", "hq_admin"}),
    ("site", "create"): frozenset({"hq_admin"}),
    ("site", "update"): frozenset({"hq_admin"}),
    ("product", "set:sku"): frozenset({"buyer", "hq_admin"}),
    ("product", "set:name"): frozenset({"buyer", "hq_admin"}),
    ("product", "set:barcode"): frozenset({"buyer", "hq_admin"}),
    ("product", "set:category"): frozenset({"buyer", "hq_admin"}),
    ("product", "set:unit"): frozenset({"buyer", "hq_admin"}),
    ("product", "set:tax_rate"): frozenset({"buyer", "hq_admin"}),
    ("supplier", "update"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("reorder_rule", "update"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("po_line", "create"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("purchase_order", "set:total"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("purchase_order", "set:supplier"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
    ("purchase_order", "set:supplier_id"): frozenset({"buyer", "procurement_manager",
                                                      "hq_admin"}),
    ("employee", "delete"): frozenset({"hr", "hq_admin"}),
    ("employee", "set:role=hq_admin"): frozenset({"hq_admin"}),
    ("employee", "set:role=it_admin"): frozenset({"hq_admin"}),
    ("site", "delete"): frozenset({"hq_admin"}),
    ("customer", "delete"): frozenset({"store_manager", "finance", "hq_admin"}),
    ("reorder_rule", "delete"): frozenset({"buyer", "procurement_manager", "hq_admin"}),
}
"""(entity, action) -> roles allowed. Actions: create, update, delete,
set:FIELD, set:FIELD=VALUE (a value only some roles give: the role hq_admin),
move:STATE. An action not listed is open to every role (the site and policy
checks still apply). Every entity whose rows may be deleted lists who deletes
them (a test holds this): a delete is never open by omission."""

VALUED = frozenset((entity, action[4:].split("=")[0]) for entity, action in PERMISSIONS
                   if action.startswith("set:") and "=" in action)
"""(entity, field) pairs whose values the matrix limits (set:FIELD=VALUE)."""

OWN_RECORD_FIXED: dict[str, tuple[str, ...]] = {"employee": ("role", "site")}
"""Fields of a user's own record (key ``employee_key(login)``) the user never
changes, whatever their role: HR does not promote or move itself, nor deletes
its own record."""


GUARDED = frozenset(entity for entity, _ in PERMISSIONS)
"""Entities with at least one action limited to some roles."""


def allowed(entity: str, action: str) -> frozenset[str] | None:
    """The roles allowed to take ``action`` on ``entity``; None: anybody."""
    return PERMISSIONS.get((entity, action))


DEPARTMENTS = frozenset({"sales", "procurement", "finance", "operations", "hr", "it",
                         "management"})
"""The departments an employee may belong to (HQ's REST API checks it)."""

_FINANCE = frozenset({"finance", "hq_admin"})
_STOCK = frozenset({"store_manager", "warehouse_clerk", "operations_manager", "buyer",
                    "procurement_manager", "hq_admin"})

REPORTS: dict[str, frozenset[str]] = {
    "trial_balance": _FINANCE,
    "journal": _FINANCE,
    "sales": frozenset({"store_manager", "finance", "hq_admin"}),
    "margin": frozenset({"store_manager", "finance", "hq_admin"}),
    "stock": _STOCK,
    "valuation": _STOCK | {"finance"},
    "suggestions": frozenset({"buyer", "procurement_manager", "hq_admin"}),
    "employees": frozenset({"hr", "it_admin", "hq_admin"}),
    "purchase_orders": frozenset({"buyer", "procurement_manager", "finance", "store_manager",
                                  "warehouse_clerk", "hq_admin"}),
    "reorder_rules": _STOCK,
    "stock_exceptions": _STOCK,
}
"""Report (or read-only list) -> roles that may read it over HQ's REST API.
An employee who works at a site other than HQ reads that site's figures only."""


PERIOD_CLOSERS = _FINANCE
"""The roles that close the books (``server.periods``), as HQ staff only."""


def report_readers(report: str) -> frozenset[str]:
    """The roles that may read ``report``; a report not listed is for hq_admin only."""
    return REPORTS.get(report, frozenset({"hq_admin"}))


CONSOLE_PAGES: dict[str, frozenset[str]] = {
    "overview": frozenset({"buyer", "procurement_manager", "finance", "hr", "it_admin",
                           "operations_manager", "hq_admin"}),
    "products": ROLES,
    "finance": frozenset({"finance", "hq_admin"}),
    "procurement": frozenset({"buyer", "procurement_manager", "hq_admin"}),
    "sales": frozenset({"finance", "store_manager", "hq_admin"}),
    "operations": frozenset({"operations_manager", "store_manager", "warehouse_clerk",
                             "buyer", "procurement_manager", "hq_admin"}),
    "it": frozenset({"it_admin", "hq_admin"}),
}
"""HQ console page -> roles that may open it. What a page lets a user change
is still decided by ``PERMISSIONS`` on the apply path (a form is shown only
to roles it allows). An employee of a site other than HQ sees that site's
figures only."""


def may_view(role: str | None, page: str) -> bool:
    """Whether ``role`` may open console ``page`` (an unknown page: nobody)."""
    return role is not None and role in CONSOLE_PAGES.get(page, frozenset())
