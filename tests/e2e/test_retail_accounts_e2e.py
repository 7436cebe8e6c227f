"""Stock exceptions, moving-average costs and customer accounts through real
sync: a server process, tills at two stores and HQ's PC, each with its own
SQLite file, driven through the ``branchline-edge`` CLI and HQ's REST API."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from .procs import BIN, EdgeProc, ServerProc

pytestmark = pytest.mark.e2e
PRODUCT = str(uuid.UUID(int=11))
CUSTOMER = str(uuid.UUID(int=12))


def _token(server: ServerProc, login: str, role: str, site: str = "HQ") -> str:
    out = subprocess.run([str(BIN / "branchline"), "user", "add", "--db", server.db_url,
                          "--login", login, "--role", role, "--site", site, "--api-token"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return out.strip().splitlines()[-1].split()[-1]


def _call(server: ServerProc, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _ok(server: ServerProc, path: str, token: str, body: Any = None) -> Any:
    code, out = _call(server, path, token, body)
    assert code in (200, 201), (path, code, out)
    return out


def _books_balance_and_stock_is_the_ledger(server: ServerProc, admin: str,
                                           edges: list[EdgeProc]) -> None:
    for e in edges:
        e.sync()
    for site in ("", "S1", "S2"):
        tb = _ok(server, f"/api/reports/trial-balance?site={site}", admin)
        assert tb["balanced"], tb
    for e in edges:  # on every replica: the stock cache is the sum of the movements
        assert e.query("SELECT site, product_id, qty FROM stock_on_hand WHERE qty != 0 "
                       "ORDER BY 1, 2") == e.query(
            "SELECT site, product_id, SUM(qty) FROM stock_movement WHERE _deleted = 0 "
            "GROUP BY 1, 2 HAVING SUM(qty) != 0 ORDER BY 1, 2")
    levels = _ok(server, "/api/reports/stock?limit=500", admin)
    assert levels["total"] == len(levels["items"])  # one page holds them all
    stock = {(s["site"], s["product_id"]): s["on_hand"] for s in levels["items"]}
    for e in edges:
        for site, product, qty in e.query("SELECT site, product_id, qty FROM stock_on_hand"):
            assert stock.get((site, product), 0) == qty, (e.device, site)


def _balances(server: ServerProc, admin: str, site: str) -> dict[str, int]:
    tb = _ok(server, f"/api/reports/trial-balance?site={site}", admin)
    return {a["code"]: a["balance"] for a in tb["accounts"]}


def test_two_tills_oversell_offline_one_exception_hq_resolves_it(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    hq, till1, till2 = edges["hq-pc"], edges["s1-till1"], edges["s1-till2"]
    admin = _token(server, "admin", "hq_admin")
    olga = _token(server, "olga", "operations_manager")
    clara = _token(server, "clara", "cashier", "S1")
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120)
    hq.put("stock_movement", str(uuid.uuid4()), site="S1", product_id=PRODUCT, qty=2,
           reason="receipt", unit_cost=120)
    hq.sync()
    till1.sync()
    till2.sync()
    # the store's uplink is down: both tills sell the last two units, and one more
    till1.run("sell", "OAT-1:2", "--cash", "10.00")
    till2.run("sell", "OAT-1:1", "--cash", "10.00")
    till1.sync()
    till2.sync()
    till1.sync()
    exceptions = "/api/operations/stock-exceptions"
    (x,) = _ok(server, exceptions, olga)
    (sale,) = till2.query("SELECT id FROM sale WHERE device = 's1-till2'")
    assert (x["site"], x["sku"], x["on_hand"], x["reason"], x["document_id"], x["status"]) == (
        "S1", "OAT-1", -1, "sale", sale[0], "open")
    assert x["id"] in till1.run("exceptions").stdout  # the store sees it too
    # one more sale while it is open raises no second one
    till1.run("sell", "OAT-1:1", "--cash", "10.00")
    till1.sync()
    assert [e["id"] for e in _ok(server, exceptions, olga)] == [x["id"]]
    assert _ok(server, exceptions, olga)[0]["on_hand_now"] == -2
    # a cashier at the store may not resolve it (only HQ may); HQ operations do, after a count
    code, out = _call(server, f"{exceptions}/{x['id']}/resolve", clara, {"resolution": "ok"})
    assert code == 403 and "only HQ may move stock_exception" in out["reason"]
    till1.run("count", "OAT-1", "0")
    till1.sync()
    done = _ok(server, f"{exceptions}/{x['id']}/resolve", olga,
               {"resolution": "counted 0 on the shelf; stock set right"})
    assert done["row"]["status"] == "resolved"
    assert _ok(server, exceptions, olga) == []
    till1.sync()
    assert till1.query("SELECT status, resolved_by FROM stock_exception") == [
        ("resolved", "olga")]
    assert till1.run("exceptions").stdout == ""
    assert _ok(server, "/api/reports/stock?site=S1", admin)["items"] == [
        {"site": "S1", "product_id": PRODUCT, "on_hand": 0}]
    _books_balance_and_stock_is_the_ledger(server, admin, [hq, till1, till2])


def test_costs_at_moving_average_after_two_receipts_and_across_a_transfer(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    hq, s1, s2 = edges["hq-pc"], edges["s1-till1"], edges["s2-till1"]
    admin = _token(server, "admin", "hq_admin")
    for login, role in (("bob", "buyer"), ("pam", "procurement_manager")):
        server.add_user(login, role, "HQ")
    for code in ("S1", "S2"):
        hq.put("site", str(uuid.uuid4()), code=code, name=f"Store {code}", kind="store")
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120)
    hq.sync()
    orders = [hq.run("po", "create", "--site", "S1", "--supplier", "Oatly", f"OAT-1:10:{cost}",
                     "--user", "bob").stdout.split()[2] for cost in ("1.00", "2.00")]
    for po in orders:
        hq.run("po", "approve", po, "--user", "pam")
    hq.sync()
    s1.sync()
    for po in orders:  # two receipts at different costs
        s1.run("po", "receive", po, "OAT-1:10")
    s1.run("sell", "OAT-1:4", "--cash", "20.00")
    s1.sync()
    (sales,) = _ok(server, "/api/reports/sales", admin)
    assert (sales["net"], sales["cost"]) == (1000, 600)  # 4 x 1.50, not 4 x 1.20
    assert s1.query("SELECT cost FROM sale_line") == [(150,)]
    assert _balances(server, admin, "S1")["5000"] == 600
    # S1 ships 6 to S2 at its moving average; S2 takes them in at it
    transfer = s1.run("ship", "OAT-1", "6", "--to", "S2").stdout.split()[1].rstrip(":")
    s1.sync()
    s2.sync()
    s2.run("receive", transfer, "6")
    s2.run("sell", "OAT-1:1", "--cash", "5.00")
    s2.sync()
    s1.sync()
    assert s2.query("SELECT unit_cost FROM transfer") == [(150,)]
    assert s2.query("SELECT cost FROM sale_line") == [(150,)]
    valuation = {v["site"]: v for v in _ok(server, "/api/reports/valuation", admin)}
    assert {s: (v["on_hand"], v["average_cost"], v["value"]) for s, v in valuation.items()} == {
        "S1": (10, 150, 1500), "S2": (5, 150, 750)}
    for site in ("S1", "S2"):  # the stock ledger agrees with the inventory account
        assert _balances(server, admin, site)["1200"] == valuation[site]["value"]
    assert _balances(server, admin, "").get("1210", 0) == 0  # nothing left in transit
    _books_balance_and_stock_is_the_ledger(server, admin, [hq, s1, s2])


def test_a_customer_charges_at_one_store_pays_at_another_and_the_books_agree(
    server: ServerProc, edges: dict[str, EdgeProc]
) -> None:
    hq, s1, s2 = edges["hq-pc"], edges["s1-till1"], edges["s2-till1"]
    admin, clara = _token(server, "admin", "hq_admin"), _token(server, "clara", "cashier", "S1")
    hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120)
    hq.put("customer", CUSTOMER, name="Ada", credit_limit=1000)
    hq.sync()
    s1.sync()
    s2.sync()
    out = s1.run("sell", "OAT-1:2", "--on-account", "5.00", "--customer", CUSTOMER).stdout
    receipt = out.split()[1].rstrip(":")
    over = s1.run("sell", "OAT-1:3", "--on-account", "7.50", "--customer", CUSTOMER,
                  check=False)
    assert over.returncode == 3 and "over the credit limit of 10.00 (5.00 left)" in over.stderr
    s1.sync()
    s2.sync()  # S2 learns of the charge made at S1
    assert "balance 5.00, available 5.00" in s2.run("account", CUSTOMER).stdout
    assert "balance 3.00" in s2.run("pay", CUSTOMER, "--cash", "2.00").stdout
    bad = s2.run("pay", CUSTOMER, "--cash", "-1", check=False)
    assert bad.returncode == 3 and "cannot be negative" in bad.stderr
    # an exchange at S1: one unit back, two others out, one group at HQ; the unit
    # back was bought on account, so its 2.50 goes to the account and the two new
    # ones are paid in full
    out = s1.run("exchange", receipt, "--back", "OAT-1:1", "--take", "OAT-1:2", "--cash",
                 "5.00").stdout
    assert "due 5.00, change 0.00" in out
    # a plain return of the last unit charged on account credits the account
    assert "refund 2.50" in s1.run("return", receipt, "OAT-1:1").stdout
    s2.sync()
    s1.sync()
    assert s1.run("rejections").stdout == "" and s2.run("rejections").stdout == ""
    st = _ok(server, f"/api/sales/customers/{CUSTOMER}/statement", clara)
    # both units charged came back: the 2.00 paid at S2 is in hand on the account
    assert [(ln["kind"], ln["site"], ln["amount"], ln["balance"]) for ln in st["lines"]] == [
        ("charge", "S1", 500, 500), ("return", "S1", -250, 250), ("return", "S1", -250, 0),
        ("payment", "S2", -200, -200)]
    assert (st["balance"], st["available"]) == (-200, 1200)
    assert "balance -2.00, available 12.00" in s1.run("account", CUSTOMER).stdout
    # the receivable account is the sum of the customers' balances
    assert _balances(server, admin, "")["1100"] == st["balance"]
    assert _balances(server, admin, "S2")["1000"] == 200
    kinds = _ok(server, "/api/reports/sales", admin)[0]
    assert kinds["receipts"] == 4  # the sale, the exchange's return and sale, the return
    _books_balance_and_stock_is_the_ledger(server, admin, [hq, s1, s2])
