"""``Idempotency-Key`` on HQ's REST writes (``server.idempotency``): a retried
or double-clicked request makes one purchase order, one customer, one
approval; its answer comes back again; the key is the user's, for one
request, for 24 hours; two servers on one database agree."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, insert, select, update

from server import admin, idempotency
from server.app import create_app
from server.tables import IDEMPOTENCY_TABLE
from tests.pg import fresh_database

from .conftest import SQL_STORES
from .rest_kit import Api, open_api

OAT = {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250, "cost": 120}
OLD = Path(__file__).parent / "data" / "hq-2026-11-23.sql"


@contextmanager
def _database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'hq.db'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture(params=SQL_STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with _database(request.param, tmp_path) as u:
        yield u


@pytest.fixture
def api(url: str) -> Iterator[Api]:
    with open_api(url) as a:
        yield a


class Answer:
    def __init__(self, status: int, body: Any, replayed: bool, retry_after: str | None) -> None:
        self.status, self.body, self.replayed, self.retry_after = (status, body, replayed,
                                                                   retry_after)


def send(api: Api, method: str, path: str, who: str, body: Any = None, key: str | None = None,
         client: TestClient[Any] | None = None) -> Answer:
    headers = {"authorization": f"Bearer {api.tokens[who]}"}
    if key is not None:
        headers["idempotency-key"] = key
    r = (client or api.client).request(method, path, json=body, headers=headers)
    return Answer(r.status_code, r.json() if r.content else None,
                  r.headers.get("idempotent-replayed") == "true", r.headers.get("retry-after"))


def _order(api: Api) -> dict[str, Any]:
    """A purchase order body: S1, a supplier, a product."""
    api.ok("POST", "/api/hq/sites", "admin", {"code": "S1", "name": "S1", "kind": "store"})
    product = api.ok("POST", "/api/hq/products", "bob", OAT)["id"]
    supplier = api.ok("POST", "/api/hq/suppliers", "bob", {"name": "Oatly"})["id"]
    return {"site": "S1", "supplier_id": supplier,
            "lines": [{"product_id": product, "qty": 10, "unit_cost": 120}]}


def _orders(api: Api) -> list[str]:
    return [o["id"] for o in api.ok("GET", "/api/hq/purchase-orders", "bob")["items"]]


def _customers(api: Api) -> list[str]:
    return sorted(c["name"] for c in api.ok("GET", "/api/hq/customers", "bob")["items"])


def test_a_retried_purchase_order_is_made_once_and_answered_again(api: Api) -> None:
    order = _order(api)
    first = send(api, "POST", "/api/hq/purchase-orders", "bob", order, key="po-7")
    assert (first.status, first.replayed) == (201, False), first.body
    again = send(api, "POST", "/api/hq/purchase-orders", "bob", order, key="po-7")
    assert (again.status, again.replayed, again.body) == (201, True, first.body)
    assert _orders(api) == [first.body["id"]]
    detail = api.ok("GET", f"/api/hq/purchase-orders/{first.body['id']}", "bob")
    assert [ln["qty"] for ln in detail["lines"]] == [10]  # one order, one line
    # the same body re-serialized (keys in another order) is the same request
    shuffled = {"lines": order["lines"], "supplier_id": order["supplier_id"], "site": "S1"}
    assert send(api, "POST", "/api/hq/purchase-orders", "bob", shuffled, key="po-7").replayed
    # without a key, a second post is a second order, as before
    assert send(api, "POST", "/api/hq/purchase-orders", "bob", order).status == 201
    assert len(_orders(api)) == 2


def test_an_approval_retried_is_answered_again_not_refused(api: Api) -> None:
    po = api.ok("POST", "/api/hq/purchase-orders", "bob", _order(api))["id"]
    path = f"/api/hq/purchase-orders/{po}/approve"
    first = send(api, "POST", path, "pam", key="approve-1")
    assert (first.status, first.body["row"]["status"]) == (200, "approved")
    again = send(api, "POST", path, "pam", key="approve-1")
    assert (again.status, again.replayed, again.body) == (200, True, first.body)
    # without the key the same click is refused: there is nothing left to approve
    assert send(api, "POST", path, "pam").status == 409


def test_edits_and_puts_take_a_key_too(api: Api) -> None:
    order = _order(api)
    product = order["lines"][0]["product_id"]
    path = f"/api/hq/products/{product}"
    first = send(api, "PATCH", path, "bob", {"name": "Oat drink"}, key="rename")
    api.ok("PATCH", path, "bob", {"name": "Oat drink 1l"})  # someone renames it since
    again = send(api, "PATCH", path, "bob", {"name": "Oat drink"}, key="rename")
    assert (again.status, again.replayed, again.body) == (200, True, first.body)
    assert api.ok("GET", path, "bob")["name"] == "Oat drink 1l"  # the retry changed nothing
    rule = {"site": "S1", "product_id": product, "level": 2, "order_qty": 12}
    made = send(api, "PUT", "/api/hq/reorder-rules", "bob", rule, key="rule")
    again = send(api, "PUT", "/api/hq/reorder-rules", "bob", rule, key="rule")
    assert (made.status, again.status, again.replayed) == (201, 201, True)


def test_a_key_used_for_another_request_is_a_422_and_changes_nothing(api: Api) -> None:
    order = _order(api)
    first = send(api, "POST", "/api/hq/purchase-orders", "bob", order, key="k")
    more = {**order, "lines": [{**order["lines"][0], "qty": 20}]}
    other = send(api, "POST", "/api/hq/purchase-orders", "bob", more, key="k")
    assert other.status == 422 and other.body["detail"] == (
        "Idempotency-Key 'k' was used with another body; send a new key for a new request")
    elsewhere = send(api, "POST", "/api/hq/customers", "bob", {"name": "Ada"}, key="k")
    assert elsewhere.status == 422 and elsewhere.body["detail"] == (
        "Idempotency-Key 'k' was used for POST /api/hq/purchase-orders; send a new key for a "
        "new request")
    assert _orders(api) == [first.body["id"]] and _customers(api) == []
    assert send(api, "POST", "/api/hq/customers", "bob", {"name": "Ada"}, key="k2").status == 201


def test_keys_are_each_users_own(api: Api) -> None:
    for who in ("sam", "fay", "sam"):
        send(api, "POST", "/api/hq/customers", who, {"name": "Ada"}, key="new-customer")
    assert _customers(api) == ["Ada", "Ada"]  # sam's once, fay's once


def test_a_request_that_wrote_nothing_leaves_its_key_free(api: Api) -> None:
    bad = send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada", "credit_limit": "50"},
               key="c1")
    assert bad.status == 400 and not bad.replayed
    made = send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada", "credit_limit": 50},
                key="c1")
    assert (made.status, made.replayed) == (201, False)
    assert send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada", "credit_limit": 50},
                key="c1").replayed
    assert _customers(api) == ["Ada"]
    assert send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada"}, key="x" * 256
                ).status == 400
    # no valid token: a 401, and the key is nobody's
    r = api.client.post("/api/hq/customers", json={"name": "Eve"},
                        headers={"authorization": "Bearer bla_stale", "idempotency-key": "c1"})
    assert r.status_code == 401


def test_a_refusal_that_was_audited_is_answered_again(api: Api) -> None:
    """A refusal of the apply path is a write too (its audit row): kept."""
    first = send(api, "POST", "/api/hq/products", "clara", {**OAT, "sku": "X"}, key="p")
    again = send(api, "POST", "/api/hq/products", "clara", {**OAT, "sku": "X"}, key="p")
    assert (first.status, again.status, again.replayed) == (403, 403, True)
    assert again.body == first.body


def test_a_key_expires_after_24_hours(api: Api) -> None:
    first = send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada"}, key="day")
    keys = api.db.t[IDEMPOTENCY_TABLE]
    with api.db.engine.begin() as conn:  # a day and a minute pass
        conn.execute(update(keys).values(created_ms=keys.c.created_ms - idempotency.TTL_MS
                                         - 60_000))
    again = send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada"}, key="day")
    assert (again.status, again.replayed) == (201, False)
    assert again.body["id"] != first.body["id"] and _customers(api) == ["Ada", "Ada"]
    with api.db.engine.connect() as conn:  # the expired key was purged, the new one kept
        assert conn.execute(select(func.count()).select_from(keys)).scalar_one() == 1


def _claimed(api: Api, key: str, age_ms: int, body: Any) -> None:
    """A claim of ``key`` by sam, ``age_ms`` old, with no answer: a request in
    progress (on another server, or on one that died)."""
    now = idempotency._now_ms()
    with api.db.engine.begin() as conn:
        conn.execute(insert(api.db.t[IDEMPOTENCY_TABLE]).values(
            login="sam", key=key, request="POST /api/hq/customers",
            body_hash=idempotency.fingerprint(idempotency.msgspec.json.encode(body)),
            attempt="elsewhere", created_ms=now - age_ms, claimed_ms=now - age_ms))


def test_a_key_in_progress_is_a_409_to_retry_and_a_dead_servers_claim_lapses(
        api: Api) -> None:
    _claimed(api, "busy", 1_000, {"name": "Ada"})
    busy = send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada"}, key="busy")
    assert (busy.status, busy.retry_after) == (409, "1")
    assert busy.body["detail"] == ("a request with Idempotency-Key 'busy' is still being "
                                   "processed; retry shortly for its answer")
    assert _customers(api) == []
    _claimed(api, "dead", idempotency.LEASE_MS + 1_000, {"name": "Bo"})
    taken = send(api, "POST", "/api/hq/customers", "sam", {"name": "Bo"}, key="dead")
    assert (taken.status, taken.replayed) == (201, False)
    assert send(api, "POST", "/api/hq/customers", "sam", {"name": "Bo"}, key="dead").replayed
    assert _customers(api) == ["Bo"]


def test_the_answer_is_kept_in_the_writes_transaction(api: Api,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Both or neither: a write whose answer cannot be kept is rolled back, and
    a retry with the key then makes it once."""
    real = admin.apply_ops
    keys = api.db.t[IDEMPOTENCY_TABLE]

    def taken_over_meanwhile(schema: Any, store: Any, actor: Any, ops: Any) -> Any:
        # a retry takes the claim over while this request writes (a slow request
        # outlived its lease): its answer cannot be kept, so its write must go
        store.conn.execute(update(keys).values(attempt="the retry"))
        return real(schema, store, actor, ops)

    monkeypatch.setattr(admin, "apply_ops", taken_over_meanwhile)
    lost = send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada"}, key="slow")
    assert lost.status == 409 and "taken over by a retry" in lost.body["detail"]
    assert _customers(api) == []
    monkeypatch.setattr(admin, "apply_ops", real)
    with api.db.engine.begin() as conn:  # the retry's server died: its claim lapses
        conn.execute(update(keys).values(claimed_ms=0))
    assert send(api, "POST", "/api/hq/customers", "sam", {"name": "Ada"}, key="slow"
                ).status == 201
    assert _customers(api) == ["Ada"]


