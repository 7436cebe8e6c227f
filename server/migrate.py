"""Upgrades of a database made by an older server: registered steps, each
applied once and recorded in ``server_meta`` as ``migration:<name>``.

``metadata.create_all`` makes whatever is missing (a new database, a new
table with its indexes); the steps here change what already exists. They run
at server start inside the write transaction that created the tables, so two
servers starting together upgrade once. Every step must be harmless on a
brand-new database, where it finds nothing to change.

The columns of new fields are added to their tables at every start (a new
field always has a default of None on the wire, so old rows need no rewrite),
whether or not the schema version was raised with them; a raised version is
then recorded in ``server_meta.schema_version``. A database of a newer schema
than the server's is refused: the server must be upgraded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)

from schema import Kind, Schema, Scope

from . import on_hand, totals
from .tables import (
    ACCOUNT_BALANCE_TABLE,
    DEVICE_ACTIVITY_TABLE,
    EVERY_SITE,
    JOURNAL_DAY_TABLE,
    LOOKUPS,
    READS,
    SALE_COST_TABLE,
    SITE_DAY_SALES_TABLE,
)

Step = Callable[[Connection, MetaData, Schema], None]
STEPS: list[tuple[str, Step]] = []


def step(name: str) -> Callable[[Step], Step]:
    """Register an upgrade step; steps run in the order they are declared."""

    def register(fn: Step) -> Step:
        if any(n == name for n, _ in STEPS):
            raise ValueError(f"upgrade step {name!r} registered twice")
        STEPS.append((name, fn))
        return fn

    return register


def _create_indexes(conn: Connection, metadata: MetaData, tables: Iterable[str]) -> None:
    """Create the declared indexes of these tables that the database lacks."""
    for name in tables:
        if name in metadata.tables:
            for index in metadata.tables[name].indexes:
                index.create(conn, checkfirst=True)


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


@step("every-site-marker")
def _every_site_marker(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """Changes every site receives were marked ``'*'``, which a site field could
    also hold: a transfer to a site named "*" reached every store. The marker
    is now the empty string, which no site field can hold. A ``'*'`` row of an
    entity with a narrower scope really named a site "*" and stays."""
    scope, changes = metadata.tables["change_scope"], metadata.tables["changes"]
    everywhere = [e.name for e in schema.entities if e.scope is Scope.ALL]
    conn.execute(
        update(scope)
        .where(scope.c.site == "*",
               scope.c.seq.in_(select(changes.c.seq).where(changes.c.entity.in_(everywhere))))
        .values(site=EVERY_SITE)
    )


@step("scope-index-with-key")
def _scope_index_with_key(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """Scope columns were indexed alone, so a site's snapshot page sorted every
    row of the site; (field, id) indexes serve the page in key order."""
    for entity in schema.entities:
        for name in sorted(entity.fixed_fields):
            conn.execute(text(f"DROP INDEX IF EXISTS {_quote(conn, f'ix_{entity.name}_{name}')}"))
    _create_indexes(conn, metadata, [e.name for e in schema.entities])


@step("on-hand-index")
def _on_hand_index(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """Stock on hand was summed by walking every movement of the site; a
    covering (site, product_id, qty) index read just the (site, product).
    (Superseded by the ``on_hand`` balances, which drop it again.)"""
    _create_indexes(conn, metadata, [on_hand.STOCK.entity])


@step("automation-lookups")
def _automation_lookups(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The automation's per-product lookups walked every rule, suggestion and
    exception of the site; (site, product_id[, status]) indexes read one."""
    _create_indexes(conn, metadata, LOOKUPS)


