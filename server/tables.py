"""Server tables (SQLAlchemy Core), generated from ``schema.SCHEMA``.

Every entity gets one table: ``id`` plus one column per declared field plus the
merge bookkeeping (``_version``, ``_deleted``, ``_seq``, and ``_row``: the
whole row with its per-field clocks, as msgpack, served as-is to devices). The
infrastructure tables hold the change sequence, its scope index, the
hash-chained audit log (whose rows also keep the ack of each applied op: the
dedupe of resends across restarts), the conflict queue and the device
registry. The ``ops`` table held those acks before; an upgrade moves them.

Scope columns: a change visible to every site has one ``change_scope`` row
with ``site = EVERY_SITE`` (the empty string); a change visible to some sites
has one row per site. Every site and scope field is a ``Kind.REF``, which is
never empty, so no real site can be mistaken for "every site" (``build``
refuses a schema where that does not hold).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from schema import Entity, Kind, Schema

_TYPES: dict[Kind, type[TypeEngine[Any]]] = {
    Kind.TEXT: Text,
    Kind.REF: String,
    Kind.UUID: String,
    Kind.DATE: String,
    Kind.INT: BigInteger,
    Kind.MONEY: BigInteger,
    Kind.BOOL: Boolean,
}

EVERY_SITE = ""
"""``change_scope.site`` of a change every site receives."""


LOOKUPS = {
    "reorder_rule": ("site", "product_id"),
    "purchase_suggestion": ("site", "product_id", "status"),
    "stock_exception": ("site", "product_id", "status"),
}
"""What a push's automation looks up for every (site, product) it moved: an
index each, so a lookup reads that product's rows, not every row of the site
(5 ms per product with 20,000 reorder rules at a site, 88 ms with 100,000 past
suggestions; a push that sold 300 products paid it 300 times)."""

READS = {
    "journal_line": (("_seq",), ("site", "_seq"), ("date",)),
    "sale": (("date", "site", "id"),),
    "sale_line": (("sale_id", "qty", "cost"),),
    "po_line": (("po_id",),),
    "goods_receipt": (("po_id",),),
    "reorder_rule": (("product_id",),),
    "price_change": (("product_id",),),
    "customer_entry": (("customer_id",),),
}
"""Indexes for what HQ's pages read as history grows, per entity: the
journal newest first (whole, per site) and by date; a period's receipts; an
order's lines and receipts; a product's rules and price changes; a
customer's statement. At a million journal lines the finance page sorted
them all (1.5 s per open) and a month's margin walked every line of a site.
The cost of a range's receipts is read from indexes alone: the receipts by
date with their site and id, each one's lines with their qty and unit cost
(at 250,000 receipts, a month 152 -> 49 ms against reading every row)."""

ON_HAND_TABLE = "on_hand"
"""Stock on hand per (site, product), its value (``STOCK_VALUE``) and its
number of movements, kept by the store in the very transaction that writes
the movements (``server.on_hand``). A push's automation and the console read
one row here instead of summing every movement a product ever had at the
site: 55 ms per (site, product) at a million movements, paid again by every
push that sold one; the valuation report read and sorted every movement."""

ACCOUNT_BALANCE_TABLE = "account_balance"
"""Debits, credits and number of journal lines per (site, account), kept the
same way: the trial balance, the overview's sales and the all-time margin
read a row per account instead of every journal line ever posted (420 ms
per million lines, on every load of the console's landing page)."""

SITE_DAY_SALES_TABLE = "site_day_sales"
"""Receipts (sales and returns), net and tax per (site, posting day), kept the same
way: the overview's sales and the sales report, of all time or of a range of
days, read a row per site and day instead of every receipt of the range
(counting a quarter of a million receipts took 350 ms). It replaced
``site_sales``, the same sums per site."""

JOURNAL_DAY_TABLE = "journal_day"
"""Debits, credits and number of journal lines per (posting day, site, account),
kept the same way beside ``account_balance`` (a ledger keeps as many totals
as its readers need): the margin by month or day and over a range of days
read a row per day, site and account instead of every journal line of the
range (margin by month over all time read 1.25 M lines: about 0.9 s). The
day leads its key, so a range of days reads its own rows."""

SALE_COST_TABLE = "site_sale_cost"
"""The cost of the goods sold per site as the sale lines carry it (qty x
unit cost, a return's lines negative), kept the same way: the sales report
of all time read every line ever sold (466 ms at 500,000 lines). A line has
no date, so a range of days still reads the cost of that range's receipts
through their lines."""


@dataclass(frozen=True)
class Sum:
    """One summed column of a running total: over the live rows of its
    ledger, the sum of the product of ``factors`` (a row lacking one of them
    adds nothing), counting only the rows that lack ``unless`` when it is set."""

    column: str
    factors: tuple[str, ...]
    unless: str | None = None


def plain(*fields: str) -> tuple[Sum, ...]:
    """Sums of fields as they are, each in a column named like the field."""
    return tuple(Sum(f, (f,)) for f in fields)


@dataclass(frozen=True)
class Totals:
    """A running total kept beside a ledger entity (``server.totals``): per
    value of ``keys`` (columns named like the fields), each of ``sums`` over
    the live rows, and their number in ``count``."""

    table: str
    entity: str
    keys: tuple[str, ...]
    sums: tuple[Sum, ...]
    count: str
    posted: str | None = None
    """The date key that closing the books moves: a row dated on or before the
    day the books are closed through counts on the first open day
    (``schema.finance.posting_day``; ``server.periods``)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The summed columns, then the count."""
        return (*(s.column for s in self.sums), self.count)


STOCK_VALUE = (
    Sum("costed_value", ("qty", "unit_cost")),
    Sum("uncosted_qty", ("qty",), unless="unit_cost"),
)
"""Stock value per (site, product): qty x unit cost of the movements that
carry a cost, and the quantity of those that do not (valued at the product's
standard cost when the report is read, as ``schema.finance.moving_average``
and the edge's stock cache value them)."""

TOTALS = (
    Totals(ON_HAND_TABLE, "stock_movement", ("site", "product_id"),
           (*plain("qty"), *STOCK_VALUE), "movements"),
    Totals(ACCOUNT_BALANCE_TABLE, "journal_line", ("site", "account"), plain("debit", "credit"),
           "lines"),
    Totals(JOURNAL_DAY_TABLE, "journal_line", ("date", "site", "account"),
           plain("debit", "credit"), "lines", posted="date"),
    Totals(SITE_DAY_SALES_TABLE, "sale", ("site", "date"), plain("net", "tax"), "receipts",
           posted="date"),
    Totals(SALE_COST_TABLE, "sale_line", ("site",), (Sum("cost", ("qty", "cost")),), "lines"),
)
"""Every running total the store keeps (for the entities the schema has),
each in its own table; a ledger entity may keep several, and the store
tallies each of its rows into each of them."""


def param_mark(dialect: Dialect) -> str:
    """The driver's parameter marker, for SQL written by hand on the hot paths
    (``?`` for sqlite3, ``%s`` for psycopg)."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _key() -> TypeEngine[str]:
    # byte order ("C" collation) on PostgreSQL too, so keyset paging is stable
    return String(36).with_variant(String(36, collation="C"), "postgresql")


def entity_table(metadata: MetaData, entity: Entity) -> Table:
    columns: list[Column[object]] = [Column("id", _key(), primary_key=True)]
    for f in entity.fields:
        # a UUID field refers to some row's id: same type and byte order, so a
        # join of the two can use either's index (on PostgreSQL a column in the
        # database's default collation cannot meet a "C" one through an index)
        kind = _key() if f.kind is Kind.UUID else _TYPES[f.kind]()
        columns.append(Column(f.name, kind, nullable=True))
    columns += [
        Column("_version", Integer, nullable=False),
        Column("_deleted", Boolean, nullable=False, default=False),
        Column("_row", LargeBinary, nullable=False),
        Column("_seq", BigInteger, nullable=False),
    ]
    table = Table(entity.name, metadata, *columns)
    for name in sorted(entity.fixed_fields):
        if entity.field(name).kind is not Kind.REF:
            raise ValueError(f"{entity.name}.{name} places rows at a site; it must be a ref")
        # (site, id): a site's snapshot pages are read in key order, never sorted
        Index(f"ix_{entity.name}_{name}_id", table.c[name], table.c.id)
    if entity.name in LOOKUPS:
        Index(f"ix_{entity.name}_lookup", *(table.c[c] for c in LOOKUPS[entity.name]))
    for indexed in READS.get(entity.name, ()):
        Index(f"ix_{entity.name}_by{''.join('_' + c.strip('_') for c in indexed)}",
              *(table.c[c] for c in indexed))
    return table


PERIOD_CLOSE_TABLE = "period_close"
"""Each closing of the books by finance: the day they are closed through,
who closed them and when. The latest ``through`` is the boundary: a journal
line dated on or before it that reaches HQ later is posted on the day after."""

LATE_POSTING_TABLE = "late_posting"
"""The ledger rows posted on another day than their date, and that day: the
first open day for a row that reached HQ dated inside a closed period, HQ's
day for one dated after HQ's tomorrow (a till's clock far ahead)."""

DEVICE_ACTIVITY_TABLE = "device_activity"
TAKEOVERS_TABLE = "device_takeovers"
"""One row per connection of a device closed because a newer one took over
(``server.takeover``), kept a week for the IT page."""
"""Per device, the id and HLC of its latest audit record (the IT page's "last op"),
kept by the store's flush so that no page has to group the whole audit log."""


IDEMPOTENCY_TABLE = "idempotency_keys"
"""The ``Idempotency-Key`` of each REST request that wrote, per API user, with
the answer it got (``server.idempotency``); a row without an answer is a
request still being processed. Kept 24 hours."""


def build(schema: Schema) -> tuple[MetaData, dict[str, Table]]:
    metadata = MetaData()
    entities = {e.name: entity_table(metadata, e) for e in schema.entities}
    Table(
        "changes", metadata,
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=False),
        Column("entity", String, nullable=False),
        Column("key", String(36), nullable=False),
        Column("row", LargeBinary, nullable=False),
    )
    scope = Table(
        "change_scope", metadata,
        Column("site", String, nullable=False),
        Column("seq", BigInteger, nullable=False),
    )
    Index("ix_change_scope_site_seq", scope.c.site, scope.c.seq, unique=True)
    names = [t.table for t in TOTALS]
    if len(set(names)) != len(names) or set(names) & set(entities):
        raise ValueError(f"each running total needs a table of its own, got {sorted(names)}")
    for totals in TOTALS:
        if totals.entity in entities:
            ledger = schema[totals.entity]
            if totals.posted is not None and not ledger.is_ledger:
                raise ValueError(f"{totals.table} moves {totals.entity} rows to their posting "
                                 "day, which needs a ledger (rows written once)")
            Table(
                totals.table, metadata,
                *(Column(k, _key() if ledger.field(k).kind is Kind.UUID else String,
                         primary_key=True) for k in totals.keys),
                *(Column(c, BigInteger, nullable=False) for c in totals.columns),
            )
    Table(
        PERIOD_CLOSE_TABLE, metadata,
        Column("through", String(10), primary_key=True),
        Column("closed_by", String, nullable=False),
        Column("closed_ms", BigInteger, nullable=False),
    )
    late = Table(
        LATE_POSTING_TABLE, metadata,
        Column("id", _key(), primary_key=True, doc="the ledger row's key"),
        Column("entity", String, nullable=False),
        Column("posted", String(10), nullable=False),
        Column("arrived_ms", BigInteger, nullable=False),
    )
    Index("ix_late_posting_posted", late.c.posted)
    Table(
        "ops", metadata,
        Column("op_id", String, primary_key=True),
        Column("ack", LargeBinary, nullable=False),
    )
    Table(
        "audit", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=False),
        Column("op_id", String, nullable=False, index=True),
        Column("entity", String, nullable=False),
        Column("key", String, nullable=False),
        Column("user", String, nullable=False),
        Column("device", String, nullable=False),
        Column("site", String, nullable=False),
        Column("hlc", String, nullable=False),
        Column("status", String, nullable=False),
        Column("policy", String, nullable=False),
        Column("reason", Text, nullable=False),
        Column("before", Text, nullable=True),
        Column("after", Text, nullable=True),
        Column("hash", String(64), nullable=False),
        # the ack given for the op (dedupe across restarts): the latest audit
        # row of an op id answers a resend; not part of the hashed record
        Column("ack", LargeBinary, nullable=True),
    )
    Table(
        "conflicts", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("op_id", String, nullable=False),
        Column("entity", String, nullable=False),
        Column("key", String, nullable=False),
        Column("field", String, nullable=False),
        Column("server_value", Text, nullable=True),
        Column("proposed_value", Text, nullable=True),
        Column("device", String, nullable=False),
        Column("hlc", String, nullable=False),
        Column("resolved", Boolean, nullable=False, default=False),
    )
    Table(
        DEVICE_ACTIVITY_TABLE, metadata,
        Column("device", String, primary_key=True),
        Column("audit_id", BigInteger, nullable=False),
        Column("hlc", String, nullable=False),
    )
    Table(
        "devices", metadata,
        Column("device", String, primary_key=True),
        Column("site", String, nullable=False),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("created_ms", BigInteger, nullable=False),
        Column("revoked_ms", BigInteger, nullable=True),
        Column("expires_ms", BigInteger, nullable=True),
        Column("refused_ms", BigInteger, nullable=True,
               doc="when HQ last refused the device until someone acts (cleared when it "
                   "is served again)"),
        Column("refused", Text, nullable=True, doc="why"),
        Column("clock_ahead_ms", BigInteger, nullable=True,
               doc="how far the device's clock was ahead of HQ's (negative: behind) at "
                   "its last Hello, while that is more than HQ takes stamps as they come"),
        Column("conn_gen", BigInteger, nullable=True,
               doc="connection generation: +1 at each Hello HQ accepts from the device; "
                   "only a connection of the latest one is served (server.takeover)"),
        Column("conn_peer", String, nullable=True, doc="the address that Hello came from"),
        Column("conn_ms", BigInteger, nullable=True, doc="when"),
    )
    takeovers = Table(
        TAKEOVERS_TABLE, metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("device", String, nullable=False),
        Column("at_ms", BigInteger, nullable=False),
        Column("old_peer", String, nullable=False, doc="the connection closed"),
        Column("new_peer", String, nullable=False, doc="the connection that took over"),
    )
    Index("ix_device_takeovers_at", takeovers.c.at_ms)
    Table(
        "api_tokens", metadata,
        Column("token_hash", String(64), primary_key=True),
        Column("login", String, nullable=False),
        Column("created_ms", BigInteger, nullable=False),
        Column("revoked_ms", BigInteger, nullable=True),
    )
    keys = Table(
        IDEMPOTENCY_TABLE, metadata,  # server-only, never synced
        Column("login", String, primary_key=True, doc="the API user who sent the key"),
        Column("key", String(255), primary_key=True, doc="the Idempotency-Key header"),
        Column("request", Text, nullable=False, doc="method and path, e.g. POST /api/hq/products"),
        Column("body_hash", String(64), nullable=False, doc="SHA-256 of the body (as JSON, keys "
               "sorted)"),
        Column("attempt", String(36), nullable=False,
               doc="the request processing it: a retry that takes over a stale claim "
                   "changes it, and the older request's write is then rolled back"),
        Column("created_ms", BigInteger, nullable=False, doc="first seen; purged 24 h later"),
        Column("claimed_ms", BigInteger, nullable=False, doc="when the attempt began"),
        Column("status", Integer, nullable=True, doc="the answer's HTTP status (None: in "
               "progress)"),
        Column("answer", LargeBinary, nullable=True, doc="the answer's JSON body"),
    )
    Index("ix_idempotency_keys_created_ms", keys.c.created_ms)
    Table(
        "console_logins", metadata,  # HQ console passwords (argon2id); server-only
        Column("login", String, primary_key=True),
        Column("password_hash", Text, nullable=False),
        Column("changed_ms", BigInteger, nullable=False),
        Column("session_epoch", Integer, nullable=False, default=0,
               doc="raised at logout and password change: older sessions end"),
        Column("failed", Integer, nullable=True,
               doc="failed logins in a row (console.throttle)"),
        Column("failed_ms", BigInteger, nullable=True, doc="when the last one failed"),
    )
    Table(
        "server_meta", metadata,
        Column("name", String, primary_key=True),
        Column("value", Text, nullable=False),
    )
    return metadata, entities
