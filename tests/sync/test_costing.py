"""Pure parts of costing and customer accounts: moving average, credit limit,
statements, payment postings (no file, no socket)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.finance import (
    CARD,
    CASH,
    RECEIVABLE,
    Posting,
    average_cost,
    moving_average,
    payment_posting,
)
from schema.sales import credit_refusal, running_balance


@pytest.mark.parametrize(("on_hand", "value", "expected"), [
    (20, 3000, 150), (3, 301, 100), (3, 302, 101), (2, 301, 151),  # half up
    (-2, -200, 100), (0, 0, 77), (0, 5, 77), (3, -10, 77), (-1, 40, 77), (5, 0, 0),
])
def test_average_cost(on_hand: int, value: int, expected: int) -> None:
    assert average_cost(on_hand, value, 77) == expected


def test_two_receipts_at_different_costs_then_issues_at_the_average() -> None:
    assert moving_average([(10, 100), (10, 200)], 90) == (20, 150, 3000)
    assert moving_average([(10, 100), (10, 200), (-5, 150), (5, 230)], 90) == (20, 170, 3400)
    # a movement without a cost moves at the standard cost when one is given
    assert moving_average([(2, None), (-3, 130)], 120) == (-1, 150, -150)
    assert moving_average([(2, None), (-2, 120)], 120) == (0, 120, 0)


movement = st.tuples(st.integers(-50, 50).filter(bool), st.none() | st.integers(0, 10_000))


@given(st.lists(movement, max_size=30), st.integers(0, 10_000), st.randoms())
def test_with_a_standard_cost_the_valuation_is_the_ledger_sum_in_any_order(
        movements: list[tuple[int, int | None]], standard: int, rnd: random.Random) -> None:
    on_hand, avg, value = moving_average(movements, standard)
    assert on_hand == sum(q for q, _ in movements)
    assert value == sum(q * (standard if c is None else c) for q, c in movements)
    assert avg == average_cost(on_hand, value, standard)
    shuffled = list(movements)
    rnd.shuffle(shuffled)
    assert moving_average(shuffled, standard) == (on_hand, avg, value)


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 10_000)), min_size=1,
                max_size=10), st.integers(0, 100))
def test_issuing_at_the_average_keeps_the_average(receipts: list[tuple[int, int]],
                                                  pct: int) -> None:
    on_hand, avg, value = moving_average(list(receipts), 0)
    issue = on_hand * pct // 100
    left, after, left_value = moving_average([*receipts, (-issue, avg)], 0)
    assert (left, left_value) == (on_hand - issue, value - issue * avg)
    if left > 0:  # only the rounding of the issue's unit cost moves the average
        assert abs(after - avg) * left <= on_hand


def test_credit_limit() -> None:
    assert credit_refusal("Ada", 800, 200, 1000) is None
    assert credit_refusal("Ada", 800, 0, None) is None  # nothing charged
    refused = credit_refusal("Ada", 800, 250, 1000)
    assert refused == ("customer Ada: charging 2.50 would bring the balance to 10.50, over "
                       "the credit limit of 10.00 (2.00 left)")
    assert "no credit limit" in (credit_refusal("Bo", 0, 1, None) or "")
    assert "(0.00 left)" in (credit_refusal("Cy", 1200, 1, 1000) or "")


def test_running_balance() -> None:
    assert running_balance([]) == []
    assert running_balance([1000, -750, 300]) == [1000, 250, 550]


def test_a_payment_posts_cash_and_card_against_the_receivable() -> None:
    assert payment_posting(cash=600, card=150, memo="m") == [
        Posting(CASH, 600, 0, "m"), Posting(CARD, 150, 0, "m"),
        Posting(RECEIVABLE, 0, 750, "m")]
    assert payment_posting(cash=0, card=150, memo="m") == [
        Posting(CARD, 150, 0, "m"), Posting(RECEIVABLE, 0, 150, "m")]
