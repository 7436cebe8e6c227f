"""The SQLite LocalStore behaves exactly like the reference memory store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from client.store import SqliteLocalStore, connect
from schema import SCHEMA
from sync.memory import MemoryLocalStore
from sync.messages import Row
from sync.replica import LocalStore
from tests.sync.kit import PRODUCT, S1_TILL1, key, op


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStore]:
    if request.param == "memory":
        yield MemoryLocalStore()
    else:
        conn = connect(tmp_path / "edge.db")
        yield SqliteLocalStore(conn, SCHEMA)
        conn.close()


def _row(k: str, version: int, phone: str = "1") -> Row:
    return Row("customer", k, version, {"name": "Ada", "phone": phone, "email": None,
                                        "credit_limit": None}, False, {"phone": ("h", version)})


def test_outbox_keeps_order_positions_and_drops_by_op_id(store: LocalStore) -> None:
    ops = [op(S1_TILL1, "customer", key(i % 2), {"name": f"n{i}"}) for i in range(5)]
    for o in ops:
        store.add_outbox(o)
    page = store.outbox(0, 3)
    assert [o for _, o in page] == ops[:3]
    assert [o for _, o in store.outbox(page[-1][0], 10)] == ops[3:]
    assert store.outbox_for("customer", key(1)) == [ops[1], ops[3]]
    assert store.drop_outbox(ops[1].op_id) == ops[1]
    assert store.drop_outbox(ops[1].op_id) is None
    assert [o for _, o in store.outbox(0, 10)] == [ops[0], *ops[2:]]


def test_view_falls_back_to_base_and_can_be_removed(store: LocalStore) -> None:
    base = _row(key(1), 3)
    store.put_base(base)
    store.put_view("customer", key(1), base)
    assert store.base("customer", key(1)) == base
    assert store.view("customer", key(1)) == base
    pending = op(S1_TILL1, "customer", key(1), {"phone": "2"})
    store.add_outbox(pending)
    local = _row(key(1), 4, phone="2")
    store.put_view("customer", key(1), local)
    assert store.view("customer", key(1)) == local
    store.drop_outbox(pending.op_id)
    store.put_view("customer", key(1), None)
    assert store.view("customer", key(1)) in (None, base)  # memory: gone; sqlite: base only


def test_apply_rows_takes_newer_rows_and_leaves_pending_ones(store: LocalStore) -> None:
    store.put_base(_row(key(1), 5))
    store.add_outbox(op(S1_TILL1, "customer", key(2), {"phone": "9"}))
    rest = store.apply_rows([_row(key(1), 4, "old"), _row(key(2), 1), _row(key(3), 2)])
    assert [r.key for r in rest] == [key(2)]
    b1 = store.base("customer", key(1))
    b3 = store.base("customer", key(3))
    assert b1 is not None and b1.version == 5
    assert b3 is not None and store.view("customer", key(3)) == b3


def test_state_and_rejections(store: LocalStore) -> None:
    assert store.get_state("cursor") is None
    store.set_state("cursor", "7")
    store.set_state("cursor", "8")
    assert store.get_state("cursor") == "8"
    o = op(S1_TILL1, "stock_movement", key(9), {"site": "S1", "product_id": PRODUCT,
                                                "qty": 1, "reason": "receipt"})
    store.add_rejection(o, "nope")
