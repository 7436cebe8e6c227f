"""Tills whose clocks are wrong. A fast clock must not win every
last-writer-wins race for as long as it is ahead (nor after it is set
right); a slow clock must not lose every one. HQ's clock is the reference:
HQ dates an edit stamped too far ahead of it by its arrival
(``hlc.Restamp``), and a device trusts HQ's stamps up to HQ's time."""

from __future__ import annotations

from sync.hlc import MAX_AHEAD_MS, Restamp, Stamp

from .kit import CUSTOMER, S1_TILL1, S2_TILL1, Device, key, seeded_server

T = 40 * 86_400_000  # HQ's clock at the start of each story
DAY = 86_400_000


def _phone_at_hq(device: Device) -> tuple[object, str]:
    row = device.server.load("customer", CUSTOMER)
    assert row is not None
    return row.fields["phone"], row.meta["phone"][0]


def test_a_stamp_far_ahead_of_hqs_clock_is_replaced_in_order_and_others_kept() -> None:
    r = Restamp("s1-till1")
    near = Stamp(T + MAX_AHEAD_MS, 7, "s1-till1").encode()
    assert r.bound(near, T) is None  # within the bound: taken as it comes
    assert r.bound("not-a-stamp", T) is None  # validation refuses it, not the bound
    far = Stamp(T + 3 * DAY, 0, "s1-till1").encode()
    first, second = r.bound(far, T), r.bound(far, T)
    assert first is not None and second is not None
    assert Stamp.decode(first) == Stamp(T, 0, "s1-till1") < Stamp.decode(second)
    assert Stamp.decode(r.bound(far, T + 5) or "") == Stamp(T + 5, 0, "s1-till1")


def test_a_till_days_ahead_does_not_beat_a_later_edit_elsewhere() -> None:
    server = seeded_server()
    fast, honest = Device(S1_TILL1, server), Device(S2_TILL1, server)
    fast.sync(T + 3 * DAY, hq_ms=T)
    honest.sync(T, hq_ms=T)
    fast.write("customer", CUSTOMER, {"phone": "AHEAD-1"}, ms=T + 3 * DAY + 1)
    fast.write("customer", CUSTOMER, {"phone": "AHEAD-2"}, ms=T + 3 * DAY + 2)
    made = fast.write("stock_movement", key(900), {"site": "S1", "product_id": key(100),
                                                   "qty": -1, "reason": "sale"},
                      ms=T + 3 * DAY + 3)
    fast.sync(T + 3 * DAY + 10, hq_ms=T + 10)

    phone, stamp = _phone_at_hq(fast)
    assert phone == "AHEAD-2"  # one device's edits still follow each other
    assert Stamp.decode(stamp).ms == T + 10  # dated by its arrival at HQ
    audit = {a.op_id: a for a, _ in server.audit}
    assert audit[made.op_id].status == "accepted"
    assert "3 days ahead of HQ's" in audit[made.op_id].reason
    base = fast.store.base("stock_movement", key(900))  # the till took HQ's stamp too
    assert base is not None and Stamp.decode(base.meta["qty"][0]).ms == T + 10

    honest.write("customer", CUSTOMER, {"phone": "LATER"}, ms=T + 60_000)
    honest.sync(T + 61_000, hq_ms=T + 61_000)
    assert _phone_at_hq(honest)[0] == "LATER"  # a minute later wins, 3 days early or not
    fast.sync(T + 3 * DAY + 62_000, hq_ms=T + 62_000)
    view = fast.replica.store.view("customer", CUSTOMER)
    assert view is not None and view.fields["phone"] == "LATER"


def test_a_till_days_behind_wins_with_an_edit_made_after_one_it_received() -> None:
    server = seeded_server()
    slow, honest = Device(S2_TILL1, server), Device(S1_TILL1, server)
    slow.sync(T - 2 * DAY, hq_ms=T)
    honest.sync(T, hq_ms=T)
    honest.write("customer", CUSTOMER, {"phone": "FIRST"}, ms=T + 1_000)
    honest.sync(T + 1_500, hq_ms=T + 1_500)
    slow.sync(T - 2 * DAY + 2_000, hq_ms=T + 2_000)  # it receives FIRST, two days "ahead"
    slow.write("customer", CUSTOMER, {"phone": "SECOND-LATER"}, ms=T - 2 * DAY + 3_000)
    slow.sync(T - 2 * DAY + 4_000, hq_ms=T + 4_000)
    assert _phone_at_hq(slow)[0] == "SECOND-LATER"
    assert slow.replica.hq_ahead == 2 * DAY
