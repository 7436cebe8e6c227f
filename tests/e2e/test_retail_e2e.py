"""Retail through real sync: tills sell offline, HQ's reports add up."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid
import weakref
from typing import Any

import pytest

from .procs import BIN, EdgeProc, ServerProc

pytestmark = pytest.mark.e2e
PRODUCT = str(uuid.UUID(int=11))
CUSTOMER = str(uuid.UUID(int=12))


_TOKENS: weakref.WeakKeyDictionary[ServerProc, str] = weakref.WeakKeyDictionary()


def _admin_token(server: ServerProc) -> str:
    """An API token of an hq_admin (reports may ask for one), issued once per server."""
    if server not in _TOKENS:
        out = subprocess.run([str(BIN / "branchline"), "user", "add", "--db", server.db_url,
                              "--login", "admin", "--role", "hq_admin", "--site", "HQ",
                              "--api-token"], check=True, capture_output=True, text=True,
                             timeout=60).stdout
        _TOKENS[server] = out.strip().splitlines()[-1].split()[-1]
    return _TOKENS[server]


def _api(server: ServerProc, path: str) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}",
                                 headers={"authorization": f"Bearer {_admin_token(server)}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def test_two_tills_oversell_offline_and_the_books_balance(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    hq, till1, till2, s2 = edges["hq-pc"], edges["s1-till1"], edges["s1-till2"], edges["s2-till1"]
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120,
           tax_rate=2000, barcode="4000000000017")
    hq.put("customer", CUSTOMER, name="Ada", phone="111")
    hq.put("stock_movement", str(uuid.uuid4()), site="S1", product_id=PRODUCT, qty=2,
           reason="receipt")
    hq.sync()
    for e in (till1, till2, s2):
        e.sync()
    # the store's uplink is down: both tills sell the last units, and more
    out1 = till1.run("sell", "OAT-1:2", "--cash", "10.00").stdout
    out2 = till2.run("sell", "4000000000017:1", "--card", "3.00").stdout
    assert out1.startswith("receipt S1-s1-till1-000001: total 6.00") and "change 4.00" in out1
    assert out2.startswith("receipt S1-s1-till2-000001: total 3.00")
    till1.put("customer", CUSTOMER, phone="222")
    s2.put("customer", CUSTOMER, phone="333")  # later: wins at every store
    for e in (till1, till2, s2, hq, till1, till2):
        e.sync()
    for e in (till1, till2, hq):
        assert e.run("stock", "OAT-1").stdout.strip().endswith("-1 on hand") or e is hq
    assert _api(server, "/api/reports/stock?negative_only=true")["items"] == [
        {"site": "S1", "product_id": PRODUCT, "on_hand": -1}]
    for site in ("S1", ""):
        tb = _api(server, f"/api/reports/trial-balance?site={site}")
        assert tb["balanced"] and tb["debit"] == tb["credit"] > 0
    sales = _api(server, "/api/reports/sales")
    assert sales == [{"site": "S1", "receipts": 2, "net": 750, "tax": 150, "cost": 360,
                      "margin": 390}]
    phones = {e.device: e.query("SELECT phone FROM customer") for e in (hq, till1, till2, s2)}
    assert set(map(tuple, phones.values())) == {(("333",),)}
    # a return against the receipt, then the books still balance
    till1.run("return", "S1-s1-till1-000001", "OAT-1:1")
    bad = till1.run("return", "S1-s1-till1-000001", "OAT-1:5", check=False)
    assert bad.returncode == 3 and "only 1 of OAT-1 can still be returned" in bad.stderr
    till1.sync()
    tb = _api(server, "/api/reports/trial-balance?site=S1")
    assert tb["balanced"]
    assert {a["code"]: a["balance"] for a in tb["accounts"]}["1000"] == 600 - 300
    assert _api(server, "/api/reports/stock?site=S1")["items"] == [
        {"site": "S1", "product_id": PRODUCT, "on_hand": 0}]


def test_reports_refuse_a_bad_date(server: ServerProc) -> None:
    try:
        _api(server, "/api/reports/sales?date_from=yesterday")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
        assert "date_from must be a date" in exc.read().decode()
    else:
        raise AssertionError("a bad date was accepted")
    assert "/api/reports/trial-balance" in _api(server, "/schema/openapi.json")["paths"]


def test_transfer_shipped_while_the_receiving_store_is_offline(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    hq, s1, s2 = edges["hq-pc"], edges["s1-till1"], edges["s2-till1"]
    for code in ("S1", "S2"):
        hq.put("site", str(uuid.uuid4()), code=code, name=f"Store {code}", kind="store")
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120)
    hq.put("stock_movement", str(uuid.uuid4()), site="S1", product_id=PRODUCT, qty=10,
           reason="receipt")
    hq.sync()
    s1.sync()
    s2.sync()
    # S2's uplink is down from here on; S1 ships 4 units to it
    out = s1.run("ship", "OAT-1", "4", "--to", "S2").stdout
    transfer = out.split()[1].rstrip(":")
    bad = s1.run("ship", "OAT-1", "1", "--to", "S1", check=False)
    assert bad.returncode == 3 and "to itself" in bad.stderr
    s1.sync()
    assert s1.run("stock", "OAT-1").stdout.strip().endswith(": 6 on hand")
    assert transfer in s1.run("in-transit").stdout
    # S2 comes back, sees the transfer in transit, receives 3 of the 4
    s2.sync()
    assert transfer in s2.run("in-transit").stdout
    too_many = s2.run("receive", transfer, "5", check=False)
    assert too_many.returncode == 3 and "between 0 and the 4 shipped" in too_many.stderr
    assert "1 short, discrepancy recorded" in s2.run("receive", transfer, "3").stdout
    s2.sync()
    s1.sync()
    assert s1.run("in-transit").stdout == "" and s2.run("in-transit").stdout == ""
    assert s1.query("SELECT shipped, received FROM discrepancy") == [(4, 3)]
    assert _api(server, "/api/reports/stock") == {"items": [
        {"site": "S1", "product_id": PRODUCT, "on_hand": 6},
        {"site": "S2", "product_id": PRODUCT, "on_hand": 3}], "total": 2, "limit": 100,
        "offset": 0}
    tb = _api(server, "/api/reports/trial-balance")
    balances = {a["code"]: a["balance"] for a in tb["accounts"]}
    assert tb["balanced"] and balances["1210"] == 0  # nothing left in transit
    assert balances["5100"] == 120  # the lost unit, at cost
    for site in ("S1", "S2"):
        assert _api(server, f"/api/reports/trial-balance?site={site}")["balanced"]


def test_purchase_orders_approved_twice_received_partly_and_cancelled_while_receiving(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    hq, s1 = edges["hq-pc"], edges["s1-till1"]
    for login, role in (("bob", "buyer"), ("pam", "procurement_manager"),
                        ("paul", "procurement_manager")):
        server.add_user(login, role, "HQ")
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120)
    hq.sync()  # learns bob, pam and paul
    big = hq.run("po", "create", "--site", "S1", "--supplier", "Oatly", "OAT-1:5000:1.20",
                 "--user", "bob").stdout.split()[2]
    small = hq.run("po", "create", "--site", "S1", "--supplier", "Oatly", "OAT-1:10:1.20",
                   "--user", "bob").stdout.split()[2]
    refused = hq.run("po", "approve", big, "--user", "bob", check=False)
    assert refused.returncode == 3 and "bob (buyer) may not move to first_approved" in refused.stderr
    assert hq.run("po", "approve", big, "--user", "pam").stdout.endswith("first_approved\n")
    again = hq.run("po", "approve", big, "--user", "pam", check=False)
    assert again.returncode == 3 and "must come from someone else" in again.stderr
    assert hq.run("po", "approve", big, "--user", "paul").stdout.endswith(": approved\n")
    assert hq.run("po", "approve", small, "--user", "pam").stdout.endswith(": approved\n")
    hq.sync()
    s1.sync()  # the approved orders appear at the receiving store
    assert s1.run("po", "receive", big, "OAT-1:3000").stdout.endswith("partially_received\n")
    over = s1.run("po", "receive", big, "OAT-1:2001", check=False)
    assert over.returncode == 3 and "2000 still to receive" in over.stderr
    s1.sync()
    # HQ cancels the small order while the store, offline, receives against it
    hq.run("po", "cancel", small, "--user", "pam")
    hq.sync()
    assert s1.run("po", "receive", small, "OAT-1:10").stdout.endswith(": received\n")
    s1.sync()
    rejected = s1.run("rejections").stdout
    assert "purchase_order" in rejected and "is cancelled; it cannot move to received" in rejected
    assert _api(server, "/api/reports/stock?site=S1")["items"] == [
        {"site": "S1", "product_id": PRODUCT, "on_hand": 3000}]
    assert s1.run("stock", "OAT-1").stdout.strip().endswith(": 3000 on hand")
    tb = _api(server, "/api/reports/trial-balance?site=S1")
    assert tb["balanced"]
    assert {a["code"]: a["balance"] for a in tb["accounts"]} == {"1200": 360000, "2000": -360000}
    assert _api(server, "/api/reports/valuation?site=S1") == [
        {"site": "S1", "product_id": PRODUCT, "on_hand": 3000, "average_cost": 120,
         "value": 360000}]  # the stock ledger agrees with the inventory account


def test_low_stock_raises_one_purchase_suggestion(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    hq, till = edges["hq-pc"], edges["s1-till1"]
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120)
    hq.put("reorder_rule", str(uuid.uuid4()), site="S1", product_id=PRODUCT, level=5,
           order_qty=24)
    hq.put("stock_movement", str(uuid.uuid4()), site="S1", product_id=PRODUCT, qty=10,
           reason="receipt")
    hq.sync()
    till.sync()
    till.run("sell", "OAT-1:4", "--cash", "20")
    till.sync()
    assert _api(server, "/api/procurement/suggestions")["items"] == []  # 6 left: above the level
    till.run("sell", "OAT-1:2", "--cash", "20")
    till.run("sell", "OAT-1:1", "--cash", "20")
    till.sync()
    (sug,) = _api(server, "/api/procurement/suggestions")["items"]
    assert (sug["site"], sug["qty"], sug["on_hand"]) == ("S1", 24, 3)
    till.sync()  # the store sees its suggestion too
    assert till.query("SELECT qty, status FROM purchase_suggestion") == [(24, "open")]
