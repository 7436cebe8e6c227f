"""What a device keeps of the ops HQ acknowledged, and ``Edge.rejoin``, which
starts over with an HQ restored from an older backup. The whole story, with a
real server, a real backup and four devices, is in ``test_daemon_live``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from client.edge import Edge
from client.store import KEEP_SENT_DAYS
from sync.messages import Ack, Row, Status
from tests.sync.kit import CUSTOMER, PRODUCT, key

DAY_MS = 86_400_000


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    e = Edge(tmp_path / "till.db")
    e.configure("ws://127.0.0.1:1/sync", "s1-till1", "S1", "bl_token")
    yield e
    e.close()


def _sell(edge: Edge, n: int, group: str = "") -> str:
    return edge.write("stock_movement", key(n), {"site": "S1", "product_id": PRODUCT,
                                                 "qty": -1, "reason": "sale"}, group=group).op_id


def _ack(edge: Edge, *op_ids: str) -> None:
    with edge.transaction():
        for op_id in op_ids:
            edge.replica.on_ack(Ack(op_id, Status.ACCEPTED), 2_000)


def _acked_at(edge: Edge, ms: int, *op_ids: str) -> None:
    with edge.transaction():
        edge.conn.executemany("UPDATE _sent SET acked_ms = ? WHERE op_id = ?",
                              [(ms, op_id) for op_id in op_ids])


def _kept(edge: Edge) -> list[str]:
    return [op_id for (op_id,) in edge.conn.execute("SELECT op_id FROM _sent ORDER BY pos")]


def test_acked_ops_are_kept_for_a_while_and_a_transaction_is_forgotten_whole(
        edge: Edge) -> None:
    old, split_a, split_b, recent = (_sell(edge, 1), _sell(edge, 2, "t1"),
                                     _sell(edge, 3, "t1"), _sell(edge, 4))
    _ack(edge, old, split_a, split_b, recent)
    assert edge.pending() == [] and _kept(edge) == [old, split_a, split_b, recent]
    cut = 100 * DAY_MS
    _acked_at(edge, cut - KEEP_SENT_DAYS * DAY_MS - 1, old, split_a)  # t1 acked across the cut
    _acked_at(edge, cut, split_b, recent)
    with edge.transaction() as store:
        assert store.forget_sent(cut) == 1
    assert _kept(edge) == [split_a, split_b, recent]
    _acked_at(edge, cut - 1, split_b)
    with edge.transaction() as store:
        assert store.forget_sent(cut) == 2
    assert _kept(edge) == [recent]


def test_rejoin_queues_the_acked_ops_again_ahead_of_pending_and_drops_hqs_rows(
        edge: Edge) -> None:
    with edge.transaction():  # rows HQ sent: a product, a customer, a receipt of stock
        edge.replica.on_rows([
            Row("product", PRODUCT, 1, {"sku": "OAT-1", "name": "Oat milk", "price": 199}),
            Row("customer", CUSTOMER, 3, {"name": "Ada", "phone": "111"}),
            Row("stock_movement", key(99), 1, {"site": "S1", "product_id": PRODUCT,
                                               "qty": 10, "reason": "receipt"}),
        ], 1_000)
    first, second = _sell(edge, 1), _sell(edge, 2)
    _ack(edge, first, second)
    later = _sell(edge, 3)  # made since, not yet pushed
    assert edge.stock("S1", PRODUCT) == 7
    with edge.transaction() as store:
        store.set_state("cursor", "41")
        store.set_state("acked", second)
        store.set_state("bootstrapped", "1")
        store.set_state("refused", "1 HQ refused this device (diverged): ...")

    again, oldest = edge.rejoin()

    assert again == 2 and oldest is not None
    assert [op.op_id for op in edge.pending()] == [first, second, later]
    assert _kept(edge) == []
    assert edge.get("product", PRODUCT) is None and edge.get("customer", CUSTOMER) is None
    assert edge.get("stock_movement", key(1)) is not None  # its own sales it still shows
    assert edge.stock("S1", PRODUCT) == -3 and edge.stock_mismatches() == []
    status = edge.status()
    assert (status.cursor, status.bootstrapped, status.refused) == (0, False, None)
    assert edge.store.get_state("acked") is None and edge.setting("device") == "s1-till1"
