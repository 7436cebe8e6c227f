"""An HQ restored from an older backup no longer continues the history its
devices saw. ``ServerSession.greet`` must refuse each such device (serving it
would skip HQ's new changes at its cursor for good), whichever way the loss
shows: a cursor beyond HQ's head, another change at the device's cursor, or
no record of an op HQ acknowledged to the device."""

from __future__ import annotations

import copy

import msgspec
import pytest

from schema import SCHEMA
from sync.messages import Changes, Error, ErrorCode, Hello, Pull, Row, mark_of
from sync.server import ServerSession
from tests.sync.kit import HQ, PRODUCT, S1_TILL1, S1_TILL2, S2_TILL1, Device, Diverged, key
from tests.sync.kit import seeded_server as _seeded


def _sale(device: Device, n: int) -> None:
    device.write("stock_movement", key(9000 + n),
                 {"site": device.actor.site, "product_id": PRODUCT, "qty": -1,
                  "reason": "sale"})


def test_every_way_a_restore_shows_is_refused_and_a_continued_history_is_not() -> None:
    server = _seeded()
    s1, s2, other, hq = (Device(a, server) for a in (S1_TILL1, S2_TILL1, S1_TILL2, HQ))
    for device in (s1, s2, other, hq):
        device.sync()
    backup = copy.deepcopy(server)
    synced = (s1.replica.cursor, s1.replica.mark)
    _sale(s1, 1)
    _sale(s1, 2)
    s1.sync()
    hq.replica.write("product", PRODUCT, {"price": 249}, "u-hq-pc", 2_500)
    hq.sync()
    s2.sync()
    assert s2.store.view("product", PRODUCT).fields["price"] == 249  # type: ignore[union-attr]
    lead = max(s1.replica.cursor, s2.replica.cursor)

    for device in (s1, s2, other, hq):  # IT restores the backup
        device.server = backup
    with pytest.raises(Diverged, match=f"HQ's change sequence ends at {backup.head()}"):
        s2.sync()
    n = 10
    while other.replica.cursor <= lead:  # another till sells on, past their cursors
        _sale(other, n)
        other.sync()
        n += 1
    with pytest.raises(Diverged, match=f"HQ's change {s2.replica.cursor} is not the one"):
        s2.sync()
    with pytest.raises(Diverged):
        s1.sync()
    # S1 as the real daemon leaves it: the cursor from before its sales (a
    # sync ends at the acks, before its own changes come back), their ack kept
    acked = s1.store.get_state("acked")
    assert acked
    hello = Hello(S1_TILL1.device, "S1", "t", SCHEMA.version, synced[0], mark=synced[1],
                  acked=acked)
    lost = ServerSession(SCHEMA, S1_TILL1, synced[0]).greet(backup, hello)
    assert isinstance(lost, Error) and lost.code is ErrorCode.DIVERGED and lost.fatal
    assert f"HQ has no record of op {acked}, which it acknowledged" in lost.message
    continued = msgspec.structs.replace(hello, acked="")
    assert not isinstance(ServerSession(SCHEMA, S1_TILL1, synced[0]).greet(backup, continued),
                          Error)
    with pytest.raises(Diverged):  # HQ's own PC: its price edit was lost too
        hq.sync()
    other.sync()  # the till whose history HQ continues syncs on
    assert backup.head() > lead and all(
        c.row.fields.get("price") != 249 for c, _ in backup.log)


def test_a_device_of_an_older_release_is_checked_by_its_cursor_alone() -> None:
    server = _seeded()
    head = server.head()
    session = ServerSession(SCHEMA, S1_TILL1, head)
    hello = Hello(S1_TILL1.device, "S1", "t", SCHEMA.version, head)
    assert not isinstance(session.greet(server, hello), Error)
    beyond = ServerSession(SCHEMA, S1_TILL1, head + 1)
    refused = beyond.greet(server, Hello(S1_TILL1.device, "S1", "t", SCHEMA.version, head + 1))
    assert isinstance(refused, Error) and refused.code is ErrorCode.DIVERGED


def test_every_changes_frame_carries_the_mark_of_the_change_at_its_cursor() -> None:
    """Live or pulled, in scope or not: the cursor a device is told comes with
    the mark of HQ's change there, which is what a later Hello is checked by."""
    server = _seeded()
    s2 = ServerSession(SCHEMA, S2_TILL1, 0)
    s2.handle(server, Pull(0))
    hq, s1 = Device(HQ, server), Device(S1_TILL1, server)
    hq.sync()
    s1.sync()
    hq.replica.write("product", PRODUCT, {"price": 249}, "u-hq-pc", 2_500)
    hq.sync()
    live, _ = s2.live_run([c for c, _ in server.log], [sites for _, sites in server.log])
    assert isinstance(live, Changes) and live.cursor == server.head()
    assert live.mark == mark_of(server.log[-1][0].row) == server.mark(server.head())
    _sale(s1, 1)
    s1.sync()  # an S1 sale: outside S2's scope, yet where S2's cursor now ends
    pulled = ServerSession(SCHEMA, S2_TILL1, live.cursor).handle(server, Pull(live.cursor))[0]
    assert isinstance(pulled, Changes) and pulled.changes == []
    assert pulled.cursor == server.head() and server.log[-1][0].row.entity == "stock_movement"
    assert pulled.mark == mark_of(server.log[-1][0].row) == server.mark(server.head())


def test_a_change_made_again_by_hand_after_a_restore_has_another_mark() -> None:
    """HQ lost a price change in the restore and someone made it again, to
    another price, from another PC: same row, same version, same position,
    but another write, so the device that saw the first is not served on."""
    lost = Row("product", PRODUCT, 2, {"price": 249}, meta={"price": ("0001-a-hq-pc", 2)})
    again = Row("product", PRODUCT, 2, {"price": 259}, meta={"price": ("0002-a-hq-pc2", 2)})
    assert mark_of(lost) != mark_of(again)
    assert mark_of(lost) == mark_of(Row("product", PRODUCT, 2, {"price": 1}, meta=lost.meta))


def test_a_mark_is_only_named_for_the_cursor_it_was_kept_with() -> None:
    """An older branchline-edge sharing the file (a daemon still running
    during an upgrade) moves the cursor and keeps no mark: the mark of the
    cursor before must not be named for the new one, or HQ would refuse a
    healthy device as diverged."""
    server = _seeded()
    till = Device(S1_TILL1, server)
    till.sync()
    assert till.replica.mark == server.mark(till.replica.cursor) != ""
    hq = Device(HQ, server)
    hq.sync()
    hq.replica.write("product", PRODUCT, {"price": 249}, "u-hq-pc", 2_500)
    hq.sync()
    till.store.set_state("cursor", str(server.head()))  # the older software's pull
    assert till.replica.mark == ""
    till.sync()  # served on, checked by its cursor alone
    hq.replica.write("product", PRODUCT, {"price": 259}, "u-hq-pc", 2_600)
    hq.sync()
    till.sync()  # the next change it gets comes with its mark again
    assert till.replica.mark == server.mark(till.replica.cursor) != ""
