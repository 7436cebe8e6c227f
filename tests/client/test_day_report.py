"""The store manager's closing-time report (``branchline-edge day``): per
till, what came in and went out, the cash each drawer should hold, and
whether HQ has all of it; offline, from the device's own copy."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from client.accounts import Accounts
from client.cli import main
from client.day_report import TillDay, all_tills, day_report, till_of
from client.edge import Edge
from client.pos import LineIn, Pos
from tests.sync.kit import PRODUCT, key

from .test_costing_and_accounts import ADA, _from_hq


@pytest.fixture
def till(edge: Edge) -> Iterator[Pos]:
    """Till s1-till1 with oat milk in stock and a customer with credit."""
    _from_hq(edge,
             ("product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250,
                                   "cost": 120, "tax_rate": 0}),
             ("stock_movement", key(500), {"site": "S1", "product_id": PRODUCT, "qty": 10,
                                           "reason": "receipt", "unit_cost": 100}),
             ("customer", ADA, {"name": "Ada", "credit_limit": 1000}))
    yield Pos(edge)


def test_each_tills_day_and_the_cash_its_drawer_should_hold(
        till: Pos, capsys: pytest.CaptureFixture[str]) -> None:
    """Till t1 sells for cash (change given), by card and on account, takes a
    return in cash and an account payment; till t2's sale reaches t1 through
    HQ. The day shows each till, the store's total, and the drawers."""
    today = datetime.date.today().isoformat()
    sale = till.sell([LineIn("OAT-1", 2)], cash=1000)  # 5.00 due: 5.00 change
    till.sell([LineIn("OAT-1", 2)], card=500)
    till.sell([LineIn("OAT-1", 1)], on_account=250, customer_id=ADA)
    till.return_sale(sale.receipt_no, {"OAT-1": 1})  # 2.50 back in cash
    Accounts(till.edge).take_payment(ADA, cash=100)

    # the store's second till's sale, as HQ sends it to the site's devices
    _from_hq(till.edge, ("sale", key(900), {
        "site": "S1", "device": "s1-till2", "receipt_no": "S1-s1-till2-000001", "kind": "sale",
        "net": 250, "discount": 0, "tax": 0, "total": 250, "cash": 250, "card": 0,
        "on_account": 0, "cashier": "cass", "date": today}))

    t1, t2 = day_report(till.edge.conn, "S1", today)
    assert t1 == TillDay("s1-till1", receipts=4, returns=1, net=500 + 500 + 250 - 250, tax=0,
                         total=1000, cash=500 - 250, card=500, on_account=250, paid_cash=100,
                         paid_card=0)
    assert t1.drawer == 350  # 5.00 kept of the 10.00 tendered, 2.50 refunded, 1.00 paid in
    assert (t2.till, t2.receipts, t2.cash, t2.drawer) == ("s1-till2", 1, 250, 250)
    assert all_tills([t1, t2]).drawer == 600
    assert day_report(till.edge.conn, "S1", "2000-01-01") == []

    assert main(["--db", str(till.edge.path), "day"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"S1 on {today}, as this device (s1-till1) holds it"
    assert out[2].split("\t")[:2] == ["s1-till1", "4"] and out[2].endswith("\t3.50")
    assert out[4].startswith("all tills\t5\t1\t") and out[4].endswith("\t6.00")
    assert out[5].startswith("not at HQ yet: ") and "ops of this device (run `sync`)" in out[5]
    assert main(["--db", str(till.edge.path), "day", "--date", "yesterday"]) == 2
    assert "--date must be a day yyyy-mm-dd" in capsys.readouterr().err


def test_a_till_is_read_from_its_receipt_number() -> None:
    assert till_of("S1-s1-till1-000042", "S1") == "s1-till1"
    assert till_of("W1-hh-000001", "W1") == "hh"
