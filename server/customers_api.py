"""Customer accounts over REST (OpenAPI at /schema): a customer's statement.

The account is the ``customer_entry`` ledger: a sale charged on account adds
a charge, a payment taken at a till (``customer_payment``) or a return of
goods charged on account takes it down. The balance is their sum, the same
figure every till computes offline from the entries it holds.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from sqlalchemy import select

from schema import is_uuid
from schema.sales import running_balance

from .api_auth import current_user
from .store import Database


class StatementLine(msgspec.Struct):
    date: str
    kind: str
    """charge (a sale on account), return or payment"""
    receipt_no: str
    site: str
    document_id: str
    """the sale or the customer payment"""
    amount: int
    """signed: a charge raises the balance, a payment lowers it"""
    balance: int


class Statement(msgspec.Struct):
    customer_id: str
    name: str
    credit_limit: int | None
    """None: nothing may be charged on account"""
    balance: int
    """what the customer owes (negative: money in hand on the account)"""
    available: int | None
    """credit left to charge on account"""
    lines: list[StatementLine]


def statement(db: Database, customer_id: str) -> Statement:
    """A customer's account, oldest entry first, with the balance after each."""
    entry = db.entities["customer_entry"]
    with db.transaction(write=False) as store:  # the customer and its entries at one moment
        customer = store.load("customer", customer_id) if is_uuid(customer_id) else None
        if customer is None or customer.deleted:
            raise NotFoundException(f"no customer {customer_id}")
        rows = store.conn.execute(
            select(entry.c.date, entry.c.kind, entry.c.receipt_no, entry.c.site,
                   entry.c.document_id, entry.c.amount)
            .where(entry.c.customer_id == customer_id, entry.c._deleted.is_(False))
            .order_by(entry.c.date, entry.c.receipt_no, entry.c.id)).all()
    after = running_balance([int(r.amount) for r in rows])
    lines = [StatementLine(r.date, r.kind, r.receipt_no, r.site, r.document_id, int(r.amount), b)
             for r, b in zip(rows, after, strict=True)]
    owed = after[-1] if after else 0
    limit = customer.fields.get("credit_limit")
    return Statement(customer_id, str(customer.fields.get("name")), limit, owed,
                     None if limit is None else max(limit - owed, 0), lines)


class CustomerAccountsController(Controller):
    path = "/api/sales/customers"
    tags = ("sales",)
    dependencies = {"user": Provide(current_user, sync_to_thread=True)}  # noqa: RUF012

    @get("/{customer_id:str}/statement", sync_to_thread=True, summary="Customer statement")
    def statement(self, state: State, customer_id: FromPath[str],
                  user: NamedDependency[str]) -> Statement:
        """Every charge, return and payment on a customer's account, with the
        running balance, the credit limit and the credit left."""
        return statement(state.db, customer_id)
