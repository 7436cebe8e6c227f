"""Department roles decide who may do what: one matrix, on the server and the edge."""

from __future__ import annotations

import msgspec
import pytest

from sync.messages import Op, Status
from sync.replica import LocalRejected

from .kit import HQ, PO, PRODUCT, Device, hire, op, push, seeded_server


def as_user(o: Op, user: str, op_id: str | None = None) -> Op:
    return msgspec.structs.replace(o, user=user, op_id=op_id or o.op_id)


def test_an_hq_clerk_cannot_change_a_price_but_a_buyer_can() -> None:
    server = seeded_server()
    hire(server, "clara", "cashier", "HQ")
    hire(server, "bob", "buyer", "HQ")
    clerk = op(HQ, "product", PRODUCT, {"price": 1})
    clerk = as_user(clerk, "clara")
    (ack,) = push(server, HQ, clerk)
    assert ack.status is Status.REJECTED and ack.reason == (
        "user clara (cashier) may not set price on product; allowed: buyer, hq_admin")
    buyer = as_user(clerk, "bob", "bob-1")
    assert push(server, HQ, buyer)[0].status is Status.ACCEPTED


def test_procurement_approves_purchase_orders() -> None:
    server = seeded_server()
    hire(server, "bob", "buyer", "HQ")
    hire(server, "pam", "procurement_manager", "HQ")
    approve = op(HQ, "purchase_order", PO, {"status": "approved"})
    by_buyer = as_user(approve, "bob")
    (ack,) = push(server, HQ, by_buyer)
    assert ack.status is Status.REJECTED and "may not move to approved" in ack.reason
    by_manager = as_user(approve, "pam", "pam-1")
    assert push(server, HQ, by_manager)[0].status is Status.ACCEPTED


def test_a_user_without_an_employee_record_is_refused_restricted_actions() -> None:
    server = seeded_server()
    ghost = op(HQ, "product", PRODUCT, {"price": 5})
    ghost = as_user(ghost, "ghost")
    (ack,) = push(server, HQ, ghost)
    assert ack.status is Status.REJECTED and "has no employee record" in ack.reason


def test_the_edge_refuses_early_with_the_same_matrix() -> None:
    server = seeded_server()
    hire(server, "clara", "cashier", "HQ")
    pc = Device(HQ, server)
    pc.sync()
    with pytest.raises(LocalRejected, match="clara \\(cashier\\) may not set price"):
        pc.replica.write("product", PRODUCT, {"price": 2}, "clara", 9_000)
    assert not pc.store.pending
    pc.replica.write("product", PRODUCT, {"description": "anyone may"}, "clara", 9_000)
