"""What a device keeps of the ops HQ took, and ``Edge.rejoin``, which starts
over with an HQ restored from an older backup. The whole story, with a real
server, a real backup and five devices, is in ``test_daemon_live``."""

from __future__ import annotations

from client.edge import Edge
from sync.client import ClientSession
from sync.messages import Ack, Row, SnapshotPage, Status
from tests.sync.kit import CUSTOMER, PRODUCT, key


def _sell(edge: Edge, n: int, group: str = "") -> str:
    return edge.write("stock_movement", key(n), {"site": "S1", "product_id": PRODUCT,
                                                 "qty": -1, "reason": "sale"}, group=group).op_id


def _answer(edge: Edge, ms: int, *op_ids: str, status: Status = Status.ACCEPTED) -> None:
    with edge.transaction():  # one Acks frame: every op of it answered at ``ms``
        for op_id in op_ids:
            edge.replica.on_ack(Ack(op_id, status, "no" if status is Status.REJECTED else ""),
                                ms)


def _kept(edge: Edge) -> list[str]:
    return [op_id for (op_id,) in edge.conn.execute("SELECT op_id FROM _sent ORDER BY pos")]


def _forget(edge: Edge, now_ms: int, keep_ms: int = 1_000) -> int:
    with edge.transaction() as store:
        return store.forget_sent(now_ms, keep_ms)


def test_ops_hq_took_are_kept_a_while_and_a_transaction_is_forgotten_whole(
        edge: Edge) -> None:
    old, a, b, recent = _sell(edge, 1), _sell(edge, 2, "t1"), _sell(edge, 3, "t1"), _sell(edge, 4)
    refused = edge.write("customer", key(5), {"name": "Bo"}).op_id
    _answer(edge, 1_000, old)
    _answer(edge, 2_000, a, b)  # a business transaction is answered in one frame
    _answer(edge, 3_000, recent)
    _answer(edge, 3_000, refused, status=Status.REJECTED)
    assert edge.pending() == [] and _kept(edge) == [old, a, b, recent]  # never a rejected op
    assert edge.status().kept == (4, 1_000)
    assert _forget(edge, 3_000) == 1 and _kept(edge) == [a, b, recent]
    assert _forget(edge, 3_001, 999) == 2 and _kept(edge) == [recent]
    with edge.transaction() as store:  # HQ refused the device as diverged: keep everything
        store.set_state("refused", "9 HQ refused this device (diverged): ...")
    assert _forget(edge, 10_000, 0) == 0 and _kept(edge) == [recent]


def test_a_clock_that_jumped_ahead_forgets_nothing_acked_lately(edge: Edge) -> None:
    with edge.transaction():  # HQ's clock was 8 days behind this till's at the Welcome
        edge.replica.note_hq_clock(1_000_000, 1_000_000 + 8 * DAY)
    sold = [_sell(edge, n) for n in range(1, 4)]
    _answer(edge, 1_000_000 + 8 * DAY, *sold)  # dated by HQ's clock, not the till's
    assert edge.status().kept == (3, 1_000_000)
    assert _forget(edge, 1_000_000 + 8 * DAY, 7 * DAY) == 0  # 8 days "later": kept
    assert _forget(edge, 1_000_000 + 30 * DAY, 7 * DAY) == 0  # a month: still the last ones
    later = _sell(edge, 9)
    with edge.transaction():  # 8 days on, with the till's clock set right
        edge.replica.note_hq_clock(9 * DAY, 9 * DAY)
    _answer(edge, 9 * DAY, later)
    assert _forget(edge, 9 * DAY, 7 * DAY) == 3 and _kept(edge) == [later]


DAY = 86_400_000


def _hq_rows() -> list[Row]:
    return [
        Row("product", PRODUCT, 1, {"sku": "OAT-1", "name": "Oat milk", "price": 199}),
        Row("customer", CUSTOMER, 3, {"name": "Ada", "phone": "111"}),
        Row("stock_movement", key(99), 1, {"site": "S1", "product_id": PRODUCT,
                                           "qty": 10, "reason": "receipt"}),
    ]


def test_rejoin_queues_the_ops_again_and_drops_what_hqs_new_snapshot_lacks(
        edge: Edge) -> None:
    with edge.transaction():
        edge.replica.on_rows(_hq_rows(), 1_000)
    first, second = _sell(edge, 1), _sell(edge, 2)
    phone = edge.write("customer", CUSTOMER, {"phone": "222"}).op_id
    _answer(edge, 2_000, first, second, phone)
    with edge.transaction():  # HQ's answer to the phone edit made the customer version 4
        edge.replica.on_rows([Row("customer", CUSTOMER, 4, {"name": "Ada", "phone": "222"})],
                             2_000)
    later = _sell(edge, 3)  # made since, not yet pushed
    with edge.transaction() as store:
        for name, value in (("cursor", "41"), ("cursor_mark", "41 ab"), ("acked", phone),
                            ("bootstrapped", "1"), ("refused", "1 (diverged)")):
            store.set_state(name, value)

    assert edge.rejoin()[0] == 3
    assert [op.op_id for op in edge.pending()] == [first, second, phone, later]
    assert _kept(edge) == [] and edge.status().rejoining
    status = edge.status()
    assert (status.cursor, status.bootstrapped, status.refused) == (0, False, None)
    assert edge.replica.mark == "" and edge.store.get_state("acked") is None
    # until HQ's rows are in again, the till sells on with what it had
    assert edge.get("product", PRODUCT) is not None and edge.stock("S1", PRODUCT) == 7

    # the restored HQ's snapshot: the product as it was, the customer at version 3
    # (the phone edit was lost), and no receipt of stock (lost too)
    session = ClientSession(edge.replica, "bl_token")
    restored = [_hq_rows()[0], _hq_rows()[1]]
    with edge.transaction():
        session.receive(SnapshotPage(restored[:1], at=7, done=False), 5_000)
    assert edge.get("stock_movement", key(99)) is not None  # not whole yet: nothing goes
    with edge.transaction():
        session.receive(SnapshotPage(restored[1:], at=7, done=True), 5_000)
    assert not edge.status().rejoining and edge.status().bootstrapped
    assert edge.get("stock_movement", key(99)) is None  # HQ lost it: it goes here too
    assert edge.get("stock_movement", key(1)) is not None  # its own sales stay, pending
    assert edge.stock("S1", PRODUCT) == -3 and edge.stock_mismatches() == []
    assert edge.store.base("customer", CUSTOMER).version == 3  # type: ignore[union-attr]
    assert edge.get("customer", CUSTOMER)["phone"] == "222"  # type: ignore[index]
