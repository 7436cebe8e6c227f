"""A database made by an older server is upgraded when a new server opens it
(``server.migrate``); ``data/hq-2026-11-23.sql`` is such a database."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from schema import SCHEMA, Field, Kind, Policy, Schema
from server import on_hand, totals
from server.devices import list_devices
from server.migrate import STEPS
from server.store import Database
from sync.audit import verify_chain
from sync.server import apply_ops
from tests.pg import fresh_database
from tests.sync.kit import CUSTOMER, HQ, PRODUCT, S1_TILL1, hire_staff, key, op

from .rest_kit import post_sale
from .test_device_activity import kept_and_grouped

OLD = Path(__file__).parent / "data" / "hq-2026-11-23.sql"
LEAKED = key(41)
"""A transfer from S1 to a site named "*": the old marker of "every site"."""


@pytest.fixture
def old_db(tmp_path: Path) -> str:
    path = tmp_path / "hq.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD.read_text())
    conn.close()
    return f"sqlite:///{path}"


def test_an_old_database_is_upgraded_once(old_db: str) -> None:
    db = Database(old_db, SCHEMA)
    # the entities' new fields first (the steps may read them), then every step
    steps = [a for a in db.applied if not a.startswith("added ")]
    assert steps[: len(STEPS)] == [name for name, _ in STEPS]
    assert db.applied.index("added stock_movement.unit_cost") < db.applied.index(steps[0])
    scope = db.t["change_scope"]
    with db.transaction(write=False) as store:
        marks = dict(store.conn.execute(
            select(scope.c.seq, scope.c.site).where(scope.c.site.in_(["", "*"]))).all())
        s2 = {c.row.key for c in store.changes("S2", 0, 100)[0]}
        s1 = {c.row.key for c in store.changes("S1", 0, 100)[0]}
        snapshot = {r.key for r in store.snapshot("S2", ("", ""), 100)}
        chain = store.audit_chain()
    assert "*" in marks.values() and "" in marks.values()
    assert LEAKED in s1 and LEAKED not in s2 and LEAKED not in snapshot
    assert {PRODUCT, CUSTOMER, key(2), key(40), key(201)} <= s2
    assert key(1) not in s2 and key(1) in s1
    assert verify_chain(chain) is None
    indexes = {i["name"] for i in inspect(db.engine).get_indexes("transfer")}
    assert indexes == {"ix_transfer_from_site_id", "ix_transfer_to_site_id"}
    with db.transaction(write=False) as store:  # the old sales, now as stock balances
        levels = store.conn.execute(on_hand.levels(db.metadata)).all()
        assert on_hand.drift(store.conn, db.metadata) == []
    assert [tuple(r) for r in levels] == [("S1", PRODUCT, -1), ("S2", PRODUCT, -1)]
    for name, index in (("reorder_rule", "ix_reorder_rule_lookup"),
                        ("purchase_suggestion", "ix_purchase_suggestion_lookup")):
        assert index in {i["name"] for i in inspect(db.engine).get_indexes(name)}
    with db.transaction(write=False) as store:  # stock and account balances, from the ledgers
        assert totals.drifts(store.conn, db.metadata) == []
    kept, grouped = kept_and_grouped(db)  # each device's last op, from the old log
    assert kept == grouped and len(kept) >= 2
    db.dispose()
    again = Database(old_db, SCHEMA)
    assert again.applied == []
    again.dispose()


def test_an_upgraded_database_keeps_dedupe_devices_and_audit(old_db: str) -> None:
    db = Database(old_db, SCHEMA)
    resent = op(HQ, "customer", key(201), {"name": "Bob"},
                op_id="00000000-0000-4000-8000-000000000001")
    with db.transaction() as store:
        (ack,) = apply_ops(SCHEMA, store, HQ, [resent])
        head = store.head()
        apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "stock_movement", key(3), {
            "site": "S1", "product_id": PRODUCT, "qty": 1, "reason": "count"})])
    assert ack.status == "accepted" and ack.row is None  # the ack given before the upgrade
    with db.transaction(write=False) as store:
        assert store.head() == head + 1
        assert verify_chain(store.audit_chain()) is None
    assert [d.device for d in list_devices(db)] == ["s1-till1"]
    db.dispose()


def _with_loyalty(schema: Schema) -> Schema:
    customer = schema["customer"]
    grown = dataclasses.replace(
        customer, fields=(*customer.fields, Field("loyalty", Kind.INT, Policy.LWW,
                                                  required=False)))
    return Schema(version=schema.version + 1,
                  entities=tuple(grown if e is customer else e for e in schema.entities))


def test_a_newer_schema_adds_its_columns_and_an_older_server_is_refused(old_db: str) -> None:
    newer = _with_loyalty(SCHEMA)
    db = Database(old_db, newer)
    assert "added customer.loyalty" in db.applied
    assert f"schema version 1 -> {newer.version}" in db.applied  # the old file is at 1

    def push(*ops: object) -> list[str]:
        with db.transaction() as store:
            return [a.status for a in apply_ops(newer, store, HQ, list(ops))]  # type: ignore[arg-type]

    late = 10**12
    assert push(op(HQ, "customer", key(202), {"name": "Cy"}, schema_version=newer.version,
                   ms=late)) == ["accepted"]
    # one transaction updating a row stored before the new field and one stored after:
    # every column is written for both
    assert push(op(HQ, "customer", CUSTOMER, {"phone": "5"}, base=1,
                   schema_version=newer.version, ms=late + 1),
                op(HQ, "customer", key(202), {"loyalty": 7}, base=1,
                   schema_version=newer.version, ms=late + 1)) == ["accepted"] * 2
    customer = db.entities["customer"]
    with db.engine.connect() as conn:
        assert conn.execute(select(customer.c.id, customer.c.phone, customer.c.loyalty).where(
            customer.c.id.in_([CUSTOMER, key(202)])).order_by(customer.c.id)).all() == [
            (CUSTOMER, "5", None), (key(202), None, 7)]
    db.dispose()
    with pytest.raises(RuntimeError, match="newer than this server's"):
        Database(old_db, SCHEMA)


def test_the_ledger_index_the_balances_replaced_is_dropped(tmp_path: Path) -> None:
    """A database of the 11-25 server has the (site, product_id, qty) index that
    the stock sums read; with the balances kept in ``on_hand`` it goes."""
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    Database(url, SCHEMA).dispose()
    with sqlite3.connect(tmp_path / "hq.db") as conn:  # as the 11-25 server left it
        conn.execute("CREATE INDEX ix_stock_movement_on_hand "
                     "ON stock_movement (site, product_id, qty)")
        conn.execute("DELETE FROM server_meta WHERE name = 'migration:on-hand-index-dropped'")
    conn.close()
    db = Database(url, SCHEMA)
    assert db.applied == ["on-hand-index-dropped"]
    names = {i["name"] for i in inspect(db.engine).get_indexes("stock_movement")}
    assert names == {"ix_stock_movement_site_id"}
    db.dispose()


def test_an_older_database_gets_its_account_balances_and_device_activity(
        tmp_path: Path) -> None:
    """A database of a server before the kept account balances, site sales and
    device activity (the tables missing, the journal, receipts and audit log
    full) gets them, built from its journal lines, receipts and audit log."""
    from server.reports import sales_by_site, sales_from_books
    from server.tables import ACCOUNT_BALANCE_TABLE, DEVICE_ACTIVITY_TABLE

    url = f"sqlite:///{tmp_path / 'hq.db'}"
    db = Database(url, SCHEMA)
    with db.transaction() as store:
        hire_staff(store)
    post_sale(db, "S1", PRODUCT, 2, 250, 120)
    post_sale(db, "S2", PRODUCT, 1, 250, 120)
    db.dispose()
    with sqlite3.connect(tmp_path / "hq.db") as conn:  # as the 11-25 server left it
        for table in (ACCOUNT_BALANCE_TABLE, DEVICE_ACTIVITY_TABLE, *SALES_TOTALS):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM server_meta WHERE name IN "
                     "('migration:account-balances-and-site-sales', "
                     "'migration:device-activity', 'migration:site-day-sales')")
    conn.close()
    db = Database(url, SCHEMA)
    assert db.applied == ["device-activity", "account-balances-and-site-sales",
                          "site-day-sales"]
    balances = db.t[ACCOUNT_BALANCE_TABLE]
    with db.transaction(write=False) as store:
        assert totals.drift(store.conn, db.metadata, totals.BY_TABLE[ACCOUNT_BALANCE_TABLE]) == []
        revenue = dict(store.conn.execute(select(balances.c.site, balances.c.credit)
                                          .where(balances.c.account == "4000")).all())
    assert revenue == {"S1": 500, "S2": 250}
    assert [(s.site, s.receipts, s.net) for s in sales_from_books(db)] == [
        ("S1", 1, 500), ("S2", 1, 250)] and sales_from_books(db) == sales_by_site(db)
    kept, grouped = kept_and_grouped(db)
    assert kept == grouped and "s1-till1" in kept
    db.dispose()


SALES_TOTALS = ("site_day_sales", "site_sale_cost")


def _three_sales(tmp_path: Path, first: str, then: str) -> str:
    """A database holding three sales: S1's on ``first``, S1's and S2's on ``then``."""
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    db = Database(url, SCHEMA)
    with db.transaction() as store:
        hire_staff(store)
    post_sale(db, "S1", PRODUCT, 2, 250, 120, date=first)
    post_sale(db, "S1", PRODUCT, 1, 250, 130, date=then)
    post_sale(db, "S2", PRODUCT, 3, 200, 110, date=then)
    db.dispose()
    return url


