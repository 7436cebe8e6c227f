"""One storage interface, one test suite: the SQL store behaves like the memory store.

Every test runs against MemoryServerStore (the reference), SqlServerStore on a
SQLite file, and SqlServerStore on a fresh PostgreSQL database
(``tests/server/conftest.py``). ``test_store_differential.py`` compares them
on random histories.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from sqlalchemy import text

from schema import SCHEMA
from server.store import SqlServerStore
from sync.audit import verify_chain
from sync.messages import Status, mark_of
from sync.server import apply_ops
from tests.server.conftest import SQL_STORES, Backend, open_backend
from tests.sync.kit import (
    CUSTOMER,
    HQ,
    PO,
    PRODUCT,
    S1_TILL1,
    S2_TILL1,
    hire_staff,
    key,
    op,
)

STAFF = 5
"""Employees ``hire_staff`` creates: rows every site sees."""


def _seed(backend: Backend) -> None:
    ops = [
        op(HQ, "product", PRODUCT, {"sku": "SKU-1", "name": "Oat milk", "price": 199}),
        op(HQ, "customer", CUSTOMER, {"name": "Ada", "phone": "1", "credit_limit": 100}),
        op(HQ, "purchase_order", PO,
           {"site": "S1", "supplier": "Oatly", "total": 1, "status": "draft"}),
    ]
    with backend.tx() as store:
        hire_staff(store)
        assert [a.status for a in apply_ops(SCHEMA, store, HQ, ops)] == ["accepted"] * 3


def _sale(site: str, qty: int = -1) -> dict[str, object]:
    return {"site": site, "product_id": PRODUCT, "qty": qty, "reason": "sale"}


def _transfer(to_site: str) -> dict[str, object]:
    return {"from_site": "S1", "to_site": to_site, "product_id": PRODUCT, "qty": 2,
            "status": "shipped"}


def test_rows_acks_and_dedupe_survive_a_new_transaction(backend: Backend) -> None:
    _seed(backend)
    sale = op(S1_TILL1, "stock_movement", key(1), _sale("S1"))
    with backend.tx() as store:
        store.prefetch([sale])
        (first,) = apply_ops(SCHEMA, store, S1_TILL1, [sale])
    with backend.tx() as store:  # nothing cached
        store.prefetch([sale, sale])
        assert apply_ops(SCHEMA, store, S1_TILL1, [sale, sale]) == [first, first]
        row = store.load("stock_movement", key(1))
        assert row is not None and row.fields["qty"] == -1 and row.version == 1


def test_dedupe_survives_a_restart(backend: Backend) -> None:
    _seed(backend)
    sale = op(S1_TILL1, "stock_movement", key(1), _sale("S1"))
    edit = op(S2_TILL1, "customer", CUSTOMER, {"phone": "2"}, base=1, ms=5_000)
    with backend.tx() as store:
        acks = apply_ops(SCHEMA, store, S1_TILL1, [sale]) + apply_ops(
            SCHEMA, store, S2_TILL1, [edit])
        head = store.head()
    backend.reopen()
    with backend.tx() as store:  # the resend after a server restart, not prefetched
        assert apply_ops(SCHEMA, store, S1_TILL1, [sale]) + apply_ops(
            SCHEMA, store, S2_TILL1, [edit]) == acks
        assert store.head() == head
        customer = store.load("customer", CUSTOMER)
    assert customer is not None and customer.version == 2
    assert len(backend.audit()) == STAFF + 3 + 2


def test_seen_and_load_see_writes_of_the_same_transaction(backend: Backend) -> None:
    _seed(backend)
    sale = op(S1_TILL1, "stock_movement", key(1), _sale("S1"))
    again = op(S1_TILL1, "stock_movement", key(1), _sale("S1", -5))
    with backend.tx() as store:
        (first,) = apply_ops(SCHEMA, store, S1_TILL1, [sale])
        assert store.seen(sale.op_id) == first
        row = store.load("stock_movement", key(1))
        assert row is not None and row.fields["qty"] == -1
        (second,) = apply_ops(SCHEMA, store, S1_TILL1, [again])
    assert second.status is Status.REJECTED and "ledger" in second.reason
    assert store.load("nonexistent", key(1)) is None


def test_updates_keep_versions_and_field_clocks(backend: Backend) -> None:
    _seed(backend)
    a = op(S1_TILL1, "customer", CUSTOMER, {"phone": "2"}, ms=5_000, base=1)
    b = op(S2_TILL1, "customer", CUSTOMER, {"phone": "3", "email": "e"}, ms=4_000, base=1)
    with backend.tx() as store:
        assert apply_ops(SCHEMA, store, S1_TILL1, [a])[0].status is Status.ACCEPTED
    with backend.tx() as store:
        (ack,) = apply_ops(SCHEMA, store, S2_TILL1, [b])
    assert ack.status is Status.MERGED and ack.dropped == ["phone"]
    with backend.tx() as store:
        row = store.load("customer", CUSTOMER)
    assert row is not None and row.version == 3
    assert (row.fields["phone"], row.fields["email"]) == ("2", "e")
    assert row.meta["phone"][1] == 2 and row.meta["email"][1] == 3


def test_change_feed_is_scoped_and_cursor_skips_invisible_changes(backend: Backend) -> None:
    _seed(backend)
    with backend.tx() as store:
        start = store.head()
        apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "stock_movement", key(2), _sale("S1"))])
        apply_ops(SCHEMA, store, S2_TILL1, [op(S2_TILL1, "stock_movement", key(3), _sale("S2"))])
    seeded = ["product", "customer"]
    with backend.tx() as store:
        head = store.head()
        s2, cursor = store.changes("S2", start - 3, 100)
        hq, _ = store.changes(None, start - 3, 100)
        s1 = [c.row.entity for c in store.changes("S1", start - 3, 100)[0]]
    assert head == start + 2 and cursor == head
    assert [c.row.entity for c in s2] == [*seeded, "stock_movement"]
    assert all(c.row.fields.get("site") in (None, "S2") for c in s2)
    assert [c.seq for c in hq] == list(range(start - 2, head + 1))
    assert s1 == [*seeded, "purchase_order", "stock_movement"]
    with backend.tx() as store:
        page, cursor = store.changes(None, start - 2, 2)
    assert [c.seq for c in page] == [start - 1, start] and cursor == start


def test_a_page_of_changes_ends_at_its_last_visible_change(backend: Backend) -> None:
    _seed(backend)
    with backend.tx() as store:
        start = store.head()
        for n in range(3):  # S2, S1, S2, S1, ...: every other change is invisible to S1
            apply_ops(SCHEMA, store, S2_TILL1,
                      [op(S2_TILL1, "stock_movement", key(10 + n), _sale("S2"))])
            apply_ops(SCHEMA, store, S1_TILL1,
                      [op(S1_TILL1, "stock_movement", key(20 + n), _sale("S1"))])
    with backend.tx() as store:
        one, c1 = store.changes("S1", start, 1)
        two, c2 = store.changes("S1", c1, 2)
        rest, c3 = store.changes("S1", c2, 100)
        none, c4 = store.changes("S1", c3, 100)
        zero, c5 = store.changes("S1", start, 0)  # as the reference: still one change
        ahead, c6 = store.changes("S1", c3 + 10, 100)
    assert [c.seq for c in one] == [start + 2] and c1 == start + 2
    assert [c.seq for c in two] == [start + 4, start + 6] and c2 == start + 6
    assert (rest, c3) == ([], start + 6)
    assert (none, c4) == ([], start + 6)
    assert [c.seq for c in zero] == [start + 2] and c5 == start + 2
    assert (ahead, c6) == ([], c3 + 10)


def test_named_scope_reaches_both_ends_and_hq_only(backend: Backend) -> None:
    _seed(backend)
    to_s2 = op(S1_TILL1, "transfer", key(40), _transfer("S2"))
    to_star = op(S1_TILL1, "transfer", key(41), _transfer("*"))  # "*" is just a name
    with backend.tx() as store:
        start = store.head()
        acks = apply_ops(SCHEMA, store, S1_TILL1, [to_s2, to_star])
    assert [a.status for a in acks] == ["accepted", "accepted"]

    def seen(site: str | None) -> tuple[list[str], list[str]]:
        with backend.tx(write=False) as store:
            fed = [c.row.key for c in store.changes(site, start, 100)[0]]
            snap = [r.key for r in store.snapshot(site, ("transfer", ""), 100)
                    if r.entity == "transfer"]
        return fed, snap

    assert seen("S1") == ([key(40), key(41)], [key(40), key(41)])
    assert seen("S2") == ([key(40)], [key(40)])
    assert seen("S3") == ([], [])
    assert seen("*") == ([key(41)], [key(41)])
    assert seen(None) == ([key(40), key(41)], [key(40), key(41)])


def test_snapshot_pages_cover_every_visible_row_once(backend: Backend) -> None:
    _seed(backend)
    with backend.tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [
            op(S1_TILL1, "stock_movement", key(10 + i), _sale("S1")) for i in range(7)])
        apply_ops(SCHEMA, store, S2_TILL1,
                  [op(S2_TILL1, "stock_movement", key(99), _sale("S2"))])
        apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "transfer", key(40), _transfer("S2"))])
    for site, size in (("S1", 3), ("S1", 1), ("S2", 2), (None, 4)):
        seen: list[tuple[str, str]] = []
        after = ("", "")
        while True:
            with backend.tx() as store:
                page = store.snapshot(site, after, size)
            seen += [(r.entity, r.key) for r in page]
            if len(page) < size:
                break
            after = seen[-1]
        assert len(seen) == len(set(seen)) and seen == sorted(seen)
        assert len([e for e, _ in seen if e == "employee"]) == STAFF
        entities = {e for e, _ in seen}
        assert ("stock_movement", key(99)) in seen if site != "S1" else (
            ("stock_movement", key(99)) not in seen)
        assert "transfer" in entities
        if site == "S1":
            assert len(seen) == STAFF + 3 + 7 + 1
        if site == "S2":
            assert "purchase_order" not in entities and len(seen) == STAFF + 2 + 1 + 1


def test_tombstones_travel_in_changes_and_snapshots(backend: Backend) -> None:
    _seed(backend)
    with backend.tx() as store:
        start = store.head()
        (ack,) = apply_ops(SCHEMA, store, S2_TILL1,
                           [op(S2_TILL1, "customer", CUSTOMER, {}, base=1, delete=True)])
    assert ack.status is Status.ACCEPTED
    with backend.tx() as store:
        (change,), _ = store.changes("S1", start, 10)
        snap = store.snapshot("S1", ("customer", ""), 1)
        later = apply_ops(SCHEMA, store, S1_TILL1,
                          [op(S1_TILL1, "customer", CUSTOMER, {"phone": "9"}, base=1)])
    assert change.row.deleted and change.row.version == 2
    assert [(r.key, r.deleted) for r in snap] == [(CUSTOMER, True)]
    assert later[0].status is Status.REJECTED and "deleted" in later[0].reason


def test_audit_chain_verifies_and_detects_tampering(backend: Backend) -> None:
    _seed(backend)
    with backend.tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "product", PRODUCT, {"price": 1})])
    chain = backend.audit()
    assert len(chain) == STAFF + 4 and chain[-1][0].status == "rejected"
    assert verify_chain(chain) is None
    forged = [(msgspec.structs.replace(chain[6][0], after={"name": "Eve"}), chain[6][1]),
              *chain[7:]]
    assert verify_chain([*chain[:6], *forged]) == 6
    assert verify_chain([*chain[:6], *chain[7:]]) == 6  # a record removed
    if backend.is_sql:  # rewrite a stored row behind the server's back
        with backend.sql() as store:
            store.conn.execute(text("UPDATE audit SET reason = 'nothing to see' WHERE id = 7"))
        assert verify_chain(backend.audit()) == 6


def test_audit_chain_continues_across_restarts(backend: Backend) -> None:
    _seed(backend)
    backend.reopen()
    with backend.tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "stock_movement", key(1), _sale("S1"))])
    chain = backend.audit()
    assert len(chain) == STAFF + 4 and verify_chain(chain) is None
    assert chain[-1][0].device == S1_TILL1.device and chain[-1][0].after is not None


def test_conflicts_are_queued(backend: Backend) -> None:
    _seed(backend)
    a = op(S1_TILL1, "customer", CUSTOMER, {"credit_limit": 7}, base=1)
    b = op(S2_TILL1, "customer", CUSTOMER, {"credit_limit": 9}, base=1)
    with backend.tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [a])
        (ack,) = apply_ops(SCHEMA, store, S2_TILL1, [b])
    assert ack.conflicts == ["credit_limit"]
    with backend.tx() as store:
        row = store.load("customer", CUSTOMER)
    assert row is not None and row.fields["credit_limit"] == 7
    assert backend.conflicts() == [(b.op_id, "credit_limit", 7, 9)]


@pytest.mark.parametrize("write", [True, False])
def test_head_is_the_last_sequence_number(backend: Backend, write: bool) -> None:
    with backend.tx(write=write) as store:
        assert store.head() == 0
        assert store.changes(None, 0, 10) == ([], 0)
        assert store.snapshot(None, ("", ""), 10) == []
    _seed(backend)
    with backend.tx(write=write) as store:
        assert store.head() == STAFF + 3


def test_the_mark_of_a_change_names_its_row_and_version(backend: Backend) -> None:
    """A device keeps the mark of the change at its cursor: every store gives
    the same mark for the same change, and another change gets another mark."""
    _seed(backend)
    with backend.tx() as store:
        apply_ops(SCHEMA, store, HQ, [op(HQ, "product", PRODUCT, {"price": 250})])
    with backend.tx(write=False) as store:
        head = store.head()
        changes, _ = store.changes(None, 0, 1000)
        marks = [store.mark(c.seq) for c in changes]
        assert store.mark(0) == "" and store.mark(head + 1) == ""
    assert marks == [mark_of(c.row) for c in changes] and len(set(marks)) == head
    price = [c.row for c in changes if c.row.entity == "product"]
    assert [r.version for r in price] == [1, 2] and mark_of(price[0]) != mark_of(price[1])


@pytest.mark.parametrize("kind", SQL_STORES)  # the memory store has no concurrent commits
def test_a_change_committed_while_a_page_is_read_is_never_skipped(
        kind: str, tmp_path: Path) -> None:
    """Another store's sale commits right as a device's page of changes is
    read: the cursor the device is given must not pass a change its page did
    not hold (PostgreSQL reads each statement at its own snapshot)."""
    with open_backend(kind, tmp_path) as backend:
        _the_page_and_the_commit(backend)


def _the_page_and_the_commit(backend: Backend) -> None:
    _seed(backend)
    with backend.tx(write=False) as store:
        assert isinstance(store, SqlServerStore)
        real_head = store.head

        def head_after_a_commit() -> int:
            with backend.tx() as other:
                apply_ops(SCHEMA, other, S1_TILL1,
                          [op(S1_TILL1, "stock_movement", key(70), _sale("S1"))])
            return real_head()

        store.head = head_after_a_commit  # type: ignore[method-assign]
        page, cursor = store.changes(None, 0, 1000)
    with backend.tx(write=False) as store:
        rest, _ = store.changes(None, cursor, 1000)
        head = store.head()
    assert sorted(c.seq for c in [*page, *rest]) == list(range(1, head + 1))


@pytest.mark.parametrize("kind", SQL_STORES)
def test_a_read_sees_one_snapshot_in_all_its_statements(kind: str, tmp_path: Path) -> None:
    """A report's count and its page, a device's head and its changes: a read
    of several statements sees the database as at its first one, whatever
    commits meanwhile (on PostgreSQL too, whose default is a snapshot per
    statement)."""
    with open_backend(kind, tmp_path) as backend:
        _seed(backend)
        with backend.tx(write=False) as store:
            assert isinstance(store, SqlServerStore)
            first = store.head()
            with backend.tx() as other:
                apply_ops(SCHEMA, other, S1_TILL1,
                          [op(S1_TILL1, "stock_movement", key(71), _sale("S1"))])
            page, cursor = store.changes(None, 0, 1000)
            assert cursor == first and page[-1].seq == first
        with backend.tx(write=False) as store:
            assert store.head() == first + 1


def test_children_are_found_by_their_parent_this_transactions_included(
        backend: Backend) -> None:
    _seed(backend)
    lines = [op(HQ, "po_line", key(900 + n), {"po_id": PO, "site": "S1",
                                             "product_id": PRODUCT, "qty": n + 1,
                                             "unit_cost": 10}) for n in range(3)]
    with backend.tx() as store:
        apply_ops(SCHEMA, store, HQ, lines[:2])
    with backend.tx() as store:
        apply_ops(SCHEMA, store, HQ, lines[2:])  # not yet committed
        found = store.children("po_line", "po_id", PO)
        assert [r.key for r in found] == [key(900), key(901), key(902)]
        assert [r.fields["qty"] for r in found] == [1, 2, 3]
        assert store.children("po_line", "po_id", CUSTOMER) == []
