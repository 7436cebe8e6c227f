"""HQ operations over REST (OpenAPI at /schema): master data and purchase
order approval. Every write goes through the sync layer's apply path as the
``hq-server`` device, with the authenticated user's role checked against the
same permission matrix as every device's ops; devices in scope hear of it live.

A rejected change answers 403 (the user's role does not allow it) or 409
(it conflicts with the rules or the current state), with the reason.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody

from schema.procurement import approval
from schema.retail import SECOND_APPROVAL_ABOVE
from sync.messages import Ack

from .admin import apply_as_hq
from .api_auth import current_user
from .fanout import Hub
from .store import Database


class Result(msgspec.Struct):
    status: str
    reason: str
    id: str
    row: dict[str, Any] | None


class ProductIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    name: str
    price: int
    cost: int | None = None
    tax_rate: int | None = None
    barcode: str | None = None
    category: str | None = None
    unit: str | None = None
    description: str | None = None


class PriceIn(msgspec.Struct, forbid_unknown_fields=True):
    price: int


class SupplierIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    email: str | None = None
    phone: str | None = None


def _answer(key: str, ack: Ack, created: bool = False) -> Response[Result]:
    row = ack.row.fields if ack.row is not None else None
    if ack.status == "rejected":
        code = 403 if ack.policy == "role" else 409
    else:
        code = 201 if created else 200
    return Response(Result(str(ack.status), ack.reason, key, row), status_code=code)


def _fields(data: msgspec.Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}


class HqController(Controller):
    path = "/api/hq"
    tags = ("hq",)
    dependencies = {"user": Provide(current_user, sync_to_thread=True)}  # noqa: RUF012

    @post("/products", sync_to_thread=True)
    def create_product(self, state: State, data: JSONBody[ProductIn],
                       user: NamedDependency[str]) -> Response[Result]:
        """Add a product to the catalog (buyers)."""
        key = str(uuid.uuid4())
        db: Database = state.db
        hub: Hub = state.hub
        return _answer(key, apply_as_hq(db, "product", key, _fields(data), user, hub), True)

    @post("/products/{product_id:str}/price", sync_to_thread=True)
    def set_price(self, state: State, product_id: FromPath[str], data: JSONBody[PriceIn],
                  user: NamedDependency[str]) -> Response[Result]:
        """Change a product's price (buyers); every store receives it."""
        db: Database = state.db
        with db.transaction(write=False) as store:
            if store.load("product", product_id) is None:
                raise NotFoundException(f"no product {product_id}")
        return _answer(product_id, apply_as_hq(db, "product", product_id,
                                               {"price": data.price}, user, state.hub))

    @post("/suppliers", sync_to_thread=True)
    def create_supplier(self, state: State, data: JSONBody[SupplierIn],
                        user: NamedDependency[str]) -> Response[Result]:
        """Add a supplier (procurement)."""
        key = str(uuid.uuid4())
        return _answer(key, apply_as_hq(state.db, "supplier", key, _fields(data), user,
                                        state.hub), True)

    @post("/purchase-orders/{po_id:str}/approve", sync_to_thread=True)
    def approve(self, state: State, po_id: FromPath[str],
                user: NamedDependency[str]) -> Response[Result]:
        """Approve a purchase order (procurement managers); above the limit, the
        first call records a first approval and a second user completes it."""
        db: Database = state.db
        with db.transaction(write=False) as store:
            order = store.load("purchase_order", po_id)
        if order is None:
            raise NotFoundException(f"no purchase order {po_id}")
        try:
            change = approval(order.fields, user, SECOND_APPROVAL_ABOVE)
        except ValueError as exc:
            return Response(Result("rejected", str(exc), po_id, order.fields), status_code=409)
        return _answer(po_id, apply_as_hq(db, "purchase_order", po_id, change, user, state.hub))

    @post("/purchase-orders/{po_id:str}/cancel", sync_to_thread=True)
    def cancel(self, state: State, po_id: FromPath[str],
               user: NamedDependency[str]) -> Response[Result]:
        """Cancel a purchase order."""
        return _answer(po_id, apply_as_hq(state.db, "purchase_order", po_id,
                                          {"status": "cancelled"}, user, state.hub))

    @get("/whoami", sync_to_thread=True)
    def whoami(self, user: NamedDependency[str]) -> dict[str, str]:
        """The login behind the API token."""
        return {"login": user}
