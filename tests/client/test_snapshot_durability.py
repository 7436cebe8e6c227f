"""Snapshot pages commit with ``synchronous=NORMAL`` (HQ can send them again);
everything else, local writes above all, still commits with ``FULL``, also after
a page that failed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.daemon import _Link
from client.edge import Edge
from schema import SCHEMA
from sync.messages import Change, Changes, Row, SnapshotPage, Welcome, encode
from tests.sync.kit import key

FULL, NORMAL = 2, 1


class _Socket:
    def __init__(self) -> None:
        self.sent: list[bytes | str] = []

    async def send(self, data: bytes | str) -> None:
        self.sent.append(data)


def _product(n: int, version: int = 1) -> Row:
    fields: dict[str, object] = {f.name: None for f in SCHEMA["product"].fields}
    fields.update(sku=f"SKU-{n}", name=f"Product {n}", price=100 + n)
    return Row("product", key(n), version, fields, meta={"sku": (f"{n:015d}-000000-hq", version)})


def _level(edge: Edge) -> int:
    return int(edge.conn.execute("PRAGMA synchronous").fetchone()[0])


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    e = Edge(tmp_path / "edge.db")
    e.configure("ws://127.0.0.1:1/sync", "till-1", "S1", "token")
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def seen(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The synchronous level while each batch of rows from HQ is stored."""
    levels: list[int] = []
    apply_rows = edge.store.apply_rows

    def spy(*args: Any, **kwargs: Any) -> list[Row]:
        levels.append(_level(edge))
        return apply_rows(*args, **kwargs)

    monkeypatch.setattr(edge.store, "apply_rows", spy)
    return levels


def _write_at(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> int:
    """A local write; returns the synchronous level its outbox entry was written at."""
    levels: list[int] = []
    add_outbox = edge.store.add_outbox

    def spy(op: Any) -> None:
        levels.append(_level(edge))
        add_outbox(op)

    monkeypatch.setattr(edge.store, "add_outbox", spy)
    edge.write("customer", key(9), {"name": "Ada"})
    monkeypatch.setattr(edge.store, "add_outbox", add_outbox)
    assert len(levels) == 1 and edge.pending()
    return levels[0]


def _link(edge: Edge) -> _Link:
    link = _Link(edge, _Socket(), None, None)  # type: ignore[arg-type]
    link.session.start()
    asyncio.run(link.handle(encode(Welcome(head=5, schema_version=SCHEMA.version,
                                           snapshot_required=True))))
    return link


def test_a_snapshot_page_commits_at_normal_and_full_comes_back(
        edge: Edge, seen: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _level(edge) == FULL
    link = _link(edge)
    asyncio.run(link.handle(encode(SnapshotPage(rows=[_product(1), _product(2)], at=5,
                                                done=False))))
    assert seen == [NORMAL]
    assert _level(edge) == FULL
    assert edge.store.get_state("snapshot_after") == f"product {key(2)}"
    assert _write_at(edge, monkeypatch) == FULL

    asyncio.run(link.handle(encode(SnapshotPage(rows=[_product(3)], at=5, done=True))))
    assert _level(edge) == FULL
    assert edge.status().bootstrapped
    # after the snapshot, changes are not resendable by this rule: FULL
    asyncio.run(link.handle(encode(Changes(changes=[Change(6, _product(1, 2))], cursor=6,
                                           since=5))))
    assert seen == [NORMAL, NORMAL, FULL]
    assert _level(edge) == FULL


def test_full_comes_back_when_a_page_fails(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    link = _link(edge)

    def fail(*args: Any, **kwargs: Any) -> list[Row]:
        assert _level(edge) == NORMAL
        raise RuntimeError("disk full")

    monkeypatch.setattr(edge.store, "apply_rows", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        asyncio.run(link.handle(encode(SnapshotPage(rows=[_product(1)], at=5, done=False))))
    assert _level(edge) == FULL
    assert not edge.conn.in_transaction
    assert edge.store.get_state("snapshot_after") is None  # the page is asked for again
    assert _write_at(edge, monkeypatch) == FULL


def test_inside_an_open_transaction_nothing_is_relaxed(edge: Edge) -> None:
    with edge.transaction() as store, store.resendable():
        assert _level(edge) == FULL
    with edge.store.resendable():
        assert _level(edge) == NORMAL
    assert _level(edge) == FULL
