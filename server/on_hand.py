"""Stock on hand: the running total ``on_hand`` keeps beside the movement
ledger (``server.totals``), and the reads of it.

On hand at (site, product) is the sum of its movements. Summing them at every
read grew with history, 55 ms per (site, product) at a million movements, and
every push that sold a product read that sum for its automation; a push now
reads one row per (site, product) here.
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, Select, Table, and_, func, select

from . import totals
from .tables import ON_HAND_TABLE
from .totals import BY_TABLE

STOCK = BY_TABLE[ON_HAND_TABLE]


def table(metadata: MetaData) -> Table | None:
    return metadata.tables.get(ON_HAND_TABLE)


def fill(conn: Connection, metadata: MetaData) -> int:
    """Rebuild every balance from the ledger; returns how many there are."""
    return totals.fill(conn, metadata, STOCK)


def drift(conn: Connection, metadata: MetaData) -> list[totals.Drift]:
    """Every (site, product) whose kept balance is not what its movements add up to."""
    return totals.drift(conn, metadata, STOCK)


def level(conn: Connection, metadata: MetaData, site: str, product: str) -> int:
    """On hand at one (site, product): one row read."""
    t = table(metadata)
    assert t is not None, "the schema has no stock ledger"
    found = conn.execute(select(t.c.qty).where(
        and_(t.c.site == site, t.c.product_id == product))).scalar()
    return int(found or 0)


def levels(metadata: MetaData, site: str | None = None, product: str | None = None,
           negative_only: bool = False) -> Select[str, str, int]:
    """(site, product_id, on hand) of every product that ever moved, by site and
    product; narrowed to one site, one product, or the balances below zero."""
    t = table(metadata)
    assert t is not None, "the schema has no stock ledger"
    q = select(t.c.site, t.c.product_id, t.c.qty.label("on_hand")).where(t.c.movements > 0)
    if site is not None:
        q = q.where(t.c.site == site)
    if product is not None:
        q = q.where(t.c.product_id == product)
    if negative_only:
        q = q.where(t.c.qty < 0)
    return q.order_by(t.c.site, t.c.product_id)


def values(metadata: MetaData, site: str | None = None
           ) -> Select[str, str, int, int, int, int | None]:
    """(site, product_id, on hand, value of the movements with a cost, quantity
    of those without, the product's standard cost) of every product that ever
    moved, by site and product; narrowed to one site."""
    t = table(metadata)
    assert t is not None, "the schema has no stock ledger"
    product = metadata.tables["product"]
    q = (select(t.c.site, t.c.product_id, t.c.qty, t.c.costed_value, t.c.uncosted_qty,
                product.c.cost)
         .select_from(t.outerjoin(product, product.c.id == t.c.product_id))
         .where(t.c.movements > 0))
    if site is not None:
        q = q.where(t.c.site == site)
    return q.order_by(t.c.site, t.c.product_id)


def by_site(metadata: MetaData, site: str | None = None
            ) -> Select[str, int, int, int]:
    """(site, products that moved, units on hand, movements) per site."""
    t = table(metadata)
    assert t is not None, "the schema has no stock ledger"
    q = (select(t.c.site, func.count(), func.sum(t.c.qty), func.sum(t.c.movements))
         .where(t.c.movements > 0).group_by(t.c.site).order_by(t.c.site))
    return q.where(t.c.site == site) if site is not None else q