def test_an_older_database_gets_its_sales_per_day_and_cost_per_site(tmp_path: Path) -> None:
    """A database of the 11-26 server keeps the receipts, net and tax per site
    (``site_sales``) and no cost: it gets them per (site, day) and the cost of
    goods per site, built from its receipts and lines, and drops ``site_sales``;
    the sales report, which reads them, gives what the receipts and their lines
    add up to. The receipts and their lines get the indexes that hold what a
    range's cost reads."""
    from server.reports import sales_by_site

    from .test_sales_totals import _from_the_lines

    url = _three_sales(tmp_path, "2026-03-01", "2026-03-02")
    with sqlite3.connect(tmp_path / "hq.db") as conn:  # as the 11-26 server left it
        for table in SALES_TOTALS:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX ix_sale_line_by_sale_id_qty_cost")
        conn.execute("CREATE INDEX ix_sale_line_by_sale_id ON sale_line (sale_id)")
        conn.execute("DROP INDEX ix_sale_by_date_site_id")
        conn.execute("CREATE INDEX ix_sale_by_date_site ON sale (date, site)")
        conn.execute("CREATE TABLE site_sales (site VARCHAR NOT NULL PRIMARY KEY, "
                     "net BIGINT NOT NULL, tax BIGINT NOT NULL, receipts BIGINT NOT NULL)")
        conn.execute("INSERT INTO site_sales VALUES ('S1', 750, 150, 2), ('S2', 600, 120, 1)")
        conn.execute("DELETE FROM server_meta WHERE name IN "
                     "('migration:site-day-sales', 'migration:range-cost-indexes')")
    conn.close()
    db = Database(url, SCHEMA)
    assert db.applied == ["site-day-sales", "range-cost-indexes"]
    tables = set(inspect(db.engine).get_table_names())
    assert "site_sales" not in tables and set(SALES_TOTALS) <= tables
    indexes = {i["name"] for t in ("sale", "sale_line") for i in inspect(db.engine).get_indexes(t)}
    assert {"ix_sale_line_by_sale_id_qty_cost", "ix_sale_by_date_site_id"} <= indexes
    assert not {"ix_sale_line_by_sale_id", "ix_sale_by_date_site"} & indexes
    with db.transaction(write=False) as store:
        for table in SALES_TOTALS:
            assert totals.drift(store.conn, db.metadata, totals.BY_TABLE[table]) == []
    assert [(s.site, s.receipts, s.net, s.cost) for s in sales_by_site(db)] == [
        ("S1", 2, 750, 370), ("S2", 1, 600, 330)] == [
        (s.site, s.receipts, s.net, s.cost) for s in _from_the_lines(db)]
    assert sales_by_site(db, "2026-03-02") == _from_the_lines(db, "2026-03-02") != []
    db.dispose()


