"""Returns to a supplier, offline: goods leave at the site's moving average,
the payable falls by what the supplier credits (the order's price), the
difference is a purchase price variance, and no more goes back against an
order than it delivered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.costing import valuation
from client.edge import Edge
from client.inventory import Inventory
from client.pos import LineIn, Pos, trial_balance
from client.procurement import Procurement, ProcurementError
from schema import SCHEMA
from schema.finance import INVENTORY, PAYABLE, PRICE_VARIANCE, moving_average
from sync.memory import MemoryServerStore
from sync.messages import Status
from sync.server import apply_ops
from tests.sync.kit import HQ, by, hire_staff, key, op

TEA, OTHER, PO = key(101), key(102), key(300)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    """Store S1 with tea (standard cost 1.00) and an approved order for 10 at 3.00."""
    e = Edge(tmp_path / "till.db")
    e.configure("ws://127.0.0.1:1/sync", "t1", "S1", "bl_x")
    server = MemoryServerStore()
    hire_staff(server)
    made = apply_ops(SCHEMA, server, HQ, [
        op(HQ, "product", TEA, {"sku": "TEA-1", "name": "Green tea", "price": 1000,
                                "cost": 100}),
        op(HQ, "product", OTHER, {"sku": "OAT-1", "name": "Oat milk", "price": 250,
                                  "cost": 120}),
        op(HQ, "purchase_order", PO, {"site": "S1", "supplier": "Teaco", "total": 3000,
                                      "status": "draft"}),
        op(HQ, "po_line", key(301), {"po_id": PO, "site": "S1", "product_id": TEA, "qty": 10,
                                     "unit_cost": 300}),
    ])
    made += apply_ops(SCHEMA, server, HQ, [  # by another than its drafter
        by("u", HQ, "purchase_order", PO, {"status": "approved"}, base=1)])
    assert all(a.status is Status.ACCEPTED for a in made), [a.reason for a in made]
    with e.transaction():
        e.replica.on_rows(list(server.rows.values()), 2_000)
    yield e
    e.close()


def _entry(edge: Edge, document: str) -> dict[str, tuple[int, int]]:
    """Account -> (debit, credit) of one document's journal lines."""
    return {str(a): (int(d), int(c)) for a, d, c in edge.conn.execute(
        "SELECT account, SUM(debit), SUM(credit) FROM journal_line WHERE entry_id = ? "
        "GROUP BY account", (document,))}


def _balanced(edge: Edge) -> bool:
    tb = trial_balance(edge, "S1")
    return sum(d for d, _ in tb.values()) == sum(c for _, c in tb.values())


def _movements(edge: Edge) -> list[tuple[int, int | None]]:
    return [(int(q), c) for q, c in edge.conn.execute(
        "SELECT qty, unit_cost FROM stock_movement WHERE product_id = ? AND site = 'S1' "
        "AND _deleted = 0 ORDER BY rowid", (TEA,))]


def test_the_last_units_go_back_at_the_average_and_the_payable_at_the_order_price(
        edge: Edge) -> None:
    Inventory(edge).opening_stock([(TEA, 10, 100)])
    assert Procurement(edge, "sam").receive(PO, {"TEA-1": 10}) == "received"
    sale = Pos(edge).sell([LineIn("TEA-1", 10)], cash=10_000)  # 10 left at 2.00
    assert sale.lines[0]["cost"] == 200
    back = Procurement(edge, "sam").return_to_supplier("TEA-1", 10, "Teaco", "damaged", po=PO)

    now = valuation(edge, "S1", edge.get("product", TEA) or {})
    assert (now.on_hand, now.value) == (0, 0)  # was -1000: out at the order's 3.00
    assert moving_average(_movements(edge), 100)[::2] == (0, 0)  # HQ's valuation agrees
    (moved,) = edge.query("stock_movement", document_id=back)
    assert (moved["qty"], moved["unit_cost"]) == (-10, 200)
    returned = edge.get("supplier_return", back)
    assert returned is not None and returned["unit_cost"] == 300  # what the supplier credits
    assert _entry(edge, back) == {PAYABLE: (3000, 0), INVENTORY: (0, 2000),
                                  PRICE_VARIANCE: (0, 1000)}
    tb = trial_balance(edge, "S1")
    assert tb[INVENTORY][0] == tb[INVENTORY][1]  # the shelves are empty, so is the account
    assert tb[PAYABLE] == (3000, 3000)  # the supplier owes us nothing, we owe it nothing
    assert _balanced(edge)


def test_goods_dearer_in_the_books_than_on_the_order_book_a_variance_debit(
        edge: Edge) -> None:
    Inventory(edge).opening_stock([(TEA, 10, 500)])
    Procurement(edge, "sam").receive(PO, {"TEA-1": 10})  # 20 at 4.00
    back = Procurement(edge, "sam").return_to_supplier("TEA-1", 5, "Teaco", "damaged", po=PO)
    assert _entry(edge, back) == {PAYABLE: (1500, 0), INVENTORY: (0, 2000),
                                  PRICE_VARIANCE: (500, 0)}
    now = valuation(edge, "S1", edge.get("product", TEA) or {})
    assert (now.on_hand, now.value, now.average) == (15, 6000, 400)
    assert _balanced(edge)


