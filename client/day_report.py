"""The store's day at closing time, per till: receipts, returns, net, tax,
how it was paid, and the cash each drawer should hold beyond its float.

Read from this device's own copy, so it works offline: a till's own sales
are all there; the other tills' of the site are there as far as this
device last synced with HQ (every device of a site receives the site's
receipts). ``pending`` says what this device has not sent HQ yet, so the
manager knows whether HQ's figures for the day are complete.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class TillDay:
    """One till's day: its receipts, and the money it took or paid out."""

    till: str
    receipts: int
    returns: int
    """receipts that are returns (their amounts are negative)"""
    net: int
    tax: int
    total: int
    cash: int
    """cash taken for sales less cash refunded (change already given back)"""
    card: int
    on_account: int
    paid_cash: int = 0
    """cash customers paid into their accounts at this till"""
    paid_card: int = 0

    @property
    def drawer(self) -> int:
        """Cash the drawer should hold beyond its float."""
        return self.cash + self.paid_cash


def till_of(receipt_no: str, site: str) -> str:
    """The till in a receipt number ``SITE-DEVICE-000042`` (devices may hold '-')."""
    head, _, _ = receipt_no.rpartition("-")
    return head.removeprefix(f"{site}-") or "?"


def day_report(conn: sqlite3.Connection, site: str, day: str) -> list[TillDay]:
    """Each till of ``site`` with receipts or account payments on ``day``
    (yyyy-mm-dd), by till, as this device holds them."""
    found: dict[str, TillDay] = {}
    for till, receipts, returns, net, tax, total, cash, card, on_account in conn.execute(
            "SELECT device, count(*), sum(kind = 'return'), sum(net), sum(tax), sum(total), "
            "sum(cash), sum(card), sum(on_account) FROM sale "
            "WHERE _deleted = 0 AND site = ? AND date = ? GROUP BY device", (site, day)):
        found[str(till)] = TillDay(str(till), int(receipts), int(returns or 0),
                                   *(int(v or 0) for v in (net, tax, total, cash, card,
                                                           on_account)))
    paid: dict[str, list[int]] = {}
    for receipt_no, cash, card in conn.execute(
            "SELECT receipt_no, cash, card FROM customer_payment "
            "WHERE _deleted = 0 AND site = ? AND date = ?", (site, day)):
        got = paid.setdefault(till_of(str(receipt_no), site), [0, 0])
        got[0] += int(cash or 0)
        got[1] += int(card or 0)
    for till, (cash, card) in paid.items():
        base = found.get(till) or TillDay(till, 0, 0, 0, 0, 0, 0, 0, 0)
        found[till] = TillDay(**{**base.__dict__, "paid_cash": cash, "paid_card": card})
    return [found[t] for t in sorted(found)]


def all_tills(days: list[TillDay]) -> TillDay:
    """The store's day: every till's added up."""
    return TillDay("all tills", *(sum(getattr(d, f) for d in days) for f in (
        "receipts", "returns", "net", "tax", "total", "cash", "card", "on_account",
        "paid_cash", "paid_card")))
