"""Point of sale at the edge: sell and return, fully offline.

A sale is ONE local transaction and ONE sync group: the receipt, its lines,
the stock movements and the journal lines. The server applies the group all
or nothing, so HQ never sees a sale without its stock or its money.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from schema.finance import Posting, sale_posting

from .edge import Edge, now_ms


class PosError(ValueError):
    """A sale or return that cannot be made as asked; nothing was written."""


def parse_money(text: str, decimals: int = 2) -> int:
    """'12.50' -> 1250 minor units; refuses more decimals than the currency has."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise PosError(f"not an amount: {text!r}") from None
    if not value.is_finite():
        raise PosError(f"not an amount: {text!r}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > decimals:
        raise PosError(f"{text} has more than {decimals} decimals")
    return int(value.scaleb(decimals))


@dataclass(frozen=True)
class LineIn:
    """What the cashier scanned: a SKU or barcode, a quantity, a line discount."""

    code: str
    qty: int
    discount: int = 0


@dataclass(frozen=True)
class Quote:
    priced: list[Any]
    """(product row, line, net, tax) per line."""
    net: int
    tax: int
    total: int


@dataclass(frozen=True)
class Receipt:
    sale_id: str
    receipt_no: str
    net: int
    tax: int
    total: int
    change: int
    lines: list[dict[str, Any]]


def _tax(amount: int, rate_bp: int) -> int:
    return int((Decimal(amount) * rate_bp / 10_000).quantize(Decimal(1), ROUND_HALF_UP))


class Pos:
    """The till's operations on one edge database."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    @property
    def site(self) -> str:
        return self.edge.setting("site")

    def product(self, code: str, on: dt.date | None = None) -> dict[str, Any]:
        """Look a product up by SKU or barcode, with the price in force ``on`` a day
        (today): the latest price change already effective, else the list price."""
        found = self.edge.query("product", sku=code) or self.edge.query("product", barcode=code)
        if not found:
            raise PosError(f"unknown SKU or barcode {code!r}")
        product = dict(found[0])
        day = (on or dt.date.today()).isoformat()
        change = self.edge.conn.execute(
            "SELECT price FROM price_change WHERE product_id = ? AND effective <= ? "
            "AND _deleted = 0 ORDER BY effective DESC, _version DESC LIMIT 1",
            (product["id"], day)).fetchone()
        if change is not None:
            product["price"] = int(change[0])
        return product

    def _next_receipt(self) -> str:
        store = self.edge.store
        seq = int(store.get_state("receipt_seq") or 0) + 1
        store.set_state("receipt_seq", str(seq))
        return f"{self.site}-{self.edge.setting('device')}-{seq:06d}"

    def quote(self, lines: list[LineIn]) -> Quote:
        """Price a basket without selling it: lines with net and tax, and the totals."""
        if not lines:
            raise PosError("a sale needs at least one line")
        priced = []
        for line in lines:
            if line.qty <= 0:
                raise PosError(f"quantity of {line.code} must be positive, got {line.qty}")
            p = self.product(line.code)
            gross = p["price"] * line.qty
            if not 0 <= line.discount <= gross:
                raise PosError(f"discount on {line.code} must be between 0 and {gross}")
            net = gross - line.discount
            priced.append((p, line, net, _tax(net, p.get("tax_rate") or 0)))
        net = sum(n for _, _, n, _ in priced)
        tax = sum(t for _, _, _, t in priced)
        return Quote(priced, net, tax, net + tax)

    def sell(self, lines: list[LineIn], *, cash: int = 0, card: int = 0, on_account: int = 0,
             customer_id: str | None = None, cashier: str = "cashier") -> Receipt:
        """Ring up a sale. Cash may exceed what is due (change is given)."""
        quote = self.quote(lines)
        priced, net, tax, total = quote.priced, quote.net, quote.tax, quote.total
        if min(cash, card, on_account) < 0:
            raise PosError("payments cannot be negative")
        if on_account and not customer_id:
            raise PosError("a sale on account needs a customer")
        if cash + card + on_account < total:
            raise PosError(f"payments {cash + card + on_account} do not cover the total {total}")
        if card + on_account > total:
            raise PosError("card and account payments cannot exceed the total")
        cash_kept = total - card - on_account
        cost = sum((p.get("cost") or 0) * line.qty for p, line, _, _ in priced)
        return self._book("sale", priced, net, tax, cost, cash_kept, card, on_account,
                          customer_id, cashier, change=cash - cash_kept, original=None)

    def return_sale(self, receipt_no: str, returns: dict[str, int], *, card: int = 0,
                    cashier: str = "cashier") -> Receipt:
        """Take back ``returns`` (SKU or barcode -> qty) of an earlier sale of this
        store; the refund goes to the card up to ``card``, the rest in cash."""
        found = self.edge.query("sale", receipt_no=receipt_no, kind="sale")
        if not found:
            raise PosError(f"no sale {receipt_no} at this store")
        sale = found[0]
        sold = self.edge.query("sale_line", sale_id=sale["id"])
        priced = []
        for code, qty in returns.items():
            if qty <= 0:
                raise PosError(f"quantity to return of {code} must be positive, got {qty}")
            p = self.product(code)
            line = next((s for s in sold if s["product_id"] == p["id"]), None)
            if line is None:
                raise PosError(f"{code} is not on receipt {receipt_no}")
            back = -sum(r["qty"] for r in self.edge.query("sale_line",
                                                          original_line_id=line["id"]))
            if qty > line["qty"] - back:
                raise PosError(f"only {line['qty'] - back} of {code} can still be returned "
                               f"on {receipt_no} (sold {line['qty']}, returned {back})")
            share = Decimal(qty) / line["qty"]
            net = int((Decimal(line["price"] * line["qty"] - line["discount"]) * share)
                      .quantize(Decimal(1), ROUND_HALF_UP))
            tax = int((Decimal(line["tax"]) * share).quantize(Decimal(1), ROUND_HALF_UP))
            priced.append(({"id": p["id"], "price": line["price"], "cost": line["cost"]},
                           LineIn(code, -qty), -net, -tax, line["id"]))
        net = sum(n for _, _, n, _, _ in priced)
        tax = sum(t for _, _, _, t, _ in priced)
        refund = -(net + tax)
        card_back = min(card, refund)
        cost = sum(p["cost"] * line.qty for p, line, _, _, _ in priced)
        return self._book("return", [(p, ln, n, t) for p, ln, n, t, _ in priced], net, tax,
                          cost, -(refund - card_back), -card_back, 0, sale["customer_id"],
                          cashier, change=0, original=(sale["id"],
                                                        [o for *_, o in priced]))

    def _book(self, kind: str, priced: list[Any], net: int, tax: int, cost: int, cash: int,
              card: int, on_account: int, customer_id: str | None, cashier: str, change: int,
              original: tuple[str, list[str]] | None) -> Receipt:
        sale_id = str(uuid.uuid4())
        today = dt.date.today().isoformat()
        site = self.site
        write = self.edge.replica.write
        ms = now_ms()
        lines_out = []
        with self.edge.transaction():
            receipt_no = self._next_receipt()
            postings: list[Posting] = sale_posting(net=net, tax=tax, cost=cost, cash=cash,
                                                   card=card, on_account=on_account,
                                                   memo=f"{kind} {receipt_no}")
            write("sale", sale_id, {
                "site": site, "device": self.edge.setting("device"), "receipt_no": receipt_no,
                "kind": kind, "original_id": original[0] if original else None,
                "customer_id": customer_id, "net": net,
                "discount": sum(ln.discount for _, ln, _, _ in priced), "tax": tax,
                "total": net + tax, "cash": cash, "card": card, "on_account": on_account,
                "cashier": cashier, "date": today}, cashier, ms, group=sale_id)
            for n, (p, ln, line_net, line_tax) in enumerate(priced, 1):
                line_id = str(uuid.uuid4())
                fields = {
                    "sale_id": sale_id, "site": site, "line_no": n, "product_id": p["id"],
                    "qty": ln.qty, "price": p["price"], "discount": ln.discount,
                    "tax": line_tax, "cost": p.get("cost") or 0,
                    "original_line_id": original[1][n - 1] if original else None}
                write("sale_line", line_id, fields, cashier, ms, group=sale_id)
                write("stock_movement", str(uuid.uuid4()), {
                    "site": site, "product_id": p["id"], "qty": -ln.qty,
                    "reason": kind}, cashier, ms, group=sale_id)
                lines_out.append({**fields, "id": line_id, "net": line_net})
            for posting in postings:
                write("journal_line", str(uuid.uuid4()), {
                    "entry_id": sale_id, "site": site, "account": posting.account,
                    "debit": posting.debit, "credit": posting.credit, "memo": posting.memo,
                    "date": today}, cashier, ms, group=sale_id)
        return Receipt(sale_id, receipt_no, net, tax, net + tax, change, lines_out)


def trial_balance(edge: Edge, site: str | None = None) -> dict[str, tuple[int, int]]:
    """Account -> (debit, credit) of the journal lines this device holds."""
    where, args = ("WHERE site = ?", (site,)) if site else ("", ())
    rows = edge.conn.execute(
        f"SELECT account, SUM(debit), SUM(credit) FROM journal_line {where} "
        "GROUP BY account ORDER BY account", args).fetchall()
    return {str(a): (int(d), int(c)) for a, d, c in rows}
