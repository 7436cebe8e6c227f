"""HQ's REST API takes a body's values as the JSON types their fields declare
(``server.strict_json``): a number sent as a string is a client bug, told
which field and what type, and nothing is written. Query parameters arrive
as text and still work."""

from __future__ import annotations

import datetime
from typing import Any

from .rest_kit import Api

OAT = {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250, "cost": 120}


def _setup(api: Api) -> dict[str, str]:
    """Sites, a product, a supplier and a customer to aim the bodies at."""
    for code, kind in (("S1", "store"), ("W1", "warehouse")):
        api.ok("POST", "/api/hq/sites", "admin", {"code": code, "name": code, "kind": kind})
    return {"product": api.ok("POST", "/api/hq/products", "bob", OAT)["id"],
            "supplier": api.ok("POST", "/api/hq/suppliers", "bob", {"name": "Oatly"})["id"],
            "customer": api.ok("POST", "/api/hq/customers", "sam", {"name": "Ada"})["id"]}


def _state(api: Api, ids: dict[str, str]) -> Any:
    """What a user reads back: the lists and rows the bodies below would change."""
    return (api.ok("GET", "/api/hq/products", "bob"),
            api.ok("GET", f"/api/hq/products/{ids['product']}/price-changes", "bob"),
            api.ok("GET", "/api/hq/customers", "bob"),
            api.ok("GET", "/api/hq/reorder-rules", "bob"),
            api.ok("GET", "/api/hq/purchase-orders", "bob"))


LATER = str(datetime.date.today() + datetime.timedelta(days=3))
ORDER = {"site": "S1", "supplier_id": "{supplier}",
         "lines": [{"product_id": "{product}", "qty": 10, "unit_cost": 120}]}
WRONG = [  # method, path, a good body, its field sent wrong, as what, what the 400 says
    ("POST", "/api/hq/products", {**OAT, "sku": "OAT-2"}, "price", "12",
     "Expected `int`, got `str`"),
    ("POST", "/api/hq/products", {**OAT, "sku": "OAT-3"}, "cost", "120",
     "Expected `int | null`, got `str`"),
    ("POST", "/api/hq/products", {**OAT, "sku": "OAT-4"}, "price", 250.0,
     "Expected `int`, got `float`: money is in integer minor units (2.50 is sent as 250)"),
    ("POST", "/api/hq/products", {**OAT, "sku": "OAT-5"}, "price", 2.505,
     "Expected `int`, got `float`: money is in integer minor units"),
    ("POST", "/api/hq/products/{product}/price", {"price": 275}, "price", "275",
     "Expected `int`, got `str`"),
    ("POST", "/api/hq/products/{product}/price-changes", {"price": 275, "effective": LATER},
     "price", "275", "Expected `int`, got `str`"),
    ("PATCH", "/api/hq/products/{product}", {"tax_rate": 2000}, "tax_rate", "2000",
     "Expected `int | null`, got `str`"),
    ("POST", "/api/hq/customers", {"name": "Bo", "credit_limit": 5000}, "credit_limit", "5000",
     "Expected `int | null`, got `str`"),
    ("PATCH", "/api/hq/customers/{customer}", {"credit_limit": 9000}, "credit_limit", "9000",
     "Expected `int | null`, got `str`"),
    ("PUT", "/api/hq/reorder-rules", {"site": "S1", "product_id": "{product}", "level": 2,
                                      "order_qty": 12}, "level", "2",
     "Expected `int`, got `str`"),
    ("POST", "/api/hq/purchase-orders", ORDER, "lines[0].qty", "10",
     "Expected `int`, got `str`"),
    ("POST", "/api/hq/purchase-orders", ORDER, "lines[0].unit_cost", "1.20",
     "Expected `int`, got `str`"),
]
"""No body of the HQ API has a boolean field: a ``"true"`` has nowhere to go."""


def _fill(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with the ids of ``_setup`` in place of ``{product}`` and the like."""
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _sent_wrong(body: dict[str, Any], field: str, value: object) -> dict[str, Any]:
    """``body`` with ``field`` (``lines[0].qty`` for a line's) set to ``value``."""
    if field.startswith("lines[0]."):
        line = {**body["lines"][0], field.removeprefix("lines[0]."): value}
        return {**body, "lines": [line]}
    return {**body, field: value}


def test_a_value_of_the_wrong_json_type_is_a_400_naming_the_field_and_nothing_changes(
        api: Api) -> None:
    ids = _setup(api)
    before = _state(api, ids)
    for method, path, body, field, value, message in WRONG:
        sent = _sent_wrong(_fill(body, ids), field, value)
        code, out = api.call(method, _fill(path, ids), "admin", sent)
        assert code == 400, (method, path, sent, out)
        (wrong,) = out["extra"]
        assert (wrong["key"], wrong["source"]) == (field, "body"), out
        assert wrong["message"].startswith(message), out
    assert _state(api, ids) == before


def test_the_same_bodies_sent_with_their_json_types_are_taken(api: Api) -> None:
    ids = _setup(api)
    for method, path, body, *_ in WRONG:
        code, out = api.call(method, _fill(path, ids), "admin", _fill(body, ids))
        assert code in (200, 201), (method, path, body, out)


def test_query_parameters_still_arrive_as_text(api: Api) -> None:
    ids = _setup(api)
    page = api.ok("GET", "/api/hq/products", "bob", limit="1", offset="0")
    assert (page["limit"], page["offset"], [p["id"] for p in page["items"]]) == (
        1, 0, [ids["product"]])
    code, out = api.call("GET", "/api/hq/products", "bob", limit="many")
    assert code == 400 and out["extra"][0]["key"] == "limit"
    assert api.ok("GET", "/api/hq/customers", "bob", q="Ad", limit="50")["total"] == 1


def test_a_body_nested_past_the_stack_is_a_400_not_a_crash(api: Api) -> None:
    """A hostile or broken client's body of 100,000 nested arrays gets a 400
    saying so, with or without an Idempotency-Key, and the server goes on."""
    body = b"[" * 100_000 + b"]" * 100_000
    for extra in ({"idempotency-key": "deep"}, {}):
        r = api.client.post("/api/hq/customers", content=body, headers={
            "authorization": f"Bearer {api.tokens['admin']}",
            "content-type": "application/json", **extra})
        assert r.status_code == 400 and "nests deeper" in r.json()["detail"], r.text[:200]
    assert api.ok("POST", "/api/hq/customers", "admin", {"name": "Ada"})["id"]
