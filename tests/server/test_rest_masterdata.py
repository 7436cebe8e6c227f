"""HQ master data and purchasing over REST, in process on a SQLite file: who
may change what, bad bodies, unknown ids, and that a refusal changes nothing."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.admin import apply_group_as_hq, hire
from server.api_auth import issue_api_token

from .rest_kit import Api, open_api

OAT = {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250, "cost": 120, "tax_rate": 2000,
       "barcode": "4000000000017", "category": "dairy", "unit": "each"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with open_api(f"sqlite:///{tmp_path / 'hq.db'}") as a:
        yield a


def _product(api: Api, **extra: Any) -> str:
    return str(api.ok("POST", "/api/hq/products", "bob", {**OAT, **extra})["id"])


def _sites(api: Api) -> None:
    for code, kind in (("HQ", "hq"), ("S1", "store"), ("W1", "warehouse")):
        api.ok("POST", "/api/hq/sites", "admin", {"code": code, "name": code, "kind": kind})


def test_a_cashier_cannot_change_a_price_and_nothing_changes(api: Api) -> None:
    product = _product(api)
    code, body = api.call("POST", f"/api/hq/products/{product}/price", "clara", {"price": 1})
    assert code == 403
    # clara works at S1: she acts with the rights of a device of S1, and a
    # price is HQ's to set (a cashier at HQ would meet the role matrix instead)
    assert body["reason"] == "price of product is owned by HQ; site S1 cannot change it"
    code, body = api.call("PATCH", f"/api/hq/products/{product}", "clara", {"name": "Cheap"})
    assert code == 403 and body["reason"] == "name of product is owned by HQ; site S1 cannot change it"
    hire(api.db, "cal", "cashier", "HQ")  # a cashier at HQ meets the role matrix
    api.tokens["cal"] = issue_api_token(api.db, "cal")
    code, body = api.call("POST", f"/api/hq/products/{product}/price", "cal", {"price": 1})
    assert (code, body["reason"]) == (
        403, "user cal (cashier) may not set price on product; allowed: buyer, hq_admin")
    code, body = api.call("PATCH", f"/api/hq/products/{product}", "cal", {"name": "Cheap"})
    assert code == 403 and "may not set name on product" in body["reason"]
    assert api.call("POST", f"/api/hq/products/{product}/price", None, {"price": 1})[0] == 401
    got = api.ok("GET", f"/api/hq/products/{product}", "clara")
    assert (got["price"], got["name"]) == (250, "Oat milk 1l")
    # anyone may improve the description; the buyer edits the rest
    assert api.ok("PATCH", f"/api/hq/products/{product}", "clara",
                  {"description": "Barista"})["row"]["description"] == "Barista"
    row = api.ok("PATCH", f"/api/hq/products/{product}", "bob",
                 {"name": "Oat drink 1l", "cost": 130, "unit": None})["row"]
    assert (row["name"], row["cost"], row["unit"], row["price"]) == ("Oat drink 1l", 130, None,
                                                                    250)
    assert api.ok("POST", f"/api/hq/products/{product}/price", "bob",
                  {"price": 275})["row"]["price"] == 275


@pytest.mark.parametrize(("body", "wrong"), [
    ({**OAT, "price": -1}, "Expected `int` >= 0"),
    ({**OAT, "price": 2.505}, "got `float`: money is in integer minor units (2.50 is sent as 250)"),
    ({**OAT, "price": "2.50"}, "Expected `int`, got `str`"),
    ({**OAT, "tax_rate": 20_001}, "Expected `int` <= 10000"),
    ({**OAT, "colour": "red"}, "unknown field `colour`"),
    ({k: v for k, v in OAT.items() if k != "sku"}, "missing required field `sku`"),
])
def test_a_bad_product_is_refused_with_what_was_wrong(api: Api, body: Any, wrong: str) -> None:
    code, out = api.call("POST", "/api/hq/products", "bob", body)
    assert code == 400 and wrong in str(out["extra"])
    assert api.ok("GET", "/api/hq/products", "bob")["total"] == 0


def test_products_are_unique_found_and_paged(api: Api) -> None:
    first = _product(api)
    code, out = api.call("POST", "/api/hq/products", "bob", OAT)
    assert code == 409 and "already has sku 'OAT-1'" in out["detail"]
    code, out = api.call("POST", "/api/hq/products", "bob", {**OAT, "sku": "OAT-2"})
    assert code == 409 and "barcode" in out["detail"]
    for i in range(2, 8):
        _product(api, sku=f"OAT-{i}", barcode=f"40000000000{i:02d}", name=f"Oat bar {i}")
    listed = api.ok("GET", "/api/hq/products", "clara", limit=4, offset=0)
    assert listed["total"] == 7 and [p["sku"] for p in listed["items"]] == [
        "OAT-1", "OAT-2", "OAT-3", "OAT-4"]
    assert [p["sku"] for p in api.ok("GET", "/api/hq/products", "clara", limit=4,
                                      offset=4)["items"]] == ["OAT-5", "OAT-6", "OAT-7"]
    assert [p["id"] for p in api.ok("GET", "/api/hq/products", "clara",
                                    q="4000000000017")["items"]] == [first]
    assert api.ok("GET", "/api/hq/products", "clara", q="OAT BAR")["total"] == 6
    assert api.ok("GET", "/api/hq/products", "clara", q="oat-3")["items"][0]["sku"] == "OAT-3"
    assert api.ok("GET", "/api/hq/products", "clara", q="100%")["total"] == 0
    assert api.call("GET", "/api/hq/products", "clara", limit=0)[0] == 400
    assert api.call("GET", "/api/hq/products", "clara", limit=501)[0] == 400
    assert api.call("GET", "/api/hq/products/nope", "clara")[0] == 404
    assert api.call("PATCH", "/api/hq/products/nope", "bob", {"name": "x"})[0] == 404
    code, out = api.call("PATCH", f"/api/hq/products/{first}", "bob", {})
    assert code == 400 and "nothing to change" in out["detail"]
    code, out = api.call("PATCH", f"/api/hq/products/{first}", "bob", {"price": 1})
    assert code == 400 and "unknown field `price`" in str(out["extra"])


def test_price_changes_take_a_date_not_in_the_past(api: Api) -> None:
    product = _product(api)
    today = datetime.date.today()
    code, out = api.call("POST", f"/api/hq/products/{product}/price-changes", "bob",
                         {"price": 199, "effective": str(today - datetime.timedelta(days=1))})
    assert code == 400 and "is in the past" in out["detail"]
    assert api.call("POST", f"/api/hq/products/{product}/price-changes", "bob",
                    {"price": 199, "effective": "next week"})[0] == 400
    code, out = api.call("POST", f"/api/hq/products/{product}/price-changes", "clara",
                         {"price": 1, "effective": str(today)})
    assert code == 403 and out["reason"] == "price_change is master data; only HQ creates it"
    later = str(today + datetime.timedelta(days=7))
    api.ok("POST", f"/api/hq/products/{product}/price-changes", "bob",
           {"price": 199, "effective": later})
    changes = api.ok("GET", f"/api/hq/products/{product}/price-changes", "clara")
    assert [(c["price"], c["effective"]) for c in changes] == [(199, later)]
    assert api.ok("GET", f"/api/hq/products/{product}", "bob")["price"] == 250


def test_sites_by_hq_admin_with_one_transit_location(api: Api) -> None:
    body = {"code": "S4", "name": "Store Harbour", "kind": "store"}
    code, out = api.call("POST", "/api/hq/sites", "bob", body)
    assert code == 403 and "allowed: hq_admin" in out["reason"]
    assert api.call("POST", "/api/hq/sites", "admin", {**body, "kind": "shop"})[0] == 400
    assert api.call("POST", "/api/hq/sites", "admin", {**body, "code": "s 4"})[0] == 400
    assert api.call("POST", "/api/hq/sites", "admin", {**body, "kind": "hq"})[0] == 400
    assert api.ok("POST", "/api/hq/sites", "admin", body)["row"] == body
    assert api.call("POST", "/api/hq/sites", "admin", body)[0] == 409
    api.ok("POST", "/api/hq/sites", "admin", {"code": "TR", "name": "Transit", "kind": "transit"})
    code, out = api.call("POST", "/api/hq/sites", "admin",
                         {"code": "TR2", "name": "Transit 2", "kind": "transit"})
    assert code == 409 and "already has kind 'transit'" in out["detail"]
    assert api.ok("PATCH", "/api/hq/sites/S4", "admin",
                  {"name": "Store Harbourside"})["row"]["name"] == "Store Harbourside"
    assert api.call("PATCH", "/api/hq/sites/S4", "admin", {"code": "S5"})[0] == 400
    assert api.call("PATCH", "/api/hq/sites/S9", "admin", {"name": "x"})[0] == 404
    assert [s["code"] for s in api.ok("GET", "/api/hq/sites", "clara")] == ["S4", "TR"]
    assert api.ok("GET", "/api/hq/sites/S4", "clara")["kind"] == "store"


def test_purchase_orders_at_hq_for_a_receiving_site(api: Api) -> None:
    _sites(api)
    oat = _product(api)
    supplier = api.ok("POST", "/api/hq/suppliers", "bob", {"name": "Oatly"})["id"]
    line = {"product_id": oat, "qty": 10, "unit_cost": 120}
    order = {"site": "W1", "supplier_id": supplier, "lines": [line]}
    for bad, wrong in [({**order, "site": "W9"}, "unknown site 'W9'"),
                       ({**order, "supplier_id": "nope"}, "unknown supplier 'nope'"),
                       ({**order, "lines": [{**line, "product_id": "nope"}]},
                        "unknown product 'nope'"),
                       ({**order, "lines": [line, line]}, "one line per product"),
                       ({**order, "lines": []}, "length >= 1"),
                       ({**order, "lines": [{**line, "qty": 0}]}, "Expected `int` >= 1"),
                       ({**order, "lines": [{**line, "unit_cost": 1.205}]}, "got `float`")]:
        code, out = api.call("POST", "/api/hq/purchase-orders", "bob", bad)
        assert code == 400 and wrong in str(out), (bad, out)
    # a cashier may not order, not even for her own store; nor for another site
    code, out = api.call("POST", "/api/hq/purchase-orders", "clara", {**order, "site": "S1"})
    assert code == 403 and "clara (cashier) may not create on purchase_order" in out["reason"]
    code, out = api.call("POST", "/api/hq/purchase-orders", "clara", order)
    assert code == 403 and out["reason"].endswith("belongs to ['W1'], not to site S1")
    assert api.ok("GET", "/api/hq/purchase-orders", "bob")["total"] == 0
    with api.db.engine.connect() as conn:  # the refused order left no line behind
        assert conn.execute(api.db.entities["po_line"].select()).all() == []
    made = api.ok("POST", "/api/hq/purchase-orders", "bob", order)
    po = made["id"]
    assert made["row"]["total"] == 1200 and made["row"]["status"] == "draft"
    big = api.ok("POST", "/api/hq/purchase-orders", "bob",
                 {**order, "site": "S1", "lines": [{**line, "qty": 5000}]})["id"]
    detail = api.ok("GET", f"/api/hq/purchase-orders/{po}", "bob")
    assert detail["order"]["supplier"] == "Oatly"
    assert api.call("GET", f"/api/hq/purchase-orders/{po}", "clara")[0] == 403  # W1's order
    assert [(ln["product_id"], ln["qty"], ln["received"]) for ln in detail["lines"]] == [
        (oat, 10, 0)]
    assert api.call("GET", "/api/hq/purchase-orders/nope", "bob")[0] == 404
    assert api.call("POST", f"/api/hq/purchase-orders/{po}/approve", "bob")[0] == 403
    assert api.ok("POST", f"/api/hq/purchase-orders/{po}/approve", "pam")["row"][
        "status"] == "approved"
    assert api.ok("POST", f"/api/hq/purchase-orders/{big}/approve", "pam")["row"][
        "status"] == "first_approved"
    code, out = api.call("POST", f"/api/hq/purchase-orders/{big}/approve", "pam")
    assert code == 409 and "second approval must come from someone else" in out["reason"]
    assert api.ok("POST", f"/api/hq/purchase-orders/{big}/approve", "admin")["row"][
        "status"] == "approved"
    assert api.ok("POST", f"/api/hq/purchase-orders/{big}/cancel", "pam")["row"][
        "status"] == "cancelled"
    listed = api.ok("GET", "/api/hq/purchase-orders", "bob", status="approved")
    assert [o["id"] for o in listed["items"]] == [po]
    assert api.ok("GET", "/api/hq/purchase-orders", "bob", site="S1")["items"][0]["id"] == big
    assert api.call("POST", "/api/hq/purchase-orders/nope/cancel", "bob")[0] == 404


def test_suppliers_and_reorder_rules(api: Api) -> None:
    _sites(api)
    oat = _product(api)
    supplier = api.ok("POST", "/api/hq/suppliers", "bob", {"name": "Oatly"})["id"]
    assert api.call("PATCH", f"/api/hq/suppliers/{supplier}", "clara",
                    {"phone": "555"})[0] == 403
    api.ok("PATCH", f"/api/hq/suppliers/{supplier}", "pam", {"email": "orders@oatly.example"})
    assert [s["email"] for s in api.ok("GET", "/api/hq/suppliers", "bob", q="OAT")] == [
        "orders@oatly.example"]
    rule = {"site": "S1", "product_id": oat, "level": 5, "order_qty": 24}
    assert api.call("PUT", "/api/hq/reorder-rules", "bob", {**rule, "site": "S7"})[0] == 400
    assert api.call("PUT", "/api/hq/reorder-rules", "bob", {**rule, "level": -1})[0] == 400
    assert api.call("PUT", "/api/hq/reorder-rules", "clara", rule)[0] == 403
    code, first = api.call("PUT", "/api/hq/reorder-rules", "bob", rule)
    assert code == 201
    code, again = api.call("PUT", "/api/hq/reorder-rules", "pam", {**rule, "level": 8})
    assert code == 200 and again["id"] == first["id"]
    rules = api.ok("GET", "/api/hq/reorder-rules", "bob", site="S1")
    assert [(r["level"], r["order_qty"]) for r in rules] == [(8, 24)]
    assert api.ok("GET", "/api/hq/reorder-rules", "bob", site="W1") == []


def test_accounts_employees_and_customers(api: Api) -> None:
    _sites(api)
    cash = {"code": "1000", "name": "Cash in tills", "type": "asset"}
    assert api.call("POST", "/api/hq/accounts", "clara", cash)[0] == 403
    assert api.call("POST", "/api/hq/accounts", "fay", {**cash, "type": "revenue"})[0] == 400
    assert api.call("POST", "/api/hq/accounts", "fay", {**cash, "code": "10"})[0] == 400
    api.ok("POST", "/api/hq/accounts", "fay", cash)
    api.ok("POST", "/api/hq/accounts", "fay", {"code": "6100", "name": "Rent", "type": "expense"})
    assert api.call("POST", "/api/hq/accounts", "fay", cash)[0] == 409
    assert api.call("PATCH", "/api/hq/accounts/1000", "fay", {"type": "expense"})[0] == 409
    api.ok("PATCH", "/api/hq/accounts/6100", "fay", {"name": "Rent and rates"})
    assert [(a["code"], a["name"], a["standard"]) for a in api.ok(
        "GET", "/api/hq/accounts", "clara")] == [("1000", "Cash in tills", True),
                                                ("6100", "Rent and rates", False)]
    # HR hires and moves people; a new role applies to the next request
    ann = {"login": "ann", "name": "Ann", "department": "procurement", "site": "HQ",
           "role": "cashier"}
    assert api.call("POST", "/api/hq/employees", "bob", ann)[0] == 403
    assert "unknown role" in api.call("POST", "/api/hq/employees", "hal",
                                      {**ann, "role": "boss"})[1]["detail"]
    assert "unknown site" in api.call("POST", "/api/hq/employees", "hal",
                                      {**ann, "site": "S9"})[1]["detail"]
    assert "unknown department" in api.call("POST", "/api/hq/employees", "hal",
                                            {**ann, "department": "x"})[1]["detail"]
    api.ok("POST", "/api/hq/employees", "hal", ann)
    assert api.call("POST", "/api/hq/employees", "hal", ann)[0] == 409
    code, _ = api.call("PATCH", "/api/hq/employees/clara", "hal", {"role": "buyer"})
    assert code == 200
    # a buyer who works at S1 still acts with S1's rights: products are HQ's
    code, out = api.call("POST", "/api/hq/products", "clara", OAT)
    assert (code, out["reason"]) == (403, "product is master data; only HQ creates it")
    assert api.call("PATCH", "/api/hq/employees/nobody", "hal", {"role": "buyer"})[0] == 404
    assert api.call("GET", "/api/hq/employees", "bob")[0] == 403
    staff = api.ok("GET", "/api/hq/employees", "hal", site="S1")
    assert [(e["login"], e["role"]) for e in staff] == [("clara", "buyer"), ("sam",
                                                                             "store_manager")]
    assert api.ok("GET", "/api/hq/whoami", "clara")["role"] == "buyer"
    # customers: any employee; a credit limit is for finance and store managers
    made = api.ok("POST", "/api/hq/customers", "sam", {"name": "Ada", "phone": "555-0101"})
    ada = made["id"]
    code, out = api.call("PATCH", f"/api/hq/customers/{ada}", "bob", {"credit_limit": 50_000})
    assert code == 403 and "may not set credit_limit on customer" in out["reason"]
    api.ok("PATCH", f"/api/hq/customers/{ada}", "fay", {"credit_limit": 50_000})
    assert api.ok("GET", f"/api/hq/customers/{ada}", "bob")["credit_limit"] == 50_000
    assert api.ok("GET", "/api/hq/customers", "bob", q="0101")["items"][0]["name"] == "Ada"
    assert api.call("GET", "/api/hq/customers/nope", "bob")[0] == 404


def test_an_order_is_approved_by_its_lines_and_not_by_its_drafter(api: Api) -> None:
    """A total typed over the lines is not what REST shows nor what is
    approved; the manager who drafted an order is refused its approval (403,
    as the role matrix refuses), another one approves it."""
    _sites(api)
    oat = _product(api)
    po, line = str(uuid.uuid4()), str(uuid.uuid4())
    acks = apply_group_as_hq(api.db, [
        ("purchase_order", po, {"site": "S1", "supplier": "Oatly", "total": 100,
                                "status": "draft"}),
        ("po_line", line, {"po_id": po, "site": "S1", "product_id": oat, "qty": 1,
                           "unit_cost": 600_000})], "bob")
    assert [a.status for a in acks] == ["accepted"] * 2
    shown = api.ok("GET", f"/api/hq/purchase-orders/{po}", "pam")["order"]
    assert (shown["total"], shown["drafted_by"]) == (600_000, "bob")
    assert api.ok("GET", "/api/hq/purchase-orders", "pam")["items"][0]["total"] == 600_000
    assert api.ok("POST", f"/api/hq/purchase-orders/{po}/approve", "pam")["row"][
        "status"] == "first_approved"  # above the limit: one approver is not enough
    supplier = api.ok("POST", "/api/hq/suppliers", "bob", {"name": "Oatly"})["id"]
    made = api.ok("POST", "/api/hq/purchase-orders", "pam", {
        "site": "S1", "supplier_id": supplier,
        "lines": [{"product_id": oat, "qty": 4, "unit_cost": 250}]})
    assert (made["row"]["total"], made["row"]["drafted_by"]) == (1_000, "pam")
    code, out = api.call("POST", f"/api/hq/purchase-orders/{made['id']}/approve", "pam")
    assert (code, out["status"], out["reason"]) == (
        403, "rejected", "you drafted this purchase order; another approver must approve it")
    assert api.ok("GET", f"/api/hq/purchase-orders/{made['id']}", "pam")["order"][
        "status"] == "draft"
    code, out = api.call("POST", f"/api/hq/purchase-orders/{po}/approve", "bob")
    assert code == 403 and "may not move to approved" in out["reason"]  # the buyer, as before
    assert api.ok("POST", f"/api/hq/purchase-orders/{made['id']}/approve", "admin")["row"][
        "status"] == "approved"
