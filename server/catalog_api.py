"""The product catalog over REST: create, look up (by SKU, barcode or name),
edit, set the price now or from a later date. Buyers keep it; every store
receives it (``server.hq_api`` describes the answers)."""

from __future__ import annotations

import datetime

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import or_

from .clock import fresh_id
from .hq_api import (
    AUTH,
    EXPLAIN,
    SECURITY,
    Limit,
    Money,
    Offset,
    Result,
    TaxRate,
    Text,
    changed,
    db_of,
    find,
    given,
    page,
    require,
    select_rows,
    unique,
    write,
)

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class Product(msgspec.Struct):
    id: str
    sku: str
    name: str
    price: int
    """selling price, minor units"""
    description: str | None = None
    barcode: str | None = None
    category: str | None = None
    unit: str | None = None
    cost: int | None = None
    """standard unit cost, minor units"""
    tax_rate: int | None = None
    """basis points"""


class ProductPage(msgspec.Struct):
    items: list[Product]
    total: int
    """products matching the search, on every page"""
    limit: int
    offset: int


class ProductIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Text
    name: Text
    price: Money
    cost: Money | None = None
    tax_rate: TaxRate | None = None
    barcode: Text | None = None
    category: Text | None = None
    unit: Text | None = None
    description: str | None = None


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; fields left out stay, null clears an optional one.
    The price is changed with /price or a price change, the SKU never."""

    name: Text | Unset = UNSET
    category: Text | Unset | None = UNSET
    barcode: Text | Unset | None = UNSET
    unit: Text | Unset | None = UNSET
    cost: Money | Unset | None = UNSET
    tax_rate: TaxRate | Unset | None = UNSET
    description: str | Unset | None = UNSET


class PriceIn(msgspec.Struct, forbid_unknown_fields=True):
    price: Money


class PriceChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    price: Money
    effective: datetime.date
    """first day the price applies (today or later), yyyy-mm-dd"""


class PriceChange(msgspec.Struct):
    id: str
    product_id: str
    price: int
    effective: str


class CatalogController(Controller):
    path = "/api/hq/products"
    tags = ("catalog",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @post("/", sync_to_thread=True, summary="Create a product")
    def create_product(self, state: State, data: JSONBody[ProductIn],
                       user: NamedDependency[str]) -> Response[Result]:
        """Add a product to the catalog (buyers); the SKU and barcode must be new (409)."""
        db = db_of(state)
        unique(db, "product", "sku", data.sku)
        if data.barcode is not None:
            unique(db, "product", "barcode", data.barcode)
        return write(state, "product", fresh_id(), given(data), user, created=True)

    @get("/", sync_to_thread=True, summary="Search products")
    def list_products(self, state: State, user: NamedDependency[str],
                      q: FromQuery[str | None] = None, category: FromQuery[str | None] = None,
                      limit: Limit = 50, offset: Offset = 0) -> ProductPage:
        """Products by SKU, barcode or name (``q``: an exact SKU or barcode, or
        part of the name or SKU, any case), in SKU order, a page at a time."""
        db = db_of(state)
        t = db.entities["product"]
        query = select_rows(db, "product")
        if q:
            text = q.strip()
            query = query.where(or_(t.c.barcode == text, t.c.sku.icontains(text, autoescape=True),
                                    t.c.name.icontains(text, autoescape=True)))
        if category:
            query = query.where(t.c.category == category)
        rows, total = page(db, query.order_by(t.c.sku, t.c.id), limit, offset)
        return ProductPage([msgspec.convert(r, Product) for r in rows], total, limit, offset)

    @get("/{product_id:str}", sync_to_thread=True, summary="Get a product")
    def get_product(self, state: State, product_id: FromPath[str],
                    user: NamedDependency[str]) -> Product:
        """One product by id (404 if there is none)."""
        row = require(db_of(state), "product", product_id)
        return msgspec.convert({"id": row.key, **row.fields}, Product)

    @patch("/{product_id:str}", sync_to_thread=True, summary="Edit a product")
    def update_product(self, state: State, product_id: FromPath[str],
                       data: JSONBody[ProductUpdate], user: NamedDependency[str]
                       ) -> Response[Result]:
        """Change a product's name, category, barcode, unit, cost, tax rate or
        description (buyers; cost also finance; description anyone)."""
        db = db_of(state)
        require(db, "product", product_id)
        fields = changed(data)
        if fields.get("barcode") is not None:
            unique(db, "product", "barcode", fields["barcode"], product_id)
        return write(state, "product", product_id, fields, user)

    @post("/{product_id:str}/price", sync_to_thread=True, summary="Set a price now")
    def set_price(self, state: State, product_id: FromPath[str], data: JSONBody[PriceIn],
                  user: NamedDependency[str]) -> Response[Result]:
        """Change a product's price at once (buyers); every store receives it.
        For a price from a later date, post a price change."""
        require(db_of(state), "product", product_id)
        return write(state, "product", product_id, {"price": data.price}, user)

    @post("/{product_id:str}/price-changes", sync_to_thread=True,
          summary="Set a price from a date")
    def add_price_change(self, state: State, product_id: FromPath[str],
                         data: JSONBody[PriceChangeIn], user: NamedDependency[str]
                         ) -> Response[Result]:
        """A price from its effective date on (buyers): tills switch to it on that
        day, offline too. The date must not be in the past."""
        require(db_of(state), "product", product_id)
        if data.effective < datetime.date.today():
            raise ValidationException(f"effective date {data.effective} is in the past; "
                                      "set today's price with /price")
        fields = {"product_id": product_id, "price": data.price,
                  "effective": data.effective.isoformat()}
        return write(state, "price_change", fresh_id(), fields, user, created=True)

    @get("/{product_id:str}/price-changes", sync_to_thread=True,
         summary="List a product's price changes")
    def list_price_changes(self, state: State, product_id: FromPath[str],
                           user: NamedDependency[str]) -> list[PriceChange]:
        """Every price change of the product, by effective date."""
        db = db_of(state)
        require(db, "product", product_id)
        rows = find(db, "price_change", db.entities["price_change"].c.product_id == product_id)
        rows.sort(key=lambda r: (r["effective"], r["id"]))
        return [msgspec.convert(r, PriceChange) for r in rows]