def test_two_servers_given_the_same_key_at_once_make_one_order(api: Api, url: str) -> None:
    """Two server processes on one database (two apps, each its own engine),
    the same order posted to both at the same moment, several times over: one
    order each time; the other answer is the same order or a 409 to retry."""
    order = _order(api)
    with TestClient(create_app(url)) as other:
        clients = [api.client, other, api.client, other]
        for round_ in range(5):
            key = f"double-click-{round_}"
            start = threading.Barrier(len(clients))

            def post(client: TestClient[Any], key: str = key,
                     start: threading.Barrier = start) -> Answer:
                start.wait()
                return send(api, "POST", "/api/hq/purchase-orders", "bob", order, key, client)

            with ThreadPoolExecutor(len(clients)) as pool:
                answers = list(pool.map(post, clients))
            made = {a.body["id"] for a in answers if a.status == 201}
            assert len(made) == 1, [(a.status, a.body) for a in answers]
            assert all(a.status == 201 or (a.status, a.retry_after) == (409, "1")
                       for a in answers), [(a.status, a.body) for a in answers]
            retry = send(api, "POST", "/api/hq/purchase-orders", "bob", order, key, other)
            assert (retry.status, retry.replayed, retry.body["id"]) == (201, True, *made)
    assert len(_orders(api)) == 5


