"""A receipt's line is made with its receipt (``schema.Parent``): HQ refuses a
line on a receipt it does not have, or on another site's receipt, so the
per-site books it feeds never count a line without its receipt."""

from __future__ import annotations

from typing import Any

import msgspec

from schema import SCHEMA
from sync.ids import short
from sync.messages import Op, Status
from sync.server import apply_ops

from .kit import HQ, PO, PRODUCT, S1_TILL1, derive, key, op, seeded_server

SALE = key(800)


def _sale(site: str = "S1") -> dict[str, Any]:
    return {"site": site, "device": "s1-till1", "receipt_no": "S1-1", "kind": "sale",
            "net": 199, "discount": 0, "tax": 0, "total": 199, "cash": 199, "card": 0,
            "on_account": 0, "cashier": "clara", "date": "2026-11-26"}


def _line(n: int, site: str = "S1", sale: str = SALE) -> dict[str, Any]:
    return {"sale_id": sale, "site": site, "line_no": n, "product_id": PRODUCT, "qty": 1,
            "price": 199, "discount": 0, "tax": 0, "cost": 120}


def _grouped(*ops: Op) -> list[Op]:
    return [msgspec.structs.replace(o, group="g-1") for o in ops]


def test_a_line_on_a_receipt_hq_does_not_have_is_refused_with_why() -> None:
    server = seeded_server()
    [ack] = apply_ops(SCHEMA, server, S1_TILL1, [op(S1_TILL1, "sale_line", key(801), _line(1))])
    assert ack.status is Status.REJECTED and ack.policy == "validation"
    assert f"belongs to sale {short(SALE)}, which HQ does not have" in ack.reason
    assert server.load("sale_line", key(801)) is None


def test_a_receipt_with_its_lines_in_any_order_and_a_line_added_later_are_taken() -> None:
    server = seeded_server()
    line, receipt = (op(S1_TILL1, "sale_line", key(801), _line(1)),
                     op(S1_TILL1, "sale", SALE, _sale()))
    acks = apply_ops(SCHEMA, server, S1_TILL1, _grouped(line, receipt))  # the line first
    assert [a.status for a in acks] == [Status.ACCEPTED] * 2, [a.reason for a in acks]
    [later] = apply_ops(SCHEMA, server, S1_TILL1, [op(S1_TILL1, "sale_line", key(802),
                                                      _line(2))])
    assert later.status is Status.ACCEPTED


def test_a_line_at_another_site_than_its_receipt_rejects_the_whole_sale() -> None:
    """HQ may write any site, but not a receipt at S1 whose line counts at S2."""
    server = seeded_server()
    acks = apply_ops(SCHEMA, server, HQ, _grouped(op(HQ, "sale", SALE, _sale("S1")),
                                                  op(HQ, "sale_line", key(801), _line(1, "S2"))))
    assert [a.status for a in acks] == [Status.REJECTED] * 2
    assert f"must have the site of its sale {short(SALE)} (S1)" in acks[1].reason
    assert acks[0].reason.startswith("transaction g-1 rejected: sale_line")
    assert server.load("sale", SALE) is None and server.load("sale_line", key(801)) is None


def _po_line(n: int, qty: int = 1) -> dict[str, Any]:
    return {"po_id": PO, "site": "S1", "product_id": PRODUCT, "qty": qty, "unit_cost": 100}


def test_an_order_takes_lines_while_a_draft_and_none_once_approved() -> None:
    """An approved purchase order is what its approvers saw: a line added
    after (100,000 units at 1.00) would be ordered, received and paid
    without anybody approving it."""
    server = seeded_server()  # the PO is a draft of S1's
    [draft] = apply_ops(SCHEMA, server, HQ, [op(HQ, "po_line", key(901), _po_line(1))])
    assert draft.status is Status.ACCEPTED, draft.reason
    derived = derive(server, PO)  # HQ's server: the total follows the new line
    assert derived is not None and derived.row is not None
    assert derived.row.fields["total"] == 10_100
    [ok] = apply_ops(SCHEMA, server, HQ, [op(HQ, "purchase_order", PO, {"status": "approved"},
                                             base=1)])
    assert ok.status is Status.ACCEPTED, ok.reason
    [late] = apply_ops(SCHEMA, server, HQ, [op(HQ, "po_line", key(902), _po_line(2, 100_000))])
    assert late.status is Status.REJECTED
    assert "which is approved: its po_line rows are made only while it is draft" in late.reason
    assert server.load("po_line", key(902)) is None
