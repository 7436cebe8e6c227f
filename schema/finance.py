"""Finance: the chart of accounts, journal lines, and the posting rules that
turn a retail document into balanced journal lines.

Money is in integer minor units (cents). Every posting is balanced by
construction: ``post`` refuses a set of lines whose debits and credits differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from .model import Entity, Field, Kind, Policy, Scope

L, H = Policy.LEDGER, Policy.HQ_OWNED

CASH = "1000"
CARD = "1010"
RECEIVABLE = "1100"
INVENTORY = "1200"
IN_TRANSIT = "1210"
PAYABLE = "2000"
OPENING_EQUITY = "3000"
SALES_TAX = "2100"
REVENUE = "4000"
RETURNS = "4100"
COGS = "5000"
SHRINKAGE = "5100"
PRICE_VARIANCE = "5200"

CHART: dict[str, tuple[str, str]] = {
    CASH: ("Cash in tills", "asset"),
    CARD: ("Card clearing", "asset"),
    RECEIVABLE: ("Accounts receivable", "asset"),
    INVENTORY: ("Inventory", "asset"),
    IN_TRANSIT: ("Inter-site transfers (goods in transit)", "asset"),
    PAYABLE: ("Accounts payable", "liability"),
    SALES_TAX: ("Sales tax payable", "liability"),
    OPENING_EQUITY: ("Opening balance equity", "equity"),
    REVENUE: ("Sales revenue", "revenue"),
    RETURNS: ("Sales returns", "revenue"),
    COGS: ("Cost of goods sold", "expense"),
    SHRINKAGE: ("Inventory adjustments", "expense"),
    PRICE_VARIANCE: ("Purchase price variance", "expense"),
}
"""Standard account codes: code -> (name, type).