def test_an_older_database_gets_the_key_table(tmp_path: Path) -> None:
    path = tmp_path / "hq.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD.read_text())
    conn.close()
    with open_api(f"sqlite:///{path}") as api:
        for _ in range(2):
            send(api, "POST", "/api/hq/customers", "sam", {"name": "Zed"}, key="z")
        assert _customers(api).count("Zed") == 1


def test_the_openapi_description_tells_clients_how_to_retry(api: Api) -> None:
    info = api.ok("GET", "/schema/openapi.json", "admin")["info"]["description"]
    assert "Idempotency-Key" in info and "Idempotent-Replayed: true" in info
    assert "422" in info and "Retry-After: 1" in info


def test_a_write_that_fails_after_its_answer_was_kept_leaves_its_key_free(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer is kept in the write's transaction; when that transaction
    then fails (disk full or connection lost at commit), it kept nothing: the
    retry with the key is processed, not told for 5 minutes that it is busy."""
    kept = idempotency.keep

    def keep_then_fail(conn: Any, response: Any) -> None:
        kept(conn, response)
        raise RuntimeError("the commit failed")

    monkeypatch.setattr(idempotency, "keep", keep_then_fail)
    failed = send(api, "POST", "/api/hq/customers", "admin", {"name": "Ada"}, key="k-fail")
    assert failed.status == 500
    monkeypatch.setattr(idempotency, "keep", kept)
    retried = send(api, "POST", "/api/hq/customers", "admin", {"name": "Ada"}, key="k-fail")
    assert (retried.status, retried.replayed) == (201, False)
    names = [c["name"] for c in api.ok("GET", "/api/hq/customers", "admin")["items"]]
    assert names.count("Ada") == 1


def test_a_write_refused_by_the_database_leaves_its_key_free(tmp_path: Path) -> None:
    """A write the database itself refuses when the transaction writes its
    rows (a SQLite trigger here) fails before its answer is kept: the retry,
    once the fault is gone, is processed."""
    path = tmp_path / "hq.db"
    with open_api(f"sqlite:///{path}") as api:
        with sqlite3.connect(path) as con:
            con.execute("CREATE TRIGGER boom BEFORE INSERT ON customer WHEN NEW.name = 'Boom' "
                        "BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
        assert send(api, "POST", "/api/hq/customers", "admin", {"name": "Boom"},
                    key="k-boom").status == 500
        with sqlite3.connect(path) as con:
            con.execute("DROP TRIGGER boom")
        assert send(api, "POST", "/api/hq/customers", "admin", {"name": "Boom"},
                    key="k-boom").status == 201
