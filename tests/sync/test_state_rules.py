"""State machines that freeze a row outside its editable states and record who
approved it, and transfers made by their sender and received by their receiver."""

from __future__ import annotations

import pytest

from schema import SCHEMA
from schema.procurement import approval
from schema.retail import SECOND_APPROVAL_ABOVE
from sync.messages import Status
from sync.replica import LocalRejected

from .kit import (
    HQ,
    PO,
    PRODUCT,
    S1_TILL1,
    S2_TILL1,
    TRANSFER,
    Device,
    big_po,
    by,
    key,
    op,
    push,
    staffed,
)

# 1. purchase orders


def test_an_approver_cannot_erase_her_name_and_approve_a_large_order_alone() -> None:
    server = staffed()
    po = big_po(server)
    first = approval({"status": "draft", "total": SECOND_APPROVAL_ABOVE + 1}, "pam",
                     SECOND_APPROVAL_ABOVE)
    assert push(server, HQ, by("pam", HQ, "purchase_order", po, first))[0].status == "accepted"
    (ack,) = push(server, HQ, by("pam", HQ, "purchase_order", po, {"approved_by": "nobody"}))
    assert ack.status is Status.REJECTED
    assert "approved_by of purchase_order" in ack.reason and "recorded by its state move" in (
        ack.reason)
    (ack,) = push(server, HQ, by("pam", HQ, "purchase_order", po, {"status": "approved"}))
    assert ack.status is Status.REJECTED and "second approval" in ack.reason
    (ack,) = push(server, HQ, by("pat", HQ, "purchase_order", po, {"status": "approved"}))
    assert ack.status is Status.ACCEPTED and ack.row is not None
    assert ack.row.fields["approved_by"] == "pam"  # the first approver stays on record


def test_the_approval_move_records_its_own_user_and_nobody_else() -> None:
    server = staffed()
    po = big_po(server)
    forged = by("pam", HQ, "purchase_order", po, {"status": "first_approved",
                                                  "approved_by": "pat"})
    (ack,) = push(server, HQ, forged)
    assert ack.status is Status.REJECTED and "records its user pam as approved_by" in ack.reason
    # the move alone records its user
    (ack,) = push(server, HQ, by("pam", HQ, "purchase_order", po, {"status": "first_approved"}))
    assert ack.status is Status.ACCEPTED and ack.row is not None
    assert ack.row.fields["approved_by"] == "pam"
    made = by("bob", HQ, "purchase_order", key(311), {
        "site": "S1", "supplier": "Oatly", "total": 1, "status": "draft", "approved_by": "pam"})
    (ack,) = push(server, HQ, made)
    assert ack.status is Status.REJECTED and "not set at creation" in ack.reason


def test_an_approved_order_is_frozen_but_still_received() -> None:
    server = staffed()
    (ack,) = push(server, HQ, by("pam", HQ, "purchase_order", PO, {"status": "approved"}))
    assert ack.status is Status.ACCEPTED
    for fields in ({"total": 99_999_999}, {"supplier": "Evil Ltd"}):
        (ack,) = push(server, HQ, by("bob", HQ, "purchase_order", PO, fields))
        assert ack.status is Status.REJECTED and "changes only while draft" in ack.reason
    (ack,) = push(server, S1_TILL1, by("cash1", S1_TILL1, "purchase_order", PO,
                                       {"status": "received"}))
    assert ack.status is Status.ACCEPTED


def test_every_state_machine_freezes_or_records_what_it_should() -> None:
    machines = {e.name: e.machine for e in SCHEMA.entities if e.machine is not None}
    assert set(machines) == {"purchase_order", "transfer", "purchase_suggestion", "ticket",
                             "stock_exception"}
    assert all(m.editable_in is not None for m in machines.values())
    assert SCHEMA["purchase_order"].recorded == {"approved_by"}
    assert SCHEMA["stock_exception"].recorded == {"resolved_by"}


def test_a_closed_ticket_keeps_its_text() -> None:
    server = staffed()
    t = key(320)
    made = op(S1_TILL1, "ticket", t, {"site": "S1", "kind": "complaint", "text": "cold",
                                      "status": "open"})
    assert push(server, S1_TILL1, made)[0].status == "accepted"
    assert push(server, S1_TILL1, op(S1_TILL1, "ticket", t, {"status": "closed"}))[0].status \
        == "accepted"
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "ticket", t, {"text": "all fine"}))
    assert ack.status is Status.REJECTED and "changes only while open or in_progress" in (
        ack.reason)


# 2. transfers


def test_only_the_receiving_site_receives_a_transfer() -> None:
    server = staffed()
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "transfer", TRANSFER,
                                       {"status": "received", "qty_received": 2}))
    assert ack.status is Status.REJECTED and ack.policy == "scope"
    assert "moved to received by its to_site S2" in ack.reason
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "transfer", TRANSFER, {"qty_received": 2}))
    assert ack.status is Status.REJECTED and "does not change once made" in ack.reason
    (ack,) = push(server, S2_TILL1, op(S2_TILL1, "transfer", TRANSFER, {"qty": 200}))
    assert ack.status is Status.REJECTED  # the receiver does not rewrite what was shipped
    (ack,) = push(server, S2_TILL1, op(S2_TILL1, "transfer", TRANSFER,
                                       {"status": "received", "qty_received": 2}))
    assert ack.status is Status.ACCEPTED


def test_hq_may_receive_a_transfer_for_a_site() -> None:
    server = staffed()
    (ack,) = push(server, HQ, op(HQ, "transfer", TRANSFER,
                                 {"status": "received", "qty_received": 1}))
    assert ack.status is Status.ACCEPTED


def test_a_store_cannot_draw_a_transfer_on_another_store() -> None:
    server = staffed()
    drawn = op(S1_TILL1, "transfer", key(410), {"from_site": "S2", "to_site": "S1",
                                                "product_id": PRODUCT, "qty": 50,
                                                "status": "shipped"})
    (ack,) = push(server, S1_TILL1, drawn)
    assert ack.status is Status.REJECTED and ack.policy == "scope"
    assert "made by its from_site S2, not by site S1" in ack.reason
    hq_made = op(HQ, "transfer", key(411), {"from_site": "S2", "to_site": "S1",
                                            "product_id": PRODUCT, "qty": 5,
                                            "status": "shipped"})
    assert push(server, HQ, hq_made)[0].status == "accepted"


def test_the_edge_refuses_to_receive_its_own_shipment_locally() -> None:
    server = staffed()
    s1 = Device(S1_TILL1, server)
    s1.sync()
    with pytest.raises(LocalRejected, match="by its to_site S2"):
        s1.write("transfer", TRANSFER, {"status": "received", "qty_received": 2})
