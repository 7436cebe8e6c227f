"""The Edge API: local writes are atomic, checked, and the stock cache tells the truth."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.commands import parser as edge_parser
from client.daemon import backoff
from client.edge import Edge
from client.errors import NotConfigured
from schema import Entity, Field, Kind, Policy, Schema
from schema.people import employee_key
from server.cli import parser as server_parser
from sync.messages import Ack, Row, Status
from sync.replica import LocalRejected
from tests.sync.kit import PRODUCT, key


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


def test_a_nested_block_that_fails_undoes_only_itself(edge: Edge) -> None:
    with edge.transaction():
        first = edge.write("customer", key(1), {"name": "Ada"})
        with pytest.raises(LocalRejected):
            edge.write("customer", key(2), {"phone": "no name"})
        with pytest.raises(sqlite3.IntegrityError), edge.transaction():
            edge.write("customer", key(3), {"name": "Bo"})
            edge.replica.write("customer", key(4), {"name": "Cy"}, "clerk", 1, op_id=first.op_id)
    assert [o.key for o in edge.pending()] == [key(1)]
    assert edge.get("customer", key(3)) is None


def test_stock_cache_follows_the_ledger_and_can_be_rebuilt(edge: Edge) -> None:
    _sale(edge, 10, 10)
    _sale(edge, 11, -3)
    _sale(edge, 12, -1)
    assert edge.stock("S1", PRODUCT) == 6
    assert edge.stock_mismatches() == []
    edge.conn.execute("UPDATE stock_on_hand SET qty = 99")
    [(site, product, cached, ledger)] = edge.stock_mismatches()
    assert (site, product, cached.qty, ledger.qty) == ("S1", PRODUCT, 99, 6)
    assert cached[1:] == ledger[1:]  # only the quantity was tampered with
    edge.rebuild_stock()
    assert edge.stock("S1", PRODUCT) == 6 and edge.stock_mismatches() == []


def test_check_stock_command_finds_and_mends_a_wrong_cache(
    edge: Edge, capsys: pytest.CaptureFixture[str]
) -> None:
    from client.cli import main
    _sale(edge, 10, 10)
    _sale(edge, 11, -4)
    db = ["--db", str(edge.path)]
    assert main([*db, "check-stock"]) == 0
    assert "0 differences" in capsys.readouterr().out
    edge.conn.execute("UPDATE stock_on_hand SET qty = 99")
    edge.conn.commit()
    assert main([*db, "check-stock"]) == 1
    assert f"S1\t{PRODUCT}\tcache 99 (costed value" in capsys.readouterr().out
    assert main([*db, "check-stock", "--rebuild"]) == 0
    assert "0 differences left" in capsys.readouterr().out
    assert edge.stock("S1", PRODUCT) == 6


def test_stock_cache_follows_rows_from_hq_and_refused_movements(edge: Edge) -> None:
    def movement(n: int, qty: int, version: int = 1, deleted: bool = False) -> Row:
        return Row("stock_movement", key(n), version, {
            "site": "S1", "product_id": PRODUCT, "qty": qty, "reason": "receipt",
            "unit_cost": None}, deleted)

    with edge.transaction():
        edge.replica.on_rows([movement(20, 10), movement(21, 5), movement(22, 7)], 1_000,
                             snapshot=True)
    assert edge.stock("S1", PRODUCT) == 22
    mine = edge.write("stock_movement", key(23), {"site": "S1", "product_id": PRODUCT,
                                                  "qty": -4, "reason": "sale"})
    assert edge.stock("S1", PRODUCT) == 18
    with edge.transaction():
        edge.replica.on_rows([movement(21, 5, version=2, deleted=True)], 2_000)
        edge.replica.on_ack(Ack(mine.op_id, Status.REJECTED, "no such product here"), 2_000)
    assert edge.stock("S1", PRODUCT) == 17 and edge.stock_mismatches() == []
    assert [r.reason for r in edge.rejections()] == ["no such product here"]
    assert edge.get("stock_movement", key(23)) is None


def test_a_delete_leaves_a_tombstone_until_hq_confirms(edge: Edge) -> None:
    manager = {"login": "mgr", "name": "M", "department": "sales", "site": "S1",
               "role": "store_manager"}  # deleting a customer is a manager's call
    edge.replica.on_row(Row("employee", employee_key("mgr"), 1, manager, False, {}), 1_000)
    edge.write("customer", key(1), {"name": "Ada"})
    op = edge.delete("customer", key(1), "mgr")
    assert op.delete and edge.get("customer", key(1)) is None
    assert edge.get("customer", key(1), include_deleted=True)["_deleted"] == 1  # type: ignore[index]
    assert edge.query("customer") == []
    with pytest.raises(LocalRejected):
        edge.write("customer", key(1), {"phone": "1"})
    assert len(edge.pending()) == 2


def test_query_names_the_unknown_field(edge: Edge) -> None:
    with pytest.raises(KeyError, match="customer has no field 'shoe'"):
        edge.query("customer", shoe=1)
    with pytest.raises(KeyError, match="unknown entity 'shoe'"):
        edge.get("shoe", key(1))


def test_query_matches_null_and_values_round_trip(tmp_path: Path) -> None:
    gadget = Entity("gadget", fields=(Field("name", Kind.TEXT, Policy.LWW),
                                      Field("on", Kind.BOOL, Policy.LWW, required=False)))
    with Edge(tmp_path / "g.db", Schema(version=1, entities=(gadget,))) as e:
        e.configure("ws://127.0.0.1:1/sync", "d", "S1", "bl_x")
        e.write("gadget", key(1), {"name": "lamp", "on": True})
        e.write("gadget", key(2), {"name": "fan"})
        assert e.get("gadget", key(1))["on"] is True  # type: ignore[index]
        assert [r["name"] for r in e.query("gadget", on=None)] == ["fan"]
        assert [r["name"] for r in e.query("gadget", on=True)] == ["lamp"]


def test_two_processes_share_one_file(edge: Edge) -> None:
    with Edge(edge.path) as other:
        seq = edge.store.outbox_seq()
        other.write("customer", key(1), {"name": "Ada"})
        assert edge.store.outbox_seq() == seq + 1
        assert edge.get("customer", key(1))["name"] == "Ada"  # type: ignore[index]
        with other.transaction():
            other.store.set_state("cursor", "5")
        assert edge.status().cursor == 5 and edge.status().pending == 1


def test_status_of_a_new_device(edge: Edge) -> None:
    s = edge.status()
    assert (s.device, s.site, s.pending, s.cursor, s.rejections) == ("s1-till1", "S1", 0, 0, 0)
    assert s.last_sync_ms is None and not s.bootstrapped


def test_backoff_is_exponential_with_full_jitter() -> None:
    assert [backoff(n, 0.5, 30, rand=lambda: 1.0) for n in range(8)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(1000, 0.5, 30, rand=lambda: 1.0) == 30.0
    assert backoff(3, 0.5, 30, rand=lambda: 0.0) == 0.0


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
