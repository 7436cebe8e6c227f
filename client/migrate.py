"""Bring an edge database up to this version of the software, once, atomically.

Registered steps (sqlite-utils ``Migrations``, recorded in
``_sqlite_migrations`` when applied) change what an older edge left behind;
every step must be harmless on a brand-new database, where it finds nothing
to change. Around them, ``client.tables.create_tables`` makes whatever is
missing and adds the columns of new fields (a new field is None on old rows,
so no row needs rewriting). The schema version is recorded in
``_state.schema_version``; a database of a newer schema, or with steps this
version does not know, is refused.

``upgrade`` runs inside the caller's write transaction, so a CLI command and
the daemon opening the same file together upgrade it once. ``needs_upgrade``
lets them skip the write lock when nothing changed since the last open.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import sqlite_utils
from sqlite_utils.migrations import Migrations

from schema import Schema

from .errors import DatabaseTooNew
from .tables import (
    INTERNAL,
    STOCK,
    STOCK_SUMS,
    STOCK_TRIGGERS,
    create_internal_tables,
    create_tables,
    rebuild_stock,
)

Step = Callable[[sqlite_utils.Database], None]
steps = Migrations("branchline-edge")
STEPS: list[str] = []
"""Names of the registered steps, in order."""


def step(name: str) -> Callable[[Step], Step]:
    """Register an upgrade step; steps run in the order they are declared."""

    def register(fn: Step) -> Step:
        STEPS.append(name)
        return steps(name=name)(fn)

    return register


@step("view-overrides")
def _view_overrides(db: sqlite_utils.Database) -> None:
    """``_pending_view`` held the visible row of rows with pending ops, and the
    view of any other row was its base. ``_view_override`` holds the visible row
    wherever it differs from the base, with NULL for "no visible row"; a row with
    pending ops and no entry in ``_pending_view`` had none."""
    if not db.table("_pending_view").exists():
        return
    create_internal_tables(db)
    db.execute("INSERT OR REPLACE INTO _view_override (entity, key, row) "
               "SELECT entity, key, row FROM _pending_view")
    db.execute(
        "INSERT OR IGNORE INTO _view_override (entity, key, row) "
        "SELECT DISTINCT o.entity, o.key, NULL FROM _outbox o JOIN _base b "
        "ON b.entity = o.entity AND b.key = o.key")
    db.execute("DROP TABLE _pending_view")


@step("stock-update-trigger-when-changed")
def _stock_update_trigger(db: sqlite_utils.Database) -> None:
    """The update trigger of the stock cache fired on every rewrite of a
    movement's view row; it now fires only when site, product, qty or the
    tombstone change. ``create_tables`` makes the new one."""
    db.execute("DROP TRIGGER IF EXISTS soh_update")


@step("stock-value-sums")
def _stock_value_sums(db: sqlite_utils.Database) -> None:
    """The stock cache kept on hand only, and a sale summed the product's whole
    ledger for its cost. It now keeps the costed value and the uncosted
    quantity as well: the old triggers go (``create_tables`` makes the new
    ones), the columns come, and every sum is recomputed from the ledger."""
    table = db.table("stock_on_hand")
    if not table.exists():
        return
    for name in STOCK_TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    for column in STOCK_SUMS[1:]:
        if column not in table.columns_dict:
            table.add_column(column, int, not_null_default=0)
    if db.table(STOCK).exists():
        rebuild_stock(db)


@step("server-rows-stored-once")
def _server_rows_stored_once(db: sqlite_utils.Database) -> None:
    """Every row written one by one (each acked sale, each live change) kept
    the server's row twice: in ``_base`` and, decoded, in its view row. Where
    the view is that row (no ``_view_override``), it now lives in the view
    row's ``_row`` only, as the bulk path stores it."""
    if not db.table("_base").exists() or not db.table("_view_override").exists():
        return
    for (entity,) in db.execute("SELECT DISTINCT entity FROM _base").fetchall():
        table = db.table(entity)
        if entity in INTERNAL or not table.exists():
            continue  # an entity of a newer schema: kept whole in _base
        if "_row" not in table.columns_dict:
            table.add_column("_row", bytes)
        view = f'"{entity}"'
        here = ("SELECT key FROM _base WHERE entity = :e AND key NOT IN "
                "(SELECT key FROM _view_override WHERE entity = :e)")
        db.execute(f"UPDATE {view} SET _row = (SELECT row FROM _base "
                   f"WHERE entity = :e AND key = {view}.id) WHERE id IN ({here})", {"e": entity})
        db.execute(f"DELETE FROM _base WHERE entity = :e AND key IN ({here}) "
                   f"AND key IN (SELECT id FROM {view})", {"e": entity})


def fingerprint(schema: Schema) -> str:
    """What the tables are generated from: the schema's version, the registered
    steps, and every table, index and trigger ``client.tables`` makes, as the
    SQL a new file is made with. Any change to what it makes (a new internal
    table, an index, a trigger) changes the fingerprint by itself, so every
    older file is checked again when it is opened."""
    spec = repr((schema.version, STEPS, _layout(schema)))
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


@functools.cache
def _layout(schema: Schema) -> tuple[str, ...]:
    """The SQL of everything ``create_tables`` makes in a new file."""
    db = sqlite_utils.Database(memory=True)
    create_tables(db, schema)
    made = db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    db.close()
    return tuple(sorted(str(sql) for (sql,) in made))


def _state(db: sqlite_utils.Database, name: str) -> str | None:
    if not db.table("_state").exists():
        return None
    found = db.execute("SELECT value FROM _state WHERE name = ?", [name]).fetchone()
    return None if found is None else str(found[0])


def needs_upgrade(db: sqlite_utils.Database, schema: Schema) -> bool:
    """False when the tables were last made by this very software and schema."""
    return _state(db, "layout") != fingerprint(schema)


def upgrade(db: sqlite_utils.Database, schema: Schema) -> list[str]:
    """Apply what is missing; returns what was done. Call inside a write transaction."""
    stored = _state(db, "schema_version")
    if stored is not None and int(stored) > schema.version:
        raise DatabaseTooNew(f"this database has schema version {stored}, newer than this "
                             f"edge's {schema.version}: upgrade branchline-edge")
    unknown = [m.name for m in steps.applied(db) if m.name not in STEPS]
    if unknown:
        raise DatabaseTooNew(f"this database was upgraded by a newer branchline-edge "
                             f"(steps {', '.join(unknown)}): upgrade branchline-edge")
    done = [m.name for m in steps.pending(db)]
    steps.apply(db)
    done += [f"added {c}" for c in create_tables(db, schema)]
    state = db.table("_state")
    if stored != str(schema.version):
        state.upsert({"name": "schema_version", "value": str(schema.version)}, pk="name")
        if stored is not None:
            done.append(f"schema version {stored} -> {schema.version}")
    state.upsert({"name": "layout", "value": fingerprint(schema)}, pk="name")
    return done
