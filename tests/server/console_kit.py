"""What the console's tests share: a database staffed with a console user
of each role, an app over it, and logging in and posting a form as a browser
does (with its CSRF token)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar.testing import TestClient

from schema import SCHEMA
from server.admin import apply_as_hq, apply_group_as_hq, hire
from server.console.auth import set_password
from server.store import Database

PASSWORDS = {"bob": "bob-buys-oats", "pam": "pam-approves", "pat": "pat-approves-too",
             "clara": "clara-sells-1", "fin": "fin-balances", "ian": "ian-runs-it",
             "otto": "otto-runs-ops", "sam": "sam-runs-s1"}
ROLES = {"bob": "buyer", "pam": "procurement_manager", "pat": "procurement_manager",
         "clara": "cashier", "fin": "finance", "ian": "it_admin", "otto": "operations_manager",
         "sam": "store_manager"}


def _site(db: Database, code: str) -> None:
    assert apply_as_hq(db, "site", str(uuid.uuid4()), {"code": code, "name": f"Store {code}",
                                                        "kind": "store"}).status == "accepted"


def _staffed(url: str) -> str:
    """``url``, its database staffed with ``ROLES``, each with a console password."""
    db = Database(url, SCHEMA)
    try:
        for login, role in ROLES.items():
            hire(db, login, role, "S1" if role in ("cashier", "store_manager") else "HQ")
            set_password(db, login, PASSWORDS[login])
        for code in ("S1", "S2"):
            _site(db, code)
    finally:
        db.dispose()
    return url


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def _login(client: TestClient[Any], login: str, password: str | None = None) -> Any:
    token = _csrf(client.get("/login").text)
    return client.post("/login", data={"login": login, "password": password or PASSWORDS[login],
                                       "_csrf_token": token, "next": "/"})


def _post(client: TestClient[Any], path: str, page: str, **data: str) -> Any:
    return client.post(path, data={"_csrf_token": _csrf(client.get(page).text), **data})


def _db(client: TestClient[Any]) -> Database:
    db: Database = client.app.state.db
    return db


PRODUCT = "00000000-0000-0000-0000-0000000000aa"


def _draft(db: Database, po: str, user: str, lines: list[tuple[int, int]],
           site: str = "S1") -> None:
    """A draft order drafted by ``user`` with its lines (qty, unit_cost), made
    as the REST API makes one: HQ works its total out from the lines."""
    changes: list[tuple[str, str, dict[str, Any]]] = [
        ("purchase_order", po, {"site": site, "supplier": "Oatly", "status": "draft"})]
    changes += [("po_line", str(uuid.uuid4()), {"po_id": po, "site": site,
                                                "product_id": PRODUCT, "qty": qty,
                                                "unit_cost": cost})
                for qty, cost in lines]
    acks = apply_group_as_hq(db, changes, user)
    assert [a.status for a in acks] == ["accepted"] * len(changes), [a.reason for a in acks]
