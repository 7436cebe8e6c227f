"""At the till, offline: costs at the moving average, customer accounts with a
credit limit, payments and statements, exchanges as one document group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.accounts import AccountError, Accounts
from client.costing import valuation
from client.edge import Edge
from client.inventory import Inventory
from client.pos import LineIn, Pos, PosError, trial_balance
from schema import SCHEMA
from schema.finance import CASH, COGS, INVENTORY, RECEIVABLE, moving_average
from sync.memory import MemoryServerStore
from sync.messages import Row
from sync.server import apply_ops
from tests.sync.kit import HQ, PRODUCT, hire_staff, key, op

TEA = key(101)
ADA, BO = key(200), key(201)


def _from_hq(edge: Edge, *changes: tuple[str, str, dict[str, Any]]) -> None:
    """Rows as HQ made them, taken in as if they came from the server."""
    server = MemoryServerStore()
    hire_staff(server)
    apply_ops(SCHEMA, server, HQ, [op(HQ, e, k, f) for e, k, f in changes])
    with edge.transaction():
        edge.replica.on_rows(list(server.rows.values()), 2_000)


@pytest.fixture
def till(tmp_path: Path) -> Iterator[Pos]:
    edge = Edge(tmp_path / "till.db")
    edge.configure("ws://127.0.0.1:1/sync", "t1", "S1", "bl_x")
    _from_hq(
        edge,
        ("product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250,
                              "cost": 120, "tax_rate": 0}),
        ("product", TEA, {"sku": "TEA-1", "name": "Green tea", "price": 400, "cost": 200}),
        ("site", key(1), {"code": "S2", "name": "Store 2", "kind": "store"}),
        # two receipts at different costs: 10 at 1.00, then 10 at 2.00
        ("stock_movement", key(500), {"site": "S1", "product_id": PRODUCT, "qty": 10,
                                      "reason": "receipt", "unit_cost": 100}),
        ("stock_movement", key(501), {"site": "S1", "product_id": PRODUCT, "qty": 10,
                                      "reason": "receipt", "unit_cost": 200}),
        ("customer", ADA, {"name": "Ada", "credit_limit": 1000}),
        ("customer", BO, {"name": "Bo"}),
    )
    yield Pos(edge)
    edge.close()


def _balanced(edge: Edge) -> bool:
    tb = trial_balance(edge)
    return sum(d for d, _ in tb.values()) == sum(c for _, c in tb.values())


def _movements(edge: Edge, product: str) -> list[tuple[int, int | None]]:
    return [(int(q), c) for q, c in edge.conn.execute(
        "SELECT qty, unit_cost FROM stock_movement WHERE product_id = ? AND site = 'S1' "
        "AND _deleted = 0 ORDER BY rowid", (product,))]


def test_a_sale_costs_its_goods_at_the_moving_average(till: Pos) -> None:
    receipt = till.sell([LineIn("OAT-1", 4)], cash=1000)
    assert [ln["cost"] for ln in receipt.lines] == [150]  # (10 x 100 + 10 x 200) / 20
    tb = trial_balance(till.edge)
    assert tb[COGS] == (600, 0) and tb[INVENTORY] == (0, 600)
    (moved,) = till.edge.query("stock_movement", document_id=receipt.sale_id)
    assert (moved["qty"], moved["unit_cost"], moved["reason"]) == (-4, 150, "sale")
    now = valuation(till.edge, "S1", till.product("OAT-1"))
    assert (now.on_hand, now.value, now.average) == (16, 2400, 150)
    # HQ's valuation of the same movements gives the same figures
    assert moving_average(_movements(till.edge, PRODUCT), 120) == (16, 150, 2400)


def test_a_receipt_at_a_new_cost_re_averages_and_a_return_comes_back_at_its_cost(
        till: Pos) -> None:
    sale = till.sell([LineIn("OAT-1", 5)], cash=2000)  # 15 left worth 2250
    _from_hq(till.edge, ("stock_movement", key(502), {
        "site": "S1", "product_id": PRODUCT, "qty": 5, "reason": "receipt", "unit_cost": 350}))
    assert valuation(till.edge, "S1", till.product("OAT-1")).average == 200  # 4000 / 20
    back = till.return_sale(sale.receipt_no, {"OAT-1": 2})
    assert back.lines[0]["cost"] == 150  # the cost it left at, not today's average
    assert valuation(till.edge, "S1", till.product("OAT-1")).value == 4000 + 300
    assert _balanced(till.edge)


def test_without_stock_to_average_the_standard_cost_applies(till: Pos) -> None:
    receipt = till.sell([LineIn("TEA-1", 1)], cash=400)  # none on hand: oversold
    assert receipt.lines[0]["cost"] == 200
    assert till.edge.stock("S1", TEA) == -1
    assert moving_average(_movements(till.edge, TEA), 200) == (-1, 200, -200)


def test_the_cost_lookup_uses_the_product_index(till: Pos) -> None:
    plan = " ".join(str(r[-1]) for r in till.edge.conn.execute(
        "EXPLAIN QUERY PLAN SELECT SUM(qty) FROM stock_movement WHERE product_id = ? "
        "AND +site = ? AND _deleted = 0", (PRODUCT, "S1")))
    assert "USING INDEX" in plan and "product_id" in plan


def test_counts_and_transfers_move_stock_at_the_moving_average(till: Pos) -> None:
    stock = Inventory(till.edge)
    assert stock.count("OAT-1", 18) == -2
    tb = trial_balance(till.edge)
    assert tb["5100"] == (300, 0)  # 2 lost at 1.50, not at the standard 1.20
    shipped = stock.ship("OAT-1", 3, "S2")
    transfer = till.edge.get("transfer", shipped.transfer_id)
    assert transfer is not None and transfer["unit_cost"] == 150
    assert trial_balance(till.edge)["1210"] == (450, 0)
    assert valuation(till.edge, "S1", till.product("OAT-1")).value == 3000 - 300 - 450
    assert _balanced(till.edge)


def test_charging_on_account_within_the_credit_limit(till: Pos) -> None:
    accounts = Accounts(till.edge)
    till.sell([LineIn("OAT-1", 2)], on_account=500, customer_id=ADA)
    till.sell([LineIn("TEA-1", 1)], cash=100, on_account=300, customer_id=ADA)
    assert accounts.balance(ADA) == 800
    with pytest.raises(PosError, match=r"balance to 10\.50, over the credit limit of 10\.00 "
                                       r"\(2\.00 left\)"):
        till.sell([LineIn("OAT-1", 1)], on_account=250, customer_id=ADA)
    with pytest.raises(PosError, match="Bo has no credit limit"):
        till.sell([LineIn("OAT-1", 1)], on_account=250, customer_id=BO)
    with pytest.raises(PosError, match="unknown customer"):
        till.sell([LineIn("OAT-1", 1)], on_account=250, customer_id=key(299))
    assert len(till.edge.query("sale")) == 2  # the refused sales left nothing
    assert till.edge.store.get_state("receipt_seq") == "2"
    tb = trial_balance(till.edge)
    assert tb[RECEIVABLE] == (800, 0) and _balanced(till.edge)


def test_a_payment_lowers_the_balance_and_the_statement_shows_it(till: Pos) -> None:
    accounts = Accounts(till.edge)
    sale = till.sell([LineIn("OAT-1", 4)], on_account=1000, customer_id=ADA)
    paid = accounts.take_payment(ADA, cash=600, card=150)
    assert (paid.amount, paid.balance, paid.receipt_no) == (750, 250, "S1-t1-000002")
    ops = [o for o in till.edge.pending() if o.group == paid.payment_id]
    assert {o.entity for o in ops} == {"customer_payment", "customer_entry", "journal_line"}
    st = accounts.statement(ADA)
    assert [(ln.kind, ln.receipt_no, ln.amount, ln.balance) for ln in st.lines] == [
        ("charge", sale.receipt_no, 1000, 1000), ("payment", "S1-t1-000002", -750, 250)]
    assert (st.balance, st.credit_limit, st.available) == (250, 1000, 750)
    tb = trial_balance(till.edge)
    assert tb[RECEIVABLE] == (1000, 750) and tb[CASH] == (600, 0) and tb["1010"] == (150, 0)
    assert _balanced(till.edge)


@pytest.mark.parametrize(("customer", "pay", "message"), [
    (ADA, {"cash": 0}, "needs an amount"),
    (ADA, {"cash": -5}, "cannot be negative"),
    (key(299), {"cash": 100}, "unknown customer"),
])
def test_bad_payments_are_refused_and_leave_nothing(till: Pos, customer: str,
                                                   pay: dict[str, Any], message: str) -> None:
    with pytest.raises(AccountError, match=message):
        Accounts(till.edge).take_payment(customer, **pay)
    assert till.edge.pending() == [] and till.edge.store.get_state("receipt_seq") is None


def test_returning_goods_charged_on_account_credits_the_account(till: Pos) -> None:
    sale = till.sell([LineIn("OAT-1", 2)], cash=200, on_account=300, customer_id=ADA)
    till.return_sale(sale.receipt_no, {"OAT-1": 1})  # 2.50 back: all of it to the account
    assert Accounts(till.edge).balance(ADA) == 50
    back = till.return_sale(sale.receipt_no, {"OAT-1": 1})  # 0.50 left on it, 2.00 in cash
    assert Accounts(till.edge).balance(ADA) == 0
    (row,) = till.edge.query("sale", id=back.sale_id)
    assert (row["on_account"], row["cash"]) == (-50, -200)
    assert _balanced(till.edge)


def test_an_exchange_is_a_return_and_a_sale_in_one_group(till: Pos) -> None:
    sale = till.sell([LineIn("OAT-1", 2)], cash=500)
    done = till.exchange(sale.receipt_no, {"OAT-1": 2}, [LineIn("TEA-1", 2)], cash=500,
                         card=100)
    assert (done.due, done.change) == (300, 300)  # 8.00 - 5.00 refunded; 1.00 by card
    assert done.returned.total == -500 and done.sold.total == 800
    ops = till.edge.pending()
    groups = {o.group for o in ops if o.group not in (sale.sale_id,)}
    assert groups == {next(o.group for o in ops if o.key == done.sold.sale_id)}
    assert till.edge.stock("S1", PRODUCT) == 20 and till.edge.stock("S1", TEA) == -2
    tb = trial_balance(till.edge)
    assert tb[CASH] == (500 + 800 - 100, 500) and tb["1010"] == (100, 0)
    assert _balanced(till.edge)


def test_an_exchange_for_cheaper_goods_refunds_the_difference(till: Pos) -> None:
    sale = till.sell([LineIn("TEA-1", 1)], cash=400)
    done = till.exchange(sale.receipt_no, {"TEA-1": 1}, [LineIn("OAT-1", 1)], card=100)
    assert (done.due, done.change) == (-150, 50)  # 1.00 back to the card, 0.50 in cash
    assert _balanced(till.edge)


def test_an_exchange_of_goods_bought_on_account_credits_the_account(till: Pos) -> None:
    accounts = Accounts(till.edge)
    sale = till.sell([LineIn("TEA-1", 1)], on_account=400, customer_id=ADA)
    # the tea was never paid for: no money goes back, the gum is to pay
    with pytest.raises(PosError, match="payments 0 do not cover the difference 250"):
        till.exchange(sale.receipt_no, {"TEA-1": 1}, [LineIn("OAT-1", 1)])
    assert accounts.balance(ADA) == 400 and len(till.edge.query("sale")) == 1
    done = till.exchange(sale.receipt_no, {"TEA-1": 1}, [LineIn("OAT-1", 1)], cash=300)
    assert (done.due, done.change) == (250, 50)
    assert accounts.balance(ADA) == 0  # the whole charge is credited back
    assert [(ln.kind, ln.amount) for ln in accounts.statement(ADA).lines] == [
        ("charge", 400), ("return", -400)]
    tb = trial_balance(till.edge)
    assert tb[CASH] == (250, 0) and tb[RECEIVABLE] == (400, 400) and _balanced(till.edge)
    (returned,) = till.edge.query("sale", id=done.returned.sale_id)
    assert (returned["on_account"], returned["cash"], returned["card"]) == (-400, 0, 0)


def test_an_exchange_credits_the_account_first_and_refunds_only_what_was_paid(
        till: Pos) -> None:
    accounts = Accounts(till.edge)
    sale = till.sell([LineIn("OAT-1", 2)], cash=400, on_account=100, customer_id=ADA)
    done = till.exchange(sale.receipt_no, {"OAT-1": 2}, [LineIn("OAT-1", 1)], card=100)
    # 5.00 back: 1.00 to the account, 2.50 for the new carton, 1.00 to the card, 0.50 cash
    assert (done.due, done.change) == (-150, 50) and accounts.balance(ADA) == 0
    tb = trial_balance(till.edge)
    assert tb["1010"] == (0, 100) and tb[CASH][0] - tb[CASH][1] == 400 - 50
    assert tb[RECEIVABLE] == (100, 100) and _balanced(till.edge)
    # a later return of the same sale has nothing left on account to credit
    again = till.sell([LineIn("OAT-1", 2)], cash=300, on_account=200, customer_id=ADA)
    done = till.exchange(again.receipt_no, {"OAT-1": 1}, [LineIn("OAT-1", 1)], cash=200)
    assert (done.due, done.change) == (200, 0)  # 2.00 of the 2.50 back went to the account
    assert accounts.balance(ADA) == 0
    back = till.return_sale(again.receipt_no, {"OAT-1": 1})
    (row,) = till.edge.query("sale", id=back.sale_id)
    assert (row["on_account"], row["cash"]) == (0, -250) and accounts.balance(ADA) == 0


@pytest.mark.parametrize(("back", "take", "pay", "message"), [
    ({"OAT-1": 3}, [LineIn("TEA-1", 1)], {"cash": 500}, "only 2 of OAT-1"),
    ({"OAT-1": 1}, [LineIn("NOPE", 1)], {"cash": 500}, "unknown SKU"),
    ({"OAT-1": 1}, [LineIn("TEA-1", 1)], {"cash": 50}, "do not cover the difference 150"),
    ({"OAT-1": 1}, [LineIn("TEA-1", 1)], {"card": 200}, "at most the difference due"),
    ({}, [LineIn("TEA-1", 1)], {"cash": 500}, "nothing to take back"),
    ({"OAT-1": 1}, [], {"cash": 500}, "at least one line"),
])
def test_bad_exchanges_are_refused_and_leave_nothing(till: Pos, back: dict[str, int],
                                                    take: list[LineIn], pay: dict[str, Any],
                                                    message: str) -> None:
    sale = till.sell([LineIn("OAT-1", 2)], cash=500)
    before = len(till.edge.pending())
    with pytest.raises(PosError, match=message):
        till.exchange(sale.receipt_no, back, take, **pay)
    assert len(till.edge.pending()) == before and till.edge.stock("S1", PRODUCT) == 18


def test_the_cli_takes_payments_shows_statements_and_exchanges(
        till: Pos, capsys: pytest.CaptureFixture[str]) -> None:
    from client.cli import main

    db = ["--db", str(till.edge.path)]
    assert main([*db, "sell", "OAT-1:2", "--on-account", "5.00", "--customer", ADA]) == 0
    assert main([*db, "pay", ADA, "--cash", "2.00"]) == 0
    assert "balance 3.00" in capsys.readouterr().out
    assert main([*db, "account", ADA]) == 0
    out = capsys.readouterr().out
    assert "customer Ada: credit limit 10.00" in out and "balance 3.00, available 7.00" in out
    assert main([*db, "sell", "OAT-1:4", "--on-account", "10.00", "--customer", ADA]) == 3
    assert "over the credit limit of 10.00" in capsys.readouterr().err
    assert main([*db, "pay", ADA, "--cash", "1.005"]) == 3
    assert main([*db, "account", key(299)]) == 3
    # the carton back was bought on account: 2.50 goes to the account, the tea is to pay
    assert main([*db, "exchange", "S1-t1-000001", "--back", "OAT-1:1", "--take", "TEA-1:1",
                 "--cash", "5.00"]) == 0
    assert "due 4.00, change 1.00" in capsys.readouterr().out
    assert main([*db, "account", ADA]) == 0
    assert "balance 0.50" in capsys.readouterr().out  # 5.00 charged, 2.00 paid, 2.50 back
    assert main([*db, "exceptions"]) == 0


def test_opening_stock_puts_the_shelves_on_the_books(till: Pos) -> None:
    from schema.finance import OPENING_EQUITY
    edge = till.edge
    inv = Inventory(edge)
    before = trial_balance(edge).get(INVENTORY, (0, 0))
    doc = inv.opening_stock([(TEA, 12, 180)], "stock clerk")
    assert edge.stock("S1", TEA) == 12
    tb = trial_balance(edge)
    assert tb[INVENTORY][0] - before[0] == 12 * 180
    assert tb[OPENING_EQUITY] == (0, 12 * 180)
    assert _balanced(edge) and valuation(edge, "S1", till.product("TEA-1")).value == 12 * 180
    assert all(op.group == doc for _, op in edge.store.outbox(0, 100)[-2:])
    pending = edge.store.pending_count()
    with pytest.raises(PosError, match="must be positive"):
        inv.opening_stock([(TEA, 3, 100), (PRODUCT, 0, 100)])
    assert edge.store.pending_count() == pending and edge.stock("S1", TEA) == 12


def test_the_cached_value_follows_uncosted_corrected_and_deleted_movements(
        till: Pos) -> None:
    """The stock cache keeps what the moving average needs, so a sale reads no
    ledger: a movement without a cost counts at the product's standard cost,
    HQ correcting a movement's cost or deleting it moves the value at once,
    and every figure equals HQ's reckoning over the same movements."""
    edge = till.edge

    def movement(n: int, qty: int, cost: int | None, version: int = 1,
                 deleted: bool = False) -> Row:
        return Row("stock_movement", key(n), version, {
            "site": "S1", "product_id": PRODUCT, "qty": qty, "reason": "receipt",
            "unit_cost": cost}, deleted)

    def agrees(on_hand: int, value: int) -> None:
        now = valuation(edge, "S1", till.product("OAT-1"))
        assert (now.on_hand, now.value) == (on_hand, value)
        assert moving_average(_movements(edge, PRODUCT), 120) == (on_hand, now.average, value)
        assert edge.stock_mismatches() == []

    agrees(20, 3000)  # the fixture's receipts: 10 at 1.00 and 10 at 2.00
    with edge.transaction():  # an opening balance typed in without a cost
        edge.replica.on_rows([movement(510, 5, None)], 3_000)
    agrees(25, 3000 + 5 * 120)
    with edge.transaction():  # HQ costs it after all, at 3.00
        edge.replica.on_rows([movement(510, 5, 300, version=2)], 4_000)
    agrees(25, 3000 + 5 * 300)
    with edge.transaction():  # and then withdraws it
        edge.replica.on_rows([movement(510, 5, 300, version=3, deleted=True)], 5_000)
    agrees(20, 3000)
    receipt = till.sell([LineIn("OAT-1", 4)], cash=1000)
    assert receipt.lines[0]["cost"] == 150
    agrees(16, 2400)
