"""Bad ops and bad frames get a typed rejection with a reason, never an exception
that escapes and never a partial change."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schema import SCHEMA
from sync.messages import (
    MAX_MESSAGE_BYTES,
    Error,
    ErrorCode,
    Hello,
    Op,
    ProtocolError,
    Push,
    Status,
    decode_client,
    encode,
)
from sync.server import check_hello

from .kit import CUSTOMER, HQ, PRODUCT, S1_TILL1, key, op, push, seeded_server


def _replace(o: Op, **changes: Any) -> Op:
    return msgspec.structs.replace(o, **changes)


GOOD = op(S1_TILL1, "customer", key(7), {"name": "Bob", "phone": "1"})


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (_replace(GOOD, entity="spaceship"), "unknown entity 'spaceship'"),
        (_replace(GOOD, fields={"name": "Bob", "shoe_size": 44}), "customer has no field 'shoe_size'"),
        (_replace(GOOD, fields={"name": 42}), "field 'name' must be text, got int"),
        (_replace(GOOD, fields={"phone": "1"}), "cannot be created without name"),
        (_replace(GOOD, key="42"), "key must be a lower-case UUID"),
        (_replace(GOOD, key=""), "key must be a lower-case UUID"),
        (_replace(GOOD, key=key(7) + "\n"), "key must be a lower-case UUID"),  # not "a UUID, then more"
        (_replace(GOOD, schema_version=0), "schema version 0"),
        (_replace(GOOD, schema_version=SCHEMA.version + 1), f"schema version {SCHEMA.version + 1}"),
        (_replace(GOOD, hlc="yesterday"), "not an HLC timestamp"),
        (_replace(GOOD, device="s2-till1"), "claims device 's2-till1'"),
        (_replace(GOOD, fields={"name": "x" * 5000}), "longer than"),
        (_replace(GOOD, fields={"name": "Bob", "credit_limit": 1.5}), "must be an integer"),
        (_replace(GOOD, fields={"name": "Bob", "credit_limit": True}), "must be an integer"),
        (op(S1_TILL1, "stock_movement", key(8), {"site": "S1", "product_id": "p", "qty": 1,
                                                 "reason": "sale"}), "must be a lower-case UUID"),
        (op(S1_TILL1, "customer", CUSTOMER, {"name": None}), "field 'name' is required"),
    ],
)
def test_bad_op_is_rejected_with_reason_and_nothing_changes(bad: Op, reason: str) -> None:
    server = seeded_server()
    rows_before = dict(server.rows)
    head = server.head()
    (ack,) = push(server, S1_TILL1, bad)
    assert ack.status is Status.REJECTED
    assert reason in ack.reason
    assert server.rows == rows_before and server.head() == head
    assert server.audit[-1][0].op_id == bad.op_id  # the rejection is audited


def _move(**fields: Any) -> dict[str, Any]:
    return {"site": "S1", "product_id": PRODUCT, "qty": -1, "reason": "sale", **fields}


@pytest.mark.parametrize(
    ("actor", "entity", "fields", "reason"),
    [
        (S1_TILL1, "stock_movement", _move(qty=0), "field 'qty' cannot be 0"),
        (S1_TILL1, "stock_movement", _move(unit_cost=-5), "'unit_cost' must be at least 0"),
        # a movement's value (qty x unit cost) must fit the 64-bit stock value sums
        (S1_TILL1, "stock_movement", _move(qty=-(2**40)), "'qty' must be at least -1000000000"),
        (S1_TILL1, "stock_movement", _move(qty=2**40, reason="receipt"),
         "'qty' must be at most 1000000000"),
        (S1_TILL1, "stock_movement", _move(unit_cost=2**41), "'unit_cost' must be at most"),
        (S1_TILL1, "stock_movement", _move(qty=-(10**6), unit_cost=10**10),
         "qty x unit_cost is beyond 1,000,000,000,000,000"),
        (S1_TILL1, "journal_line", {"entry_id": key(9), "site": "S1", "account": "1000",
                                    "debit": 2**61, "credit": 0, "memo": "m",
                                    "date": "2026-11-23"},
         "'debit' is beyond 1,000,000,000,000,000 minor units"),
        (S1_TILL1, "transfer", {"from_site": "S1", "to_site": "S2", "product_id": PRODUCT,
                                "qty": -3, "status": "shipped"}, "'qty' must be at least 1"),
        (S1_TILL1, "transfer", {"from_site": "S1", "to_site": "S1", "product_id": PRODUCT,
                                "qty": 3, "status": "shipped"},
         "from_site and to_site must differ"),
        (S1_TILL1, "stock_count", {"site": "S1", "product_id": PRODUCT, "counted": -2,
                                   "expected": 4, "counted_by": "u", "date": "2026-11-23"},
         "'counted' must be at least 0"),
        (S1_TILL1, "stock_count", {"site": "S1", "product_id": PRODUCT, "counted": 2,
                                   "expected": 4, "counted_by": "u", "date": "2026-11-23\n"},
         "'date' must be a date yyyy-mm-dd"),
        (S1_TILL1, "journal_line", {"entry_id": key(9), "site": "S1", "account": "1000",
                                    "debit": -100, "credit": 0, "memo": "m",
                                    "date": "2026-11-23"}, "'debit' must be at least 0"),
        (S1_TILL1, "ticket", {"site": "S1", "kind": "praise", "text": "t", "status": "open"},
         "'kind' must be one of return, complaint, got 'praise'"),
        (HQ, "product", {"sku": "X-1", "name": "X", "price": -250}, "'price' must be at least 0"),
        (HQ, "product", {"sku": "X-1", "name": "X", "price": 250, "tax_rate": 20_000},
         "'tax_rate' must be at most 10000"),
        (HQ, "site", {"code": "S9", "name": "Mall", "kind": "mall"},
         "'kind' must be one of hq, store, warehouse, transit"),
    ],
)
def test_a_value_that_slipped_past_the_edge_is_refused_by_the_server(
    actor: Any, entity: str, fields: dict[str, Any], reason: str
) -> None:
    server = seeded_server()
    rows_before, head = dict(server.rows), server.head()
    bad = op(actor, entity, key(77), fields)
    (ack,) = push(server, actor, bad)
    assert ack.status is Status.REJECTED and reason in ack.reason, ack.reason
    assert server.rows == rows_before and server.head() == head


def test_expensive_goods_move_at_their_cost_within_the_bounds() -> None:
    """A product may cost up to what HQ accepts (10^12 minor units): a till
    sells it, and a receipt of many units still fits the movement's bound."""
    server = seeded_server()
    (sale,) = push(server, S1_TILL1, op(S1_TILL1, "stock_movement", key(78),
                                         _move(qty=-2, unit_cost=5 * 10**11)))
    (receipt,) = push(server, S1_TILL1, op(S1_TILL1, "stock_movement", key(79),
                                            _move(qty=1_000, unit_cost=10**12, reason="receipt")))
    assert (sale.status, receipt.status) == (Status.ACCEPTED, Status.ACCEPTED)


