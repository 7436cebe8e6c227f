"""An employee of a store or a warehouse acts through HQ's server (REST, the
console) with their site's rights, as a device of the site would: another
site's rows are refused (403), and so is what only HQ may do, however the
request is put: a second ``site`` parameter, an id in the path. What a
refused request asked is not written. Also the REST API's bounds on paging,
revoking a leaver's API token, and the log of a server fault."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.admin import apply_as_hq, hire
from server.api_auth import issue_api_token
from server.cli import main as branchline
from sync.ids import short
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


def test_a_site_employee_acts_with_their_sites_rights_through_hq(api: Api) -> None:
    """Through HQ's server an employee of a store acts as a device of the store
    would: not on another site's rows, not on what only HQ may do."""
    s1, s2 = _exception(api, 10, "S1"), _exception(api, 20, "S2")
    code, out = api.call("POST", f"{EXC}/{s2}/resolve", "ops1", {"resolution": "written off"})
    assert (code, out["reason"]) == (403, f"stock_exception {short(s2)} is outside site S1")
    code, out = api.call("POST", f"{EXC}/{s1}/resolve", "ops1", {"resolution": "counted"})
    assert (code, out["reason"]) == (
        403, f"only HQ may move stock_exception {short(s1)} from open to resolved")
    assert [e["status"] for e in api.ok("GET", EXC, "olga")] == ["open", "open"]
    assert api.call("GET", EXC, "ops1", site="S2")[0] == 403
    assert [e["id"] for e in api.ok("GET", EXC, "ops1")] == [s1]
    for k in (s1, s2):  # HQ's operations act for every site
        assert api.ok("POST", f"{EXC}/{k}/resolve", "olga", {"resolution": "counted"})[
            "row"]["resolved_by"] == "olga"
    # each refusal is in the audit log, as a device's would be
    with api.db.transaction(write=False) as store:
        refused = [(r.user, r.site, r.status, r.policy) for r, _ in store.audit_chain()
                   if r.entity == "stock_exception" and r.status == "rejected"]
    assert refused == [("ops1", "S1", "rejected", "scope"),
                       ("ops1", "S1", "rejected", "hq-owned")]


def test_a_site_employee_sees_and_orders_for_their_own_site_only(api: Api) -> None:
    s1, s2 = _order(api, 30, "S1"), _order(api, 40, "S2")
    code, out = api.call("POST", f"{PO}/{s1}/approve", "pm2")
    assert (code, out["reason"]) == (403, f"purchase_order {short(s1)} is outside site S2")
    assert api.call("POST", f"{PO}/{s1}/cancel", "pm2")[0] == 403
    assert api.call("POST", f"{PO}/{s2}/approve", "pm2")[0] == 403  # approving is HQ's
    assert api.ok("GET", f"{PO}/{s1}", "pam")["order"]["status"] == "draft"  # untouched
    code, out = api.call("GET", f"{PO}/{s1}", "pm2")
    assert code == 403 and "works at S2 and sees its purchase orders only" in out["detail"]
    assert [o["id"] for o in api.ok("GET", PO, "pm2")["items"]] == [s2]
    assert api.call("GET", PO, "pm2", site="S1")[0] == 403
    line = {"product_id": PRODUCT, "qty": 5, "unit_cost": 100}
    code, out = api.call("POST", PO, "pm2", {"site": "S1", "supplier_id": SUPPLIER,
                                             "lines": [line]})
    assert code == 403 and "not to site S2" in out["reason"], out
    assert {o["id"] for o in api.ok("GET", PO, "pam")["items"]} == {s1, s2}  # no order made
    mine = api.ok("POST", PO, "pm2", {"site": "S2", "supplier_id": SUPPLIER, "lines": [line]})
    assert mine["status"] == "accepted" and mine["row"]["site"] == "S2"
    # reorder levels are HQ's master data
    code, out = api.call("PUT", "/api/hq/reorder-rules", "pm2", {
        "site": "S2", "product_id": PRODUCT, "level": 5, "order_qty": 10})
    assert (code, out["reason"]) == (403, "reorder_rule is master data; only HQ creates it")
    assert api.ok("GET", "/api/hq/reorder-rules", "pam") == []
    assert api.call("GET", "/api/hq/reorder-rules", "pm2", site="S1")[0] == 403


def test_an_hr_employee_of_a_store_cannot_move_anyone_to_hq(api: Api) -> None:
    hire(api.db, "hr1", "hr", "S1")
    api.tokens["hr1"] = issue_api_token(api.db, "hr1")
    code, out = api.call("PATCH", "/api/hq/employees/ops1", "hr1", {"site": "HQ"})
    assert (code, out["reason"]) == (
        403, "site of employee is owned by HQ; site S1 cannot change it")
    code, out = api.call("POST", "/api/hq/employees", "hr1", {
        "login": "root2", "name": "Root", "department": "it", "site": "HQ",
        "role": "hq_admin"})
    assert code == 403, out
    staff = {e["login"]: e["site"] for e in api.ok("GET", "/api/hq/employees", "admin")}
    assert staff["ops1"] == "S1" and "root2" not in staff


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
        assert api.client.get("/", follow_redirects=False).status_code == 303  # log in first
        deadline = time.monotonic() + 5  # the log is written by a queue listener thread
        logged = ""
        while "RuntimeError: the valuation broke" not in logged:
            assert time.monotonic() < deadline, "the fault was not logged"
            time.sleep(0.05)
            logged += capfd.readouterr().err
    logged += capfd.readouterr().err
    assert logged.count("Traceback") == 1
    assert "PermissionDenied" not in logged and "NotAuthorized" not in logged


def test_a_list_is_never_cut_short_silently(api: Api) -> None:
    """A chain's reorder rules (a rule per product and site) were listed 10,000
    at most, with no sign of the rest."""
    import sqlite3

    rules = api.db.entities["reorder_rule"]
    columns = [c.name for c in rules.columns]
    n = 10_050
    with sqlite3.connect(api.db.url.removeprefix("sqlite:///")) as conn:
        conn.executemany(
            f"INSERT INTO reorder_rule ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))})",
            [tuple({"id": key(5_000_000 + i), "site": "S1", "product_id": key(7_000_000 + i),
                    "level": 1, "order_qty": 2, "_version": 1, "_deleted": 0, "_row": b"\x80",
                    "_seq": 0}.get(c) for c in columns) for i in range(n)])
    conn.close()
    assert len(api.ok("GET", "/api/hq/reorder-rules", "pam")) == n
    assert len(api.ok("GET", "/api/hq/reorder-rules", "pam", site="S1")) == n
