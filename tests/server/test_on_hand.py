"""Stock on hand is kept as a balance beside the movement ledger (``server.on_hand``):
whatever the pushes did (sales at two stores, a rejected group, a resend, a
forged site, a transaction that failed), each balance equals the sum of the
movements committed, on SQLite and PostgreSQL, and after a restart."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy import select, update

from schema import SCHEMA
from server import on_hand
from server.cli import main as branchline
from sync.merge import Actor
from sync.messages import Op
from sync.server import apply_ops
from tests.sync.kit import HQ, PRODUCT, S1_TILL1, S1_TILL2, S2_TILL1, hire_staff, key, op

from .conftest import Backend

OTHER = key(101)


def _move(site: str, qty: int, product: str = PRODUCT, reason: str = "sale"
          ) -> dict[str, object]:
    return {"site": site, "product_id": product, "qty": qty, "reason": reason}


def _levels(backend: Backend) -> dict[tuple[str, str], int]:
    assert backend.db is not None
    with backend.db.transaction(write=False) as store:
        return {(s, p): int(n) for s, p, n in store.conn.execute(
            on_hand.levels(backend.db.metadata))}


def _statuses(backend: Backend, actor: Actor, ops: list[Op]) -> list[str]:
    with backend.tx() as store:
        store.prefetch(ops)
        return [a.status for a in apply_ops(SCHEMA, store, actor, ops)]


def test_each_balance_is_the_sum_of_the_movements_committed(sql_backend: Backend) -> None:
    backend = sql_backend
    with backend.tx() as store:
        hire_staff(store)
        product = op(HQ, "product", OTHER, {"sku": "SKU-2", "name": "Rye", "price": 350})
        assert [a.status for a in apply_ops(SCHEMA, store, HQ, [product])] == ["accepted"]
    s1 = [op(S1_TILL1, "stock_movement", key(1000 + i), _move("S1", q))
          for i, q in enumerate((-1, -2, -3))]
    s1.append(op(S1_TILL1, "stock_movement", key(1010), _move("S1", 10, reason="receipt")))
    s1.append(op(S1_TILL1, "stock_movement", key(1011), _move("S1", -4, OTHER)))
    assert _statuses(backend, S1_TILL1, s1) == ["accepted"] * 5
    s2 = [op(S2_TILL1, "stock_movement", key(2000), _move("S2", -5))]
    assert _statuses(backend, S2_TILL1, s2) == ["accepted"]

    # a group with one bad movement (qty 0) is refused whole: neither counts
    group = [msgspec.structs.replace(o, group="g-1") for o in (
        op(S1_TILL1, "stock_movement", key(1020), _move("S1", -7)),
        op(S1_TILL1, "stock_movement", key(1021), _move("S1", 0)))]
    assert _statuses(backend, S1_TILL1, group) == ["rejected", "rejected"]
    # a resend of applied ops is answered from the acks, not counted again
    assert _statuses(backend, S1_TILL1, s1[:2]) == ["accepted", "accepted"]
    # a till of S1 cannot move S2's stock
    forged = op(S1_TILL1, "stock_movement", key(1030), _move("S2", -100))
    assert _statuses(backend, S1_TILL1, [forged]) == ["rejected"]
    # a transaction that fails after recording leaves no balance behind
    lost = op(S1_TILL1, "stock_movement", key(1040), _move("S1", -50))
    with pytest.raises(RuntimeError), backend.tx() as store:
        apply_ops(SCHEMA, store, S1_TILL1, [lost])
        assert store.on_hand("S1", PRODUCT) == 4 - 50  # type: ignore[attr-defined]
        raise RuntimeError("the connection dropped before COMMIT")

    backend.reopen()  # a restart: read what was committed
    assert _levels(backend) == {("S1", PRODUCT): 4, ("S1", OTHER): -4, ("S2", PRODUCT): -5}
    assert backend.db is not None
    with backend.db.transaction(write=False) as store:
        assert on_hand.drift(store.conn, backend.db.metadata) == []
        moves = {s: (int(n), int(m)) for s, n, _, m in store.conn.execute(
            on_hand.by_site(backend.db.metadata))}
        assert store.on_hand("S1", PRODUCT) == 4 and store.on_hand("S3", PRODUCT) == 0
    assert moves == {"S1": (2, 5), "S2": (1, 1)}  # (products that moved, movements)


def test_check_stock_finds_a_wrong_balance_and_rebuilds_it(
        tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/hq.db"
    backend = Backend("sqlite", url)
    with backend.tx() as store:
        hire_staff(store)
    sales = [op(S1_TILL1, "stock_movement", key(3000 + i), _move("S1", -2)) for i in range(3)]
    assert _statuses(backend, S1_TILL1, sales) == ["accepted"] * 3
    assert backend.db is not None
    t = on_hand.table(backend.db.metadata)
    assert t is not None
    with backend.db.transaction() as store:  # what a bad restore or a hand edit leaves
        store.conn.execute(update(t).values(qty=t.c.qty + 1))
    backend.close()

    assert branchline(["check-stock", "--db", url]) == 1
    out = capsys.readouterr()
    assert (f"on_hand\tS1\t{PRODUCT}\tkept qty -5, costed_value 0, uncosted_qty -6, "
            f"movements 3\tstock_movement adds up to qty -6, costed_value 0, uncosted_qty -6, "
            f"movements 3") in out.out
    assert "run again with --rebuild" in out.err
    assert branchline(["check-stock", "--db", url, "--rebuild"]) == 0
    assert "rebuilt 1 on_hand totals" in capsys.readouterr().out
    backend = Backend("sqlite", url)
    assert backend.db is not None
    with backend.db.transaction(write=False) as store:
        assert store.conn.execute(select(t.c.qty, t.c.movements)).one() == (-6, 3)
    backend.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_balances_hold_with_two_servers_writing_at_once(kind: str, tmp_path: object) -> None:
    """Two servers (two engines, as two processes have) take pushes of the same
    product at the same store at the same time: every movement counts once."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack

    from server.store import Database
    from tests.pg import fresh_database

    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path}/hq.db" if kind == "sqlite"
               else stack.enter_context(fresh_database()))
        a = Database(url, SCHEMA)
        b = Database(url, SCHEMA)
        stack.callback(a.dispose)
        stack.callback(b.dispose)
        with a.transaction() as store:
            hire_staff(store)

        def pushes(db: Database, till: Actor, first: int) -> int:
            accepted = 0
            for n in range(20):
                ops = [op(till, "stock_movement", key(first + 50 * n + i),
                          _move("S1", -1 if i % 5 else 3)) for i in range(50)]
                with db.transaction() as store:
                    store.prefetch(ops)
                    acks = apply_ops(SCHEMA, store, till, ops)
                accepted += sum(x.status == "accepted" for x in acks)
            return accepted

        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(pushes, a, S1_TILL1, 10_000),
                    pool.submit(pushes, b, S1_TILL2, 20_000)]
            assert [f.result() for f in done] == [1000, 1000]
        # 2 x 20 pushes of 40 sales (-1) and 10 receipts (+3): -10 each
        with a.transaction(write=False) as store:
            assert store.on_hand("S1", PRODUCT) == 2 * 20 * (-40 + 30)
            assert on_hand.drift(store.conn, a.metadata) == []
