"""Stock operations at the edge, fully offline: counts and two-step transfers.

Each operation is one local transaction and one sync group with its stock
movements and journal lines, like a sale. Stock moves at the site's moving-
average cost: a count's difference is valued at it, and a transfer carries
the sender's average to the receiver, which takes the goods in at it.
Goods in transit are the shipped quantity of transfers not yet received:
both ends see the transfer (named scope), so both see what is on the road.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from schema.finance import IN_TRANSIT, INVENTORY, OPENING_EQUITY, SHRINKAGE, Posting, post
from sync.ids import new_id

from .costing import standard_cost, unit_cost
from .edge import Edge, now_ms
from .pos import Pos, PosError


class StockError(PosError):
    """A count or transfer that cannot be made as asked; nothing was written."""


@dataclass(frozen=True)
class Shipped:
    transfer_id: str
    qty: int


class Inventory:
    """Counts, shipments and receipts of one device's site."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.pos = Pos(edge)

    @property
    def site(self) -> str:
        return self.edge.setting("site")

    def _journal(self, entry: str, postings: list[Posting], user: str, group: str,
                 site: str | None = None, day: str | None = None) -> None:
        """The document's journal lines, dated ``day`` (today if not given): an
        operation that dates a row of its own passes the same day, taken once,
        so a document made across midnight is not split over two days."""
        today = day or dt.date.today().isoformat()
        for p in post(postings):
            self.edge.replica.write("journal_line", new_id(now_ms()), {
                "entry_id": entry, "site": site or self.site, "account": p.account,
                "debit": p.debit, "credit": p.credit, "memo": p.memo, "date": today},
                user, now_ms(), group=group)

    def _move(self, product_id: str, qty: int, reason: str, user: str, group: str,
              unit_cost: int, document: str) -> None:
        self.edge.replica.write("stock_movement", new_id(now_ms()), {
            "site": self.site, "product_id": product_id, "qty": qty, "reason": reason,
            "unit_cost": unit_cost, "document_id": document}, user, now_ms(), group=group)

    def opening_stock(self, items: list[tuple[str, int, int]], user: str = "stock clerk",
                      site: str | None = None) -> str:
        """Load stock a site already holds when it goes live: (product id, qty,
        unit cost) each, as ``opening`` movements and one journal entry, inventory
        against opening balance equity, so the books agree with the shelves from
        the first day. HQ may load any site; a store loads its own. Returns the
        document (and sync group) id."""
        where = site or self.site
        key = new_id(now_ms())
        for product_id, qty, cost in items:
            if qty <= 0:
                raise StockError(f"opening stock must be positive, got {qty} of {product_id}")
            if cost < 0:
                raise StockError(f"a unit cost cannot be negative, got {cost} for {product_id}")
        value = sum(qty * cost for _, qty, cost in items)
        memo = f"opening stock {where}, {len(items)} products"
        with self.edge.transaction():
            for product_id, qty, cost in items:
                self.edge.replica.write("stock_movement", new_id(now_ms()), {
                    "site": where, "product_id": product_id, "qty": qty, "reason": "opening",
                    "unit_cost": cost, "document_id": key}, user, now_ms(), group=key)
            self._journal(key, [Posting(INVENTORY, value, 0, memo),
                                Posting(OPENING_EQUITY, 0, value, memo)], user, key, where)
        return key

    def count(self, code: str, counted: int, user: str = "stock clerk") -> int:
        """Record a physical count; post the difference. Returns the difference."""
        if counted < 0:
            raise StockError(f"a count cannot be negative, got {counted}")
        product = self.pos.product(code)
        key = new_id(now_ms())
        today = dt.date.today().isoformat()
        with self.edge.transaction():
            expected = self.edge.stock(self.site, product["id"])
            diff = counted - expected
            self.edge.replica.write("stock_count", key, {
                "site": self.site, "product_id": product["id"], "counted": counted,
                "expected": expected, "counted_by": user, "date": today},
                user, now_ms(), group=key)
            if diff:
                unit = unit_cost(self.edge, self.site, product)
                self._move(product["id"], diff, "count", user, key, unit, key)
                value = abs(diff) * unit
                memo = f"count {product['sku']} {expected} -> {counted}"
                loss = diff < 0
                self._journal(key, [
                    Posting(SHRINKAGE, value if loss else 0, 0 if loss else value, memo),
                    Posting(INVENTORY, 0 if loss else value, value if loss else 0, memo),
                ], user, key, day=today)
        return diff

    def ship(self, code: str, qty: int, to_site: str, user: str = "stock clerk") -> Shipped:
        """Send goods to another site: they leave this site's stock and are in transit."""
        if qty <= 0:
            raise StockError(f"quantity to ship must be positive, got {qty}")
        if to_site == self.site:
            raise StockError(f"a transfer from {self.site} to itself makes no sense")
        if not self.edge.query("site", code=to_site):
            raise StockError(f"unknown site {to_site!r}")
        product = self.pos.product(code)
        key = new_id(now_ms())
        memo = f"transfer {product['sku']} x{qty} {self.site} -> {to_site}"
        with self.edge.transaction():
            unit = unit_cost(self.edge, self.site, product)
            value = qty * unit
            self.edge.replica.write("transfer", key, {
                "from_site": self.site, "to_site": to_site, "product_id": product["id"],
                "qty": qty, "status": "shipped", "unit_cost": unit}, user, now_ms(), group=key)
            self._move(product["id"], -qty, "transfer_out", user, key, unit, key)
            self._journal(key, [Posting(IN_TRANSIT, value, 0, memo),
                                Posting(INVENTORY, 0, value, memo)], user, key)
        return Shipped(key, qty)

    def receive(self, transfer_id: str, received: int, user: str = "stock clerk") -> int:
        """Receive a transfer at this site, possibly short: the shortfall is
        recorded as a discrepancy and written off. Returns the shortfall."""
        transfer = self.edge.get("transfer", transfer_id)
        if transfer is None:
            raise StockError(f"no transfer {transfer_id[:8]} for this site")
        if transfer["to_site"] != self.site:
            raise StockError(f"transfer {transfer_id[:8]} goes to {transfer['to_site']}, "
                             f"not to {self.site}")
        if transfer["status"] != "shipped":
            raise StockError(f"transfer {transfer_id[:8]} is {transfer['status']}; "
                             "it cannot be received")
        shipped = transfer["qty"]
        if not 0 <= received <= shipped:
            raise StockError(f"received quantity must be between 0 and the {shipped} shipped")
        cost = transfer.get("unit_cost")
        if cost is None:  # shipped by an older till: at the standard cost, as it posted
            cost = standard_cost(self.edge.get("product", transfer["product_id"]))
        short = int(shipped - received)
        memo = f"transfer {transfer_id[:8]} received {received} of {shipped}"
        with self.edge.transaction():
            self.edge.replica.write("transfer", transfer_id, {
                "status": "received", "qty_received": received}, user, now_ms(),
                group=transfer_id + "-in")
            if received:
                self._move(transfer["product_id"], received, "transfer_in", user,
                           transfer_id + "-in", cost, transfer_id)
            if short:
                self.edge.replica.write("discrepancy", new_id(now_ms()), {
                    "transfer_id": transfer_id, "from_site": transfer["from_site"],
                    "to_site": self.site, "product_id": transfer["product_id"],
                    "shipped": shipped, "received": received}, user, now_ms(),
                    group=transfer_id + "-in")
            self._journal(transfer_id, [
                Posting(INVENTORY, received * cost, 0, memo),
                Posting(SHRINKAGE, short * cost, 0, memo),
                Posting(IN_TRANSIT, 0, shipped * cost, memo),
            ], user, transfer_id + "-in")
        return short

    def in_transit(self) -> list[dict[str, object]]:
        """Transfers from or to this site that are on the road."""
        return [t for t in self.edge.query("transfer", status="shipped")
                if self.site in (t["from_site"], t["to_site"])]