@step("on-hand-table")
def _on_hand_table(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """Stock on hand was a sum over every movement of (site, product), read at
    each push; the balance is now kept in ``on_hand``: build it from the ledger."""
    on_hand.fill(conn, metadata)


@step("on-hand-index-dropped")
def _on_hand_index_dropped(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """With the balances kept in ``on_hand``, the (site, product_id, qty) index
    of the ledger served nothing on a push's path, and every movement paid an
    insert into it at a random place (a quarter of a push's time at scale)."""
    name = f"ix_{on_hand.STOCK.entity}_on_hand"
    conn.execute(text(f"DROP INDEX IF EXISTS {_quote(conn, name)}"))


@step("acks-in-audit")
def _acks_in_audit(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The ack of each applied op (the dedupe of resends) had its own ``ops``
    table: one more random-key insert per op. It now lives in the op's audit
    row; move the old acks to the latest audit row of their op id (any ack
    without an audit row stays in ``ops``, which the store still reads)."""
    audit, ops = metadata.tables["audit"], metadata.tables["ops"]
    if "ack" not in {c["name"] for c in inspect(conn).get_columns("audit")}:
        _add_column(conn, audit.c.ack)
    latest = (select(func.max(audit.c.id)).where(audit.c.op_id.in_(select(ops.c.op_id)))
              .group_by(audit.c.op_id))
    conn.execute(update(audit).where(audit.c.id.in_(latest)).values(
        ack=select(ops.c.ack).where(ops.c.op_id == audit.c.op_id).scalar_subquery()))
    conn.execute(delete(ops).where(
        ops.c.op_id.in_(select(audit.c.op_id).where(audit.c.ack.is_not(None)))))


def add_columns(conn: Connection, metadata: MetaData,
                only: Iterable[str] | None = None) -> list[str]:
    """Add the declared columns a table lacks (the fields of a newer schema),
    in every table or in the tables named ``only``."""
    added = []
    inspector = inspect(conn)
    names = None if only is None else set(only)
    for table in metadata.sorted_tables:
        if names is not None and table.name not in names:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            _add_column(conn, column)
            added.append(f"{table.name}.{column.name}")
    return added


def _add_column(conn: Connection, column: Column[Any]) -> None:
    table = column.table
    if not column.nullable:
        raise RuntimeError(f"cannot add required column {table.name}.{column.name}; "
                           "write an upgrade step for it")
    kind = column.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {_quote(conn, table.name)} "
                      f"ADD COLUMN {_quote(conn, column.name)} {kind}"))


@step("device-activity")
def _device_activity(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The IT page found each device's last op by grouping the whole audit log
    at every load (half a second per million ops); ``device_activity`` now
    keeps it, moved forward by every commit. Fill it from the log once."""
    audit, activity = metadata.tables["audit"], metadata.tables[DEVICE_ACTIVITY_TABLE]
    latest = select(func.max(audit.c.id)).group_by(audit.c.device)
    conn.execute(delete(activity))
    conn.execute(insert(activity).from_select(
        ["device", "audit_id", "hlc"],
        select(audit.c.device, audit.c.id, audit.c.hlc).where(audit.c.id.in_(latest))))


@step("account-balances-and-site-sales")
def _account_balances(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The trial balance and the overview's sales summed every journal line
    and counted every receipt at each load (420 ms per million lines, 350 ms
    per quarter million receipts); ``account_balance`` and ``site_sales`` now
    keep the sums: build them from the journal and the receipts. (The sums per
    site moved to ``site_day_sales``, which ``site-day-sales`` builds.)"""
    totals.fill(conn, metadata, totals.BY_TABLE[ACCOUNT_BALANCE_TABLE])


@step("on-hand-value-sums")
def _on_hand_value_sums(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The valuation report read and sorted every movement ever made (seconds
    per million); ``on_hand`` now also keeps each (site, product)'s value
    sums (``tables.STOCK_VALUE``). Its rows are all derived: make the table
    anew with the new columns and build it from the ledger."""
    t = on_hand.table(metadata)
    if t is None:
        return
    t.drop(conn)
    t.create(conn)
    on_hand.fill(conn, metadata)


@step("report-indexes")
def _report_indexes(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """HQ's finance, sales and margin pages, the journal and an order's detail
    sorted or walked whole ledgers (1.5 s per finance page at a million
    journal lines); ``tables.READS`` indexes what they read."""
    _create_indexes(conn, metadata, READS)


@step("site-day-sales")
def _site_day_sales(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The sales report of all time read every sale line ever sold (466 ms
    at 500,000 lines) and one over a range every receipt of it; the receipts,
    net and tax are now kept per (site, day) in ``site_day_sales`` and the
    cost of the goods sold per site in ``site_sale_cost``: build them from the
    receipts and their lines, and drop ``site_sales`` (the same sums per
    site, now added up from the days)."""
    conn.execute(text(f"DROP TABLE IF EXISTS {_quote(conn, 'site_sales')}"))
    for table in (SITE_DAY_SALES_TABLE, SALE_COST_TABLE):
        totals.fill(conn, metadata, totals.BY_TABLE[table])


@step("range-cost-indexes")
def _range_cost_indexes(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The cost of a range's receipts read each receipt's row and each of its
    lines' rows through the ``sale(date, site)`` and ``sale_line(sale_id)``
    indexes; ``(date, site, id)`` and ``(sale_id, qty, cost)`` hold what it reads."""
    for old in ("ix_sale_by_date_site", "ix_sale_line_by_sale_id"):
        conn.execute(text(f"DROP INDEX IF EXISTS {_quote(conn, old)}"))
    _create_indexes(conn, metadata, ["sale", "sale_line"])


@step("journal-day")
def _journal_day(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """The margin by month or day, and over a range of days, read every
    journal line of the range (all time by month: 0.9 s at 1.25 M lines);
    ``journal_day`` now keeps the debits, credits and lines per (day, site,
    account) beside ``account_balance``: build it from the journal."""
    totals.fill(conn, metadata, totals.BY_TABLE[JOURNAL_DAY_TABLE])


@step("uuid-fields-in-byte-order")
def _uuid_fields_in_byte_order(conn: Connection, metadata: MetaData, schema: Schema) -> None:
    """On PostgreSQL the row ids are in byte order ("C" collation) but the
    fields that refer to them (a sale line's ``sale_id``, an order line's
    ``po_id``, ...) were in the database's default collation, and a join of
    the two could use neither's index: a month's sales cost read every sale
    line once per receipt (2.9 s at 40,000 lines). They get the ids'
    collation: the type stays (a value an older release let in, such as a
    UUID with a trailing newline, must not stop the server from starting),
    so the table is not rewritten; its indexes on those columns are rebuilt,
    once per table for all its columns."""
    if conn.dialect.name != "postgresql":
        return  # SQLite compares every text column byte by byte already
    found = {(t, c): coll for t, c, coll in conn.execute(text(
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()"))}
    for entity in schema.entities:
        clauses = [f'ALTER COLUMN {_quote(conn, f.name)} TYPE varchar COLLATE "C"'
                   for f in entity.fields
                   if f.kind is Kind.UUID and found.get((entity.name, f.name), "C") != "C"]
        if clauses:
            conn.execute(text(f"ALTER TABLE {_quote(conn, entity.name)} {', '.join(clauses)}"))


def upgrade(conn: Connection, metadata: MetaData, schema: Schema) -> list[str]:
    """Bring the database up to this server; returns what was done. Call it
    inside a write transaction, after ``metadata.create_all``."""
    meta = metadata.tables["server_meta"]
    recorded = dict(conn.execute(select(meta.c.name, meta.c.value)).all())
    stored = recorded.get("schema_version")
    if stored is not None and int(stored) > schema.version:
        raise RuntimeError(f"database has schema version {stored}, newer than this server's "
                           f"{schema.version}: upgrade the server")
    # the entities' new fields first (always nullable): a step may read them,
    # as building a running total reads every field it sums
    done = [f"added {c}" for c in add_columns(conn, metadata, (e.name for e in schema.entities))]
    for name, fn in STEPS:
        if f"migration:{name}" in recorded:
            continue
        fn(conn, metadata, schema)
        conn.execute(meta.insert(), {"name": f"migration:{name}",
                                     "value": str(int(time.time() * 1000))})
        done.append(name)
    done += [f"added {c}" for c in add_columns(conn, metadata)]
    if stored is None:
        conn.execute(meta.insert(), {"name": "schema_version", "value": str(schema.version)})
    elif int(stored) < schema.version:
        conn.execute(update(meta).where(meta.c.name == "schema_version")
                     .values(value=str(schema.version)))
        done.append(f"schema version {stored} -> {schema.version}")
    return done
