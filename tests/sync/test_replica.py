"""The edge: local writes, rebase on server rows, acks, bootstrap, scope."""

from __future__ import annotations

import pytest

from sync.replica import LocalRejected

from .kit import CUSTOMER, HQ, PO, PRODUCT, S1_TILL1, S1_TILL2, S2_TILL1, Device, key, seeded_server


def _on_hand(device: Device, site: str) -> int:
    return sum(
        r.fields["qty"] for (e, _), r in device.store.views.items()
        if e == "stock_movement" and r.fields["site"] == site and r.fields["product_id"] == PRODUCT
    )


def test_two_tills_sell_offline_and_every_replica_shows_six() -> None:
    server = seeded_server()
    till1, till2, hq = Device(S1_TILL1, server), Device(S1_TILL2, server), Device(HQ, server)
    for d in (till1, till2, hq):
        d.sync()
    assert _on_hand(till1, "S1") == 10
    till1.write("stock_movement", key(21), {"site": "S1", "product_id": PRODUCT, "qty": -3,
                                            "reason": "sale"})
    till2.write("stock_movement", key(22), {"site": "S1", "product_id": PRODUCT, "qty": -1,
                                            "reason": "sale"})
    assert (_on_hand(till1, "S1"), _on_hand(till2, "S1")) == (7, 9)  # offline: each sees its own
    for d in (till1, till2, hq, till1):
        d.sync()
    assert [_on_hand(d, "S1") for d in (till1, till2, hq)] == [6, 6, 6]


def test_local_write_the_server_would_reject_is_refused_and_leaves_nothing() -> None:
    server = seeded_server()
    till = Device(S1_TILL1, server)
    till.sync()
    before = (dict(till.store.views), dict(till.store.pending))
    with pytest.raises(LocalRejected, match="owned by HQ"):
        till.write("product", PRODUCT, {"price": 1})
    with pytest.raises(LocalRejected, match="cannot move to received"):
        till.write("purchase_order", PO, {"status": "received"})
    with pytest.raises(LocalRejected, match="unknown entity"):
        till.write("spaceship", key(1), {"x": 1})
    assert (dict(till.store.views), dict(till.store.pending)) == before


def test_pending_edit_is_rebased_on_a_newer_server_row() -> None:
    server = seeded_server()
    s1, s2 = Device(S1_TILL1, server), Device(S2_TILL1, server)
    s1.sync()
    s2.sync()
    s1.write("customer", CUSTOMER, {"email": "a@s1"}, ms=5_000)
    s2.write("customer", CUSTOMER, {"phone": "from-s2"}, ms=6_000)
    s2.sync()
    s1.sync()  # push email; receive phone; view = server
    view = s1.store.views[("customer", CUSTOMER)]
    assert (view.fields["email"], view.fields["phone"]) == ("a@s1", "from-s2")
    assert not s1.store.pending


def test_rejected_op_is_kept_for_the_store_manager_and_rolled_back() -> None:
    server = seeded_server()
    hq, s1 = Device(HQ, server), Device(S1_TILL1, server)
    hq.sync()
    s1.sync()
    hq.replica.write("customer", CUSTOMER, {}, "u-hq-pc", 5_000, delete=True)
    s1.write("customer", CUSTOMER, {"phone": "555"}, ms=6_000)
    assert s1.store.views[("customer", CUSTOMER)].fields["phone"] == "555"
    hq.sync()
    s1.sync()
    assert s1.store.views[("customer", CUSTOMER)].deleted
    ((op, reason),) = s1.store.rejections
    assert op.fields == {"phone": "555"} and "was deleted" in reason


def test_new_device_bootstraps_from_snapshot_then_follows_the_stream() -> None:
    server = seeded_server()
    old = Device(S1_TILL1, server)
    old.sync()
    new = Device(S1_TILL2, server)
    session = new.sync()
    assert session.snapshot_rows > 0
    assert new.store.bases == old.store.bases
    old.write("customer", key(31), {"name": "Zoe"})
    old.sync()
    new.sync()
    assert ("customer", key(31)) in new.store.views


def test_a_store_never_receives_another_stores_sales() -> None:
    server = seeded_server()
    s1, s2, hq = Device(S1_TILL1, server), Device(S2_TILL1, server), Device(HQ, server)
    s1.sync()
    s1.write("stock_movement", key(41), {"site": "S1", "product_id": PRODUCT, "qty": -1,
                                         "reason": "sale"})
    s1.sync()
    s2.sync()
    hq.sync()
    sites_seen_by_s2 = {r.fields["site"] for (e, _), r in s2.store.views.items()
                        if e == "stock_movement"}
    assert sites_seen_by_s2 == {"S2"}
    assert ("stock_movement", key(41)) in hq.store.views
    assert ("product", PRODUCT) in s2.store.views  # master data reaches every store


def test_a_late_duplicate_of_an_older_row_does_not_roll_the_replica_back() -> None:
    server = seeded_server()
    s1 = Device(S1_TILL1, server)
    s1.sync()
    old = server.load("customer", CUSTOMER)
    assert old is not None
    s1.write("customer", CUSTOMER, {"phone": "new"}, ms=9_000)
    s1.sync()
    assert s1.replica.on_row(old, 10_000) is False  # a retried frame from long ago
    assert s1.store.views[("customer", CUSTOMER)].fields["phone"] == "new"
