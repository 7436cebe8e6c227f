"""One storage interface, one test suite: the SQL store behaves like the memory store.

Every test runs against MemoryServerStore (the reference), SqlServerStore on a
SQLite file, and SqlServerStore on a fresh PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import text

from schema import SCHEMA
from server.store import Database
from sync.audit import verify_chain
from sync.memory import MemoryServerStore
from sync.messages import Status
from sync.server import ServerStore, apply_ops
from tests.pg import fresh_database
from tests.sync.kit import CUSTOMER, HQ, PO, PRODUCT, S1_TILL1, S2_TILL1, hire_staff, key, op

Tx = Callable[[], AbstractContextManager[ServerStore]]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def tx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tx]:
    if request.param == "memory":
        mem = MemoryServerStore()

        @contextmanager
        def memory_tx() -> Iterator[ServerStore]:
            yield mem

        yield memory_tx
        return
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'hq.db'}", SCHEMA)
        yield db.transaction
        db.dispose()
        return
    with fresh_database() as url:
        db = Database(url, SCHEMA)
        yield db.transaction
        db.dispose()


def _seed(tx: Tx) -> None:
    ops = [
        op(HQ, "product", PRODUCT, {"sku": "SKU-1", "name": "Oat milk", "price": 199}),
        op(HQ, "customer", CUSTOMER, {"name": "Ada", "phone": "1", "credit_limit": 100}),
        op(HQ, "purchase_order", PO, {"site": "S1", "supplier": "Oatly", "total": 1,
                                      "status": "draft"}),
    ]
    with tx() as store:
        hire_staff(store)
        assert [a.status for a in apply_ops(SCHEMA, store, HQ, ops)] == ["accepted"] * 3


def _sale(actor_site: str, n: int, qty: int = -1) -> dict[str, object]:
    return {"site": actor_site, "product_id": PRODUCT, "qty": qty, "reason": "sale"}


def test_rows_acks_and_dedupe_survive_a_new_transaction(tx: Tx) -> None:
    _seed(tx)
    sale = op(S1_TILL1, "stock_movement", key(1), _sale("S1", 1))
    with tx() as store:
        store.prefetch([sale])
        (first,) = apply_ops(SCHEMA, store, S1_TILL1, [sale])
    with tx() as store:  # a restart: nothing cached
        store.prefetch([sale, sale])
        assert apply_ops(SCHEMA, store, S1_TILL1, [sale, sale]) == [first, first]
        row = store.load("stock_movement", key(1))
        assert row is not None and row.fields["qty"] == -1 and row.version == 1


def test_updates_keep_versions_and_field_clocks(tx: Tx) -> None:
    _seed(tx)
    a = op(S1_TILL1, "customer", CUSTOMER, {"phone": "2"}, ms=5_000, base=1)
    b = op(S2_TILL1, "customer", CUSTOMER, {"phone": "3", "email": "e"}, ms=4_000, base=1)
    with tx() as store:
        assert apply_ops(SCHEMA, store, S1_TILL1, [a])[0].status is Status.ACCEPTED
    with tx() as store:
        (ack,) = apply_ops(SCHEMA, store, S2_TILL1, [b])
    assert ack.status is Status.MERGED and ack.dropped == ["phone"]
    with tx() as store:
        row = store.load("customer", CUSTOMER)
    assert row is not None and row.version == 3
    assert (row.fields["phone"], row.fields["email"]) == ("2", "e")
    assert row.meta["phone"][1] == 2 and row.meta["email"][1] == 3


def test_change_feed_is_scoped_and_cursor_skips_invisible_changes(tx: Tx) -> None:
    _seed(tx)
    with tx() as store:
        start = store.head()
        apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "stock_movement", key(2), _sale("S1", 2))])
        apply_ops(SCHEMA, store, S2_TILL1, [op(S2_TILL1, "stock_movement", key(3), _sale("S2", 3))])
    seeded = ["product", "customer"]
    with tx() as store:
        head = store.head()
        s2, cursor = store.changes("S2", start - 3, 100)
        hq, _ = store.changes(None, start - 3, 100)
        s1 = [c.row.entity for c in store.changes("S1", start - 3, 100)[0]]
    assert head == start + 2 and cursor == head
    assert [c.row.entity for c in s2] == [*seeded, "stock_movement"]
    assert all(c.row.fields.get("site") in (None, "S2") for c in s2)
    assert [c.seq for c in hq] == list(range(start - 2, head + 1))
    assert s1 == [*seeded, "purchase_order", "stock_movement"]
    with tx() as store:
        page, cursor = store.changes(None, start - 2, 2)
    assert [c.seq for c in page] == [start - 1, start] and cursor == start


def test_snapshot_pages_cover_every_visible_row_once(tx: Tx) -> None:
    _seed(tx)
    with tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [
            op(S1_TILL1, "stock_movement", key(10 + i), _sale("S1", i)) for i in range(7)])
        apply_ops(SCHEMA, store, S2_TILL1, [op(S2_TILL1, "stock_movement", key(99), _sale("S2", 9))])
    seen: list[tuple[str, str]] = []
    after = ("", "")
    while True:
        with tx() as store:
            page = store.snapshot("S1", after, 3)
        seen += [(r.entity, r.key) for r in page]
        if len(page) < 3:
            break
        after = seen[-1]
    staff = len([e for e, _ in seen if e == "employee"])
    assert staff == 5
    assert len(seen) == len(set(seen)) == 3 + 7 + staff
    assert ("stock_movement", key(99)) not in seen
    assert seen == sorted(seen)


def test_audit_chain_verifies_and_detects_tampering(tx: Tx, request: pytest.FixtureRequest) -> None:
    _seed(tx)
    with tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "product", PRODUCT, {"price": 1})])
    with tx() as store:
        chain = store.audit_chain() if hasattr(store, "audit_chain") else list(store.audit)  # type: ignore[attr-defined]
    assert len(chain) == 5 + 4 and chain[-1][0].status == "rejected"
    assert verify_chain(chain) is None
    forged = [(msgspec.structs.replace(chain[6][0], after={"name": "Eve"}), chain[6][1]), *chain[7:]]
    assert verify_chain([*chain[:6], *forged]) == 6
    if "memory" not in request.node.name:  # rewrite a stored row behind the server's back
        with tx() as store:
            store.conn.execute(text("UPDATE audit SET reason = 'nothing to see' WHERE id = 7"))  # type: ignore[attr-defined]
        with tx() as store:
            assert verify_chain(store.audit_chain()) == 6  # type: ignore[attr-defined]


def test_conflicts_are_queued(tx: Tx) -> None:
    _seed(tx)
    a = op(S1_TILL1, "customer", CUSTOMER, {"credit_limit": 7}, base=1)
    b = op(S2_TILL1, "customer", CUSTOMER, {"credit_limit": 9}, base=1)
    with tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [a])
        (ack,) = apply_ops(SCHEMA, store, S2_TILL1, [b])
    assert ack.conflicts == ["credit_limit"]
    with tx() as store:
        row = store.load("customer", CUSTOMER)
        assert row is not None and row.fields["credit_limit"] == 7
        if hasattr(store, "conn"):
            n = store.conn.execute(text("SELECT count(*) FROM conflicts")).scalar()
        else:
            n = len(store.conflicts)  # type: ignore[attr-defined]
    assert n == 1
