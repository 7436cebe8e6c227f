"""A snapshot page's rows are stored as received (no re-encoding) and read back
equal to the decoded rows; a page with a pending row still leaves it out."""

from __future__ import annotations

from pathlib import Path

from client.store import SqliteLocalStore
from schema import SCHEMA
from sync.messages import Row, SnapshotPage, decode_server, encode, snapshot_blobs
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
