"""Point of sale at the edge: sell, return and exchange, fully offline.

A sale is ONE local transaction and ONE sync group: the receipt, its lines,
the stock movements (at the site's moving-average cost), the journal lines
and, for a sale on account, the customer's account entry. An exchange is a
return and a new sale in one group. The server applies the group all
or nothing, so HQ never sees a sale without its stock or its money.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from schema.finance import Posting, Unbalanced, format_money, sale_posting
from schema.model import MAX_MONEY
from schema.sales import credit_refusal, refund_share
from sync.ids import new_id

from .costing import unit_cost
from .edge import Edge, now_ms


class PosError(ValueError):
    """A sale or return that cannot be made as asked; nothing was written."""


MAX_AMOUNT = MAX_MONEY
"""The largest amount, in minor units, a till takes (``schema.model.MAX_MONEY``,
the bound of HQ's console and REST API too)."""

# plain decimal notation only: no exponent ("1e3"), no "Infinity", no "1_000"
_AMOUNT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_money(text: str, decimals: int = 2) -> int:
    """'12.50' -> 1250 minor units; refuses more decimals than the currency has,
    anything but plain decimal notation, and amounts beyond ``MAX_AMOUNT``."""
    plain = text.strip()
    if _AMOUNT_RE.fullmatch(plain) is None:
        raise PosError(f"not an amount: {text!r} (write it like 12.50)")
    value = Decimal(plain)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > decimals:
        raise PosError(f"{plain} has more than {decimals} decimals")
    if abs(value) > Decimal(MAX_AMOUNT).scaleb(-decimals):
        raise PosError(f"{plain} is more than the largest amount, "
                       f"{format_money(MAX_AMOUNT, decimals)}")
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


@dataclass(frozen=True)
class Exchange:
    returned: Receipt
    sold: Receipt
    due: int
    """What the customer owes for the new goods after the refund (negative: is owed)."""
    change: int
    """Cash handed back to the customer."""


@dataclass(frozen=True)
class Refund:
    """Where the money of a return goes back, in minor units (none negative)."""

    account: int
    """Credited to the customer's account."""
    card: int
    cash: int


def balance(edge: Edge, customer_id: str) -> int:
    """What a customer owes, from the account entries this device holds (every
    store's, once synced): charges on account less payments and returns."""
    found = edge.conn.execute("SELECT COALESCE(SUM(amount), 0) FROM customer_entry "
                              "WHERE customer_id = ? AND _deleted = 0", (customer_id,)).fetchone()
    return int(found[0])


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

    def next_receipt_no(self) -> str:
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

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The customer's row as this device sees it; PosError if there is none."""
        found = self.edge.get("customer", customer_id)
        if found is None:
            raise PosError(f"unknown customer {customer_id!r} on this device")
        return found

    def sell(self, lines: list[LineIn], *, cash: int = 0, card: int = 0, on_account: int = 0,
             customer_id: str | None = None, cashier: str = "cashier") -> Receipt:
        """Ring up a sale. Cash may exceed what is due (change is given). An amount
        charged on account must fit in the customer's credit limit; each line is
        costed at the moving average of this site."""
        quote = self.quote(lines)
        total = quote.total
        if min(cash, card, on_account) < 0:
            raise PosError("payments cannot be negative")
        if on_account and not customer_id:
            raise PosError("a sale on account needs a customer")
        customer = self.customer(customer_id) if customer_id else None
        if cash + card + on_account < total:
            raise PosError(f"payments {cash + card + on_account} do not cover the total {total}")
        if card + on_account > total:
            raise PosError("card and account payments cannot exceed the total")
        cash_kept = total - card - on_account
        with self.edge.transaction():
            if customer is not None and on_account:
                refused = credit_refusal(customer["name"], balance(self.edge, customer["id"]),
                                         on_account, customer.get("credit_limit"))
                if refused is not None:
                    raise PosError(refused)
            return self._book("sale", quote.priced, cash_kept, card, on_account, customer_id,
                              cashier, change=cash - cash_kept, original=None)

    def _take_back(self, receipt_no: str, returns: dict[str, int]
                   ) -> tuple[dict[str, Any], list[Any], list[str]]:
        """The sale and the priced lines of a return against it (checked)."""
        found = self.edge.query("sale", receipt_no=receipt_no, kind="sale")
        if not found:
            raise PosError(f"no sale {receipt_no} at this store")
        if not returns:
            raise PosError(f"nothing to take back on {receipt_no}")
        sale = found[0]
        sold = self.edge.query("sale_line", sale_id=sale["id"])
        asked: dict[str, tuple[str, dict[str, Any], int]] = {}  # line id -> code, line, qty
        for code, qty in returns.items():
            if qty <= 0:
                raise PosError(f"quantity to return of {code} must be positive, got {qty}")
            p = self.product(code)
            line = next((s for s in sold if s["product_id"] == p["id"]), None)
            if line is None:
                raise PosError(f"{code} is not on receipt {receipt_no}")
            # the SKU and the barcode of one product are one line to take back
            first, _, before = asked.get(line["id"], (code, line, 0))
            asked[line["id"]] = (first, line, before + qty)
        priced, originals = [], []
        for code, line, qty in asked.values():
            earlier = self.edge.query("sale_line", original_line_id=line["id"])
            back = -sum(int(r["qty"]) for r in earlier)
            if qty > line["qty"] - back:
                raise PosError(f"only {line['qty'] - back} of {code} can still be returned "
                               f"on {receipt_no} (sold {line['qty']}, returned {back})")
            # each return refunds the share of all the units back so far less what
            # earlier returns refunded, so a line never refunds more than it was
            # sold for. Their tax is on their lines; their net is not, and is the
            # share of the units they took back (what this rule refunded them)
            sold_net = int(line["price"]) * int(line["qty"]) - int(line["discount"])
            net = refund_share(sold_net, line["qty"], back + qty,
                               refund_share(sold_net, line["qty"], back, 0))
            tax = refund_share(int(line["tax"]), line["qty"], back + qty,
                               -sum(int(r["tax"]) for r in earlier))
            priced.append(({"id": line["product_id"], "price": line["price"],
                            "cost": line["cost"]}, LineIn(code, -qty), -net, -tax))
            originals.append(line["id"])
        return sale, priced, originals

    def _account_left(self, sale: dict[str, Any]) -> int:
        """What of a sale's charge on account earlier returns have not credited back."""
        returns = self.edge.query("sale", original_id=sale["id"], kind="return")
        credited = -sum(int(r["on_account"]) for r in returns)
        return max(int(sale["on_account"] or 0) - credited, 0)

    def _refund(self, sale: dict[str, Any], amount: int, *, card: int, spent: int = 0
                ) -> Refund:
        """Where ``amount`` refunded on ``sale`` goes back. First to the
        customer's account, as far as the sale was charged to it and earlier
        returns have not credited it back: goods bought on account were never
        paid for, so no money goes back for them. Of the rest, ``spent`` pays for
        the goods taken in exchange (it leaves the return in cash and comes into
        the new sale in cash), then up to ``card`` goes back to the card and the
        remainder in cash."""
        account = min(self._account_left(sale), amount)
        to_card = min(card, max(amount - account - spent, 0))
        return Refund(account, to_card, amount - account - to_card)

    def return_sale(self, receipt_no: str, returns: dict[str, int], *, card: int = 0,
                    cashier: str = "cashier") -> Receipt:
        """Take back ``returns`` (SKU or barcode -> qty) of an earlier sale of this
        store. The refund goes back to the customer's account as far as the sale
        was charged to it, then to the card up to ``card``, the rest in cash; the
        goods come back at the cost they left at."""
        if card < 0:
            raise PosError("a card refund cannot be negative")
        sale, priced, originals = self._take_back(receipt_no, returns)
        back = self._refund(sale, -sum(n + t for _, _, n, t in priced), card=card)
        return self._book("return", priced, -back.cash, -back.card, -back.account,
                          sale["customer_id"], cashier, change=0,
                          original=(sale["id"], originals))

    def exchange(self, receipt_no: str, returns: dict[str, int], lines: list[LineIn], *,
                 cash: int = 0, card: int = 0, cashier: str = "cashier") -> Exchange:
        """Take goods back against an earlier sale and sell others in their place:
        a return and a new sale in ONE local transaction and ONE sync group (HQ
        applies both or neither). The refund goes back as a return's does: to the
        customer's account first, as far as the sale was charged to it; the rest
        pays for the new goods, and the customer pays the difference (cash, card)
        or gets it back (to the card up to ``card``, the rest in cash)."""
        if min(cash, card) < 0:
            raise PosError("payments cannot be negative")
        sale, priced, originals = self._take_back(receipt_no, returns)
        quote = self.quote(lines)
        back = self._refund(sale, -sum(n + t for _, _, n, t in priced), card=card,
                            spent=quote.total)
        due = quote.total - back.card - back.cash
        if due >= 0:
            if card > due:
                raise PosError(f"the card pays at most the difference due, {due}")
            if cash + card < due:
                raise PosError(f"payments {cash + card} do not cover the difference {due}")
            sale_card, change = card, cash + card - due
        else:
            sale_card, change = 0, -due - back.card  # cash handed back
        group = new_id(now_ms())
        with self.edge.transaction():
            returned = self._book("return", priced, -back.cash, -back.card, -back.account,
                                  sale["customer_id"], cashier, change=0,
                                  original=(sale["id"], originals), group=group)
            sold = self._book("sale", quote.priced, quote.total - sale_card, sale_card, 0,
                              sale["customer_id"], cashier, change=0, original=None,
                              group=group)
        return Exchange(returned, sold, due, change)

    def _book(self, kind: Literal["sale", "return"], priced: list[Any], cash: int, card: int,
              on_account: int, customer_id: str | None, cashier: str, change: int,
              original: tuple[str, list[str]] | None, group: str | None = None) -> Receipt:
        """Write one receipt with its lines, movements, journal and account entry,
        in one local transaction (a savepoint inside the caller's) and one group.
        A sale's lines leave at the moving-average cost of this site, taken inside
        the transaction; a return's come back at the cost they left at."""
        sale_id = new_id(now_ms())
        group = group or sale_id
        today = dt.date.today().isoformat()
        site = self.site
        write = self.edge.replica.write
        ms = now_ms()
        lines_out = []
        net = sum(n for _, _, n, _ in priced)
        tax = sum(t for _, _, _, t in priced)
        with self.edge.transaction():
            receipt_no = self.next_receipt_no()
            units: dict[str, int] = {}
            for p, _, _, _ in priced:
                if p["id"] not in units:
                    units[p["id"]] = (int(p["cost"] or 0) if kind == "return"
                                      else unit_cost(self.edge, site, p))
            cost = sum(units[p["id"]] * ln.qty for p, ln, _, _ in priced)
            try:
                postings: list[Posting] = sale_posting(
                    kind=kind, net=net, tax=tax, cost=cost, cash=cash, card=card,
                    on_account=on_account, memo=f"{kind} {receipt_no}")
            except Unbalanced as exc:  # never on a till's own figures; say so, write nothing
                raise PosError(f"{kind} {receipt_no} cannot be posted: {exc}") from exc
            write("sale", sale_id, {
                "site": site, "device": self.edge.setting("device"), "receipt_no": receipt_no,
                "kind": kind, "original_id": original[0] if original else None,
                "customer_id": customer_id, "net": net,
                "discount": sum(ln.discount for _, ln, _, _ in priced), "tax": tax,
                "total": net + tax, "cash": cash, "card": card, "on_account": on_account,
                "cashier": cashier, "date": today}, cashier, ms, group=group)
            for n, (p, ln, line_net, line_tax) in enumerate(priced, 1):
                line_id = new_id(now_ms())
                fields = {
                    "sale_id": sale_id, "site": site, "line_no": n, "product_id": p["id"],
                    "qty": ln.qty, "price": p["price"], "discount": ln.discount,
                    "tax": line_tax, "cost": units[p["id"]],
                    "original_line_id": original[1][n - 1] if original else None}
                write("sale_line", line_id, fields, cashier, ms, group=group)
                write("stock_movement", new_id(now_ms()), {
                    "site": site, "product_id": p["id"], "qty": -ln.qty, "reason": kind,
                    "unit_cost": units[p["id"]], "document_id": sale_id}, cashier, ms,
                    group=group)
                lines_out.append({**fields, "id": line_id, "net": line_net})
            for posting in postings:
                write("journal_line", new_id(now_ms()), {
                    "entry_id": sale_id, "site": site, "account": posting.account,
                    "debit": posting.debit, "credit": posting.credit, "memo": posting.memo,
                    "date": today}, cashier, ms, group=group)
            if on_account and customer_id:
                write("customer_entry", new_id(now_ms()), {
                    "customer_id": customer_id, "site": site,
                    "kind": "charge" if on_account > 0 else "return", "amount": on_account,
                    "document_id": sale_id, "receipt_no": receipt_no, "date": today},
                    cashier, ms, group=group)
        return Receipt(sale_id, receipt_no, net, tax, net + tax, change, lines_out)


def trial_balance(edge: Edge, site: str | None = None) -> dict[str, tuple[int, int]]:
    """Account -> (debit, credit) of the journal lines this device holds."""
    where, args = ("WHERE site = ?", (site,)) if site else ("", ())
    rows = edge.conn.execute(
        f"SELECT account, SUM(debit), SUM(credit) FROM journal_line {where} "
        "GROUP BY account ORDER BY account", args).fetchall()
    return {str(a): (int(d), int(c)) for a, d, c in rows}
