"""Edge tables (sqlite-utils), generated from ``schema.SCHEMA``.

* one *view* table per entity, named like it: ``id`` + one column per field +
  ``_version`` and ``_deleted``: what store operations read;
* ``_base``: the server's authoritative rows (msgpack), for rebasing;
* ``_pending_view``: the full row (with merge metadata) of rows that have
  pending ops, so local checks see what the till sees;
* ``_outbox``: ops not yet acknowledged, in the order they were made;
* ``_state``: cursor, clock, configuration; ``_rejections``: ops HQ refused;
* ``stock_on_hand``: a cache of the sum of ``stock_movement`` per (site,
  product), kept by triggers and rebuildable from the ledger at any time.
"""

from __future__ import annotations

import sqlite_utils

from schema import Entity, Kind, Schema

_TYPES: dict[Kind, type] = {
    Kind.TEXT: str, Kind.REF: str, Kind.UUID: str, Kind.DATE: str,
    Kind.INT: int, Kind.MONEY: int, Kind.BOOL: int,
}


def create_entity_table(db: sqlite_utils.Database, entity: Entity) -> None:
    columns: dict[str, type] = {"id": str}
    columns.update({f.name: _TYPES[f.kind] for f in entity.fields})
    columns.update({"_version": int, "_deleted": int})
    db[entity.name].create(columns, pk="id", if_not_exists=True)  # type: ignore[union-attr]
    for name in sorted(entity.fixed_fields):
        db[entity.name].create_index([name], if_not_exists=True)  # type: ignore[union-attr]


def create_all(db: sqlite_utils.Database, schema: Schema) -> None:
    for entity in schema.entities:
        create_entity_table(db, entity)
    db["_base"].create({"entity": str, "key": str, "version": int, "row": bytes},  # type: ignore[union-attr]
                       pk=("entity", "key"), if_not_exists=True)
    db["_pending_view"].create({"entity": str, "key": str, "row": bytes},  # type: ignore[union-attr]
                               pk=("entity", "key"), if_not_exists=True)
    db.execute(
        "CREATE TABLE IF NOT EXISTS _outbox (pos INTEGER PRIMARY KEY AUTOINCREMENT, "
        "op_id TEXT NOT NULL UNIQUE, entity TEXT NOT NULL, key TEXT NOT NULL, "
        "op BLOB NOT NULL, created_ms INTEGER NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS ix_outbox_row ON _outbox (entity, key)")
    db["_state"].create({"name": str, "value": str}, pk="name", if_not_exists=True)  # type: ignore[union-attr]
    db["_rejections"].create(  # type: ignore[union-attr]
        {"op_id": str, "entity": str, "key": str, "reason": str, "op": bytes, "at_ms": int},
        pk="op_id", if_not_exists=True)
    db["stock_on_hand"].create({"site": str, "product_id": str, "qty": int},  # type: ignore[union-attr]
                               pk=("site", "product_id"), if_not_exists=True)
    if schema.get("stock_movement") is not None:
        _stock_triggers(db)


def _stock_triggers(db: sqlite_utils.Database) -> None:
    add = ("INSERT INTO stock_on_hand (site, product_id, qty) VALUES ({r}.site, {r}.product_id, "
           "{sign}{r}.qty) ON CONFLICT (site, product_id) DO UPDATE SET qty = qty + "
           "excluded.qty;")
    db.executescript(f"""
        CREATE TRIGGER IF NOT EXISTS soh_insert AFTER INSERT ON stock_movement
        WHEN NEW._deleted = 0 BEGIN {add.format(r="NEW", sign="")} END;
        CREATE TRIGGER IF NOT EXISTS soh_delete AFTER DELETE ON stock_movement
        WHEN OLD._deleted = 0 BEGIN {add.format(r="OLD", sign="-")} END;
        CREATE TRIGGER IF NOT EXISTS soh_update AFTER UPDATE ON stock_movement BEGIN
            {add.format(r="OLD", sign="-(OLD._deleted = 0) * ")}
            {add.format(r="NEW", sign="(NEW._deleted = 0) * ")}
        END;
    """)


def rebuild_stock(db: sqlite_utils.Database) -> None:
    """Recompute the stock cache from the ledger."""
    db.execute("DELETE FROM stock_on_hand")
    db.execute(
        "INSERT INTO stock_on_hand (site, product_id, qty) SELECT site, product_id, SUM(qty) "
        "FROM stock_movement WHERE _deleted = 0 GROUP BY site, product_id"
    )


def stock_mismatches(db: sqlite_utils.Database) -> list[tuple[str, str, int, int]]:
    """(site, product, cached, ledger) wherever the cache disagrees with the ledger."""
    rows = db.execute(
        "SELECT l.site, l.product_id, COALESCE(c.qty, 0), l.total FROM "
        "(SELECT site, product_id, SUM(qty) AS total FROM stock_movement WHERE _deleted = 0 "
        " GROUP BY site, product_id) l LEFT JOIN stock_on_hand c "
        "ON c.site = l.site AND c.product_id = l.product_id WHERE COALESCE(c.qty, 0) != l.total "
        "UNION ALL SELECT c.site, c.product_id, c.qty, 0 FROM stock_on_hand c WHERE c.qty != 0 "
        "AND NOT EXISTS (SELECT 1 FROM stock_movement m WHERE m.site = c.site AND "
        "m.product_id = c.product_id AND m._deleted = 0)"
    ).fetchall()
    return [(str(a), str(b), int(c), int(d)) for a, b, c, d in rows]
