"""Every merge policy, decided by the server for concurrent offline edits."""

from __future__ import annotations

import msgspec

from schema import SCHEMA
from sync.merge import decide
from sync.messages import Status

from .kit import (
    CUSTOMER,
    HQ,
    PO,
    PRODUCT,
    S1_TILL1,
    S1_TILL2,
    S2_TILL1,
    TRANSFER,
    key,
    op,
    push,
    seeded_server,
)


def test_concurrent_edits_of_different_fields_both_survive() -> None:
    server = seeded_server()
    base = server.load("customer", CUSTOMER)
    assert base is not None
    a = op(S1_TILL1, "customer", CUSTOMER, {"phone": "222"}, ms=5_000, base=base.version)
    b = op(S2_TILL1, "customer", CUSTOMER, {"email": "ada@x.org"}, ms=4_000, base=base.version)
    assert [x.status for x in push(server, S1_TILL1, a)] == ["accepted"]
    assert [x.status for x in push(server, S2_TILL1, b)] == ["accepted"]
    row = server.load("customer", CUSTOMER)
    assert row is not None
    assert (row.fields["phone"], row.fields["email"]) == ("222", "ada@x.org")


def test_same_lww_field_later_hlc_wins_whatever_the_arrival_order() -> None:
    server = seeded_server()
    late = op(S1_TILL1, "customer", CUSTOMER, {"phone": "late"}, ms=9_000, base=1)
    early = op(S2_TILL1, "customer", CUSTOMER, {"phone": "early"}, ms=8_000, base=1)
    push(server, S1_TILL1, late)
    (ack,) = push(server, S2_TILL1, early)
    assert ack.status is Status.MERGED
    assert ack.dropped == ["phone"]
    assert "later edit" in ack.reason
    row = server.load("customer", CUSTOMER)
    assert row is not None and row.fields["phone"] == "late"
    assert ack.row == row


def test_lww_tie_on_time_is_broken_by_device_id() -> None:
    server = seeded_server()
    a = op(S1_TILL1, "customer", CUSTOMER, {"name": "from s1"}, ms=7_777)
    b = op(S2_TILL1, "customer", CUSTOMER, {"name": "from s2"}, ms=7_777)
    push(server, S2_TILL1, b)
    push(server, S1_TILL1, a)
    row = server.load("customer", CUSTOMER)
    assert row is not None and row.fields["name"] == "from s2"  # "s2-till1" > "s1-till1"


def test_manual_field_concurrent_edit_goes_to_conflict_queue_server_value_kept() -> None:
    server = seeded_server()
    a = op(S1_TILL1, "customer", CUSTOMER, {"credit_limit": 7000}, base=1, ms=5_000)
    b = op(S2_TILL1, "customer", CUSTOMER, {"credit_limit": 9000, "phone": "9"}, base=1, ms=6_000)
    (ack_a,) = push(server, S1_TILL1, a)
    (ack_b,) = push(server, S2_TILL1, b)
    assert ack_a.status is Status.ACCEPTED
    assert ack_b.status is Status.MERGED and ack_b.conflicts == ["credit_limit"]
    row = server.load("customer", CUSTOMER)
    assert row is not None
    assert row.fields["credit_limit"] == 7000  # server keeps its value
    assert row.fields["phone"] == "9"  # the rest of the op still applies
    (conflict,) = server.conflicts
    assert (conflict.server_value, conflict.proposed_value) == (7000, 9000)
    assert conflict.device == "s2-till1"


def test_manual_field_sequential_edits_by_one_device_are_not_conflicts() -> None:
    server = seeded_server()
    a = op(S1_TILL1, "customer", CUSTOMER, {"credit_limit": 7000}, base=1)
    b = op(S1_TILL1, "customer", CUSTOMER, {"credit_limit": 8000}, base=1)
    assert [x.status for x in push(server, S1_TILL1, a, b)] == ["accepted", "accepted"]
    assert not server.conflicts


def test_delete_wins_against_concurrent_update_in_either_order() -> None:
    for first_delete in (True, False):
        server = seeded_server()
        d = op(HQ, "customer", CUSTOMER, {}, delete=True, base=1)
        u = op(S1_TILL1, "customer", CUSTOMER, {"phone": "333"}, base=1, ms=5_000)
        if first_delete:
            acks = push(server, HQ, d) + push(server, S1_TILL1, u)
            assert acks[1].status is Status.REJECTED and "deleted" in acks[1].reason
        else:
            acks = push(server, S1_TILL1, u) + push(server, HQ, d)
            assert [a.status for a in acks] == ["accepted", "accepted"]
        row = server.load("customer", CUSTOMER)
        assert row is not None and row.deleted


def test_duplicate_delivery_takes_effect_once() -> None:
    server = seeded_server()
    sale = op(S1_TILL1, "stock_movement", key(9),
              {"site": "S1", "product_id": PRODUCT, "qty": -3, "reason": "sale"})
    first = push(server, S1_TILL1, sale)
    again = push(server, S1_TILL1, sale, sale)
    assert again == first * 2
    assert len([c for c, _ in server.log if c.row.key == key(9)]) == 1
    assert len([a for a, _ in server.audit if a.op_id == sale.op_id]) == 1


def test_out_of_order_delivery_converges_on_hlc() -> None:
    """Two edits of one device arrive in reverse order: the later edit still wins."""
    server = seeded_server()
    first = op(S1_TILL1, "customer", CUSTOMER, {"phone": "first"}, ms=5_000, base=1)
    second = op(S1_TILL1, "customer", CUSTOMER, {"phone": "second"}, ms=6_000, base=1)
    push(server, S1_TILL1, second, first)
    row = server.load("customer", CUSTOMER)
    assert row is not None and row.fields["phone"] == "second"


