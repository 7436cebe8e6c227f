"""Finance: the chart of accounts, journal lines, and the posting rules that
turn a retail document into balanced journal lines.

Money is in integer minor units (cents). Every posting is balanced by
construction: ``post`` refuses a set of lines whose debits and credits differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Entity, Field, Kind, Policy, Scope

L, H = Policy.LEDGER, Policy.HQ_OWNED

CASH = "1000"
CARD = "1010"
RECEIVABLE = "1100"
INVENTORY = "1200"
IN_TRANSIT = "1210"
PAYABLE = "2000"
SALES_TAX = "2100"
REVENUE = "4000"
RETURNS = "4100"
COGS = "5000"
SHRINKAGE = "5100"

CHART: dict[str, tuple[str, str]] = {
    CASH: ("Cash in tills", "asset"),
    CARD: ("Card clearing", "asset"),
    RECEIVABLE: ("Accounts receivable", "asset"),
    INVENTORY: ("Inventory", "asset"),
    IN_TRANSIT: ("Inventory in transit", "asset"),
    PAYABLE: ("Accounts payable", "liability"),
    SALES_TAX: ("Sales tax payable", "liability"),
    REVENUE: ("Sales revenue", "revenue"),
    RETURNS: ("Sales returns", "revenue"),
    COGS: ("Cost of goods sold", "expense"),
    SHRINKAGE: ("Inventory adjustments", "expense"),
}
"""Standard account codes: code -> (name, type)."""

ACCOUNT = Entity(
    "account",
    fields=(
        Field("code", Kind.REF, H),
        Field("name", Kind.TEXT, H),
        Field("type", Kind.TEXT, H, doc="asset, liability, equity, revenue or expense"),
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
        Field("debit", Kind.MONEY, L),
        Field("credit", Kind.MONEY, L),
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


def sale_posting(*, net: int, tax: int, cost: int, cash: int, card: int, on_account: int,
                 memo: str) -> list[Posting]:
    """A sale (positive amounts) or a return (negative amounts).

    Receipts (cash, card, customer account) against revenue and sales tax; cost
    of goods sold against inventory. A return reverses each side and books the
    lost revenue on the returns account.
    """
    if net >= 0:
        return post([
            Posting(CASH, cash, 0, memo), Posting(CARD, card, 0, memo),
            Posting(RECEIVABLE, on_account, 0, memo),
            Posting(REVENUE, 0, net, memo), Posting(SALES_TAX, 0, tax, memo),
            Posting(COGS, cost, 0, memo), Posting(INVENTORY, 0, cost, memo),
        ])
    return post([
        Posting(CASH, 0, -cash, memo), Posting(CARD, 0, -card, memo),
        Posting(RECEIVABLE, 0, -on_account, memo),
        Posting(RETURNS, -net, 0, memo), Posting(SALES_TAX, -tax, 0, memo),
        Posting(INVENTORY, -cost, 0, memo), Posting(COGS, 0, -cost, memo),
    ])


def moving_average(movements: list[tuple[int, int | None]]) -> tuple[int, int, int]:
    """Perpetual moving-average valuation of one (site, product).

    ``movements`` are (qty, unit cost or None) in the order HQ recorded them.
    A receipt with a cost re-averages: (on hand x average + qty x cost) /
    (on hand + qty); an issue leaves the average as it is. Returns (on hand,
    average unit cost, stock value), rounded to the minor unit.
    """
    on_hand, average = 0, 0.0
    for qty, cost in movements:
        if qty > 0 and cost is not None:
            base = max(on_hand, 0)
            average = (base * average + qty * cost) / (base + qty)
        on_hand += qty
    avg = int(average + 0.5)
    return on_hand, avg, int(on_hand * average + 0.5) if on_hand > 0 else on_hand * avg