def test_without_an_order_the_payable_falls_by_the_value_at_the_average(edge: Edge) -> None:
    Inventory(edge).opening_stock([(TEA, 10, 100)])
    Procurement(edge, "sam").receive(PO, {"TEA-1": 10})
    back = Procurement(edge, "sam").return_to_supplier("TEA-1", 4, "Teaco", "recall")
    assert _entry(edge, back) == {PAYABLE: (800, 0), INVENTORY: (0, 800)}


def test_no_more_goes_back_against_an_order_than_it_delivered(edge: Edge) -> None:
    Inventory(edge).opening_stock([(TEA, 100, 100)])
    proc = Procurement(edge, "sam")
    proc.receive(PO, {"TEA-1": 4})  # 4 of the 10 ordered so far
    before = (len(edge.pending()), trial_balance(edge, "S1"), edge.stock("S1", TEA))
    with pytest.raises(ProcurementError, match=r"only 4 of TEA-1 can go back against "
                       r"purchase order .* \(delivered 4, returned 0, as this device knows"):
        proc.return_to_supplier("TEA-1", 50, "Teaco", "overstock", po=PO)
    with pytest.raises(ProcurementError, match="only 4 of TEA-1"):
        proc.return_to_supplier("TEA-1", 5, "Teaco", "overstock", po=PO)  # ordered 10
    assert (len(edge.pending()), trial_balance(edge, "S1"), edge.stock("S1", TEA)) == before
    assert edge.query("supplier_return") == []
    proc.return_to_supplier("TEA-1", 3, "Teaco", "overstock", po=PO)
    with pytest.raises(ProcurementError, match=r"only 1 of TEA-1 .*delivered 4, returned 3"):
        proc.return_to_supplier("TEA-1", 2, "Teaco", "overstock", po=PO)
    proc.return_to_supplier("TEA-1", 1, "Teaco", "overstock", po=PO)
    with pytest.raises(ProcurementError, match="only 0 of TEA-1"):
        proc.return_to_supplier("TEA-1", 1, "Teaco", "overstock", po=PO)
    assert trial_balance(edge, "S1")[PAYABLE] == (1200, 1200)  # 4 at 3.00 in and out
    with pytest.raises(ProcurementError, match="OAT-1 is not on purchase order"):
        proc.return_to_supplier("OAT-1", 1, "Teaco", "overstock", po=PO)
    with pytest.raises(ProcurementError, match="no purchase order"):
        proc.return_to_supplier("TEA-1", 1, "Teaco", "overstock", po=key(999))


def test_the_cli_shows_the_refusal(edge: Edge, capsys: pytest.CaptureFixture[str]) -> None:
    from client.cli import main

    Inventory(edge).opening_stock([(TEA, 100, 100)])
    Procurement(edge, "sam").receive(PO, {"TEA-1": 10})
    db = ["--db", str(edge.path)]
    assert main([*db, "po", "return", "TEA-1", "50", "--supplier", "Teaco", "--reason",
                 "overstock", "--po", PO, "--user", "sam"]) == 3
    assert "only 10 of TEA-1 can go back against purchase order" in capsys.readouterr().err
    assert edge.query("supplier_return") == []


class _Midnight(dt.date):
    """A ``date`` whose today() is a day later at each call: a document made
    across midnight, as often as it asks."""

    calls = 0

    @classmethod
    def today(cls) -> _Midnight:
        cls.calls += 1
        return cls.fromordinal(dt.date(2026, 11, 30).toordinal() + cls.calls)


@pytest.fixture
def midnight(monkeypatch: pytest.MonkeyPatch) -> None:
    _Midnight.calls = 0
    for module in ("client.procurement", "client.inventory"):
        monkeypatch.setattr(f"{module}.dt", type("dt", (), {"date": _Midnight}))


def _days(edge: Edge, document: str) -> set[Any]:
    return {r["date"] for r in edge.query("journal_line", entry_id=document)}


def test_a_return_made_across_midnight_is_one_day(edge: Edge, midnight: None) -> None:
    Inventory(edge).opening_stock([(TEA, 10, 100)])
    Procurement(edge, "sam").receive(PO, {"TEA-1": 10})
    back = Procurement(edge, "sam").return_to_supplier("TEA-1", 5, "Teaco", "damaged", po=PO)
    assert len(_days(edge, back)) == 1


def test_a_count_made_across_midnight_is_one_day(edge: Edge, midnight: None) -> None:
    stock = Inventory(edge)
    stock.opening_stock([(TEA, 10, 100)])
    stock.count("TEA-1", 8)
    (counted,) = edge.query("stock_count")
    assert _days(edge, counted["id"]) == {counted["date"]}
