"""A snapshot page's rows are stored as received (no re-encoding) and read back
equal to the decoded rows; a page with a pending row still leaves it out."""

from __future__ import annotations

from pathlib import Path

import msgspec

from client.store import SqliteLocalStore
from schema import SCHEMA
from sync.messages import Row, SnapshotPage, decode_server, encode, snapshot_blobs
from sync.replica import Replica
from tests.sync.kit import key


def _product(n: int) -> Row:
    fields: dict[str, object] = {f.name: None for f in SCHEMA["product"].fields}
    fields.update(sku=f"SKU-{n}", name=f"Product {n}", price=100 + n)
    return Row("product", key(n), 1, fields,
               meta={"sku": (f"{n:015d}-000000-hq", 1), "price": (f"{n:015d}-000000-hq", 1)})


def test_snapshot_rows_are_stored_as_received(tmp_path: Path) -> None:
    store = SqliteLocalStore.open(tmp_path / "edge.db", SCHEMA)
    try:
        frame = encode(SnapshotPage(rows=[_product(n) for n in range(1, 6)], at=9, done=True))
        page = decode_server(frame)
        assert isinstance(page, SnapshotPage)
        blobs = snapshot_blobs(frame)
        assert [bytes(b) for b in blobs] == [encode(r) for r in page.rows]
        with store.transaction():
            assert store.apply_rows(page.rows, check_versions=False, blobs=blobs) == []
        for row in page.rows:
            assert store.base("product", row.key) == row
            assert store.view("product", row.key) == row
        got = store.conn.execute("SELECT sku, price FROM product ORDER BY sku").fetchall()
        assert got == [(f"SKU-{n}", 100 + n) for n in range(1, 6)]
    finally:
        store.close()


def test_a_large_batch_is_stored_like_one_row_at_a_time(tmp_path: Path) -> None:
    """The bulk path sends its rows as multi-row INSERTs (and the rest one by one),
    leaving out the columns no row sets: new rows, newer versions of stored rows,
    stale rows and tombstones all end as base, view and view row exactly as before."""
    store = SqliteLocalStore.open(tmp_path / "edge.db", SCHEMA)
    try:
        older = [msgspec.structs.replace(_product(n), version=2,
                                         fields={**_product(n).fields, "description": "old"})
                 for n in range(0, 300, 3)]
        with store.transaction():
            assert store.apply_rows(older) == []
        assert store.conn.execute("SELECT count(*) FROM product").fetchone()[0] == 100
        rows = [msgspec.structs.replace(_product(n), version=3, deleted=n % 7 == 0)
                if n % 2 else _product(n) for n in range(1, 251)]
        del rows[4].fields["barcode"]  # a row from an older schema lacks a field
        with store.transaction():
            assert store.apply_rows(rows) == []
        stored = {r.key: r for r in older}
        for r in rows:
            if r.key not in stored or stored[r.key].version < r.version:
                stored[r.key] = r
        for row in stored.values():
            assert store.base("product", row.key) == row
            assert store.view("product", row.key) == row
        # a field set in the stored row and unset in the whole batch becomes NULL
        got = {k: (sku, desc, v, d) for k, sku, desc, v, d in store.conn.execute(
            "SELECT id, sku, description, _version, _deleted FROM product")}
        assert got == {r.key: (r.fields["sku"], r.fields["description"], r.version,
                               int(r.deleted)) for r in stored.values()}
        assert {desc for _, desc, _, _ in got.values()} == {"old", None}
    finally:
        store.close()


def test_a_snapshot_row_is_written_once_and_its_base_moves_out_when_written_alone(
        tmp_path: Path) -> None:
    """The bulk path keeps each base in its view row (``_row``), not a second
    time in ``_base``. The first write of that row one by one (a local write,
    a newer row with pending ops) moves the base to ``_base`` first, so rebasing
    still starts from the server's row; a later page newer than it takes over."""
    store = SqliteLocalStore.open(tmp_path / "edge.db", SCHEMA)
    replica = Replica(SCHEMA, store, "till-1", "S1")
    try:
        rows = [_product(n) for n in range(1, 4)]
        with store.transaction():
            replica.on_rows(rows, 1_000, snapshot=True, blobs=[encode(r) for r in rows])
        assert store.conn.execute("SELECT count(*) FROM _base").fetchone()[0] == 0
        assert store.base("product", key(2)) == rows[1]

        with store.transaction():  # a manager's local edit: pending, so view != base
            replica.write("product", key(2), {"description": "on sale"}, "manager", 2_000)
        assert store.base("product", key(2)) == rows[1]
        assert store.view("product", key(2)).fields["description"] == "on sale"  # type: ignore[union-attr]
        assert store.conn.execute("SELECT key FROM _base").fetchall() == [(key(2),)]
        assert store.conn.execute("SELECT _row FROM product WHERE id = ?",
                                  (key(2),)).fetchone() == (None,)

        newer = msgspec.structs.replace(rows[1], version=2, fields={**rows[1].fields,
                                                                    "price": 999})
        with store.transaction():  # HQ's price change arrives while the edit is pending
            replica.on_rows([newer], 3_000)
        assert store.base("product", key(2)) == newer
        view = store.view("product", key(2))
        assert view is not None and view.fields["price"] == 999
        assert view.fields["description"] == "on sale"

        for op, in store.conn.execute("SELECT op_id FROM _outbox").fetchall():
            store.drop_outbox(op)
        newest = msgspec.structs.replace(newer, version=3)
        with store.transaction():  # no longer pending: the bulk path takes it whole
            replica.on_rows([newest], 4_000)
        assert store.conn.execute("SELECT count(*) FROM _base").fetchone()[0] == 0
        assert store.base("product", key(2)) == store.view("product", key(2)) == newest
    finally:
        store.close()
