"""Stock on hand kept as a running balance beside the movement ledger.

The ledger (``stock_movement``) stays the truth: on hand at (site, product)
is the sum of its movements. Summing it at every read grows with history,
55 ms per (site, product) at a million movements, and every push that sells
a product read that sum for its automation. So the store keeps the sum in
``on_hand`` itself: ``SqlServerStore.record`` tallies each movement it writes,
and its flush adds the tallies in the same transaction, so the balance is
committed or rolled back together with the movements that make it.

``fill`` builds the balance from the ledger (the upgrade of an older database,
and ``branchline check-stock --rebuild``); ``drift`` lists where the two
disagree, which should be nowhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, MetaData, Select, Table, and_, delete, func, select

from .tables import ON_HAND, ON_HAND_TABLE

LEDGER = "stock_movement"


class Drift(NamedTuple):
    site: str
    product_id: str
    kept: int
    """What ``on_hand`` says."""
    summed: int
    """What the movements add up to."""


def table(metadata: MetaData) -> Table | None:
    return metadata.tables.get(ON_HAND_TABLE)


def upsert_sql(dialect: Dialect) -> str:
    """Add (qty, movements) to a (site, product) balance, creating it at need:
    one statement for SQLite and PostgreSQL alike, in the driver's style."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    t = ON_HAND_TABLE
    return (f"INSERT INTO {t} (site, product_id, qty, movements) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) "
            f"ON CONFLICT (site, product_id) DO UPDATE SET qty = {t}.qty + excluded.qty, "
            f"movements = {t}.movements + excluded.movements")


def _sums(metadata: MetaData) -> Any:
    sm = metadata.tables[LEDGER]
    site, product, qty = (sm.c[c] for c in ON_HAND[LEDGER])
    return (select(site, product, func.coalesce(func.sum(qty), 0).label("qty"),
                   func.count().label("movements"))
            .where(sm.c._deleted.is_(False)).group_by(site, product))


def fill(conn: Connection, metadata: MetaData) -> int:
    """Rebuild every balance from the ledger; returns how many there are.
    Call it inside a write transaction."""
    t = table(metadata)
    if t is None or LEDGER not in metadata.tables:
        return 0
    conn.execute(delete(t))
    conn.execute(t.insert().from_select(["site", "product_id", "qty", "movements"],
                                        _sums(metadata)))
    return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def drift(conn: Connection, metadata: MetaData) -> list[Drift]:
    """Every (site, product) whose kept balance is not the sum of its movements
    (a missing balance counts as 0)."""
    t = table(metadata)
    if t is None or LEDGER not in metadata.tables:
        return []
    summed = {(s, p): int(n) for s, p, n, _ in conn.execute(_sums(metadata))}
    kept = {(s, p): int(n) for s, p, n in conn.execute(select(t.c.site, t.c.product_id, t.c.qty))}
    return [Drift(s, p, kept.get((s, p), 0), summed.get((s, p), 0))
            for s, p in sorted(summed.keys() | kept.keys())
            if kept.get((s, p), 0) != summed.get((s, p), 0)]


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


def by_site(metadata: MetaData, site: str | None = None
            ) -> Select[str, int, int, int]:
    """(site, products that moved, units on hand, movements) per site."""
    t = table(metadata)
    assert t is not None, "the schema has no stock ledger"
    q = (select(t.c.site, func.count(), func.sum(t.c.qty), func.sum(t.c.movements))
         .where(t.c.movements > 0).group_by(t.c.site).order_by(t.c.site))
    return q.where(t.c.site == site) if site is not None else q
