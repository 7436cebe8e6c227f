"""The console's price form: a decimal comma, an exponent, nan or an amount
beyond the HQ API's Money bound is a 400 saying how to write the price, and the
stored price (what every store receives) is left as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from litestar.testing import TestClient

from schema import SCHEMA
from server.admin import apply_as_hq, hire
from server.app import create_app
from server.console.auth import set_password
from server.console.html import MAX_MONEY, money, parse_money
from server.hq_api import Money
from server.store import Database
from tests.server.console_kit import PASSWORDS, _db, _login, _post


@pytest.fixture
def buyer(tmp_path: Path) -> Iterator[tuple[TestClient[Any], str]]:
    """The console logged in as bob (buyer) and a product priced 2.50."""
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    db = Database(url, SCHEMA)
    try:
        hire(db, "bob", "buyer", "HQ")
        set_password(db, "bob", PASSWORDS["bob"])
    finally:
        db.dispose()
    with TestClient(create_app(url)) as client:
        product = str(uuid.uuid4())
        assert apply_as_hq(_db(client), "product", product,
                           {"sku": "OAT-1", "name": "Oat milk", "price": 250}).status == "accepted"
        assert _login(client, "bob").status_code == 200
        yield client, product


def _price(client: TestClient[Any], product: str) -> Any:
    with _db(client).transaction(write=False) as store:
        row = store.load("product", product)
    assert row is not None
    return row.fields["price"]


def _set(client: TestClient[Any], product: str, price: str) -> Any:
    return _post(client, f"/products/{product}/price", f"/products/{product}", price=price)


@pytest.mark.parametrize("price", ["2,50", "12,5", "1.234,50", ",50"])
def test_a_decimal_comma_is_refused_with_how_to_write_it(
        buyer: tuple[TestClient[Any], str], price: str) -> None:
    client, product = buyer
    answer = _set(client, product, price)
    assert answer.status_code == 400
    assert "has a decimal comma" in answer.text and "e.g. 1234.50 or 1,234.50" in answer.text
    assert _price(client, product) == 250


@pytest.mark.parametrize(("price", "why"), [
    ("1e30", "is not an amount"), ("1E+26", "is not an amount"), ("1e2", "is not an amount"),
    ("NaN", "is not an amount"), ("sNaN", "is not an amount"), ("Infinity", "is not an amount"),
    ("-inf", "is not a positive amount"), ("1_000", "is not an amount"),
    ("1,23,456", "is not an amount"),
    ("1" + "0" * 26, "is more than the largest amount, 10,000,000,000.00"),
    ("10000000000.01", "is more than the largest amount, 10,000,000,000.00"),
    ("10,000,000,000.01", "is more than the largest amount, 10,000,000,000.00"),
])
def test_exponents_nan_and_huge_prices_are_a_400_not_a_500(
        buyer: tuple[TestClient[Any], str], price: str, why: str) -> None:
    client, product = buyer
    answer = _set(client, product, price)
    assert answer.status_code == 400 and why in answer.text
    assert "price not changed" in answer.text
    assert _price(client, product) == 250


@pytest.mark.parametrize(("price", "cents"), [
    ("1,234.50", 123450), ("12,345", 1234500), ("2.75", 275), ("10,000,000,000.00", 10**12)])
def test_thousands_separators_are_still_taken(buyer: tuple[TestClient[Any], str], price: str,
                                              cents: int) -> None:
    client, product = buyer
    answer = _set(client, product, price)
    assert answer.status_code == 200 and f"price changed to {money(cents)}" in answer.text
    assert _price(client, product) == cents


def test_the_form_takes_back_what_it_shows() -> None:
    """The form is filled with ``money(price)``; every price the Money type allows
    round-trips, thousands separators and all."""
    for cents in (0, 5, 250, 123456, 100_000_000, MAX_MONEY):
        assert parse_money(money(cents)) == cents


def test_the_console_bound_is_the_api_money_bound() -> None:
    assert MAX_MONEY == get_args(Money)[1].le == 10**12
    assert money(10**30 + 7) == "10," + "000," * 8 + "000.07"
    assert money(-123456) == "-1,234.56" and money(None) == ""
