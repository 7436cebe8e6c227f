"""Edge tables (sqlite-utils), generated from the schema, never written per entity.

* one *view* table per entity, named like it: ``id`` + one column per field +
  ``_version``, ``_deleted`` and ``_row``. It holds what the till sees (the
  server's row with the pending ops re-applied) and is what store operations
  query. ``_row`` is the server's row (msgpack ``Row``) wherever the view is
  that row: stored by the bulk path, or by a per-row write that left nothing
  pending on it (an acked op); NULL while the view differs from it;
* ``_base``: the server's authoritative rows (msgpack ``Row``), for rebasing,
  where ``_row`` does not hold them: rows whose view differs (pending ops)
  and entities of a newer schema. A row here is never older than its
  ``_row`` (writing a newer one deletes it), so it is read first;
* ``_view_override``: the full visible row (with its merge metadata) wherever
  it differs from ``_base`` -- in practice the rows with pending ops; a NULL
  ``row`` means "no visible row" although a base exists;
* ``_outbox``: ops not yet acknowledged, in the order they were made;
* ``_sent``: ops HQ took, kept ``client.store.KEEP_SENT_DAYS`` at their outbox
  position, so that ``Edge.rejoin`` can send them again to an HQ restored
  from a backup older than their acks; ``_rejoin_seen``: during a rejoin, the
  rows HQ's snapshot held so far (the others go when it is whole);
* ``_state``: cursor, clock, configuration, schema version;
* ``_rejections``: ops HQ refused, with the reason;
* ``stock_on_hand``: per (site, product), the sum of ``stock_movement.qty``,
  of ``qty x unit_cost`` over the movements with a cost (``costed_value``) and
  of ``qty`` over those without (``uncosted_qty``, which count at the
  product's standard cost): the on-hand and the stock value a sale needs,
  without reading the ledger. Kept by triggers whenever a movement's view row
  appears, changes or goes, and rebuildable from the ledger at any time.

``create_tables`` is idempotent: it makes what is missing and adds the columns
of fields a newer schema declares; ``client.migrate`` runs it.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlite_utils

from schema import Entity, Kind, Schema

INTERNAL = ("_base", "_view_override", "_outbox", "_sent", "_rejoin_seen", "_state",
            "_rejections", "stock_on_hand")
"""Tables that are not entity views; no entity may be named like one."""

_TYPES: dict[Kind, type] = {
    Kind.TEXT: str, Kind.REF: str, Kind.UUID: str, Kind.DATE: str,
    Kind.INT: int, Kind.MONEY: int, Kind.BOOL: int,
}
STOCK = "stock_movement"
"""The ledger entity whose sums per (site, product_id) are cached in ``stock_on_hand``."""
STOCK_SUMS = ("qty", "costed_value", "uncosted_qty")
"""The sums ``stock_on_hand`` keeps per (site, product), in this order."""
_TERMS = ("{r}.qty", "{r}.qty * COALESCE({r}.unit_cost, 0)", "{r}.qty * ({r}.unit_cost IS NULL)")
"""What one movement ``{r}`` adds to each of ``STOCK_SUMS``."""


def view_columns(entity: Entity) -> dict[str, type]:
    """The columns of an entity's view table, in order."""
    return {**visible_columns(entity), "_row": bytes}


def visible_columns(entity: Entity) -> dict[str, type]:
    """The columns of an entity's view table that describe the visible row
    (all but ``_row``), in order: what reads of the view select."""
    return {"id": str, **{f.name: _TYPES[f.kind] for f in entity.fields},
            "_version": int, "_deleted": int}


def indexed_fields(entity: Entity) -> list[str]:
    """Fields worth an index at the edge: those placing a row at a site, and
    references to other rows (UUID fields), which lookups and joins follow."""
    refs = [f.name for f in entity.fields if f.kind is Kind.UUID]
    return sorted(set(entity.fixed_fields) | set(refs))


def create_view_table(db: sqlite_utils.Database, entity: Entity) -> list[str]:
    """Create an entity's view table, or add the columns it lacks; returns those added."""
    if entity.name in INTERNAL or entity.name.startswith(("_", "sqlite_")):
        raise ValueError(f"entity name {entity.name!r} is reserved at the edge")
    table = db.table(entity.name)
    added: list[str] = []
    if not table.exists():
        table.create(view_columns(entity), pk="id", not_null=["id"])
    else:
        have = {c.lower() for c in table.columns_dict}
        for name, kind in view_columns(entity).items():
            if name.lower() not in have:
                table.add_column(name, kind)
                added.append(f"{entity.name}.{name}")
    for name in indexed_fields(entity):
        table.create_index([name], if_not_exists=True)
    return added


