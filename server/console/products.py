"""Products: search the catalog, see a product's stock by site, and (buyers)
change its price. The price goes through ``apply_as_hq`` as the logged-in
user, so a role the matrix does not allow is refused with its reason even
when the form was forged."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, URLEncodedBody
from sqlalchemy import func, or_, select

from schema.people import allowed

from .. import on_hand
from ..admin import apply_as_hq, refused_status
from .auth import Ctx
from .html import hidden_csrf, join, money, parse_money, table, tag

ROWS = 50


@get("/products", sync_to_thread=True, opt={"page": "products"})
def products(ctx: NamedDependency[Ctx], q: FromQuery[str | None] = None) -> Response[str]:
    """Find products by SKU, name or barcode."""
    product = ctx.db.entities["product"]
    query = select(product.c.id, product.c.sku, product.c.name, product.c.price,
                   product.c.category).order_by(product.c.sku).limit(ROWS + 1)
    if q:
        like = f"%{q.strip().lower()}%"
        query = query.where(or_(func.lower(product.c.sku).like(like),
                                func.lower(product.c.name).like(like),
                                product.c.barcode == q.strip()))
    with ctx.db.reading() as conn:
        rows = conn.execute(query).all()
    body = [
        tag("form", tag("input", name="q", value=q or "", placeholder="SKU, name or barcode"),
            " ", tag("button", "Search", type="submit"), method="get", action="/products"),
        table(["SKU", "name", "category", "price"],
              [[tag("a", r.sku, href=f"/products/{r.id}"), r.name, r.category or "",
                money(r.price)] for r in rows], empty="no products found", limit=ROWS,
              more="search to narrow them"),
    ]
    return ctx.page("products", "Products", join(body))


def render(ctx: Ctx, product_id: str, *, error: str | None = None,
           code: int = 200) -> Response[str]:
    q = on_hand.levels(ctx.db.metadata, ctx.user.site_filter or None, product_id)
    with ctx.db.transaction(write=False) as store:  # the product and its stock at one moment
        row = store.load("product", product_id)
        stock = [(s, n) for s, _, n in store.conn.execute(q)] if row is not None else []
    if row is None:
        return ctx.page("products", "Products", "", error=f"no product {product_id}",
                        status=404)
    p: dict[str, Any] = dict(row.fields)
    body = [
        table(["SKU", "name", "price", "cost", "tax rate", "barcode", "category", "unit"],
              [[p.get("sku"), p.get("name"), tag("span", money(p.get("price")), id="price"),
                money(p.get("cost")), f"{(p.get('tax_rate') or 0) / 100:g}%",
                p.get("barcode") or "", p.get("category") or "", p.get("unit") or ""]]),
    ]
    if ctx.user.role in (allowed("product", "set:price") or frozenset({ctx.user.role})):
        body.append(tag(
            "form", hidden_csrf(ctx.csrf),
            tag("label", "New price ", tag("input", name="price", required=True,
                                           inputmode="decimal", value=money(p.get("price")))),
            " ", tag("button", "Change price", type="submit"),
            method="post", action=f"/products/{product_id}/price", id="price-form"))
    body += [tag("h2", "Stock by site"),
             table(["site", "on hand"], [[s, int(n)] for s, n in stock])]
    return ctx.page("products", f"{p.get('sku')} {p.get('name')}", join(body), error=error,
                    status=code)


@get("/products/{product_id:str}", sync_to_thread=True, opt={"page": "products"})
def product(ctx: NamedDependency[Ctx], product_id: FromPath[str]) -> Response[str]:
    """One product: its master data, stock by site and (buyers) the price form."""
    return render(ctx, product_id)


@post("/products/{product_id:str}/price", sync_to_thread=True, opt={"page": "products"})
def set_price(ctx: NamedDependency[Ctx], product_id: FromPath[str],
              data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    """Change the price; every store receives it."""
    with ctx.db.transaction(write=False) as store:
        if store.load("product", product_id) is None:
            return ctx.page("products", "Products", "", error=f"no product {product_id}",
                            status=404)
    try:
        price = parse_money(data.get("price", ""))
    except ValueError as exc:
        return render(ctx, product_id, error=f"price not changed: {exc}", code=400)
    ack = apply_as_hq(ctx.db, "product", product_id, {"price": price}, ctx.user.login, ctx.hub)
    if ack.status == "rejected":
        return render(ctx, product_id, error=f"price not changed: {ack.reason}",
                      code=refused_status(ack))
    return ctx.redirect(f"/products/{product_id}", f"price changed to {money(price)}")
