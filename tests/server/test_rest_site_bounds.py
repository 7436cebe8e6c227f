"""An employee of a store or a warehouse reads and changes their own site's
rows over REST, as in the console, and is refused (403, naming the site) for
another site's -- however the request is put: a second ``site`` parameter,
an id in the path. What a refused request asked is not written. Also the
REST API's bounds on paging, revoking a leaver's API token, and the log of
a server fault."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.admin import apply_as_hq, hire
from server.api_auth import issue_api_token
from server.cli import main as branchline
from tests.sync.kit import PRODUCT, key

from .rest_kit import Api, open_api, post_sale

EXC = "/api/operations/stock-exceptions"
PO = "/api/hq/purchase-orders"
SUPPLIER = key(3)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with open_api(f"sqlite:///{tmp_path / 'hq.db'}") as a:
        for login, role, site in (("ops1", "operations_manager", "S1"),
                                  ("pm2", "procurement_manager", "S2"),
                                  ("olga", "operations_manager", "HQ")):
            hire(a.db, login, role, site)
            a.tokens[login] = issue_api_token(a.db, login)
        for entity, k, fields in (
                ("product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk", "price": 250}),
                ("site", key(1), {"code": "S1", "name": "Store 1", "kind": "store"}),
                ("site", key(2), {"code": "S2", "name": "Store 2", "kind": "store"}),
                ("supplier", SUPPLIER, {"name": "Acme"})):
            assert apply_as_hq(a.db, entity, k, fields).status == "accepted"
        yield a


def _exception(api: Api, n: int, site: str) -> str:
    k = key(n)
    assert apply_as_hq(api.db, "stock_exception", k, {
        "site": site, "product_id": PRODUCT, "on_hand": -1, "movement_id": key(n + 1),
        "reason": "sale", "status": "open"}).status == "accepted"
    return k


def _order(api: Api, n: int, site: str) -> str:
    k = key(n)
    assert apply_as_hq(api.db, "purchase_order", k, {
        "site": site, "supplier": "Acme", "total": 100, "status": "draft"}).status == "accepted"
    return k


def test_a_site_employee_resolves_their_own_sites_exceptions_only(api: Api) -> None:
    s1, s2 = _exception(api, 10, "S1"), _exception(api, 20, "S2")
    code, out = api.call("POST", f"{EXC}/{s2}/resolve", "ops1", {"resolution": "written off"})
    assert code == 403 and out["status"] == "rejected"
    assert out["reason"] == f"ops1 works at S1; stock exception {s2[:8]} belongs to S2"
    assert [e["status"] for e in api.ok("GET", EXC, "olga", site="S2")] == ["open"]
    assert api.call("GET", EXC, "ops1", site="S2")[0] == 403
    assert api.ok("POST", f"{EXC}/{s1}/resolve", "ops1", {"resolution": "counted"})[
        "status"] == "accepted"
    assert api.ok("POST", f"{EXC}/{s2}/resolve", "olga", {"resolution": "written off"})[
        "row"]["resolved_by"] == "olga"  # HQ staff act for every site


def test_a_site_employee_sees_and_approves_their_own_sites_orders_only(api: Api) -> None:
    s1, s2 = _order(api, 30, "S1"), _order(api, 40, "S2")
    code, out = api.call("POST", f"{PO}/{s1}/approve", "pm2")
    assert code == 403 and "pm2 works at S2" in out["reason"]
    assert api.call("POST", f"{PO}/{s1}/cancel", "pm2")[0] == 403
    assert api.ok("GET", f"{PO}/{s1}", "pam")["order"]["status"] == "draft"  # untouched
    code, out = api.call("GET", f"{PO}/{s1}", "pm2")
    assert code == 403 and "works at S2 and sees its purchase orders only" in out["detail"]
    assert [o["id"] for o in api.ok("GET", PO, "pm2")["items"]] == [s2]
    assert api.call("GET", PO, "pm2", site="S1")[0] == 403
    assert api.ok("POST", f"{PO}/{s2}/approve", "pm2")["row"]["status"] == "approved"
    assert {o["id"] for o in api.ok("GET", PO, "pam")["items"]} == {s1, s2}
    # drafting an order or a reorder level for another site is refused whole
    code, out = api.call("POST", PO, "pm2", {"site": "S1", "supplier_id": SUPPLIER, "lines": [
        {"product_id": PRODUCT, "qty": 5, "unit_cost": 100}]})
    assert code == 403 and "pm2 works at S2; purchase order" in out["reason"], out
    assert api.call("PUT", "/api/hq/reorder-rules", "pm2", {
        "site": "S1", "product_id": PRODUCT, "level": 5, "order_qty": 10})[0] == 403
    assert {o["id"] for o in api.ok("GET", PO, "pam")["items"]} == {s1, s2}
    assert api.ok("GET", "/api/hq/reorder-rules", "pam") == []
    assert api.ok("POST", PO, "pm2", {"site": "S2", "supplier_id": SUPPLIER, "lines": [
        {"product_id": PRODUCT, "qty": 5, "unit_cost": 100}]})["status"] == "accepted"


def test_a_second_site_parameter_cannot_widen_a_report(api: Api) -> None:
    post_sale(api.db, "S1", PRODUCT, 1, 250, 120)
    post_sale(api.db, "S2", PRODUCT, 2, 250, 120)
    for path in ("/api/reports/sales", "/api/reports/margin", "/api/reports/stock"):
        r = api.client.get(path, params=[("site", "S1"), ("site", "S2")],
                           headers={"authorization": f"Bearer {api.tokens['sam']}"})
        assert r.status_code == 400 and "site given 2 times" in r.json()["detail"], path
    assert [s["site"] for s in api.ok("GET", "/api/reports/sales", "sam", site="S1")] == ["S1"]


@pytest.mark.parametrize("path", ["/api/hq/products", PO, "/api/reports/journal",
                                  "/api/hq/customers"])
def test_an_offset_beyond_any_table_is_a_400_not_a_500(api: Api, path: str) -> None:
    code, out = api.call("GET", path, "admin", offset=2**63)
    assert code == 400 and "offset" in str(out).lower(), out


def test_a_leavers_api_tokens_are_revoked_from_the_command_line(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    second = issue_api_token(api.db, "sam")
    api.ok("GET", "/api/reports/sales", "sam", site="S1")
    url = api.db.url
    assert branchline(["user", "revoke-api", "--db", url, "sam"]) == 0
    assert "2 API token(s) of sam revoked" in capsys.readouterr().out
    for token in (api.tokens["sam"], second):
        r = api.client.get("/api/reports/sales", params={"site": "S1"},
                           headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert branchline(["user", "revoke-api", "--db", url, "sam"]) == 1
    assert "sam has no API token in force" in capsys.readouterr().err
    api.ok("GET", "/api/reports/sales", "fay")  # nobody else is affected


def test_a_server_fault_is_logged_with_its_traceback_and_a_refusal_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """The IT admin at 3 a.m. finds why a request failed in the server's log."""
    import server.reports as reports

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the valuation broke")

    monkeypatch.setattr(reports, "valuation", broken)
    with open_api(f"sqlite:///{tmp_path / 'hq.db'}") as api:
        assert api.call("GET", "/api/reports/valuation", "admin") == (
            500, {"status_code": 500, "detail": "Internal Server Error"})
        assert api.call("GET", "/api/reports/valuation", "clara")[0] == 403
        assert api.call("GET", "/api/reports/valuation")[0] == 401
        deadline = time.monotonic() + 5  # the log is written by a queue listener thread
        logged = ""
        while "RuntimeError: the valuation broke" not in logged:
            assert time.monotonic() < deadline, "the fault was not logged"
            time.sleep(0.05)
            logged += capfd.readouterr().err
    logged += capfd.readouterr().err
    assert logged.count("Traceback") == 1
    assert "PermissionDenied" not in logged and "NotAuthorized" not in logged
