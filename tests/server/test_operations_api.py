"""Stock exceptions raised in the push transaction, resolved by HQ operations
over REST; customer statements over REST (in process, on a real SQLite file)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from schema import SCHEMA
from server.admin import apply_as_hq, hire
from server.api_auth import issue_api_token
from server.automation import after_push
from server.store import Database
from sync.messages import Op
from sync.server import apply_ops
from tests.sync.kit import CUSTOMER, PRODUCT, S1_TILL1, S1_TILL2, key, op

USERS = {"olga": ("operations_manager", "HQ"), "clara": ("cashier", "S1"),
         "sam": ("store_manager", "S1"), "admin": ("hq_admin", "HQ")}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    from server.app import create_app

    app = create_app(f"sqlite:///{tmp_path / 'hq.db'}")
    db: Database = app.state.db
    tokens = {}
    for login, (role, site) in USERS.items():
        hire(db, login, role, site)
        tokens[login] = issue_api_token(db, login)
    for entity, k, fields in [
        ("product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk", "price": 250, "cost": 120}),
        ("customer", CUSTOMER, {"name": "Ada", "credit_limit": 5000}),
    ]:
        assert apply_as_hq(db, entity, k, fields).status == "accepted"
    with TestClient(app) as client:
        yield client, tokens


def _push(db: Database, actor: Any, *ops: Op) -> int:
    """A device's push as the websocket applies it: ops, then automation, one transaction."""
    with db.transaction() as store:
        acks = apply_ops(SCHEMA, store, actor, list(ops))
        assert all(a.status == "accepted" for a in acks), acks
        return after_push(store)


def _sale_movement(actor: Any, qty: int, doc: str) -> Op:
    return op(actor, "stock_movement", str(uuid.uuid4()), {
        "site": "S1", "product_id": PRODUCT, "qty": qty, "reason": "sale", "unit_cost": 120,
        "document_id": doc})


def _get(client: TestClient[Any], path: str, token: str | None, **params: Any
         ) -> tuple[int, Any]:
    r = client.get(path, params=params,
                   headers={"authorization": f"Bearer {token}"} if token else {})
    return r.status_code, r.json()


def _post(client: TestClient[Any], path: str, token: str, body: Any) -> tuple[int, Any]:
    r = client.post(path, json=body, headers={"authorization": f"Bearer {token}"})
    return r.status_code, r.json()


EXC = "/api/operations/stock-exceptions"


def test_overselling_raises_one_exception_that_hq_operations_resolve(
        api: tuple[TestClient[Any], dict[str, str]]) -> None:
    client, tokens = api
    db: Database = client.app.state.db
    assert _push(db, S1_TILL1, op(S1_TILL1, "stock_movement", key(500), {
        "site": "S1", "product_id": PRODUCT, "qty": 2, "reason": "receipt"})) == 0
    assert _push(db, S1_TILL1, _sale_movement(S1_TILL1, -2, key(601))) == 0  # exactly 0 left
    assert _push(db, S1_TILL2, _sale_movement(S1_TILL2, -1, key(602))) == 1  # -1: raised
    assert _push(db, S1_TILL1, _sale_movement(S1_TILL1, -1, key(603))) == 0  # one is open
    assert _get(client, EXC, None)[0] == 401
    code, found = _get(client, EXC, tokens["olga"])
    assert code == 200 and len(found) == 1
    (x,) = found
    assert (x["site"], x["sku"], x["on_hand"], x["on_hand_now"], x["reason"], x["status"],
            x["document_id"]) == ("S1", "OAT-1", -1, -2, "sale", "open", key(602))
    # the store sees its own exceptions only, and cannot resolve them
    assert _get(client, EXC, tokens["sam"])[1] == found
    assert _get(client, EXC, tokens["sam"], site="S2")[0] == 403
    assert _get(client, EXC, tokens["olga"], site="S2")[1] == []
    resolve = f"{EXC}/{x['id']}/resolve"
    code, out = _post(client, resolve, tokens["clara"], {"resolution": "counted"})
    assert code == 403 and "only HQ may move stock_exception" in out["reason"]
    assert _post(client, resolve, tokens["olga"], {"resolution": "  "})[0] == 400
    assert _post(client, resolve, tokens["olga"], {"note": "x"})[0] == 400
    assert _post(client, f"{EXC}/{key(9)}/resolve", tokens["olga"], {"resolution": "x"}
                 )[0] == 404
    code, out = _post(client, resolve, tokens["olga"], {"resolution": "counted: 2 found"})
    assert code == 200 and out["row"]["status"] == "resolved"
    assert out["row"]["resolved_by"] == "olga"
    code, out = _post(client, resolve, tokens["olga"], {"resolution": "again"})
    assert code == 409 and "is resolved" in out["reason"]
    assert _get(client, EXC, tokens["olga"])[1] == []
    (done,) = _get(client, EXC, tokens["olga"], status="resolved")[1]
    assert done["resolution"] == "counted: 2 found"
    assert _get(client, EXC, tokens["olga"], status="bogus")[0] == 400
    # still below zero and the open one is resolved: the next sale raises a new one
    assert _push(db, S1_TILL1, _sale_movement(S1_TILL1, -1, key(604))) == 1
    assert len(_get(client, EXC, tokens["olga"], status="all")[1]) == 2


def test_a_site_cannot_raise_or_resolve_an_exception_itself(
        api: tuple[TestClient[Any], dict[str, str]]) -> None:
    client, _ = api
    db: Database = client.app.state.db
    with db.transaction() as store:
        (ack,) = apply_ops(SCHEMA, store, S1_TILL1, [op(S1_TILL1, "stock_exception", key(7), {
            "site": "S1", "product_id": PRODUCT, "on_hand": -1, "movement_id": key(8),
            "reason": "sale", "status": "open"})])
    assert ack.status == "rejected" and "only HQ creates it" in ack.reason


def test_a_customer_statement(api: tuple[TestClient[Any], dict[str, str]]) -> None:
    client, tokens = api
    db: Database = client.app.state.db
    sale, pay = key(700), key(701)
    for kind, amount, doc, no in (("charge", 1200, sale, "S1-t1-000001"),
                                  ("payment", -500, pay, "S1-t1-000002")):
        _push(db, S1_TILL1, op(S1_TILL1, "customer_entry", str(uuid.uuid4()), {
            "customer_id": CUSTOMER, "site": "S1", "kind": kind, "amount": amount,
            "document_id": doc, "receipt_no": no, "date": "2026-11-23"}))
    path = f"/api/sales/customers/{CUSTOMER}/statement"
    assert _get(client, path, None)[0] == 401
    code, st = _get(client, path, tokens["clara"])
    assert code == 200
    assert (st["name"], st["balance"], st["credit_limit"], st["available"]) == (
        "Ada", 700, 5000, 4300)
    assert [(ln["kind"], ln["amount"], ln["balance"]) for ln in st["lines"]] == [
        ("charge", 1200, 1200), ("payment", -500, 700)]
    assert _get(client, f"/api/sales/customers/{key(9)}/statement", tokens["clara"])[0] == 404
    assert _get(client, "/api/sales/customers/nope/statement", tokens["clara"])[0] == 404
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert path.replace(CUSTOMER, "{customer_id}") in paths and EXC in paths
