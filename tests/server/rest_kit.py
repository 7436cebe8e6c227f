"""HQ's REST API in process (litestar's TestClient) on a real database, with
employees of every department and their API tokens."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar.testing import TestClient

from schema import SCHEMA
from schema.finance import sale_posting
from server.admin import hire
from server.api_auth import issue_api_token
from server.store import Database
from sync.hlc import Clock
from sync.merge import Actor
from sync.messages import Op
from sync.server import apply_ops

STAFF = {  # login: (role, site, department)
    "admin": ("hq_admin", "HQ", "it"),
    "bob": ("buyer", "HQ", "procurement"),
    "pam": ("procurement_manager", "HQ", "procurement"),
    "fay": ("finance", "HQ", "finance"),
    "hal": ("hr", "HQ", "hr"),
    "wes": ("warehouse_clerk", "W1", "operations"),
    "clara": ("cashier", "S1", "sales"),
    "sam": ("store_manager", "S1", "sales"),
}


class Api:
    """A client of one app, calling as one of ``STAFF`` (or nobody)."""

    def __init__(self, client: TestClient[Any], tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    @property
    def db(self) -> Database:
        db: Database = self.client.app.state.db
        return db

    def call(self, method: str, path: str, who: str | None = None, body: Any = None,
             **params: Any) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {self.tokens[who]}"} if who else {}
        r = self.client.request(method, path, json=body, headers=headers,
                                params={k: v for k, v in params.items() if v is not None})
        return r.status_code, r.json() if r.content else None

    def ok(self, method: str, path: str, who: str, body: Any = None, **params: Any) -> Any:
        code, out = self.call(method, path, who, body, **params)
        assert code in (200, 201), (code, out)
        return out


@contextmanager
def open_api(db_url: str) -> Iterator[Api]:
    from server.app import create_app

    app = create_app(db_url)
    db: Database = app.state.db
    tokens = {}
    for login, (role, site, department) in STAFF.items():
        hire(db, login, role, site, department=department)
        tokens[login] = issue_api_token(db, login)
    with TestClient(app) as client:
        yield Api(client, tokens)


_till = Clock("s1-till1")


def post_sale(db: Database, site: str, product: str, qty: int, price: int, cost: int,
              cashier: str = "clara", date: str | None = None) -> str:
    """A till's cash sale pushed the way a device pushes it: the receipt, its
    line, the stock movement and the journal lines, in one group."""
    sale, day = str(uuid.uuid4()), date or datetime.date.today().isoformat()
    net = qty * price
    tax = net // 5
    fields: list[tuple[str, dict[str, Any]]] = [
        ("sale", {"site": site, "device": "s1-till1", "receipt_no": f"{site}-t-{sale[:6]}",
                  "kind": "sale", "net": net, "discount": 0, "tax": tax, "total": net + tax,
                  "cash": net + tax, "card": 0, "on_account": 0, "cashier": cashier,
                  "date": day}),
        ("sale_line", {"sale_id": sale, "site": site, "line_no": 1, "product_id": product,
                       "qty": qty, "price": price, "discount": 0, "tax": tax, "cost": cost}),
        ("stock_movement", {"site": site, "product_id": product, "qty": -qty,
                            "reason": "sale"}),
    ]
    for p in sale_posting(kind="sale" if qty > 0 else "return", net=net, tax=tax,
                          cost=qty * cost, cash=net + tax, card=0, on_account=0,
                          memo=f"sale {sale[:8]}"):
        fields.append(("journal_line", {"entry_id": sale, "site": site, "account": p.account,
                                        "debit": p.debit, "credit": p.credit, "memo": p.memo,
                                        "date": day}))
    ops = [Op(str(uuid.uuid4()), entity, sale if entity == "sale" else str(uuid.uuid4()), 0,
              f, _till.now(int(time.time() * 1000)), cashier, "s1-till1", SCHEMA.version,
              group=sale) for entity, f in fields]
    with db.transaction() as store:
        acks = apply_ops(SCHEMA, store, Actor("s1-till1", site), ops)
    assert {a.status for a in acks} == {"accepted"}, [a.reason for a in acks]
    return sale
