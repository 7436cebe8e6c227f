"""Customer accounts at the edge, fully offline: payments, balance, statement.

A sale charged on account (``Pos.sell(on_account=...)``) raises the
customer's receivable and writes a ``customer_entry``; a payment taken at a
till is a ``customer_payment`` document with its entry and its journal (cash
or card against the receivable), one local transaction and one sync group.
Account entries reach every site, so any till knows a customer's balance and
the credit left once it has synced; a charge made at another store that has
not synced yet is the one thing it cannot know.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from schema.finance import payment_posting
from schema.sales import running_balance
from sync.ids import new_id

from .edge import Edge, now_ms
from .pos import Pos, PosError, balance


class AccountError(PosError):
    """A payment or statement that cannot be made as asked; nothing was written."""


@dataclass(frozen=True)
class Payment:
    payment_id: str
    receipt_no: str
    amount: int
    balance: int
    """The customer's balance after the payment, as this device knows it."""


@dataclass(frozen=True)
class StatementLine:
    date: str
    kind: str
    """charge, return or payment."""
    receipt_no: str
    site: str
    amount: int
    balance: int


@dataclass(frozen=True)
class Statement:
    customer_id: str
    name: str
    credit_limit: int | None
    lines: list[StatementLine]
    balance: int

    @property
    def available(self) -> int | None:
        """Credit left to charge on account (None: no credit limit, nothing may be charged)."""
        return None if self.credit_limit is None else max(self.credit_limit - self.balance, 0)


class Accounts:
    """Customer accounts on one device."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.pos = Pos(edge)

    def _customer(self, customer_id: str) -> dict[str, Any]:
        try:
            return self.pos.customer(customer_id)
        except PosError as exc:
            raise AccountError(str(exc)) from None

    def balance(self, customer_id: str) -> int:
        """What the customer owes (negative: money in hand on the account)."""
        self._customer(customer_id)
        return balance(self.edge, customer_id)

    def statement(self, customer_id: str) -> Statement:
        """Every entry of the account this device holds, oldest first, with the
        balance after each."""
        customer = self._customer(customer_id)
        rows = self.edge.conn.execute(
            "SELECT date, kind, receipt_no, site, amount FROM customer_entry "
            "WHERE customer_id = ? AND _deleted = 0 ORDER BY date, receipt_no, id",
            (customer_id,)).fetchall()
        after = running_balance([int(r[4]) for r in rows])
        lines = [StatementLine(str(d), str(k), str(n), str(s), int(a), b)
                 for (d, k, n, s, a), b in zip(rows, after, strict=True)]
        return Statement(customer_id, str(customer["name"]), customer.get("credit_limit"),
                         lines, after[-1] if after else 0)

    def take_payment(self, customer_id: str, *, cash: int = 0, card: int = 0,
                     cashier: str = "cashier") -> Payment:
        """A customer pays into the account at this till (cash and/or card)."""
        customer = self._customer(customer_id)
        if min(cash, card) < 0:
            raise AccountError("a payment cannot be negative")
        amount = cash + card
        if amount <= 0:
            raise AccountError("a payment needs an amount in cash or by card")
        site = self.edge.setting("site")
        key = new_id(now_ms())
        today = dt.date.today().isoformat()
        write = self.edge.replica.write
        ms = now_ms()
        with self.edge.transaction():
            receipt_no = self.pos.next_receipt_no()
            memo = f"payment {receipt_no} from {customer['name']}"
            postings = payment_posting(cash=cash, card=card, memo=memo)
            write("customer_payment", key, {
                "site": site, "customer_id": customer_id, "receipt_no": receipt_no,
                "amount": amount, "cash": cash, "card": card, "cashier": cashier,
                "date": today}, cashier, ms, group=key)
            write("customer_entry", new_id(now_ms()), {
                "customer_id": customer_id, "site": site, "kind": "payment",
                "amount": -amount, "document_id": key, "receipt_no": receipt_no,
                "date": today}, cashier, ms, group=key)
            for p in postings:
                write("journal_line", new_id(now_ms()), {
                    "entry_id": key, "site": site, "account": p.account, "debit": p.debit,
                    "credit": p.credit, "memo": p.memo, "date": today}, cashier, ms, group=key)
            left = balance(self.edge, customer_id)
        return Payment(key, receipt_no, amount, left)