def test_an_older_on_hand_gets_its_value_sums(tmp_path: Path) -> None:
    """A database of the 11-26 server keeps stock on hand and movements in
    ``on_hand`` but no value: it gets the value sums, built from its ledger,
    and the valuation report gives what the moving average of the movements
    gives."""
    from schema.finance import moving_average
    from server.reports import valuation
    from server.tables import ON_HAND_TABLE

    url = f"sqlite:///{tmp_path / 'hq.db'}"
    db = Database(url, SCHEMA)
    with db.transaction() as store:
        hire_staff(store)
        moves = [(10, 100), (-4, 100), (5, None)]
        assert {a.status for a in apply_ops(SCHEMA, store, S1_TILL1, [
            op(S1_TILL1, "stock_movement", key(500 + n), {
                "site": "S1", "product_id": PRODUCT, "qty": q, "reason": "count",
                **({"unit_cost": c} if c is not None else {})})
            for n, (q, c) in enumerate(moves)])} == {"accepted"}
    db.dispose()
    with sqlite3.connect(tmp_path / "hq.db") as conn:  # as the 11-26 server left it
        conn.execute(f"DROP TABLE {ON_HAND_TABLE}")
        conn.execute(f"CREATE TABLE {ON_HAND_TABLE} (site VARCHAR NOT NULL, "
                     "product_id VARCHAR(36) NOT NULL, qty BIGINT NOT NULL, "
                     "movements BIGINT NOT NULL, PRIMARY KEY (site, product_id))")
        conn.execute(f"INSERT INTO {ON_HAND_TABLE} VALUES ('S1', ?, 11, 3)", (PRODUCT,))
        conn.execute("DELETE FROM server_meta WHERE name = 'migration:on-hand-value-sums'")
    conn.close()
    db = Database(url, SCHEMA)
    assert db.applied == ["on-hand-value-sums"]
    with db.transaction(write=False) as store:
        assert on_hand.drift(store.conn, db.metadata) == []
    # 10 in at 100, 4 out at 100, 5 without a cost: PRODUCT has no standard cost
    assert [(v.site, v.on_hand, v.average_cost, v.value) for v in valuation(db)] == [
        ("S1", *moving_average(moves, 0))] == [("S1", 11, 55, 600)]
    db.dispose()


