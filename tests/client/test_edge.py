"""The Edge API: local writes are atomic, checked, and the stock cache tells the truth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from client.cli import parser as edge_parser
from client.edge import Edge, NotConfigured
from server.cli import parser as server_parser
from sync.replica import LocalRejected
from tests.sync.kit import PRODUCT, key


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    e = Edge(tmp_path / "till.db")
    e.configure("ws://127.0.0.1:1/sync", "s1-till1", "S1", "bl_token")
    yield e
    e.close()


def _sale(edge: Edge, n: int, qty: int, group: str = "") -> None:
    edge.write("stock_movement", key(n), {"site": "S1", "product_id": PRODUCT, "qty": qty,
                                          "reason": "sale"}, group=group)


def test_an_unconfigured_edge_says_how_to_set_it_up(tmp_path: Path) -> None:
    e = Edge(tmp_path / "new.db")
    with pytest.raises(NotConfigured, match="branchline-edge init"):
        e.write("customer", key(1), {"name": "x"})
    e.close()


def test_a_write_is_visible_at_once_and_queued(edge: Edge) -> None:
    op = edge.write("customer", key(1), {"name": "Ada", "phone": "1"})
    assert edge.get("customer", key(1))["phone"] == "1"  # type: ignore[index]
    assert [o.op_id for o in edge.pending()] == [op.op_id]
    assert edge.query("customer", phone="1")[0]["name"] == "Ada"


def test_a_refused_write_leaves_nothing_behind(edge: Edge) -> None:
    with pytest.raises(LocalRejected, match="only HQ creates it"):
        edge.write("product", PRODUCT, {"sku": "x", "name": "x", "price": 1})
    with pytest.raises(LocalRejected, match="must be an integer"):
        _sale(edge, 2, "three")  # type: ignore[arg-type]
    assert edge.pending() == [] and edge.get("product", PRODUCT) is None


def test_a_business_transaction_is_all_or_nothing(edge: Edge) -> None:
    with pytest.raises(LocalRejected), edge.transaction():
        _sale(edge, 3, -1, group="t1")
        edge.write("customer", key(4), {"phone": "no name"}, group="t1")
    assert edge.pending() == [] and edge.stock("S1", PRODUCT) == 0


def test_stock_cache_follows_the_ledger_and_can_be_rebuilt(edge: Edge) -> None:
    _sale(edge, 10, 10)
    _sale(edge, 11, -3)
    _sale(edge, 12, -1)
    assert edge.stock("S1", PRODUCT) == 6
    assert edge.stock_mismatches() == []
    edge.conn.execute("UPDATE stock_on_hand SET qty = 99")
    assert edge.stock_mismatches() == [("S1", PRODUCT, 99, 6)]
    edge.rebuild_stock()
    assert edge.stock("S1", PRODUCT) == 6 and edge.stock_mismatches() == []


def test_query_names_the_unknown_field(edge: Edge) -> None:
    with pytest.raises(KeyError, match="customer has no field 'shoe'"):
        edge.query("customer", shoe=1)


def _walk(p: object) -> Iterator[tuple[str, str | None]]:
    import argparse

    assert isinstance(p, argparse.ArgumentParser)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{p.prog} {choice.dest}", choice.help
            for sub in action.choices.values():
                yield from _walk(sub)
        elif not isinstance(action, argparse._HelpAction):
            yield f"{p.prog} {'/'.join(action.option_strings) or action.dest}", action.help


@pytest.mark.parametrize("make", [edge_parser, server_parser])
def test_every_command_and_option_has_help(make: object) -> None:
    missing = [name for name, text in _walk(make()) if not text]  # type: ignore[operator]
    assert missing == []
