"""Posting rules and valuation: pure arithmetic that the books depend on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.finance import (
    COGS,
    INVENTORY,
    PAYABLE,
    PRICE_VARIANCE,
    RETURNS,
    REVENUE,
    Posting,
    Unbalanced,
    moving_average,
    post,
    posting_day,
    sale_posting,
    supplier_return_posting,
)
from schema.sales import refund_share


def test_moving_average_re_averages_on_receipts_only() -> None:
    assert moving_average([(10, 100), (-4, None), (6, 200)]) == (12, 150, 1800)
    assert moving_average([]) == (0, 0, 0)
    assert moving_average([(5, 100), (-7, None)]) == (-2, 100, -200)  # oversold


def test_unbalanced_or_unknown_postings_are_refused() -> None:
    with pytest.raises(Unbalanced, match="does not balance"):
        post([Posting("1000", 5, 0, "x"), Posting("4000", 0, 4, "x")])
    with pytest.raises(Unbalanced, match="unknown account 9999"):
        post([Posting("9999", 5, 0, "x"), Posting("4000", 0, 5, "x")])


@given(net=st.integers(-10**6, 10**6), tax=st.integers(0, 10**5), cost=st.integers(0, 10**6),
       card_share=st.floats(0, 1))
def test_every_sale_or_return_posting_balances(net: int, tax: int, cost: int,
                                                card_share: float) -> None:
    sign = 1 if net >= 0 else -1
    total = net + sign * tax
    card = int(total * card_share)
    lines = sale_posting(kind="sale" if net >= 0 else "return", net=net, tax=sign * tax,
                         cost=sign * cost, cash=total - card, card=card, on_account=0, memo="m")
    assert sum(p.debit for p in lines) == sum(p.credit for p in lines)


def test_a_return_of_goods_given_away_brings_them_back_at_cost() -> None:
    """Net 0 (a line with a 100% discount) is still a return: the goods come
    back into inventory and their cost leaves the cost of goods sold."""
    sold = sale_posting(kind="sale", net=0, tax=0, cost=500, cash=0, card=0, on_account=0,
                        memo="sale")
    back = sale_posting(kind="return", net=0, tax=0, cost=-500, cash=0, card=0,
                        on_account=0, memo="return")
    assert {(p.account, p.debit, p.credit) for p in sold} == {(COGS, 500, 0),
                                                               (INVENTORY, 0, 500)}
    assert {(p.account, p.debit, p.credit) for p in back} == {(INVENTORY, 500, 0),
                                                               (COGS, 0, 500)}
    refunded = sale_posting(kind="return", net=-100, tax=0, cost=0, cash=-100, card=0,
                            on_account=0, memo="return")
    assert RETURNS in {p.account for p in refunded} and REVENUE not in {p.account
                                                                       for p in refunded}
    with pytest.raises(Unbalanced, match="negative amount"):
        sale_posting(kind="sale", net=0, tax=0, cost=-500, cash=0, card=0, on_account=0,
                     memo="a return posted as a sale")


def test_partial_returns_of_a_discounted_line_refund_what_was_paid() -> None:
    # 3 units sold for 2.99 (a 1-cent discount): one at a time, rounding each
    # return's share on its own refunds 1.00 three times
    refunds, refunded = [], 0
    for back in (1, 2, 3):
        refunds.append(refund_share(299, 3, back, refunded))
        refunded += refunds[-1]
    assert refunds == [100, 99, 100] and refunded == 299
    with pytest.raises(ValueError, match="4 units back of 3 sold"):
        refund_share(299, 3, 4, 0)


@given(amount=st.integers(0, 10**9), sold=st.integers(1, 50), data=st.data())
def test_returns_of_a_line_never_refund_more_than_was_paid(amount: int, sold: int,
                                                             data: st.DataObject) -> None:
    """However the units of a line come back, each return refunds something
    between zero and what is left, and every unit back refunds the whole amount."""
    back = refunded = 0
    while back < sold:
        back += data.draw(st.integers(1, sold - back), label="units returned")
        part = refund_share(amount, sold, back, refunded)
        assert 0 <= part <= amount - refunded
        refunded += part
        assert abs(2 * sold * refunded - 2 * amount * back) <= sold  # the share, +-0.5
    assert refunded == amount


@pytest.mark.parametrize(("dated", "closed", "today", "posted"), [
    ("2026-10-31", None, "2026-11-26", "2026-10-31"),  # books never closed
    ("2026-10-31", "2026-10-31", "2026-11-26", "2026-11-01"),  # the last day of the close
    ("2026-09-02", "2026-10-31", "2026-11-26", "2026-11-01"),  # long before it
    ("2026-11-01", "2026-10-31", "2026-11-26", "2026-11-01"),  # the first open day
    ("2026-11-27", None, "2026-11-26", "2026-11-27"),  # a store a day east of HQ
    ("2026-11-28", None, "2026-11-26", "2026-11-26"),  # a clock days ahead
    ("2027-11-26", "2026-10-31", "2026-11-26", "2026-11-26"),
    ("2026-12-31", "2026-12-31", "2026-11-26", "2027-01-01"),  # HQ's clock behind its close
])
def test_the_day_a_journal_line_counts_on(dated: str, closed: str | None, today: str,
                                          posted: str) -> None:
    assert posting_day(dated, closed, today) == posted
    if closed is None:
        assert posting_day(dated, None) == dated  # no today: the date as it is


@given(stock_value=st.integers(0, 10**9), credited=st.integers(0, 10**9))
def test_a_supplier_return_balances_with_the_variance_between_order_price_and_average(
        stock_value: int, credited: int) -> None:
    lines = supplier_return_posting(stock_value=stock_value, credited=credited, memo="m")
    by = {p.account: (p.debit, p.credit) for p in lines}
    assert by.get(PAYABLE, (0, 0)) == (credited, 0)
    assert by.get(INVENTORY, (0, 0)) == (0, stock_value)
    variance = by.get(PRICE_VARIANCE, (0, 0))
    assert variance[1] - variance[0] == credited - stock_value
    assert COGS not in by  # the cost of the goods sold stays that of the receipts