def test_an_older_database_gets_its_journal_per_day(tmp_path: Path) -> None:
    """A database of the 11-26 server keeps the journal's debits and credits
    per (site, account) only: it gets them per (day, site, account), built
    from its journal lines, and the margin by month, by day and over a range
    of days, which reads them, gives what the journal lines add up to."""
    from server.reports import margin_by_site
    from server.tables import JOURNAL_DAY_TABLE

    from .test_margin_totals import _from_the_lines

    url = _three_sales(tmp_path, "2026-02-28", "2026-03-01")
    with sqlite3.connect(tmp_path / "hq.db") as conn:  # as the 11-26 server left it
        conn.execute(f"DROP TABLE {JOURNAL_DAY_TABLE}")
        conn.execute("DELETE FROM server_meta WHERE name = 'migration:journal-day'")
    conn.close()
    db = Database(url, SCHEMA)
    assert db.applied == ["journal-day"]
    with db.transaction(write=False) as store:
        assert totals.drift(store.conn, db.metadata, totals.BY_TABLE[JOURNAL_DAY_TABLE]) == []
    by_month = margin_by_site(db, period="month")
    assert [(m.site, m.period, m.revenue, m.cogs) for m in by_month] == [
        ("S1", "2026-02", 500, 240), ("S1", "2026-03", 250, 130),
        ("S2", "2026-03", 600, 330)] == [
        (m.site, m.period, m.revenue, m.cogs) for m in _from_the_lines(db, period="month")]
    for lo, hi, period in (("2026-03-01", None, "day"), (None, "2026-02-28", "all")):
        assert margin_by_site(db, lo, hi, period=period) == _from_the_lines(
            db, lo, hi, period=period) != []
    db.dispose()


def _collations(db: Database) -> dict[str, str | None]:
    """Collation of every UUID field's column, as ``entity.field``."""
    with db.engine.connect() as conn:
        found = {(t, c): coll for t, c, coll in conn.execute(text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"))}
    return {f"{e.name}.{f.name}": found[(e.name, f.name)]
            for e in SCHEMA.entities for f in e.fields if f.kind is Kind.UUID}


@pytest.mark.postgres
def test_fields_that_refer_to_rows_share_the_ids_byte_order_on_postgresql() -> None:
    """A month's sales cost joins receipts to their lines by id: on PostgreSQL
    that join can use the lines' index only if both sides share a collation
    (the ids are "C"). A new database has it; an older one gets it."""
    with fresh_database() as url:
        db = Database(url, SCHEMA)
        made = _collations(db)
        assert "sale_line.sale_id" in made and set(made.values()) == {"C"}
        with db.engine.begin() as conn:  # as the release before left them
            for name in made:
                entity, field = name.split(".")
                conn.execute(text(f'ALTER TABLE "{entity}" ALTER COLUMN "{field}" '
                                  'TYPE varchar COLLATE "default"'))
            # a UUID with a trailing newline, which that release's check let in
            conn.execute(text("INSERT INTO sale_line (id, sale_id, _version, _deleted, _row, "
                              "_seq) VALUES (:id, :sale, 1, false, '\\x80', 1)"),
                         {"id": key(77), "sale": key(78) + "\n"})
            conn.execute(text("DELETE FROM server_meta WHERE name = "
                              "'migration:uuid-fields-in-byte-order'"))
        assert set(_collations(db).values()) == {None}
        db.dispose()
        again = Database(url, SCHEMA)
        try:
            assert set(_collations(again).values()) == {"C"}
        finally:
            again.dispose()
