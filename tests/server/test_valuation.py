"""HQ's stock valuation (``server.reports.valuation``) reads the value sums
``on_hand`` keeps, one row per (site, product), and must give exactly what
the moving average over every movement gives (``schema.finance``): goods in
at their cost, out at the cost the till recorded, a movement without a cost
at the product's standard cost as it stands now -- on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from schema import SCHEMA
from schema.finance import moving_average
from server.reports import valuation
from sync.merge import Actor
from sync.server import apply_ops
from tests.sync.kit import HQ, PRODUCT, S1_TILL1, S2_TILL1, hire_staff, key, op

from .conftest import GROWING, Backend

OAT, RYE, LOOSE = PRODUCT, key(101), key(102)
"""Standard costs 120 and none; LOOSE is in no catalog (standard 0)."""
TILLS = {"S1": S1_TILL1, "S2": S2_TILL1}


def _catalog(backend: Backend) -> None:
    with backend.tx() as store:
        hire_staff(store)
        for k, sku, cost in ((OAT, "OAT-1", 120), (RYE, "RYE-1", None)):
            fields = {"sku": sku, "name": sku, "price": 300,
                      **({"cost": cost} if cost is not None else {})}
            assert [a.status for a in apply_ops(SCHEMA, store, HQ, [
                op(HQ, "product", k, fields)])] == ["accepted"]


def _move(actor: Actor, product: str, qty: int, cost: int | None) -> dict[str, object]:
    return {"site": actor.site, "product_id": product, "qty": qty,
            "reason": "receipt" if qty > 0 else "sale",
            **({"unit_cost": cost} if cost is not None else {})}


def _push(backend: Backend, moves: list[tuple[str, str, int, int | None]]) -> None:
    for site, product, qty, cost in moves:
        actor = TILLS[site]
        with backend.tx() as store:
            (ack,) = apply_ops(SCHEMA, store, actor, [op(
                actor, "stock_movement", str(uuid.uuid4()), _move(actor, product, qty, cost))])
            assert ack.status == "accepted", ack.reason


def _from_the_ledger(backend: Backend) -> list[tuple[str, str, int, int, int]]:
    """The moving average over every movement of each (site, product), as the
    report before the kept sums computed it."""
    assert backend.db is not None
    sm, product = backend.db.entities["stock_movement"], backend.db.entities["product"]
    with backend.db.engine.connect() as conn:
        rows = conn.execute(select(sm.c.site, sm.c.product_id, sm.c.qty, sm.c.unit_cost)
                            .order_by(sm.c._seq)).all()
        standard = {k: int(c or 0) for k, c in conn.execute(select(product.c.id, product.c.cost))}
    moves: dict[tuple[str, str], list[tuple[int, int | None]]] = {}
    for site, p, qty, cost in rows:
        moves.setdefault((site, p), []).append((int(qty), cost))
    return [(s, p, *moving_average(m, standard.get(p, 0))) for (s, p), m in sorted(moves.items())]


def _reported(backend: Backend, site: str | None = None) -> list[tuple[str, str, int, int, int]]:
    assert backend.db is not None
    return [(v.site, v.product_id, v.on_hand, v.average_cost, v.value)
            for v in valuation(backend.db, site)]


moves = st.lists(st.tuples(
    st.sampled_from(sorted(TILLS)), st.sampled_from((OAT, RYE, LOOSE)),
    st.integers(-40, 40).filter(bool), st.none() | st.integers(0, 900)), max_size=12)


def test_the_report_is_the_moving_average_of_every_movement(sql_backend: Backend) -> None:
    _catalog(sql_backend)

    @GROWING
    @given(moves)
    def more(batch: list[tuple[str, str, int, int | None]]) -> None:
        _push(sql_backend, batch)  # the ledger only grows: each example adds to it
        assert _reported(sql_backend) == _from_the_ledger(sql_backend)

    more()
    every = _from_the_ledger(sql_backend)
    assert _reported(sql_backend, "S2") == [v for v in every if v[0] == "S2"]


def test_uncosted_stock_follows_the_standard_cost_and_a_site_sees_its_own(
        sql_backend: Backend) -> None:
    _catalog(sql_backend)
    _push(sql_backend, [("S1", OAT, 10, 100), ("S1", OAT, 5, None), ("S1", OAT, -3, 110),
                        ("S2", RYE, 4, None), ("S2", LOOSE, -2, None)])
    # S1: 10 at 100 and 3 out at 110 (670), 5 without a cost at the standard 120
    assert _reported(sql_backend) == [("S1", OAT, 12, 106, 1270),  # 1270 / 12 = 105.8
                                      ("S2", RYE, 4, 0, 0), ("S2", LOOSE, -2, 0, 0)]
    with sql_backend.tx() as store:  # HQ raises OAT's standard cost to 150
        (ack,) = apply_ops(SCHEMA, store, HQ, [op(HQ, "product", OAT, {"cost": 150}, base=1,
                                                  ms=5_000)])
        assert ack.status == "accepted", ack.reason
    assert _reported(sql_backend, "S1") == [("S1", OAT, 12, 118, 1420)]  # 670 + 5 x 150
    assert _reported(sql_backend) == _from_the_ledger(sql_backend)
