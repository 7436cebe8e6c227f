"""Selling and returning at the till, offline: receipts, stock, journal, bad input."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.edge import Edge
from client.pos import LineIn, Pos, PosError, parse_money, trial_balance
from schema import SCHEMA
from schema.finance import CASH, COGS, INVENTORY, RETURNS, REVENUE, SALES_TAX, Unbalanced
from sync.memory import MemoryServerStore
from sync.server import apply_ops
from tests.sync.kit import HQ, PRODUCT, hire_staff, key, op


def _load_catalog(edge: Edge) -> None:
    """Rows as HQ made them, taken in as if they came from the server."""
    server = MemoryServerStore()
    hire_staff(server)
    ops = [
        op(HQ, "product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250,
                                    "barcode": "4000000000017", "cost": 120, "tax_rate": 2000}),
        op(HQ, "stock_movement", key(500), {"site": "S1", "product_id": PRODUCT, "qty": 2,
                                            "reason": "receipt"}),
    ]
    apply_ops(SCHEMA, server, HQ, ops)
    with edge.transaction():
        edge.replica.on_rows(list(server.rows.values()), 2_000)


def _open_till(folder: Path) -> Pos:
    edge = Edge(folder / "till.db")
    edge.configure("ws://127.0.0.1:1/sync", "t1", "S1", "bl_x")
    _load_catalog(edge)
    return Pos(edge)


@pytest.fixture
def till(tmp_path: Path) -> Iterator[Pos]:
    pos = _open_till(tmp_path)
    yield pos
    pos.edge.close()


def _balance(tb: dict[str, tuple[int, int]], account: str) -> int:
    debit, credit = tb.get(account, (0, 0))
    return debit - credit


def test_a_sale_moves_stock_and_posts_a_balanced_journal(till: Pos) -> None:
    receipt = till.sell([LineIn("OAT-1", 2, discount=50)], cash=600)
    assert (receipt.net, receipt.tax, receipt.total, receipt.change) == (450, 90, 540, 60)
    assert receipt.receipt_no == "S1-t1-000001"
    assert till.edge.stock("S1", PRODUCT) == 0
    tb = trial_balance(till.edge, "S1")
    assert tb[CASH] == (540, 0) and tb[REVENUE] == (0, 450) and tb[SALES_TAX] == (0, 90)
    assert tb[COGS] == (240, 0) and tb[INVENTORY] == (0, 240)
    assert sum(d for d, _ in tb.values()) == sum(c for _, c in tb.values())
    ops = till.edge.pending()
    assert len({o.group for o in ops}) == 1 and len(ops) == 1 + 1 + 1 + 5


def test_receipt_numbers_are_unique_per_device_without_a_central_counter(till: Pos) -> None:
    numbers = [till.sell([LineIn("4000000000017", 1)], card=300).receipt_no for _ in range(3)]
    assert numbers == ["S1-t1-000001", "S1-t1-000002", "S1-t1-000003"]


def test_overselling_offline_is_accepted(till: Pos) -> None:
    till.sell([LineIn("OAT-1", 3)], cash=1000)
    assert till.edge.stock("S1", PRODUCT) == -1  # the goods left the shop


def test_return_against_the_original_sale(till: Pos) -> None:
    sale = till.sell([LineIn("OAT-1", 2)], cash=600)
    back = till.return_sale(sale.receipt_no, {"OAT-1": 1})
    assert (back.net, back.tax, back.total) == (-250, -50, -300)
    assert till.edge.stock("S1", PRODUCT) == 1
    with pytest.raises(PosError, match="only 1 of OAT-1 can still be returned"):
        till.return_sale(sale.receipt_no, {"OAT-1": 2})
    tb = trial_balance(till.edge)
    assert sum(d for d, _ in tb.values()) == sum(c for _, c in tb.values())
    assert tb[CASH] == (600, 300)


def test_partial_returns_of_a_discounted_line_refund_exactly_what_was_paid(till: Pos) -> None:
    sale = till.sell([LineIn("OAT-1", 2, discount=1)], cash=600)  # 4.99 + 1.00 tax
    assert (sale.net, sale.tax, sale.total) == (499, 100, 599)
    refunds = [till.return_sale(sale.receipt_no, {"OAT-1": 1}) for _ in range(2)]
    # rounding each half on its own gave 2.50 + 0.50 back twice: 6.00 for 5.99 paid
    assert [(r.net, r.tax, r.total) for r in refunds] == [(-250, -50, -300), (-249, -50, -299)]
    tb = trial_balance(till.edge, "S1")
    assert tb[CASH] == (599, 599)  # what came in went back, not a cent more
    assert tb[REVENUE] == (0, 499) and tb[RETURNS] == (499, 0) and tb[SALES_TAX] == (100, 100)
    assert _balance(tb, COGS) == 0 and _balance(tb, INVENTORY) == 0
    assert till.edge.stock("S1", PRODUCT) == 2


@settings(max_examples=30, deadline=None)
@given(qty=st.integers(1, 7), discount_share=st.integers(0, 100), data=st.data())
def test_any_partial_returns_never_refund_more_than_was_paid(qty: int, discount_share: int,
                                                             data: st.DataObject) -> None:
    """However a line comes back, a unit or a few at a time, the refunds never
    pass what the customer paid (net, tax, and the cost taken back), and once
    all of it is back they are exactly that: the till's cash and the books
    stand where they were before the sale."""
    with tempfile.TemporaryDirectory() as folder:
        till = _open_till(Path(folder))
        discount = 250 * qty * discount_share // 100
        sale = till.sell([LineIn("OAT-1", qty, discount=discount)], cash=250 * qty * 2)
        (line,) = sale.lines
        paid = (sale.net, sale.tax, line["cost"] * qty)
        back, refunded = 0, (0, 0, 0)
        while back < qty:
            n = data.draw(st.integers(1, qty - back), label="units returned")
            r = till.return_sale(sale.receipt_no, {"OAT-1": n})
            back += n
            cost = -sum(ln["cost"] * ln["qty"] for ln in r.lines)
            assert -r.net >= 0 and -r.tax >= 0 and r.change == 0
            refunded = (refunded[0] - r.net, refunded[1] - r.tax, refunded[2] + cost)
            assert all(got <= was for got, was in zip(refunded, paid, strict=True))
        assert refunded == paid
        tb = trial_balance(till.edge, "S1")
        assert _balance(tb, CASH) == 0 and _balance(tb, SALES_TAX) == 0
        assert _balance(tb, REVENUE) + _balance(tb, RETURNS) == 0
        assert _balance(tb, COGS) == 0 and _balance(tb, INVENTORY) == 0
        assert till.edge.stock("S1", PRODUCT) == 2
        till.edge.close()


def test_a_line_given_away_can_be_returned(till: Pos) -> None:
    sale = till.sell([LineIn("OAT-1", 1, discount=250)])  # free: nothing to pay
    assert sale.total == 0
    back = till.return_sale(sale.receipt_no, {"OAT-1": 1})
    assert (back.net, back.tax, back.total, back.change) == (0, 0, 0, 0)
    assert till.edge.stock("S1", PRODUCT) == 2
    tb = trial_balance(till.edge, "S1")
    # the goods are back on the shelf at the cost they left at
    assert tb[COGS] == (120, 120) and tb[INVENTORY] == (120, 120)
    assert CASH not in tb and sum(d for d, _ in tb.values()) == sum(c for _, c in tb.values())
    # and one can be exchanged for goods that are paid for
    free = till.sell([LineIn("OAT-1", 1, discount=250)])
    done = till.exchange(free.receipt_no, {"OAT-1": 1}, [LineIn("OAT-1", 1)], cash=300)
    assert (done.due, done.change, done.returned.total, done.sold.total) == (300, 0, 0, 300)
    assert _balance(trial_balance(till.edge, "S1"), CASH) == 300


def test_a_product_asked_back_by_sku_and_barcode_is_one_line(till: Pos) -> None:
    sale = till.sell([LineIn("OAT-1", 2)], cash=600)
    with pytest.raises(PosError, match="only 2 of OAT-1 can still be returned"):
        till.return_sale(sale.receipt_no, {"OAT-1": 2, "4000000000017": 1})
    back = till.return_sale(sale.receipt_no, {"OAT-1": 1, "4000000000017": 1})
    assert back.total == -600 and len(back.lines) == 1 and back.lines[0]["qty"] == -2


def test_a_posting_the_books_refuse_reaches_the_cashier_as_a_pos_error(
        till: Pos, monkeypatch: pytest.MonkeyPatch) -> None:
    import client.pos

    def refuse(**_: object) -> None:
        raise Unbalanced("negative amount on account 5000")

    monkeypatch.setattr(client.pos, "sale_posting", refuse)
    with pytest.raises(PosError, match="sale S1-t1-000001 cannot be posted: negative amount"):
        till.sell([LineIn("OAT-1", 1)], cash=300)
    assert till.edge.pending() == [] and till.edge.stock("S1", PRODUCT) == 2


@pytest.mark.parametrize(("lines", "pay", "message"), [
    ([LineIn("NOPE", 1)], {"cash": 1000}, "unknown SKU or barcode 'NOPE'"),
    ([LineIn("OAT-1", 0)], {"cash": 1000}, "must be positive"),
    ([LineIn("OAT-1", -2)], {"cash": 1000}, "must be positive"),
    ([LineIn("OAT-1", 1, discount=900)], {"cash": 1000}, "discount on OAT-1"),
    ([LineIn("OAT-1", 1)], {"cash": 100}, "do not cover the total 300"),
    ([LineIn("OAT-1", 1)], {"on_account": 300}, "needs a customer"),
    ([], {"cash": 1}, "at least one line"),
])
def test_bad_sales_are_refused_and_leave_nothing(till: Pos, lines: list[LineIn],
                                                 pay: dict[str, int], message: str) -> None:
    with pytest.raises(PosError, match=message):
        till.sell(lines, **pay)
    assert till.edge.pending() == [] and till.edge.stock("S1", PRODUCT) == 2
    assert till.edge.store.get_state("receipt_seq") is None


def test_unknown_receipt_and_product_not_on_it(till: Pos) -> None:
    with pytest.raises(PosError, match="no sale S1-t1-000009"):
        till.return_sale("S1-t1-000009", {"OAT-1": 1})


@pytest.mark.parametrize(("text", "cents"), [("12.50", 1250), ("3", 300), ("0.07", 7)])
def test_money_parsing(text: str, cents: int) -> None:
    assert parse_money(text) == cents


@pytest.mark.parametrize("text", ["12.505", "abc", "NaN", "1e-5"])
def test_money_with_too_many_decimals_or_garbage_is_refused(text: str) -> None:
    with pytest.raises(PosError):
        parse_money(text)


def test_a_count_posts_the_difference_as_an_adjustment(till: Pos) -> None:
    from client.inventory import Inventory, StockError

    stock = Inventory(till.edge)
    assert stock.count("OAT-1", 1) == -1
    assert till.edge.stock("S1", PRODUCT) == 1
    tb = trial_balance(till.edge)
    assert tb["5100"] == (120, 0) and tb[INVENTORY] == (0, 120)
    assert stock.count("OAT-1", 1) == 0  # nothing to adjust: only the count is recorded
    assert len(till.edge.query("stock_count")) == 2
    with pytest.raises(StockError, match="cannot be negative"):
        stock.count("OAT-1", -3)
    with pytest.raises(StockError, match="must be positive"):
        stock.ship("OAT-1", 0, "S2")
    with pytest.raises(StockError, match="no transfer"):
        stock.receive(key(999), 1)


def test_customer_service_ticket_linked_to_a_sale(till: Pos, capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    from client.cli import main

    receipt = till.sell([LineIn("OAT-1", 1)], cash=300)
    db = ["--db", str(till.edge.path)]
    assert main([*db, "ticket", "open", "--kind", "complaint", "--receipt",
                 receipt.receipt_no, "Carton leaked"]) == 0
    ticket = capsys.readouterr().out.split()[1]
    row = till.edge.get("ticket", ticket)
    assert row is not None and row["sale_id"] == receipt.sale_id and row["status"] == "open"
    assert main([*db, "ticket", "move", ticket, "closed"]) == 0
    assert main([*db, "ticket", "move", ticket, "in_progress"]) == 3
    assert "is closed; it cannot move to in_progress" in capsys.readouterr().err
    assert main([*db, "ticket", "open", "--kind", "return", "--receipt", "S1-x-1", "?"]) == 3


def test_a_price_change_applies_from_its_effective_date(till: Pos) -> None:
    import datetime as dt

    server = MemoryServerStore()
    hire_staff(server)
    today = dt.date.today()
    for n, (price, day) in enumerate([(199, today), (149, today + dt.timedelta(days=7))]):
        apply_ops(SCHEMA, server, HQ, [op(HQ, "price_change", key(900 + n), {
            "product_id": PRODUCT, "price": price, "effective": day.isoformat()})])
    with till.edge.transaction():
        till.edge.replica.on_rows([r for r in server.rows.values()
                                   if r.entity == "price_change"], 3_000)
    assert till.product("OAT-1")["price"] == 199
    assert till.product("OAT-1", on=today + dt.timedelta(days=8))["price"] == 149
    assert till.product("OAT-1", on=today - dt.timedelta(days=1))["price"] == 250
    assert till.sell([LineIn("OAT-1", 1)], cash=500).net == 199


def test_return_to_supplier_reduces_stock_and_payable(till: Pos) -> None:
    from client.procurement import Procurement, ProcurementError

    proc = Procurement(till.edge, "wendy")
    with pytest.raises(ProcurementError, match="only 2 of OAT-1 on hand"):
        proc.return_to_supplier("OAT-1", 3, "Oatly", "damaged")
    with pytest.raises(ProcurementError, match="say why"):
        proc.return_to_supplier("OAT-1", 1, "Oatly", " ")
    proc.return_to_supplier("OAT-1", 2, "Oatly", "damaged")
    assert till.edge.stock("S1", PRODUCT) == 0
    tb = trial_balance(till.edge)
    assert tb["2000"] == (240, 0) and tb[INVENTORY] == (0, 240)
