"""Purchase orders from a device: created and approved at HQ (by users whose
role allows it, never by the order's drafter), received at the site they are
for, partially if need be. An order's total is what its lines come to: the
device shows its own sum until HQ, which works it out from the lines it
holds, sends its figure; approvals are judged on HQ's.

A receipt is one sync group: the goods receipt lines, the stock movements,
the journal (inventory against payable) and the order's new status. If HQ
cancelled the order meanwhile, the server rejects the whole group, with the
reason, and the receiving site's stock and books return to what they were.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from schema.finance import INVENTORY, PAYABLE, Posting, post, supplier_return_posting
from schema.procurement import approval
from schema.retail import SECOND_APPROVAL_ABOVE
from sync.ids import new_id

from .costing import valuation
from .edge import Edge, now_ms
from .pos import Pos, PosError


class ProcurementError(PosError):
    """A purchase order operation that cannot be made as asked; nothing was written."""


@dataclass(frozen=True)
class OrderLine:
    code: str
    qty: int
    unit_cost: int


class Procurement:
    def __init__(self, edge: Edge, user: str) -> None:
        self.edge = edge
        self.user = user
        self.pos = Pos(edge)

    def create(self, site: str, supplier: str, lines: list[OrderLine]) -> str:
        """A draft purchase order with its lines, for delivery at ``site``,
        drafted by this user (recorded with it). It carries what the lines
        come to, shown here until HQ sends the total it works out."""
        if not lines:
            raise ProcurementError("a purchase order needs at least one line")
        priced = []
        for line in lines:
            if line.qty <= 0 or line.unit_cost < 0:
                raise ProcurementError(f"line {line.code}: quantity must be positive and "
                                       "cost not negative")
            priced.append((self.pos.product(line.code), line))
        po = new_id(now_ms())
        total = sum(line.qty * line.unit_cost for _, line in priced)
        with self.edge.transaction():
            self.edge.replica.write("purchase_order", po, {
                "site": site, "supplier": supplier, "total": total, "status": "draft"},
                self.user, now_ms(), group=po)
            for product, line in priced:
                self.edge.replica.write("po_line", new_id(now_ms()), {
                    "po_id": po, "site": site, "product_id": product["id"], "qty": line.qty,
                    "unit_cost": line.unit_cost}, self.user, now_ms(), group=po)
        return po

    def _order(self, po: str) -> dict[str, object]:
        found = self.edge.get("purchase_order", po)
        if found is None:
            raise ProcurementError(f"no purchase order {po[:8]} on this device")
        return found

    def approve(self, po: str) -> str:
        """Approve; an order over the limit takes two approvers, neither of them
        its drafter (refused here at once, ``LocalRejected``). Returns the new
        status."""
        try:
            fields = approval(self._order(po), self.user, SECOND_APPROVAL_ABOVE)
        except ValueError as exc:
            raise ProcurementError(str(exc)) from None
        self.edge.write("purchase_order", po, fields, self.user)
        return str(fields["status"])

    def cancel(self, po: str) -> None:
        self._order(po)
        self.edge.write("purchase_order", po, {"status": "cancelled"}, self.user)

    def receive(self, po: str, received: dict[str, int]) -> str:
        """Receive goods against an order at this site; returns the order's new status."""
        order = self._order(po)
        site = self.edge.setting("site")
        if order["site"] != site:
            raise ProcurementError(f"purchase order {po[:8]} is for {order['site']}, not {site}")
        if order["status"] not in ("approved", "partially_received"):
            raise ProcurementError(f"purchase order {po[:8]} is {order['status']}; "
                                   "goods cannot be received against it")
        lines = {str(ln["product_id"]): ln for ln in self.edge.query("po_line", po_id=po)}
        already: dict[str, int] = {}
        for r in self.edge.query("goods_receipt", po_id=po):
            already[str(r["product_id"])] = already.get(str(r["product_id"]), 0) + int(r["qty"])
        take = []
        for code, qty in received.items():
            product = self.pos.product(code)
            line = lines.get(product["id"])
            if line is None:
                raise ProcurementError(f"{code} is not on purchase order {po[:8]}")
            left = int(line["qty"]) - already.get(product["id"], 0)
            if not 0 < qty <= left:
                raise ProcurementError(f"{code}: {left} still to receive on {po[:8]}, got {qty}")
            take.append((product, line, qty))
            already[product["id"]] = already.get(product["id"], 0) + qty
        done = all(already.get(pid, 0) >= int(ln["qty"]) for pid, ln in lines.items())
        status = "received" if done else "partially_received"
        group = new_id(now_ms())
        today = dt.date.today().isoformat()
        value = sum(qty * int(line["unit_cost"]) for _, line, qty in take)
        write = self.edge.replica.write
        with self.edge.transaction():
            for product, line, qty in take:
                write("goods_receipt", new_id(now_ms()), {
                    "po_id": po, "site": site, "product_id": product["id"], "qty": qty,
                    "unit_cost": line["unit_cost"], "received_by": self.user, "date": today},
                    self.user, now_ms(), group=group)
                write("stock_movement", new_id(now_ms()), {
                    "site": site, "product_id": product["id"], "qty": qty,
                    "reason": "receipt", "unit_cost": line["unit_cost"], "document_id": group},
                    self.user, now_ms(), group=group)
            memo = f"goods receipt PO {po[:8]}"
            for p in post([Posting(INVENTORY, value, 0, memo), Posting(PAYABLE, 0, value, memo)]):
                write("journal_line", new_id(now_ms()), {
                    "entry_id": group, "site": site, "account": p.account, "debit": p.debit,
                    "credit": p.credit, "memo": p.memo, "date": today}, self.user, now_ms(),
                    group=group)
            if status != order["status"]:
                write("purchase_order", po, {"status": status}, self.user, now_ms(), group=group)
        return status

    def return_to_supplier(self, code: str, qty: int, supplier: str, reason: str,
                           po: str | None = None) -> str:
        """Send goods back to a supplier: stock leaves at the site's moving
        average, the payable shrinks by what the supplier credits.

        Against a purchase order (``po``) the supplier credits the order's
        price, for at most what the order delivered of the product less what
        earlier returns against it took back (``_returnable``); the difference
        between that price and the average goes to purchase price variance
        (``schema.finance.supplier_return_posting``). Without an order the
        payable falls by the goods' value at the average."""
        if qty <= 0:
            raise ProcurementError(f"quantity to return must be positive, got {qty}")
        if not reason.strip():
            raise ProcurementError("say why the goods go back")
        product = self.pos.product(code)
        site = self.edge.setting("site")
        key = new_id(now_ms())
        today = dt.date.today().isoformat()
        write = self.edge.replica.write
        memo = f"return to {supplier}: {product['sku']} x{qty}"
        with self.edge.transaction():
            price = None if po is None else self._returnable(po, site, product, code, qty)
            now = valuation(self.edge, site, product)
            if qty > now.on_hand:
                raise ProcurementError(f"only {now.on_hand} of {code} on hand at {site}")
            cost = now.average
            credited = cost if price is None else price
            write("supplier_return", key, {
                "site": site, "supplier": supplier, "po_id": po, "product_id": product["id"],
                "qty": qty, "unit_cost": credited, "reason": reason}, self.user, now_ms(),
                group=key)
            write("stock_movement", new_id(now_ms()), {
                "site": site, "product_id": product["id"], "qty": -qty,
                "reason": "supplier_return", "unit_cost": cost, "document_id": key},
                self.user, now_ms(), group=key)
            for p in supplier_return_posting(stock_value=qty * cost, credited=qty * credited,
                                             memo=memo):
                write("journal_line", new_id(now_ms()), {
                    "entry_id": key, "site": site, "account": p.account, "debit": p.debit,
                    "credit": p.credit, "memo": p.memo, "date": today},
                    self.user, now_ms(), group=key)
        return key

    def _returnable(self, po: str, site: str, product: dict[str, Any], code: str,
                    qty: int) -> int:
        """The unit price purchase order ``po`` credits ``qty`` of ``product``
        back at; ProcurementError if the order is another site's, does not
        carry the product, or delivered less than ``qty`` beyond what earlier
        returns against it took back.

        Counted from the receipts and returns this device holds: its own, and
        those of the site's other devices up to its last sync. HQ may know of
        more of either (a receipt or a return made elsewhere at the site and
        not yet pulled); the message says so, and syncing first settles it."""
        order = self._order(po)
        if order["site"] != site:
            raise ProcurementError(f"purchase order {po[:8]} is for {order['site']}, not {site}")
        line = self.edge.query("po_line", po_id=po, product_id=product["id"])
        if not line:
            raise ProcurementError(f"{code} is not on purchase order {po[:8]}")
        delivered = sum(int(r["qty"]) for r in self.edge.query(
            "goods_receipt", po_id=po, product_id=product["id"]))
        back = sum(int(r["qty"]) for r in self.edge.query(
            "supplier_return", po_id=po, product_id=product["id"]))
        if qty > delivered - back:
            raise ProcurementError(
                f"only {max(delivered - back, 0)} of {code} can go back against purchase "
                f"order {po[:8]} (delivered {delivered}, returned {back}, as this device "
                f"knows; sync to see the site's other devices' receipts), not {qty}")
        return int(line[0]["unit_cost"])