def create_internal_tables(db: sqlite_utils.Database) -> None:
    """The tables of the sync machinery (same for every schema)."""
    db.table("_base").create(
        {"entity": str, "key": str, "version": int, "row": bytes},
        pk=("entity", "key"), not_null=["entity", "key", "version", "row"], if_not_exists=True)
    db.table("_view_override").create(
        {"entity": str, "key": str, "row": bytes},
        pk=("entity", "key"), not_null=["entity", "key"], if_not_exists=True)
    # sqlite-utils cannot declare AUTOINCREMENT, which keeps outbox positions
    # (and the daemon's "new local write" signal, sqlite_sequence) from ever
    # going back when the outbox empties.
    db.execute(
        "CREATE TABLE IF NOT EXISTS _outbox (pos INTEGER PRIMARY KEY AUTOINCREMENT, "
        "op_id TEXT NOT NULL UNIQUE, entity TEXT NOT NULL, key TEXT NOT NULL, "
        "op BLOB NOT NULL, created_ms INTEGER NOT NULL)")
    db.table("_outbox").create_index(["entity", "key"], index_name="ix_outbox_row",
                                     if_not_exists=True)
    db.execute(
        "CREATE TABLE IF NOT EXISTS _sent (pos INTEGER PRIMARY KEY, op_id TEXT NOT NULL, "
        "entity TEXT NOT NULL, key TEXT NOT NULL, op BLOB NOT NULL, "
        "created_ms INTEGER NOT NULL, acked_ms INTEGER NOT NULL)")
    db.execute("CREATE INDEX IF NOT EXISTS ix_sent_acked ON _sent (acked_ms)")
    db.execute("CREATE TABLE IF NOT EXISTS _rejoin_seen (entity TEXT NOT NULL, "
               "key TEXT NOT NULL, PRIMARY KEY (entity, key)) WITHOUT ROWID")
    db.table("_state").create({"name": str, "value": str}, pk="name", not_null=["name"],
                              if_not_exists=True)
    db.table("_rejections").create(
        {"op_id": str, "entity": str, "key": str, "reason": str, "op": bytes, "at_ms": int},
        pk="op_id", not_null=["op_id", "op"], if_not_exists=True)
    db.table("stock_on_hand").create(
        {"site": str, "product_id": str, "qty": int, **{c: int for c in STOCK_SUMS[1:]}},
        pk=("site", "product_id"), not_null=["site", "product_id", *STOCK_SUMS],
        defaults=dict.fromkeys(STOCK_SUMS[1:], 0), if_not_exists=True)


def create_tables(db: sqlite_utils.Database, schema: Schema) -> list[str]:
    """Make every edge table that is missing; returns the columns added to old tables."""
    create_internal_tables(db)
    added: list[str] = []
    for entity in schema.entities:
        added += create_view_table(db, entity)
    if schema.get(STOCK) is not None:
        create_stock_triggers(db)
    return added


# -- the stock cache -------------------------------------------------------------

_ADD = (f"INSERT INTO stock_on_hand (site, product_id, {', '.join(STOCK_SUMS)}) "
        f"VALUES ({{r}}.site, {{r}}.product_id, "
        + ", ".join(f"{{sign}}{t}" for t in _TERMS)
        + ") ON CONFLICT (site, product_id) DO UPDATE SET "
        + ", ".join(f"{c} = {c} + excluded.{c}" for c in STOCK_SUMS) + ";")
STOCK_TRIGGERS = {
    "soh_insert": f"""CREATE TRIGGER IF NOT EXISTS soh_insert AFTER INSERT ON {STOCK}
        WHEN NEW._deleted = 0 BEGIN {_ADD.format(r="NEW", sign="")} END""",
    "soh_delete": f"""CREATE TRIGGER IF NOT EXISTS soh_delete AFTER DELETE ON {STOCK}
        WHEN OLD._deleted = 0 BEGIN {_ADD.format(r="OLD", sign="-")} END""",
    "soh_update": f"""CREATE TRIGGER IF NOT EXISTS soh_update AFTER UPDATE ON {STOCK}
        WHEN OLD.site IS NOT NEW.site OR OLD.product_id IS NOT NEW.product_id
          OR OLD.qty IS NOT NEW.qty OR OLD.unit_cost IS NOT NEW.unit_cost
          OR OLD._deleted IS NOT NEW._deleted BEGIN
        {_ADD.format(r="OLD", sign="-(OLD._deleted = 0) * ")}
        {_ADD.format(r="NEW", sign="(NEW._deleted = 0) * ")}
    END""",
}
"""Keep ``stock_on_hand`` equal to the sums of visible movements, in the same
transaction as the view row's change (an acknowledged movement whose view row
is rewritten unchanged touches nothing)."""


def create_stock_triggers(db: sqlite_utils.Database) -> None:
    for sql in STOCK_TRIGGERS.values():
        db.execute(sql)


_LEDGER_SUMS = ("SELECT site, product_id, "
                + ", ".join(f"SUM({t.format(r=STOCK)}) AS {c}" for t, c in zip(
                    _TERMS, STOCK_SUMS, strict=True))
                + f" FROM {STOCK} WHERE _deleted = 0 GROUP BY site, product_id")


def rebuild_stock(db: sqlite_utils.Database) -> None:
    """Recompute the stock cache from the ledger (run inside a transaction)."""
    db.execute("DELETE FROM stock_on_hand")
    db.execute(f"INSERT INTO stock_on_hand (site, product_id, {', '.join(STOCK_SUMS)}) "
               f"{_LEDGER_SUMS}")


class StockSums(NamedTuple):
    """What the stock cache keeps for one (site, product)."""

    qty: int
    costed_value: int
    uncosted_qty: int

    def __str__(self) -> str:
        return f"{self.qty} (costed value {self.costed_value}, uncosted {self.uncosted_qty})"


def stock_mismatches(db: sqlite_utils.Database) -> list[tuple[str, str, StockSums, StockSums]]:
    """(site, product, cached, ledger) wherever the cache disagrees with the sums
    of the movements; empty when the cache tells the truth."""
    cached = {(str(r[0]), str(r[1])): StockSums(*map(int, r[2:])) for r in db.execute(
        f"SELECT site, product_id, {', '.join(STOCK_SUMS)} FROM stock_on_hand")}
    ledger = {(str(r[0]), str(r[1])): StockSums(*map(int, r[2:]))
              for r in db.execute(_LEDGER_SUMS)}
    nothing = StockSums(0, 0, 0)
    return [(site, product, cached.get(k, nothing), ledger.get(k, nothing))
            for k in sorted(cached.keys() | ledger.keys()) for site, product in [k]
            if cached.get(k, nothing) != ledger.get(k, nothing)]
