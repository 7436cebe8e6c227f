"""Real processes on loopback: one server (SQLite or PostgreSQL) and edge CLIs."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from client.edge import Edge

from .procs import BIN, EdgeProc, ServerProc, wait_for

pytestmark = pytest.mark.e2e

PRODUCT = str(uuid.UUID(int=1))
CUSTOMER = str(uuid.UUID(int=2))


def _k() -> str:
    return str(uuid.uuid4())


@contextmanager
def server_db(url: str) -> Iterator[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _seed(hq: EdgeProc) -> None:
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=199)
    hq.put("customer", CUSTOMER, name="Ada", phone="111")
    for site in ("S1", "S2"):
        hq.put("stock_movement", _k(), site=site, product_id=PRODUCT, qty=10, reason="receipt")
    hq.sync()


def _stock(edge: EdgeProc, site: str) -> int:
    rows = edge.query("SELECT qty FROM stock_on_hand WHERE site = ? AND product_id = ?",
                      site, PRODUCT)
    ledger = edge.query("SELECT COALESCE(SUM(qty), 0) FROM stock_movement WHERE site = ? "
                        "AND product_id = ?", site, PRODUCT)[0][0]
    cached = rows[0][0] if rows else 0
    assert cached == ledger, f"{edge.device}: stock cache {cached} != ledger {ledger}"
    return int(cached)


def test_two_stores_edit_offline_reconnect_and_converge(edges: dict[str, EdgeProc]) -> None:
    hq, till1, till2, s2 = edges["hq-pc"], edges["s1-till1"], edges["s1-till2"], edges["s2-till1"]
    _seed(hq)
    for e in (till1, till2, s2):
        e.sync()
    # the uplink is down: nobody syncs while the tills sell and edit
    till1.put("stock_movement", _k(), site="S1", product_id=PRODUCT, qty=-3, reason="sale")
    till2.put("stock_movement", _k(), site="S1", product_id=PRODUCT, qty=-1, reason="sale")
    till1.put("customer", CUSTOMER, phone="222")
    s2.put("customer", CUSTOMER, email="ada@example.org")
    assert (_stock(till1, "S1"), _stock(till2, "S1")) == (7, 9)
    for e in (till1, till2, s2, hq, till1, till2, s2):
        e.sync()
    assert [_stock(e, "S1") for e in (till1, till2, hq)] == [6, 6, 6]
    customers = {e.device: e.query("SELECT name, phone, email, _version FROM customer")
                 for e in (hq, till1, till2, s2)}
    assert len({tuple(v) for v in customers.values()}) == 1, customers
    assert customers["hq-pc"][0][:3] == ("Ada", "222", "ada@example.org")
    # store S2 never receives store S1's sales
    assert s2.query("SELECT DISTINCT site FROM stock_movement") == [("S2",)]


def test_server_killed_mid_push_loses_no_acked_op_and_applies_none_twice(
    server: ServerProc, edges: dict[str, EdgeProc], db_url: str
) -> None:
    till = edges["s1-till1"]
    till.sync()
    edge = Edge(till.db)
    n = 6000
    try:
        with edge.transaction():
            for _ in range(n):
                edge.replica.write("stock_movement", _k(), {"site": "S1", "product_id": PRODUCT,
                                   "qty": -1, "reason": "sale"}, "clerk", int(time.time() * 1000))
        all_ops = {op.op_id for op in edge.pending()}
    finally:
        edge.close()
    assert len(all_ops) == n
    syncing = subprocess.Popen([str(BIN / "branchline-edge"), "--db", str(till.db), "sync"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: till.pending() < n - 500, 60, "the first acks")
    server.kill9()
    syncing.wait(30)
    still_pending = {r[0] for r in till.query("SELECT op_id FROM _outbox")}
    acked = all_ops - still_pending
    assert 0 < len(acked) < n, "the kill must land in the middle of the push"
    with server_db(db_url) as conn:
        stored = {r[0] for r in conn.execute(text("SELECT op_id FROM audit"))}  # type: ignore[attr-defined]
    assert acked <= stored, f"{len(acked - stored)} acknowledged ops were lost"
    server.start()
    till.sync()
    assert till.pending() == 0
    with server_db(db_url) as conn:
        twice = conn.execute(text(  # type: ignore[attr-defined]
            "SELECT op_id FROM audit GROUP BY op_id HAVING count(*) > 1")).fetchall()
        sales = conn.execute(text(  # type: ignore[attr-defined]
            "SELECT count(*), SUM(qty) FROM stock_movement WHERE site = 'S1'")).one()
    assert twice == []
    assert tuple(sales) == (n, -n)


def test_client_killed_between_local_commit_and_push(
    server: ServerProc, edges: dict[str, EdgeProc], db_url: str
) -> None:
    till, hq = edges["s1-till1"], edges["hq-pc"]
    till.sync()
    till.start_daemon()
    wait_for(lambda: server.health()["connected"] >= 1, 10, "the daemon to connect")
    till.stop_daemon(signal.SIGKILL)
    key = _k()
    till.put("customer", key, name="Written while the daemon was dead")  # committed locally
    assert till.pending() == 1
    till.start_daemon()
    wait_for(lambda: till.pending() == 0, 15, "the restarted daemon to push the op")
    hq.sync()
    assert hq.query("SELECT name FROM customer WHERE id = ?", key) == [
        ("Written while the daemon was dead",)]


def test_live_changes_reach_another_store_within_a_second(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    s1, s2, hq = edges["s1-till1"], edges["s2-till1"], edges["hq-pc"]
    _seed(hq)
    for e in (s1, s2):
        e.sync()
        e.start_daemon()
    wait_for(lambda: server.health()["connected"] >= 2, 10, "both daemons to connect")
    time.sleep(0.3)
    delays = []
    for i in range(3):
        phone = f"live-{i}"
        s1.put("customer", CUSTOMER, phone=phone)
        delays.append(wait_for(
            lambda p=phone: s2.query("SELECT phone FROM customer WHERE id = ?", CUSTOMER)  # type: ignore[misc]
            == [(p,)], 5, "the change at store S2", step=0.005))
    assert max(delays) < 1.0, delays
