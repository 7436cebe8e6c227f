"""An edge database made by an older branchline-edge is upgraded when it is opened
(``client.migrate``); ``data/edge-2026-11-23.sql`` is such a database: it was
made with the client of commit a35b159 (its ``_pending_view`` layout), holding
a bootstrapped catalog and four pending ops, one of which (an edit of customer
Bo, ``key(201)``) had no visible row."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from client.edge import Edge
from client.errors import DatabaseTooNew
from client.migrate import STEPS, needs_upgrade
from client.sqlite_file import connect
from client.store import SqliteLocalStore
from schema import SCHEMA, Field, Kind, Policy, Schema
from sync.messages import Ack, Status
from tests.sync.kit import PRODUCT, key

OLD = Path(__file__).parent / "data" / "edge-2026-11-23.sql"
PREVIOUS = Path(__file__).parent / "data" / "edge-2026-11-26.sql"
"""Made by the client of commit 2ddd96e (before ``_sent``): a product, a
receipt of 10, three sales, the first of them acked."""


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "till.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD.read_text())
    conn.close()
    return path


def _tables(edge: Edge) -> set[str]:
    return {r[0] for r in edge.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_an_old_database_is_upgraded_once_and_keeps_what_the_till_saw(old_db: Path) -> None:
    with Edge(old_db) as edge:
        assert edge.store.upgraded[: len(STEPS)] == STEPS
        assert "_pending_view" not in _tables(edge) and "_view_override" in _tables(edge)
        assert edge.store.get_state("schema_version") == str(SCHEMA.version)
        assert edge.get("customer", key(200))["phone"] == "222"  # type: ignore[index]
        assert edge.get("customer", key(202))["name"] == "Cy"  # type: ignore[index]
        assert edge.get("customer", key(201)) is None
        assert edge.store.view("customer", key(201)) is None
        assert edge.store.base("customer", key(201)) is not None
        assert edge.stock("S1", PRODUCT) == 7 and edge.stock_mismatches() == []
        assert len(edge.pending()) == 4 and edge.status().cursor > 0
        assert edge.store.outbox_seq() == 4
        # the catalog's rows are stored once, in their view rows; only rows with
        # pending ops keep a base of their own
        assert _stored_twice(edge) == 0
        assert edge.conn.execute("SELECT count(*) FROM product WHERE _row IS NOT NULL"
                                 ).fetchone()[0] > 0
    with Edge(old_db) as again:
        assert again.store.upgraded == []
        assert not needs_upgrade(again.store.db, SCHEMA)


def _stored_twice(edge: Edge) -> int:
    """Rows kept in ``_base`` although their view is that very row."""
    return int(edge.conn.execute(
        "SELECT count(*) FROM _base b WHERE NOT EXISTS (SELECT 1 FROM _view_override v "
        "WHERE v.entity = b.entity AND v.key = b.key)").fetchone()[0])


def test_acked_rows_are_stored_once_and_an_older_file_is_mended(tmp_path: Path) -> None:
    """An acked sale is the server's row: it is kept in its view row only
    (``_row``), not a second time in ``_base``, and still rebases a later
    edit; a file of the 11-26 edge, which kept both, is mended on opening."""
    path = tmp_path / "till.db"
    with Edge(path) as edge:
        edge.configure("ws://127.0.0.1:1/sync", "s1-till1", "S1", "bl_token")
        moves = [edge.write("stock_movement", key(600 + n), {
            "site": "S1", "product_id": PRODUCT, "qty": -1, "reason": "sale"}) for n in range(3)]
        customer = edge.write("customer", key(700), {"name": "Di", "phone": "1"})
        assert _stored_twice(edge) == 0 and len(edge.pending()) == 4
        with edge.transaction():
            for op in (*moves, customer):
                edge.replica.on_ack(Ack(op.op_id, Status.ACCEPTED), 2_000)
        assert edge.pending() == [] and _stored_twice(edge) == 0
        assert edge.conn.execute("SELECT count(*) FROM _base").fetchone()[0] == 0
        server_row = edge.store.base("customer", key(700))
        assert server_row is not None and server_row.fields["name"] == "Di"
        assert edge.store.view("customer", key(700)) == server_row
        edge.write("customer", key(700), {"phone": "2"})  # pending on an acked row
        assert edge.store.base("customer", key(700)) == server_row
        assert edge.get("customer", key(700))["phone"] == "2"  # type: ignore[index]
        with edge.transaction():
            edge.replica.on_ack(Ack(edge.pending()[0].op_id, Status.REJECTED, "no"), 3_000)
        assert edge.get("customer", key(700))["phone"] == "1"  # type: ignore[index]
        assert edge.stock("S1", PRODUCT) == -3 and _stored_twice(edge) == 0
    conn = sqlite3.connect(path)  # as the 11-26 edge left it: each acked row twice
    for entity in ("stock_movement", "customer"):
        conn.execute(f"INSERT INTO _base (entity, key, version, row) SELECT '{entity}', id, "
                     f"_version, _row FROM {entity} WHERE _row IS NOT NULL")
        conn.execute(f"UPDATE {entity} SET _row = NULL")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'server-rows-stored-once'")
    conn.execute("UPDATE _state SET value = 'stale' WHERE name = 'layout'")
    conn.commit()
    assert conn.execute("SELECT count(*) FROM _base").fetchone()[0] == 4
    conn.close()
    with Edge(path) as edge:  # mended on opening
        assert _stored_twice(edge) == 0
        assert "server-rows-stored-once" in edge.store.upgraded
        assert edge.store.base("customer", key(700)) == server_row
        assert edge.stock("S1", PRODUCT) == -3 and edge.stock_mismatches() == []


def test_an_upgraded_database_syncs_on(old_db: Path) -> None:
    with Edge(old_db) as edge:
        bo = next(o for o in edge.pending() if o.key == key(201))
        with edge.transaction():
            edge.replica.on_ack(Ack(bo.op_id, Status.REJECTED, "Bo moved away"), 9_000)
        assert edge.get("customer", key(201))["name"] == "Bo"  # type: ignore[index]
        assert [r.reason for r in edge.rejections()] == ["Bo moved away"]
        op = edge.write("stock_movement", key(502), {"site": "S1", "product_id": PRODUCT,
                                                     "qty": -1, "reason": "sale"})
        assert edge.store.outbox(4, 10) == [(5, op)]
        assert edge.stock("S1", PRODUCT) == 6


def _with_loyalty(schema: Schema) -> Schema:
    customer = schema["customer"]
    wider = dataclasses.replace(customer, fields=(
        *customer.fields, Field("loyalty_points", Kind.INT, Policy.LWW, required=False)))
    return dataclasses.replace(
        schema, version=schema.version + 1,
        entities=tuple(wider if e.name == "customer" else e for e in schema.entities))


def test_a_new_field_becomes_a_column_and_the_version_is_recorded(tmp_path: Path) -> None:
    Edge(tmp_path / "till.db").close()
    newer = _with_loyalty(SCHEMA)
    with Edge(tmp_path / "till.db", newer) as edge:
        assert edge.store.upgraded == ["added customer.loyalty_points",
                                       f"schema version {SCHEMA.version} -> {newer.version}"]
        edge.configure("ws://127.0.0.1:1/sync", "t1", "S1", "bl_x")
        edge.write("customer", key(1), {"name": "Ada", "loyalty_points": 5})
        assert edge.get("customer", key(1))["loyalty_points"] == 5  # type: ignore[index]
    with pytest.raises(DatabaseTooNew, match="upgrade branchline-edge"):
        Edge(tmp_path / "till.db")


def test_steps_this_version_does_not_know_are_refused(tmp_path: Path) -> None:
    Edge(tmp_path / "till.db").close()
    conn = connect(tmp_path / "till.db")
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                 "VALUES ('branchline-edge', 'from-the-future', 'x')")
    conn.execute("UPDATE _state SET value = 'stale' WHERE name = 'layout'")
    conn.close()
    with pytest.raises(DatabaseTooNew, match="from-the-future"):
        Edge(tmp_path / "till.db")


def test_processes_opening_a_new_file_together_make_it_once(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            SqliteLocalStore.open(tmp_path / "till.db", SCHEMA).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = connect(tmp_path / "till.db")
    applied = conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id").fetchall()
    conn.close()
    assert [name for (name,) in applied] == STEPS


def test_a_file_of_the_previous_release_gets_what_this_one_adds(tmp_path: Path) -> None:
    """Besides a new field's column (a purchase order's ``drafted_by``), only
    ``client.tables`` changed between that release and this one (no upgrade
    step): the layout's fingerprint is taken from the SQL the tables are made
    with, so the file is still checked again and gets them."""
    path = tmp_path / "till.db"
    conn = sqlite3.connect(path)
    conn.executescript(PREVIOUS.read_text())
    conn.close()
    with Edge(path) as edge:
        assert edge.store.upgraded == ["added purchase_order.drafted_by"]
        assert {"_sent", "_rejoin_seen"} <= _tables(edge)
        assert not needs_upgrade(edge.store.db, SCHEMA)
        [first, second] = edge.pending()
        with edge.transaction():
            edge.replica.on_ack(Ack(first.op_id, Status.ACCEPTED), 5_000)
        assert edge.pending() == [second] and edge.stock("S1", PRODUCT) == 7
        assert edge.conn.execute("SELECT op_id FROM _sent").fetchall() == [(first.op_id,)]


def test_any_change_to_what_the_tables_are_made_of_changes_the_fingerprint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import client.migrate as migrate

    before = migrate.fingerprint(SCHEMA)
    made = migrate.create_tables  # type: ignore[attr-defined]

    def with_an_index(db: Any, schema: Schema) -> list[str]:
        added = made(db, schema)
        db.execute("CREATE INDEX IF NOT EXISTS ix_sent_op ON _sent (op_id)")
        return added

    monkeypatch.setattr(migrate, "create_tables", with_an_index)
    migrate._layout.cache_clear()
    try:
        assert migrate.fingerprint(SCHEMA) != before
    finally:
        migrate._layout.cache_clear()
