"""The SQLite LocalStore behaves exactly like the reference memory store.

Every test here runs over both; ``test_store_differential.py`` then drives
whole replicas over both with random histories and compares everything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.store import SqliteLocalStore
from schema import SCHEMA
from sync.memory import MemoryLocalStore
from sync.messages import Op, Row
from sync.replica import LocalStore
from tests.sync.kit import PRODUCT, S1_TILL1, key, op


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStore]:
    if request.param == "memory":
        yield MemoryLocalStore()
    else:
        s = SqliteLocalStore.open(tmp_path / "edge.db", SCHEMA)
        with s.transaction():
            yield s
        s.close()


def rejections(store: LocalStore) -> list[tuple[Op, str]]:
    if isinstance(store, SqliteLocalStore):
        return [(o, reason) for o, reason, _ in store.rejections()]
    assert isinstance(store, MemoryLocalStore)
    return list(store.rejections)


def _row(k: str, version: int, phone: str = "1", deleted: bool = False,
         entity: str = "customer") -> Row:
    return Row(entity, k, version, {"name": "Ada", "phone": phone, "email": None,
                                    "credit_limit": None}, deleted, {"phone": ("h", version)})


def _customer_op(k: str, **fields: object) -> Op:
    return op(S1_TILL1, "customer", k, dict(fields))


# -- outbox ------------------------------------------------------------------------------

def test_outbox_keeps_order_positions_and_drops_by_op_id(store: LocalStore) -> None:
    ops = [_customer_op(key(i % 2), name=f"n{i}") for i in range(5)]
    for o in ops:
        store.add_outbox(o)
    page = store.outbox(0, 3)
    assert [pos for pos, _ in page] == [1, 2, 3]
    assert [o for _, o in page] == ops[:3]
    assert [o for _, o in store.outbox(page[-1][0], 10)] == ops[3:]
    assert store.outbox_for("customer", key(1)) == [ops[1], ops[3]]
    assert store.outbox_for("customer", key(7)) == []
    assert store.drop_outbox(ops[1].op_id) == ops[1]
    assert store.drop_outbox(ops[1].op_id) is None
    assert [o for _, o in store.outbox(0, 10)] == [ops[0], *ops[2:]]


def test_outbox_positions_never_go_back(store: LocalStore) -> None:
    first = _customer_op(key(1), name="a")
    store.add_outbox(first)
    store.drop_outbox(first.op_id)
    assert store.outbox(0, 10) == []
    second = _customer_op(key(1), name="b")
    store.add_outbox(second)
    assert store.outbox(0, 10) == [(2, second)]
    assert store.outbox(1, 10) == [(2, second)] and store.outbox(2, 10) == []


def test_an_op_id_is_queued_once(store: LocalStore) -> None:
    o = _customer_op(key(1), name="a")
    store.add_outbox(o)
    with pytest.raises((ValueError, sqlite3.IntegrityError)):
        store.add_outbox(o)
    assert store.outbox(0, 10) == [(1, o)]


# -- base and view -----------------------------------------------------------------------

def test_nothing_is_there_at_first(store: LocalStore) -> None:
    assert store.base("customer", key(1)) is None
    assert store.view("customer", key(1)) is None


def test_view_and_base_are_kept_apart(store: LocalStore) -> None:
    base = _row(key(1), 3)
    store.put_base(base)
    assert store.base("customer", key(1)) == base
    assert store.view("customer", key(1)) is None  # the view changes only by put_view
    store.put_view("customer", key(1), base)
    assert store.view("customer", key(1)) == base
    local = _row(key(1), 3, phone="2")
    store.put_view("customer", key(1), local)
    assert store.view("customer", key(1)) == local
    assert store.base("customer", key(1)) == base
    newer = _row(key(1), 4, phone="3")
    store.put_base(newer)
    assert store.view("customer", key(1)) == local  # still what the till saw
    store.put_view("customer", key(1), newer)
    assert store.view("customer", key(1)) == newer


def test_a_view_can_be_removed_while_the_base_stays(store: LocalStore) -> None:
    base = _row(key(1), 3)
    store.put_base(base)
    store.put_view("customer", key(1), base)
    store.put_view("customer", key(1), None)
    assert store.view("customer", key(1)) is None
    assert store.base("customer", key(1)) == base
    store.put_view("customer", key(1), None)
    assert store.view("customer", key(1)) is None


def test_a_view_without_a_base(store: LocalStore) -> None:
    local = _row(key(2), 1)
    store.put_view("customer", key(2), local)
    assert store.view("customer", key(2)) == local and store.base("customer", key(2)) is None
    tomb = _row(key(2), 1, deleted=True)
    store.put_view("customer", key(2), tomb)
    assert store.view("customer", key(2)) == tomb


def test_a_base_replaced_by_the_same_row_leaves_the_view(store: LocalStore) -> None:
    base = _row(key(1), 3)
    store.put_base(base)
    store.put_view("customer", key(1), None)
    store.put_base(base)
    assert store.view("customer", key(1)) is None


def test_rows_of_an_entity_this_edge_does_not_know_are_kept_whole(store: LocalStore) -> None:
    row = Row("gift_card", key(5), 2, {"balance": 500, "code": "X"}, False, {"code": ("h", 2)})
    store.put_base(row)
    store.put_view("gift_card", key(5), row)
    assert store.base("gift_card", key(5)) == row and store.view("gift_card", key(5)) == row
    assert store.apply_rows([Row("gift_card", key(6), 1, {"balance": 1})]) == []
    assert store.view("gift_card", key(6)) == Row("gift_card", key(6), 1, {"balance": 1})


# -- the bulk path -----------------------------------------------------------------------

def test_apply_rows_takes_newer_rows_and_leaves_pending_ones(store: LocalStore) -> None:
    store.put_base(_row(key(1), 5))
    store.put_view("customer", key(1), _row(key(1), 5))
    store.add_outbox(_customer_op(key(2), phone="9"))
    rest = store.apply_rows([_row(key(1), 4, "old"), _row(key(2), 1), _row(key(3), 2)])
    assert rest == [_row(key(2), 1)]
    assert store.base("customer", key(1)) == _row(key(1), 5)
    assert store.view("customer", key(1)) == _row(key(1), 5)
    assert store.base("customer", key(2)) is None and store.view("customer", key(2)) is None
    assert store.base("customer", key(3)) == _row(key(3), 2)
    assert store.view("customer", key(3)) == _row(key(3), 2)


def test_apply_rows_replaces_a_view_that_differed(store: LocalStore) -> None:
    store.put_base(_row(key(1), 1))
    store.put_view("customer", key(1), _row(key(1), 1, "local"))
    store.apply_rows([_row(key(1), 2, "hq")])
    assert store.view("customer", key(1)) == _row(key(1), 2, "hq")
    store.put_view("customer", key(1), None)
    store.apply_rows([_row(key(1), 3, "hq2")])
    assert store.view("customer", key(1)) == _row(key(1), 3, "hq2")


def test_apply_rows_keeps_the_newest_of_one_row_seen_twice(store: LocalStore) -> None:
    store.apply_rows([_row(key(1), 3, "three"), _row(key(1), 2, "two"), _row(key(1), 3, "x")])
    assert store.base("customer", key(1)) == _row(key(1), 3, "three")
    assert store.view("customer", key(1)) == _row(key(1), 3, "three")
    store.add_outbox(_customer_op(key(1), phone="p"))
    rest = store.apply_rows([_row(key(1), 5, "a"), _row(key(1), 4, "b")])
    assert rest == [_row(key(1), 5, "a"), _row(key(1), 4, "b")]


def test_apply_rows_for_a_snapshot_page(store: LocalStore) -> None:
    rows = [_row(key(i), 1 + i % 3, deleted=i == 4) for i in range(1, 8)]
    assert store.apply_rows(rows, check_versions=False) == []
    assert [store.view("customer", key(i)) for i in range(1, 8)] == rows
    assert [store.base("customer", key(i)) for i in range(1, 8)] == rows
    assert store.apply_rows([]) == []


# -- state and rejections ----------------------------------------------------------------

def test_state_and_rejections(store: LocalStore) -> None:
    assert store.get_state("cursor") is None
    store.set_state("cursor", "7")
    store.set_state("cursor", "8")
    store.set_state("hlc", "")
    assert store.get_state("cursor") == "8" and store.get_state("hlc") == ""
    moved = op(S1_TILL1, "stock_movement", key(9), {"site": "S1", "product_id": PRODUCT,
                                                    "qty": 1, "reason": "receipt"})
    named = _customer_op(key(1), name="x")
    store.add_rejection(moved, "nope")
    store.add_rejection(named, "no, really")
    assert rejections(store) == [(moved, "nope"), (named, "no, really")]