``IN_TRANSIT`` is the clearing account between sites: the sender debits it
when goods leave (at their cost), the receiver credits it when they arrive
(what arrived and what was lost, at the shipped cost). Each site's books
balance on their own, so a site's balance is what other sites owe it for
goods (positive) or what it owes them (negative); the company's, where those
cancel out, is the value of the goods still in transit."""


ACCOUNT = Entity(
    "account",
    fields=(
        Field("code", Kind.REF, H),
        Field("name", Kind.TEXT, H),
        Field("type", Kind.TEXT, H, doc="asset, liability, equity, revenue or expense",
              choices=("asset", "liability", "equity", "revenue", "expense")),
    ),
    owner_hq=True,
    deletable=False,
    doc="The chart of accounts, kept by finance at HQ.",
)

JOURNAL_LINE = Entity(
    "journal_line",
    fields=(
        Field("entry_id", Kind.UUID, L, doc="the document posted (a sale, a receipt, ...)"),
        Field("site", Kind.REF, L),
        Field("account", Kind.REF, L, doc="account code"),
        Field("debit", Kind.MONEY, L, minimum=0),
        Field("credit", Kind.MONEY, L, minimum=0),
        Field("memo", Kind.TEXT, L),
        Field("date", Kind.DATE, L),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    doc="One line of the double-entry journal; the journal is append-only.",
)


@dataclass(frozen=True)
class Posting:
    """One journal line before it gets its key."""

    account: str
    debit: int
    credit: int
    memo: str


class Unbalanced(ValueError):
    """A set of journal lines whose debits and credits differ."""


def post(lines: list[Posting]) -> list[Posting]:
    """Drop empty lines; refuse an unbalanced posting or an unknown account."""
    kept = [p for p in lines if p.debit or p.credit]
    for p in kept:
        if p.account not in CHART:
            raise Unbalanced(f"unknown account {p.account}")
        if p.debit < 0 or p.credit < 0:
            raise Unbalanced(f"negative amount on account {p.account}")
    debit, credit = sum(p.debit for p in kept), sum(p.credit for p in kept)
    if debit != credit:
        raise Unbalanced(f"journal does not balance: debit {debit}, credit {credit}")
    return kept


def sale_posting(*, kind: Literal["sale", "return"], net: int, tax: int, cost: int, cash: int,
                 card: int, on_account: int, memo: str) -> list[Posting]:
    """A sale (``kind`` "sale", amounts zero or positive) or a return ("return",
    amounts zero or negative, as the return receipt carries them).

    Receipts (cash, card, customer account) against revenue and sales tax; cost
    of goods sold against inventory. A return reverses each side and books the
    lost revenue on the returns account. The document says which it is: a line
    given away (net 0) still moves goods, so the sign of the net cannot tell.
    """
    if kind == "sale":
        return post([
            Posting(CASH, cash, 0, memo), Posting(CARD, card, 0, memo),
            Posting(RECEIVABLE, on_account, 0, memo),
            Posting(REVENUE, 0, net, memo), Posting(SALES_TAX, 0, tax, memo),
            Posting(COGS, cost, 0, memo), Posting(INVENTORY, 0, cost, memo),
        ])
    if kind == "return":
        return post([
            Posting(CASH, 0, -cash, memo), Posting(CARD, 0, -card, memo),
            Posting(RECEIVABLE, 0, -on_account, memo),
            Posting(RETURNS, -net, 0, memo), Posting(SALES_TAX, -tax, 0, memo),
            Posting(INVENTORY, -cost, 0, memo), Posting(COGS, 0, -cost, memo),
        ])
    raise ValueError(f"not a sale or a return: {kind!r}")


def payment_posting(*, cash: int, card: int, memo: str) -> list[Posting]:
    """A customer paying into the account: cash and card against the receivable."""
    return post([Posting(CASH, cash, 0, memo), Posting(CARD, card, 0, memo),
                 Posting(RECEIVABLE, 0, cash + card, memo)])


def supplier_return_posting(*, stock_value: int, credited: int, memo: str) -> list[Posting]:
    """Goods sent back to a supplier: the inventory account gives up what the
    goods stood in the books at (``stock_value``: quantity x the site's moving
    average when they left), the payable falls by what the supplier credits
    (``credited``: quantity x the order's price), and the difference goes to
    purchase price variance -- a credit when the supplier gives back more than
    the goods are worth in our books, a debit when less. Cost of goods sold is
    left alone, so it stays the cost of the receipts' lines."""
    gain = credited - stock_value
    return post([
        Posting(PAYABLE, credited, 0, memo), Posting(INVENTORY, 0, stock_value, memo),
        Posting(PRICE_VARIANCE, max(-gain, 0), max(gain, 0), memo),
    ])


def posting_day(dated: str, closed_through: str | None, today: str | None = None) -> str:
    """The day a journal line dated ``dated`` (yyyy-mm-dd) counts on in the
    books: its own date, or

    * the first open day when the books are closed through that date or
      later: a sale made offline on 31 October that reaches HQ after finance
      closed October is still a sale of 31 October; it is posted on 1
      November, so October's figures stay as they were reported;
    * ``today`` (HQ's day when the line arrives) when it is dated more than a
      day after it: a till whose clock runs months ahead cannot put its sales
      in a month that has not begun (a day of slack: a store east of HQ may
      already be in tomorrow)."""
    if today is not None and dated > next_day(today):
        return today if closed_through is None or today > closed_through \
            else next_day(closed_through)
    if closed_through is None or dated > closed_through:
        return dated
    return next_day(closed_through)


def next_day(day: str) -> str:
    """The day after ``day`` (yyyy-mm-dd)."""
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def format_money(minor: int, decimals: int = 2, grouped: bool = False) -> str:
    """1234567 -> '12345.67' (``grouped``: '12,345.67'), in integer arithmetic:
    exact at any size, as a float division is not beyond 2^53 minor units."""
    whole, part = divmod(abs(minor), 10**decimals)
    text = f"{whole:,}" if grouped else str(whole)
    sign = "-" if minor < 0 else ""
    return f"{sign}{text}.{part:0{decimals}d}" if decimals else f"{sign}{text}"


def _round(value: float) -> int:
    """Half away from zero, to the minor unit."""
    whole = int(abs(value) + 0.5)
    return whole if value >= 0 else -whole


def _div(a: int, b: int) -> int:
    """a / b rounded half away from zero, in integers (b != 0)."""
    if b < 0:
        a, b = -a, -b
    q, r = divmod(abs(a), b)
    q += 1 if 2 * r >= b else 0
    return q if a >= 0 else -q


def average_cost(on_hand: int, value: int, fallback: int) -> int:
    """The moving-average unit cost of ``on_hand`` units worth ``value`` (the sum
    of qty x unit cost of their movements), rounded half up; ``fallback`` (the
    standard cost) when there is nothing to average: no stock, or a value of the
    opposite sign (stock oversold at one cost and received at another)."""
    if on_hand == 0 or (value != 0 and (value < 0) != (on_hand < 0)):
        return fallback
    return _div(value, on_hand)


def moving_average(movements: list[tuple[int, int | None]],
                   standard: int | None = None) -> tuple[int, int, int]:
    """Perpetual moving-average valuation of one (site, product).

    ``movements`` are (qty, unit cost or None) in the order HQ recorded them.
    Each moves stock at its unit cost: goods coming in at what they cost, goods
    going out at the moving average when they left (the edge records it), so
    the stock value is the sum of qty x cost -- what the journal posted to the
    inventory account -- and the average is value / on hand. A movement without
    a cost moves at ``standard`` (the product's standard cost, what older
    devices posted), or without one at the running average. Returns (on hand,
    average unit cost, stock value), rounded to the minor unit.
    """
    on_hand = 0
    value: float = 0  # an int whenever every movement has a cost or there is a standard
    running: float = standard or 0
    for qty, cost in movements:
        unit = cost if cost is not None else standard if standard is not None else running
        value += qty * unit
        on_hand += qty
        if on_hand > 0 and value >= 0:
            running = value / on_hand
    rounded = value if isinstance(value, int) else _round(value)
    fallback = standard if standard is not None else _round(running)
    return on_hand, average_cost(on_hand, rounded, fallback), rounded