def test_invalid_state_transition_is_rejected_with_reason() -> None:
    server = seeded_server()
    assert push(server, HQ, op(HQ, "purchase_order", PO, {"status": "cancelled"}))[0].status \
        == "accepted"
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "purchase_order", PO, {"status": "received"}))
    assert ack.status is Status.REJECTED
    assert ack.reason.endswith("is cancelled; it cannot move to received")
    assert ack.row is not None and ack.row.fields["status"] == "cancelled"
    audit = [a for a, _ in server.audit if a.op_id == ack.op_id]
    assert audit[0].status == "rejected" and audit[0].policy == "state"


def test_state_transition_reserved_for_hq() -> None:
    server = seeded_server()
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "purchase_order", PO, {"status": "approved"}))
    assert ack.status is Status.REJECTED and "only HQ may move" in ack.reason
    (ok,) = push(server, HQ, op(HQ, "purchase_order", PO, {"status": "approved"}))
    assert ok.status is Status.ACCEPTED
    (received,) = push(server, S1_TILL1,
                       op(S1_TILL1, "purchase_order", PO, {"status": "received"}))
    assert received.status is Status.ACCEPTED


def test_site_editing_hq_owned_field_is_rejected_whole() -> None:
    server = seeded_server()
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "product", PRODUCT,
                                       {"price": 1, "description": "cheap!"}))
    assert ack.status is Status.REJECTED
    assert ack.reason == "price of product is owned by HQ; site S1 cannot change it"
    row = server.load("product", PRODUCT)
    assert row is not None and row.fields["price"] == 199 and row.fields["description"] is None


def test_site_may_edit_lww_description_of_hq_product() -> None:
    server = seeded_server()
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "product", PRODUCT, {"description": "vegan"}))
    assert ack.status is Status.ACCEPTED


def test_ledger_rows_are_append_only() -> None:
    server = seeded_server()
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "stock_movement", key(500), {"qty": 99}))
    assert ack.status is Status.REJECTED and "ledger entry" in ack.reason


def test_two_tills_oversell_offline_both_count() -> None:
    server = seeded_server()
    sells = [
        (S1_TILL1, op(S1_TILL1, "stock_movement", key(11),
                      {"site": "S1", "product_id": PRODUCT, "qty": -3, "reason": "sale"})),
        (S1_TILL2, op(S1_TILL2, "stock_movement", key(12),
                      {"site": "S1", "product_id": PRODUCT, "qty": -1, "reason": "sale"})),
    ]
    for actor, o in sells:
        push(server, actor, o)
    on_hand = sum(
        r.fields["qty"] for r in server.rows.values()
        if r.entity == "stock_movement" and r.fields["site"] == "S1"
    )
    assert on_hand == 6


def test_a_store_cannot_write_another_stores_ledger_or_documents() -> None:
    server = seeded_server()
    forged = op(S2_TILL1, "stock_movement", key(13),
                {"site": "S1", "product_id": PRODUCT, "qty": -5, "reason": "sale"})
    (ack,) = push(server, S2_TILL1, forged)
    assert ack.status is Status.REJECTED and "not to site S2" in ack.reason
    (ack,) = push(server, S2_TILL1, op(S2_TILL1, "purchase_order", PO, {"supplier": "x"}))
    assert ack.status is Status.REJECTED and "outside site S2" in ack.reason
    # both ends of a transfer may act on it
    (ack,) = push(server, S2_TILL1, op(S2_TILL1, "transfer", TRANSFER, {"status": "received"}))
    assert ack.status is Status.ACCEPTED


def test_fields_placing_a_row_at_a_site_cannot_change() -> None:
    server = seeded_server()
    (ack,) = push(server, HQ, op(HQ, "purchase_order", PO, {"site": "S2"}))
    assert ack.status is Status.REJECTED and "cannot change" in ack.reason


def test_decide_is_pure() -> None:
    server = seeded_server()
    current = server.load("customer", CUSTOMER)
    o = op(S1_TILL1, "customer", CUSTOMER, {"phone": "5"})
    assert decide(SCHEMA, current, o, S1_TILL1) == decide(SCHEMA, current, o, S1_TILL1)
    assert server.load("customer", CUSTOMER) == current


def test_a_group_of_ops_is_applied_all_or_nothing() -> None:
    server = seeded_server()
    sale = key(50)
    good = op(S1_TILL1, "stock_movement", sale,
              {"site": "S1", "product_id": PRODUCT, "qty": -1, "reason": "sale"})
    forged = op(S1_TILL1, "product", PRODUCT, {"price": 1})
    group = [msgspec.structs.replace(o, group="tx-1") for o in (good, forged)]
    from sync.server import apply_ops

    acks = apply_ops(SCHEMA, server, S1_TILL1, group)
    assert [a.status for a in acks] == ["rejected", "rejected"]
    assert acks[0].reason.startswith("transaction tx-1 rejected: price of product is owned by HQ")
    assert server.load("stock_movement", sale) is None
    assert apply_ops(SCHEMA, server, S1_TILL1, group) == acks  # resent: same answers
    ok = [msgspec.structs.replace(o, group="tx-2", op_id=o.op_id + "-2") for o in (good,)]
    assert [a.status for a in apply_ops(SCHEMA, server, S1_TILL1, ok)] == ["accepted"]
