"""Point of sale: sales and returns with their lines, and customer accounts.
All are ledger entries: a sale made offline is a fact, never rewritten; a
return is a new document that points at the sale it returns; a customer's
account is the sum of its entries (charges on account, payments)."""

from __future__ import annotations

from .model import (
    MAX_LEDGER_MONEY,
    Entity,
    Field,
    Kind,
    Parent,
    Policy,
    ProductBound,
    Scope,
    StateMachine,
    Transition,
)

L = Policy.LEDGER

SALE = Entity(
    "sale",
    fields=(
        Field("site", Kind.REF, L),
        Field("device", Kind.REF, L),
        Field("receipt_no", Kind.TEXT, L, doc="SITE-DEVICE-sequence, unique with no counter at HQ"),
        Field("kind", Kind.TEXT, L, doc="sale or return", choices=("sale", "return")),
        Field("original_id", Kind.UUID, L, required=False, doc="the sale a return refers to"),
        Field("customer_id", Kind.UUID, L, required=False),
        Field("net", Kind.MONEY, L, doc="after discounts, before tax; negative for a return"),
        Field("discount", Kind.MONEY, L),
        Field("tax", Kind.MONEY, L),
        Field("total", Kind.MONEY, L),
        Field("cash", Kind.MONEY, L),
        Field("card", Kind.MONEY, L),
        Field("on_account", Kind.MONEY, L, doc="charged to the customer's account"),
        Field("cashier", Kind.TEXT, L),
        Field("date", Kind.DATE, L),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    doc="A till receipt: a sale or a return.",
)

SALE_LINE = Entity(
    "sale_line",
    fields=(
        Field("sale_id", Kind.UUID, L),
        Field("site", Kind.REF, L),
        Field("line_no", Kind.INT, L),
        Field("product_id", Kind.UUID, L),
        Field("qty", Kind.INT, L, doc="negative on a return", nonzero=True),
        Field("price", Kind.MONEY, L, doc="unit price charged", minimum=0),
        Field("discount", Kind.MONEY, L, doc="discount on the whole line"),
        Field("tax", Kind.MONEY, L, doc="tax on the whole line"),
        Field("cost", Kind.MONEY, L, doc="unit cost (moving average) at the time",
              minimum=0),
        Field("original_line_id", Kind.UUID, L, required=False),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    # its cost (qty x unit cost) fits HQ's 64-bit sum of the cost of goods sold per site
    bounded_products=(ProductBound(("qty", "cost"), MAX_LEDGER_MONEY),),
    parent=Parent("sale", "sale_id", same=("site",)),
    doc="One product on a receipt.",
)

TICKET = Entity(
    "ticket",
    fields=(
        Field("site", Kind.REF, Policy.LWW, doc="store where the customer came in"),
        Field("kind", Kind.TEXT, Policy.LWW, doc="return or complaint",
              choices=("return", "complaint")),
        Field("sale_id", Kind.UUID, Policy.LWW, required=False),
        Field("customer_id", Kind.UUID, Policy.LWW, required=False),
        Field("text", Kind.TEXT, Policy.LWW),
        Field("status", Kind.TEXT, Policy.STATE),
    ),
    scope=Scope.OWNER,
    site_field="site",
    machine=StateMachine(field="status", initial="open", transitions=(
        Transition("open", "in_progress"), Transition("in_progress", "closed"),
        Transition("open", "closed")), editable_in=("open", "in_progress")),
    deletable=False,
    doc="A customer service ticket (return or complaint), linked to the sale.",
)

PRICE_CHANGE = Entity(
    "price_change",
    fields=(
        Field("product_id", Kind.UUID, Policy.LEDGER),
        Field("price", Kind.MONEY, Policy.LEDGER, minimum=0),
        Field("effective", Kind.DATE, Policy.LEDGER, doc="first day the price applies"),
    ),
    owner_hq=True,
    deletable=False,
    doc="A price set ahead of time; tills switch to it on its effective date, offline too.",
)


CUSTOMER_PAYMENT = Entity(
    "customer_payment",
    fields=(
        Field("site", Kind.REF, L),
        Field("customer_id", Kind.UUID, L),
        Field("receipt_no", Kind.TEXT, L, doc="from the till's receipt counter"),
        Field("amount", Kind.MONEY, L, doc="paid into the account (cash + card), positive",
              minimum=1),
        Field("cash", Kind.MONEY, L, minimum=0),
        Field("card", Kind.MONEY, L, minimum=0),
        Field("cashier", Kind.TEXT, L),
        Field("date", Kind.DATE, L),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    doc="Money a customer pays into the account at a till; posts cash/card vs receivable.",
)

CUSTOMER_ENTRY = Entity(
    "customer_entry",
    fields=(
        Field("customer_id", Kind.UUID, L),
        Field("site", Kind.REF, L, doc="where it was made"),
        Field("kind", Kind.TEXT, L, doc="charge (a sale on account) or payment"),
        Field("amount", Kind.MONEY, L, doc="signed: a charge raises the balance, a payment "
                                            "lowers it"),
        Field("document_id", Kind.UUID, L, doc="the sale or the customer payment"),
        Field("receipt_no", Kind.TEXT, L),
        Field("date", Kind.DATE, L),
    ),
    deletable=False,
    doc="One entry of a customer's account, seen by every site so that any till knows the "
        "balance and the credit left; the balance is the sum of the entries.",
)


def credit_refusal(name: str, balance: int, charge: int, limit: int | None) -> str | None:
    """Why charging ``charge`` to an account standing at ``balance`` is refused, or None.
    Without a credit limit nothing may be charged on account."""
    if charge <= 0:
        return None
    if limit is None:
        return f"customer {name} has no credit limit; nothing can be charged on account"
    if balance + charge > limit:
        return (f"customer {name}: charging {charge / 100:.2f} would bring the balance to "
                f"{(balance + charge) / 100:.2f}, over the credit limit of {limit / 100:.2f} "
                f"({max(limit - balance, 0) / 100:.2f} left)")
    return None


def running_balance(amounts: list[int]) -> list[int]:
    """The balance after each entry of a statement, in statement order."""
    out, total = [], 0
    for amount in amounts:
        total += amount
        out.append(total)
    return out


def refund_share(amount: int, sold: int, back: int, refunded: int) -> int:
    """What a return refunds of a sale line's ``amount`` (its net, or its tax):
    ``sold`` units were sold, ``back`` are back in all once this return is made
    (earlier returns included), and earlier returns already refunded
    ``refunded`` of the amount.

    It is the pro-rata share of all the units back so far (rounded half up) less
    what was already refunded, never below zero: however the units come back,
    the refunds of a line never add up to more than ``amount``, and to exactly
    ``amount`` once every unit is back. (Rounding each return's share on its own
    refunds 3.60 for three units sold for 3.59, one at a time.)"""
    if not 0 <= back <= sold:
        raise ValueError(f"{back} units back of {sold} sold")
    if amount < 0:
        raise ValueError(f"a sale line's amount is never negative, got {amount}")
    owed = (2 * amount * back + sold) // (2 * sold)  # amount x back / sold, half up
    return max(min(owed, amount) - refunded, 0)
