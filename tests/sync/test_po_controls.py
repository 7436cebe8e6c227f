"""Two controls on purchase orders: an order is approved by what its lines
come to, as HQ holds them, never by a total typed over them; and whoever
drafted an order does not approve it (segregation of duties)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schema import SCHEMA
from schema.procurement import approval
from schema.retail import SECOND_APPROVAL_ABOVE
from sync.memory import MemoryServerStore
from sync.messages import Status
from sync.replica import LocalRejected
from sync.server import apply_ops

from .kit import (
    HQ,
    PO,
    PRODUCT,
    S1_TILL1,
    Device,
    big_po,
    by,
    derive,
    hire,
    key,
    order,
    push,
    staffed,
)

DRAFTED = "you drafted this purchase order; another approver must approve it"
BIG = SECOND_APPROVAL_ABOVE + 1


def _order(server: MemoryServerStore, po: str) -> dict[str, Any]:
    row = server.load("purchase_order", po)
    assert row is not None
    return row.fields


def _approve(server: MemoryServerStore, user: str, po: str) -> tuple[Status, str, str]:
    """``user`` approves ``po`` at HQ as the console and REST do (``approval``):
    the ack's status and reason, and the order's status after."""
    change = approval(_order(server, po), user, SECOND_APPROVAL_ABOVE)
    (ack,) = push(server, HQ, by(user, HQ, "purchase_order", po, change))
    return ack.status, ack.reason, _order(server, po)["status"]


# 1. the total is what the lines come to


def test_a_large_order_typed_small_needs_two_approvers_all_the_same() -> None:
    """A store's buyer types 1.00 over a line of 6,000.00 (an old or a
    tampered till): HQ takes the order, refuses to approve the typed figure,
    works the total out from the line, and then two people must approve."""
    server = staffed()
    hire(server, "buy1", "buyer", "S1")
    po = key(330)
    acks = apply_ops(SCHEMA, server, S1_TILL1,
                     order(S1_TILL1, "buy1", po, "S1", [(1, 600_000)], total=100))
    assert [a.status for a in acks] == [Status.ACCEPTED] * 2, [a.reason for a in acks]
    status, reason, now = _approve(server, "pam", po)
    assert (status, now) == (Status.REJECTED, "draft")
    assert reason.endswith("has total 100, but the 1 po_line rows HQ holds come to 600000; "
                           "HQ brings its total to them, then it can be approved")
    assert derive(server, po) is not None
    assert _order(server, po)["total"] == 600_000
    (alone,) = push(server, HQ, by("pam", HQ, "purchase_order", po, {"status": "approved"}))
    assert alone.status is Status.REJECTED and "it needs a second approval" in alone.reason
    assert _approve(server, "pam", po)[::2] == (Status.ACCEPTED, "first_approved")
    assert _approve(server, "pat", po)[::2] == (Status.ACCEPTED, "approved")


def test_lines_that_would_take_an_order_past_what_its_total_holds_are_refused() -> None:
    """Each line is within bounds but their sum would not be: the line that
    would take it past is refused, with the order's total still one HQ can
    write (in one group, or line by line)."""
    server = staffed()
    hire(server, "buy1", "buyer", "S1")
    half = (1000, 10**12)  # 10^15 each: as much as one line may be
    acks = apply_ops(SCHEMA, server, S1_TILL1,
                     order(S1_TILL1, "buy1", key(340), "S1", [half, half], total=5))
    assert {a.status for a in acks} == {Status.REJECTED}
    assert "would come to 2,000,000,000,000,000, beyond the 1,000,000,000,000,000" in (
        acks[2].reason)
    acks = apply_ops(SCHEMA, server, S1_TILL1,
                     order(S1_TILL1, "buy1", key(350), "S1", [half]))
    assert {a.status for a in acks} == {Status.ACCEPTED}
    (more,) = push(server, S1_TILL1, by("buy1", S1_TILL1, "po_line", key(359), {
        "po_id": key(350), "site": "S1", "product_id": PRODUCT, "qty": 1, "unit_cost": 1}))
    assert more.status is Status.REJECTED and "would come to" in more.reason
    assert derive(server, key(350)) is None  # its total is its one line's, and stays so
    assert _order(server, key(350))["total"] == 10**15


def test_an_order_with_no_lines_is_not_approved() -> None:
    server = staffed()
    po = key(331)
    made = by("bob", HQ, "purchase_order", po, {"site": "S1", "supplier": "Oatly",
                                                "status": "draft"})
    assert push(server, HQ, made)[0].status is Status.ACCEPTED
    derived = derive(server, po)  # no lines: HQ shows 0
    assert derived is not None and derived.row is not None and derived.row.fields["total"] == 0
    status, reason, now = _approve(server, "pam", po)
    assert (status, now) == (Status.REJECTED, "draft")
    assert "has no po_line rows at HQ: there is nothing to approve" in reason


def test_lines_before_their_order_in_one_group_make_its_total() -> None:
    server = staffed()
    po = key(332)
    made = order(HQ, "bob", po, "S1", [(2, 300), (5, 40)])
    made = [*made[1:], made[0]]  # the lines first, as a device may send them
    assert [a.status for a in apply_ops(SCHEMA, server, HQ, made)] == [Status.ACCEPTED] * 3
    assert derive(server, po) is None  # the order carried what its lines come to
    assert _approve(server, "pam", po)[::2] == (Status.ACCEPTED, "approved")


def test_an_approval_sent_with_a_new_total_or_line_is_judged_on_the_lines() -> None:
    """A total typed in the approving op, or in the same business transaction,
    is judged against the lines; so is a line sent with the approval."""
    server = staffed()
    (ack,) = push(server, HQ, by("pam", HQ, "purchase_order", PO,
                                 {"status": "approved", "total": 1}))
    assert ack.status is Status.REJECTED
    assert "has total 1, but the 1 po_line rows HQ holds come to 10000" in ack.reason
    typed = by("bob", HQ, "purchase_order", PO, {"total": 1})
    approve = by("pam", HQ, "purchase_order", PO, {"status": "approved"})
    acks = apply_ops(SCHEMA, server, HQ, [msgspec.structs.replace(o, group="g1")
                                          for o in (typed, approve)])
    assert [a.status for a in acks] == [Status.REJECTED] * 2
    assert "has total 1, but the 1 po_line rows HQ holds come to 10000" in acks[0].reason
    line = by("pat", HQ, "po_line", key(309), {"po_id": PO, "site": "S1",
                                               "product_id": PRODUCT, "qty": 1,
                                               "unit_cost": 1_000_000})
    approve = by("pam", HQ, "purchase_order", PO, {"status": "approved"})
    acks = apply_ops(SCHEMA, server, HQ, [msgspec.structs.replace(o, group="g2")
                                          for o in (approve, line)])
    assert [a.status for a in acks] == [Status.REJECTED] * 2
    assert "the 2 po_line rows HQ holds come to 1010000" in acks[0].reason  # with the new one
    assert server.load("po_line", key(309)) is None
    row = server.load("purchase_order", PO)
    assert row is not None and (row.fields["status"], row.fields["total"]) == ("draft", 10_000)


def test_a_line_a_store_adds_while_hq_approves_changes_nothing_approved() -> None:
    """HQ approves on the lines it holds; a line the store added offline
    meanwhile arrives after, and is refused with why."""
    server = staffed()
    hire(server, "buy1", "buyer", "S1")
    assert _approve(server, "pam", PO)[::2] == (Status.ACCEPTED, "approved")
    late = by("buy1", S1_TILL1, "po_line", key(308), {"po_id": PO, "site": "S1",
                                                      "product_id": PRODUCT, "qty": 9,
                                                      "unit_cost": 100_000})
    (ack,) = push(server, S1_TILL1, late)
    assert ack.status is Status.REJECTED and "which is approved" in ack.reason
    assert derive(server, PO) is None
    assert _order(server, PO)["total"] == 10_000


def test_every_replica_shows_the_total_hq_worked_out() -> None:
    """A store drafts an order offline with a typed total; once HQ worked the
    total out, the store's replica shows HQ's figure, not its own."""
    server = staffed()
    hire(server, "buy1", "buyer", "S1")
    store = Device(S1_TILL1, server)
    store.sync()
    po = key(333)
    with pytest.raises(LocalRejected, match="total of purchase_order is the sum of its"):
        store.replica.write("purchase_order", PO, {"total": 1}, "buy1", 2_500)
    for o in order(S1_TILL1, "buy1", po, "S1", [(3, 700)], total=5):
        store.replica.write(o.entity, o.key, dict(o.fields), "buy1", 2_600, group=o.group)
    mine = store.store.view("purchase_order", po)
    assert mine is not None and mine.fields["total"] == 5
    store.sync(ms=4_000)
    assert derive(server, po) is not None
    store.sync(ms=5_000)
    mine = store.store.view("purchase_order", po)
    assert mine is not None and mine.fields["total"] == 2_100
    assert mine == server.load("purchase_order", po)
    assert mine.fields["drafted_by"] == "buy1"


# 2. whoever drafted an order does not approve it


def test_the_drafter_does_not_approve_a_small_order_someone_else_does() -> None:
    server = staffed()
    po = key(334)
    acks = apply_ops(SCHEMA, server, HQ, order(HQ, "pam", po, "S1", [(10, 100)]))
    assert [a.status for a in acks] == [Status.ACCEPTED] * 2
    assert _order(server, po)["drafted_by"] == "pam"
    status, reason, now = _approve(server, "pam", po)
    assert (status, reason, now) == (Status.REJECTED, DRAFTED, "draft")
    assert _approve(server, "pat", po)[::2] == (Status.ACCEPTED, "approved")


def test_the_drafter_gives_neither_approval_of_a_large_order() -> None:
    server = staffed()
    po = key(335)
    assert [a.status for a in apply_ops(SCHEMA, server, HQ, order(
        HQ, "pam", po, "S1", [(1, BIG)]))] == [Status.ACCEPTED] * 2
    assert _approve(server, "pam", po) == (Status.REJECTED, DRAFTED, "draft")
    assert _approve(server, "pat", po)[::2] == (Status.ACCEPTED, "first_approved")
    assert _approve(server, "pam", po) == (Status.REJECTED, DRAFTED, "first_approved")
    status, reason, _ = _approve(server, "pat", po)  # the first approver, again
    assert status is Status.REJECTED and "the second approval must come from someone else" in (
        reason)
    assert _approve(server, "admin", po)[::2] == (Status.ACCEPTED, "approved")


def test_a_large_order_still_takes_two_different_approvers() -> None:
    server = staffed()
    po = big_po(server)  # drafted by bob, who approves nothing
    assert _approve(server, "pam", po)[::2] == (Status.ACCEPTED, "first_approved")
    status, reason, _ = _approve(server, "pam", po)
    assert status is Status.REJECTED and "pam already approved" in reason
    assert _approve(server, "pat", po)[::2] == (Status.ACCEPTED, "approved")


def test_the_drafter_cannot_write_their_name_off_the_order() -> None:
    server = staffed()
    po = key(336)
    forged = order(HQ, "pam", po, "S1", [(1, 100)])
    forged[0] = msgspec.structs.replace(forged[0], fields={**forged[0].fields,
                                                           "drafted_by": "pat"})
    acks = apply_ops(SCHEMA, server, HQ, forged)
    assert acks[0].status is Status.REJECTED
    assert "drafted_by records the user who makes it (pam), not pat" in acks[0].reason
    apply_ops(SCHEMA, server, HQ, order(HQ, "pam", po, "S1", [(1, 100)]))
    (ack,) = push(server, HQ, by("pam", HQ, "purchase_order", po, {"drafted_by": "pat"}))
    assert ack.status is Status.REJECTED and "records who made it and never changes" in (
        ack.reason)


def test_the_edge_refuses_the_drafters_approval_at_once() -> None:
    server = staffed()
    pc = Device(HQ, server)
    pc.sync()
    po = key(337)
    for o in order(HQ, "pam", po, "S1", [(4, 250)]):
        pc.replica.write(o.entity, o.key, dict(o.fields), "pam", 2_500, group=o.group)
    with pytest.raises(LocalRejected, match=DRAFTED):
        pc.replica.write("purchase_order", po, {"status": "approved"}, "pam", 2_600)
    pc.replica.write("purchase_order", po, {"status": "approved"}, "pat", 2_700)
    pc.sync(ms=4_000)
    assert _order(server, po)["status"] == "approved"


def test_a_device_that_sends_the_drafters_approval_hears_why() -> None:
    """An edge on last month's version does not check; HQ refuses the op and
    the reason reaches the device's list of rejections."""
    server = staffed()
    pc = Device(HQ, server)
    po = key(338)
    assert [a.status for a in apply_ops(SCHEMA, server, HQ, order(
        HQ, "pam", po, "S1", [(4, 250)]))] == [Status.ACCEPTED] * 2
    pc.sync()
    pc.store.add_outbox(by("pam", HQ, "purchase_order", po, {"status": "approved"}, ms=2_500))
    pc.sync(ms=4_000)
    assert [reason for _, reason in pc.store.rejections] == [DRAFTED]
    assert _order(server, po)["status"] == "draft"