def test_bad_op_in_a_batch_does_not_stop_the_good_ones() -> None:
    server = seeded_server()
    bad = _replace(GOOD, op_id="bad", entity="spaceship")
    good = op(S1_TILL1, "customer", key(8), {"name": "Eve"})
    acks = push(server, S1_TILL1, bad, good)
    assert [a.status for a in acks] == ["rejected", "accepted"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", ErrorCode.BAD_MESSAGE),
        (b"\xc1garbage", ErrorCode.BAD_MESSAGE),
        (msgspec.msgpack.encode({"type": "Launch"}), ErrorCode.BAD_MESSAGE),
        (msgspec.msgpack.encode({"type": "Push", "batch": "one", "ops": []}), ErrorCode.BAD_MESSAGE),
        (msgspec.msgpack.encode({"type": "Push", "batch": 1}), ErrorCode.BAD_MESSAGE),
        (b"\x00" * (MAX_MESSAGE_BYTES + 1), ErrorCode.TOO_LARGE),
    ],
)
def test_malformed_frames_raise_a_typed_protocol_error(frame: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(frame)
    assert info.value.code is code
    err = info.value.to_error()
    assert isinstance(err, Error) and err.fatal and str(info.value) == err.message


def test_unknown_message_fields_are_ignored_for_compatibility() -> None:
    frame = msgspec.msgpack.encode({"type": "Push", "batch": 3, "ops": [], "from_the_future": 1})
    assert decode_client(frame) == Push(batch=3, ops=[])


def test_push_round_trips_through_msgpack() -> None:
    msg = Push(batch=1, ops=[GOOD])
    assert decode_client(encode(msg)) == msg


def _hello(**kw: Any) -> Hello:
    base: dict[str, Any] = {"device": "s1-till1", "site": "S1", "token": "t",
                            "schema_version": SCHEMA.version, "cursor": 0}
    return Hello(**{**base, **kw})


@pytest.mark.parametrize("field", ["device", "site", "token", "mark", "acked"])
def test_a_hello_naming_a_novel_is_a_bad_message(field: str) -> None:
    """HQ quotes what a Hello names in its refusals and keeps those for the
    IT page: a name of a megabyte is refused as malformed, never echoed."""
    huge = msgspec.msgpack.encode({"type": "Hello", **msgspec.structs.asdict(_hello()),
                                   field: "x" * 100_000})
    with pytest.raises(ProtocolError, match="malformed client message") as refused:
        decode_client(huge)
    assert refused.value.code is ErrorCode.BAD_MESSAGE and f"$.{field}" in str(refused.value)


def test_hello_checks_site_device_and_versions() -> None:
    assert check_hello(SCHEMA, _hello(), "s1-till1", "S1") is None
    forged = check_hello(SCHEMA, _hello(site="S2"), "s1-till1", "S1")
    assert forged is not None and forged.code is ErrorCode.SCOPE and "belongs to site S1" in forged.message
    other = check_hello(SCHEMA, _hello(), "s2-till1", "S1")
    assert other is not None and other.code is ErrorCode.AUTH
    old = check_hello(SCHEMA, _hello(schema_version=0), "s1-till1", "S1")
    assert old is not None and old.code is ErrorCode.SCHEMA and "upgrade" in old.message
    proto = check_hello(SCHEMA, _hello(protocol=99), "s1-till1", "S1")
    assert proto is not None and proto.code is ErrorCode.SCHEMA


def test_hq_owned_create_by_a_site_is_rejected() -> None:
    server = seeded_server()
    (ack,) = push(server, S1_TILL1, op(S1_TILL1, "product", key(77),
                                       {"sku": "X", "name": "X", "price": 1}))
    assert ack.status is Status.REJECTED and "only HQ creates it" in ack.reason
    assert server.load("product", key(77)) is None
    assert server.load("product", PRODUCT) is not None


@pytest.mark.parametrize("text", ["x\u202egnp.exe", "a\x00b", "bell\x07", "\u2066iso",
                                  "del\x7f", "\u202aembed"])
def test_control_and_bidi_override_characters_are_refused_in_text(text: str) -> None:
    server = seeded_server()
    (ack,) = push(server, HQ, op(HQ, "product", PRODUCT, {"name": text}))
    assert ack.status is Status.REJECTED and ack.policy == "validation"
    assert "holds control or bidi override character U+" in ack.reason


def test_text_with_tabs_line_breaks_accents_and_emoji_passes() -> None:
    server = seeded_server()
    (ack,) = push(server, HQ, op(HQ, "product", PRODUCT,
                                 {"description": "Crème brûlée\r\n\tdoux 🍮 שלום"}))
    assert ack.status is Status.ACCEPTED
