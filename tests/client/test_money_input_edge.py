"""Bad amounts and bad timeouts at the edge CLI are refused before anything is
written: no sale in the outbox, no receipt number used, a one-line message and
the CLI's bad-input exit code (3 for an amount, argparse's 2 for a timeout)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from client.cli import main
from client.edge import Edge
from client.pos import MAX_AMOUNT, LineIn, Pos, PosError, format_money, parse_money
from schema import SCHEMA
from server.hq_api import Money
from sync.memory import MemoryServerStore
from sync.server import apply_ops
from tests.sync.kit import HQ, PRODUCT, hire_staff, key, op

CUSTOMER = key(77)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    """A till of site S1 with OAT-1 (2.50 + 20% tax) and 5 on the shelf; its server
    is unreachable (port 1)."""
    edge = Edge(tmp_path / "till.db")
    edge.configure("ws://127.0.0.1:1/sync", "t1", "S1", "bl_x")
    server = MemoryServerStore()
    hire_staff(server)
    apply_ops(SCHEMA, server, HQ, [
        op(HQ, "product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250,
                                    "cost": 120, "tax_rate": 2000}),
        op(HQ, "stock_movement", key(500), {"site": "S1", "product_id": PRODUCT, "qty": 5,
                                            "reason": "receipt"})])
    with edge.transaction():
        edge.replica.on_rows(list(server.rows.values()), 2_000)
    yield edge
    edge.close()


def _written(edge: Edge) -> tuple[int, str | None, int]:
    """What a sale would change: ops in the outbox, the receipt counter, the shelf."""
    return len(edge.pending()), edge.store.get_state("receipt_seq"), edge.stock("S1", PRODUCT)


TOO_BIG = ["1e400", "1e30", "1" + "0" * 30, "10000000000.01", "99999999999999999999999999",
           "Infinity", "NaN", "1e3"]


@pytest.mark.parametrize("amount", TOO_BIG)
@pytest.mark.parametrize("option", ["--cash", "--card", "--on-account"])
def test_sell_refuses_a_huge_or_exponent_amount_before_writing(
        edge: Edge, capsys: pytest.CaptureFixture[str], option: str, amount: str) -> None:
    before = _written(edge)
    extra = ["--customer", CUSTOMER] if option == "--on-account" else []
    assert main(["--db", str(edge.path), "sell", "OAT-1:1", option, amount, *extra]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("refused: ") and err.count("\n") == 1 and "Traceback" not in err
    assert repr(amount) in err or "more than the largest amount, 10000000000.00" in err
    assert _written(edge) == before


@pytest.mark.parametrize("args", [
    ["sell", "OAT-1:1:1e30", "--cash", "3.00"],  # a line discount
    ["pay", CUSTOMER, "--cash", "1e400"],
    ["pay", CUSTOMER, "--card", "10000000000.01"],
    ["po", "create", "--site", "S1", "--supplier", "Oatly", "OAT-1:1:1e30"],
])
def test_every_amount_option_goes_through_the_same_parser(
        edge: Edge, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    before = _written(edge)
    assert main(["--db", str(edge.path), *args]) == 3
    err = capsys.readouterr().err
    assert err.startswith("refused: ") and err.count("\n") == 1
    assert "not an amount" in err or "more than the largest amount" in err
    assert _written(edge) == before


@pytest.mark.parametrize("args", [
    ["return", "{receipt}", "OAT-1:1", "--card", "1e30"],
    ["exchange", "{receipt}", "--back", "OAT-1:1", "--take", "OAT-1:1", "--cash", "1e400"],
    ["exchange", "{receipt}", "--back", "OAT-1:1", "--take", "OAT-1:1", "--card",
     "10000000000.01"],
])
def test_returns_and_exchanges_refuse_huge_amounts_before_writing(
        edge: Edge, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    receipt = Pos(edge).sell([LineIn("OAT-1", 1)], cash=300).receipt_no
    before = _written(edge)
    assert main(["--db", str(edge.path), *(a.format(receipt=receipt) for a in args)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("refused: ") and err.count("\n") == 1
    assert _written(edge) == before


def test_the_largest_amount_is_taken_and_the_change_printed_exactly(
        edge: Edge, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(edge.path), "sell", "OAT-1:1", "--cash", "10000000000.00"]) == 0
    assert capsys.readouterr().out.strip() \
        == "receipt S1-t1-000001: total 3.00 (tax 0.50), change 9999999997.00"


def test_the_edge_bound_is_the_servers_money_bound() -> None:
    assert MAX_AMOUNT == get_args(Money)[1].le == 10**12
    assert parse_money("10000000000") == MAX_AMOUNT
    with pytest.raises(PosError, match="more than the largest amount"):
        parse_money("10000000000.01")
    with pytest.raises(PosError, match="more than the largest amount"):
        parse_money("-10000000000.01")


def test_money_is_formatted_without_float_division() -> None:
    assert format_money(10**30 + 5) == "1" + "0" * 28 + ".05"
    assert format_money(-5) == "-0.05" and format_money(0) == "0.00"
    assert format_money(123456) == "1234.56" and format_money(-100) == "-1.00"


@pytest.mark.parametrize("command", ["sync", "status"])
@pytest.mark.parametrize("timeout", ["-1", "0", "-0", "nan", "inf", "-inf", "1e400", "abc"])
def test_a_timeout_that_is_not_a_positive_number_is_bad_input(
        edge: Edge, capsys: pytest.CaptureFixture[str], command: str, timeout: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--db", str(edge.path), command, f"--timeout={timeout}"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timeout" in err and repr(timeout) in err
    assert "did not finish" not in err and "offline" not in err
    assert edge.status().last_sync_ms is None


def test_a_positive_timeout_is_still_taken(edge: Edge, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    assert main(["--db", str(edge.path), "sync", "--timeout", "0.5", "--no-progress"]) == 5
    assert "server unreachable" in capsys.readouterr().err


def test_put_without_field_equals_value_is_bad_input_and_writes_nothing(
        edge: Edge, capsys: pytest.CaptureFixture[str]) -> None:
    before = _written(edge)
    assert main(["--db", str(edge.path), "put", "customer", CUSTOMER, "name=Ada", "phone"]) == 2
    assert capsys.readouterr().err.strip() == "expected field=value, got 'phone'"
    assert _written(edge) == before and edge.get("customer", CUSTOMER) is None
