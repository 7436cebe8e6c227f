"""Stock exceptions for HQ operations over REST (OpenAPI at /schema).

A sale made offline that drives stock below zero is accepted and raises a
stock exception (``server.automation``); here HQ lists them and resolves
them. Resolving is a state move (open -> resolved) with a note, made through
the sync layer's apply path as the ``hq-server`` device with the
authenticated user's login, so the permission matrix (``schema.people``)
decides who may (403 otherwise) and the store hears of it like any change.
An employee of a site other than HQ lists that site's exceptions only.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import (
    NotFoundException,
    ValidationException,
)
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select

from schema.model import MAX_TEXT

from . import on_hand
from .admin import apply_as_hq, refused_status
from .api_auth import current_user, readable_site
from .store import Database


class StockException(msgspec.Struct):
    id: str
    site: str
    product_id: str
    sku: str | None
    on_hand: int
    """stock on hand when the exception was raised"""
    on_hand_now: int
    """stock on hand now (the sum of the movements)"""
    movement_id: str
    reason: str
    document_id: str | None
    """the document of the movement (the sale, the transfer, ...)"""
    status: str
    resolution: str | None
    resolved_by: str | None


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    resolution: str
    """what was done about it: a count, a transfer, a write-off"""


class Resolved(msgspec.Struct):
    status: str
    reason: str
    id: str
    row: dict[str, Any] | None


def list_exceptions(db: Database, site: str | None, status: str | None,
                    product_id: str | None) -> list[StockException]:
    exc, product = db.entities["stock_exception"], db.entities["product"]
    q = select(exc, product.c.sku).outerjoin(product, product.c.id == exc.c.product_id)
    for column, value in ((exc.c.site, site), (exc.c.status, status),
                          (exc.c.product_id, product_id)):
        if value is not None:
            q = q.where(column == value)
    with db.reading() as conn:  # each exception and its stock now, at one moment
        rows = conn.execute(q.order_by(exc.c.site, exc.c.product_id, exc.c._seq)).all()
        out = []
        for r in rows:
            now = on_hand.level(conn, db.metadata, r.site, r.product_id)
            out.append(StockException(
                r.id, r.site, r.product_id, r.sku, int(r.on_hand), int(now), r.movement_id,
                r.reason, r.document_id, r.status, r.resolution, r.resolved_by))
    return out


class StockExceptionsController(Controller):
    path = "/api/operations/stock-exceptions"
    tags = ("operations",)
    dependencies = {"user": Provide(current_user, sync_to_thread=True)}  # noqa: RUF012

    @get("/", sync_to_thread=True, summary="Stock exceptions")
    def index(self, state: State, user: NamedDependency[str],
             site: FromQuery[str | None] = None,
             status: FromQuery[Literal["open", "resolved", "all"]] = "open",
             product_id: FromQuery[str | None] = None) -> list[StockException]:
        """Stock driven below zero, per (site, product): the open ones by default
        (``status=resolved`` or ``all``), for one site or product if asked."""
        db: Database = state.db
        site = readable_site(db, user, site, "exceptions", "stock_exceptions")
        return list_exceptions(db, site, None if status == "all" else status, product_id)

    @post("/{exception_id:str}/resolve", sync_to_thread=True, summary="Resolve")
    def resolve(self, state: State, exception_id: FromPath[str], data: JSONBody[ResolveIn],
                user: NamedDependency[str]) -> Response[Resolved]:
        """Close an open exception with a note of what was done (HQ operations)."""
        note = data.resolution.strip()
        if not note:
            raise ValidationException("say how the exception was resolved (resolution)")
        if len(note) > MAX_TEXT:
            raise ValidationException(f"resolution is longer than {MAX_TEXT} characters")
        db: Database = state.db
        with db.transaction(write=False) as store:
            found = store.load("stock_exception", exception_id)
        if found is None:
            raise NotFoundException(f"no stock exception {exception_id}")
        if found.fields.get("status") != "open":
            return Response(Resolved("rejected", f"stock exception {exception_id} is "
                                     f"{found.fields.get('status')}; it cannot be resolved "
                                     "again", exception_id, found.fields), status_code=409)
        ack = apply_as_hq(db, "stock_exception", exception_id, {
            "status": "resolved", "resolution": note, "resolved_by": user}, user, state.hub)
        row = ack.row.fields if ack.row is not None else None
        code = 200 if ack.status != "rejected" else refused_status(ack)
        return Response(Resolved(str(ack.status), ack.reason, exception_id, row),
                        status_code=code)
