"""HQ operations over REST with API tokens: the same roles, the same sync path."""

from __future__ import annotations

import datetime
import json
import subprocess
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.pg import fresh_database

from .procs import BIN, EdgeProc, ServerProc, wait_for

pytestmark = pytest.mark.e2e


def _token(server: ServerProc, login: str, role: str) -> str:
    out = subprocess.run([str(BIN / "branchline"), "user", "add", "--db", server.db_url,
                          "--login", login, "--role", role, "--site", "HQ", "--api-token"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return out.strip().splitlines()[-1].split()[-1]


def _call(server: ServerProc, path: str, body: Any = None, token: str | None = None,
          method: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}",
        method=method or ("POST" if body is not None else "GET"),
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json",
                 **({"authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_master_data_and_approvals_over_rest(server: ServerProc,
                                             edges: dict[str, EdgeProc]) -> None:
    bob, clara, pam = (_token(server, "bob", "buyer"), _token(server, "clara", "cashier"),
                       _token(server, "pam", "procurement_manager"))
    oat = {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250, "cost": 120}
    assert _call(server, "/api/hq/products", oat)[0] == 401
    code, body = _call(server, "/api/hq/products", oat, "bla_stale")
    assert (code, body["detail"]) == (401, "unknown API token")
    code, body = _call(server, "/api/hq/products", oat, clara)
    assert code == 403 and "clara (cashier) may not create on product" in body["reason"]
    s1 = edges["s1-till1"]
    s1.sync()
    s1.start_daemon()
    wait_for(lambda: server.health()["connected"] >= 1, 10, "the store's daemon")
    code, body = _call(server, "/api/hq/products", oat, bob)
    assert code == 201 and body["row"]["price"] == 250
    product = body["id"]
    wait_for(lambda: s1.query("SELECT price FROM product") == [(250,)], 2, "the new product")
    assert _call(server, f"/api/hq/products/{product}/price", {"price": 2.505}, bob)[0] == 400
    assert _call(server, f"/api/hq/products/{product}/price", {"price": 275}, bob)[0] == 200
    wait_for(lambda: s1.query("SELECT price FROM product") == [(275,)], 2, "the new price")
    # a purchase order drafted by bob at HQ's PC, approved by pam over REST
    hq = edges["hq-pc"]
    hq.sync()
    po = hq.run("po", "create", "--site", "S1", "--supplier", "Oatly", "OAT-1:10:1.20",
                "--user", "bob").stdout.split()[2]
    hq.sync()
    code, body = _call(server, f"/api/hq/purchase-orders/{po}/approve", {}, bob)
    assert code == 403
    code, body = _call(server, f"/api/hq/purchase-orders/{po}/approve", {}, pam)
    assert code == 200 and body["row"]["status"] == "approved"
    code, body = _call(server, f"/api/hq/purchase-orders/{po}/approve", {}, pam)
    assert code == 409 and "is approved; there is nothing to approve" in body["reason"]
    assert _call(server, "/api/hq/purchase-orders/nope/approve", {}, pam)[0] == 404
    wait_for(lambda: s1.query("SELECT status FROM purchase_order") == [("approved",)], 2,
             "the approved order at the store")


def test_master_data_over_rest_reaches_the_stores_in_scope(server: ServerProc,
                                                           edges: dict[str, EdgeProc]) -> None:
    admin, bob, pam, clara, fay = (
        _token(server, "root", "hq_admin"), _token(server, "bob", "buyer"),
        _token(server, "pam", "procurement_manager"), _token(server, "clara", "cashier"),
        _token(server, "fay", "finance"))
    s1, s2 = edges["s1-till1"], edges["s2-till1"]
    for e in (s1, s2):
        e.sync()
        e.start_daemon()
    wait_for(lambda: server.health()["connected"] >= 2, 10, "the stores' daemons")
    for code, kind in (("S1", "store"), ("S2", "store"), ("W1", "warehouse")):
        assert _call(server, "/api/hq/sites", {"code": code, "name": f"Site {code}",
                                               "kind": kind}, admin)[0] == 201
    code, body = _call(server, "/api/hq/products", {"sku": "OAT-1", "name": "Oat milk 1l",
                                                    "price": 250, "cost": 120}, bob)
    assert code == 201
    oat = body["id"]
    wait_for(lambda: s2.query("SELECT name, price FROM product") == [("Oat milk 1l", 250)], 2,
             "the new product at S2")
    # a cashier cannot change the price: 403, and no store hears of anything
    code, body = _call(server, f"/api/hq/products/{oat}/price", {"price": 1}, clara)
    assert code == 403 and "may not set price" in body["reason"]
    assert _call(server, f"/api/hq/products/{oat}", {"name": "Oat drink 1l", "category": "dairy"},
                 bob, method="PATCH")[0] == 200
    wait_for(lambda: s2.query("SELECT name, category, price FROM product") == [
        ("Oat drink 1l", "dairy", 250)], 2, "the renamed product at S2")
    later = str(datetime.date.today() + datetime.timedelta(days=3))
    assert _call(server, f"/api/hq/products/{oat}/price-changes",
                 {"price": 275, "effective": later}, bob)[0] == 201
    wait_for(lambda: s1.query("SELECT price, effective FROM price_change") == [(275, later)], 2,
             "the price change at S1")
    assert sorted(s1.query("SELECT code FROM site")) == [("S1",), ("S2",), ("W1",)]
    # a reorder level and a purchase order for S1 reach S1, and only S1
    assert _call(server, "/api/hq/reorder-rules", {"site": "S1", "product_id": oat,
                                                   "level": 2, "order_qty": 12}, bob,
                 method="PUT")[0] == 201
    supplier = _call(server, "/api/hq/suppliers", {"name": "Oatly"}, bob)[1]["id"]
    code, body = _call(server, "/api/hq/purchase-orders", {
        "site": "S1", "supplier_id": supplier,
        "lines": [{"product_id": oat, "qty": 10, "unit_cost": 120}]}, bob)
    assert code == 201 and body["row"]["total"] == 1200
    po = body["id"]
    assert _call(server, f"/api/hq/purchase-orders/{po}/approve", {}, pam)[0] == 200
    wait_for(lambda: s1.query("SELECT status FROM purchase_order") == [("approved",)], 2,
             "the approved order at S1")
    assert s1.query("SELECT qty, unit_cost FROM po_line") == [(10, 120)]
    assert s1.query("SELECT level FROM reorder_rule") == [(2,)]
    assert s2.query("SELECT count(*) FROM purchase_order") == [(0,)]
    assert s2.query("SELECT count(*) FROM reorder_rule") == [(0,)]
    # S1 receives the goods offline-first; finance reads the receipt's journal lines
    s1.stop_daemon()
    s1.run("po", "receive", po, "OAT-1:10")
    s1.sync()
    detail = _call(server, f"/api/hq/purchase-orders/{po}", token=bob)[1]
    assert detail["order"]["status"] == "received" and detail["lines"][0]["received"] == 10
    assert _call(server, "/api/reports/journal?site=S1", token=clara)[0] == 403
    journal = _call(server, "/api/reports/journal?site=S1", token=fay)[1]
    assert {(ln["account"], ln["debit"], ln["credit"]) for ln in journal["lines"]} == {
        ("1200", 1200, 0), ("2000", 0, 1200)}
    assert _call(server, "/api/reports/trial-balance", token=fay)[1]["balanced"]


def _keyed(server: ServerProc, path: str, body: Any, token: str, key: str
           ) -> tuple[int, bool, Any]:
    """POST with an Idempotency-Key: the status, whether it was a replay, the body."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", method="POST", data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}",
                 "idempotency-key": key})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("idempotent-replayed") == "true", json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, False, json.loads(exc.read() or b"null")


@pytest.mark.postgres
def test_a_post_sent_to_two_servers_at_once_with_one_key_makes_one_customer(
        tmp_path: Path) -> None:
    """Two server processes on one PostgreSQL, the same customer posted to both
    at the same moment with one Idempotency-Key: one customer; the other answer
    is a 409 to retry (or the same answer), and the retry gets the first's."""
    with fresh_database() as url:
        a, b = ServerProc(url, tmp_path).start(), ServerProc(url, tmp_path).start()
        try:
            token = _token(a, "root", "hq_admin")
            for n in range(3):
                start = threading.Barrier(2)

                def post(server: ServerProc, n: int = n, start: threading.Barrier = start
                         ) -> tuple[int, bool, Any]:
                    start.wait()
                    return _keyed(server, "/api/hq/customers", {"name": f"Ada {n}"}, token,
                                  f"new-customer-{n}")

                with ThreadPoolExecutor(2) as pool:
                    answers = list(pool.map(post, (a, b)))
                made = {body["id"] for code, _, body in answers if code == 201}
                assert len(made) == 1 and {code for code, _, _ in answers} <= {201, 409}, answers
                code, replayed, body = _keyed(b, "/api/hq/customers", {"name": f"Ada {n}"},
                                              token, f"new-customer-{n}")
                assert (code, replayed, {body["id"]}) == (201, True, made)
            names = [c["name"] for c in _call(b, "/api/hq/customers", token=token)[1]["items"]]
            assert sorted(names) == ["Ada 0", "Ada 1", "Ada 2"]
        finally:
            a.stop()
            b.stop()
