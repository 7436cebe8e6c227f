"""HQ operations made by the server itself (the ``hq-server`` device, user
``system``): they go through the same apply path, audit and change sequence
as every device's ops."""

from __future__ import annotations

import time
import uuid
from typing import Any

from schema import HQ_SITE
from schema.people import ROLES, employee_key
from sync.hlc import Clock
from sync.merge import Actor
from sync.messages import Ack, Op
from sync.server import SERVER_DEVICE, apply_ops

from .store import Database

SYSTEM = Actor(SERVER_DEVICE, HQ_SITE)


class AdminError(ValueError):
    """An HQ operation that cannot be made as asked."""


def apply_as_hq(db: Database, entity: str, key: str, fields: dict[str, Any],
                user: str = "system") -> Ack:
    """Apply one change as HQ's server, in one transaction; return its ack."""
    clock = Clock(SERVER_DEVICE)
    op = Op(str(uuid.uuid4()), entity, key, 0, fields, clock.now(int(time.time() * 1000)),
            user, SERVER_DEVICE, db.schema.version)
    with db.transaction() as store:
        store.prefetch([op])
        (ack,) = apply_ops(db.schema, store, SYSTEM, [op])
    if ack.status == "rejected":
        raise AdminError(ack.reason)
    return ack


def hire(db: Database, login: str, role: str, site: str, name: str | None = None,
         department: str = "operations") -> str:
    """Create or update the employee behind a user login; return its key."""
    if role not in ROLES:
        raise AdminError(f"unknown role {role!r}; roles: {', '.join(sorted(ROLES))}")
    key = employee_key(login)
    apply_as_hq(db, "employee", key, {"login": login, "name": name or login,
                                      "department": department, "site": site, "role": role})
    return key
