"""HQ operations made by the server itself (the ``hq-server`` device, user
``system``): they go through the same apply path, audit and change sequence
as every device's ops."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from schema import HQ_SITE
from schema.people import ROLES, employee_key
from sync.hlc import Clock
from sync.merge import Actor, created_row
from sync.messages import Ack, Op
from sync.server import SERVER_DEVICE, apply_ops

from .clock import fresh_id
from .fanout import Hub
from .store import Database

SYSTEM = Actor(SERVER_DEVICE, HQ_SITE)


class AdminError(ValueError):
    """An HQ operation that cannot be made as asked."""


_clock = Clock(SERVER_DEVICE)


def apply_as_hq(db: Database, entity: str, key: str, fields: dict[str, Any],
                user: str = "system", hub: Hub | None = None) -> Ack:
    """Apply one change as HQ's server, in one transaction; return its ack
    (a rejection is an ack too, with its reason). Connected devices in scope
    are told at once when ``hub`` is given (a web request), or at their next
    sync otherwise (the command line)."""
    op = Op(fresh_id(), entity, key, 0, fields, _clock.now(int(time.time() * 1000)),
            user, SERVER_DEVICE, db.schema.version)
    with db.transaction() as store:
        store.prefetch([op])
        (ack,) = apply_ops(db.schema, store, SYSTEM, [op])
    if hub is not None and store.published:
        hub.publish_threadsafe(store.published)
    if ack.row is None and ack.status == "accepted":  # acks of creates omit the row
        ack = msgspec.structs.replace(ack, row=created_row(db.schema, op))
    return ack


def apply_group_as_hq(db: Database, changes: list[tuple[str, str, dict[str, Any]]],
                      user: str = "system", hub: Hub | None = None) -> list[Ack]:
    """Like ``apply_as_hq`` for several (entity, key, fields) that make one
    business transaction (a purchase order and its lines): one sync group,
    applied all or nothing, one ack each."""
    group = fresh_id()
    ops = [Op(fresh_id(), entity, key, 0, fields, _clock.now(int(time.time() * 1000)),
              user, SERVER_DEVICE, db.schema.version, group=group)
           for entity, key, fields in changes]
    with db.transaction() as store:
        store.prefetch(ops)
        acks = apply_ops(db.schema, store, SYSTEM, ops)
    if hub is not None and store.published:
        hub.publish_threadsafe(store.published)
    return [msgspec.structs.replace(ack, row=created_row(db.schema, op))
            if ack.row is None and ack.status == "accepted" else ack
            for op, ack in zip(ops, acks, strict=True)]


def hire(db: Database, login: str, role: str, site: str, name: str | None = None,
         department: str = "operations") -> str:
    """Create or update the employee behind a user login; return its key."""
    if role not in ROLES:
        raise AdminError(f"unknown role {role!r}; roles: {', '.join(sorted(ROLES))}")
    key = employee_key(login)
    ack = apply_as_hq(db, "employee", key, {"login": login, "name": name or login,
                                            "department": department, "site": site,
                                            "role": role})
    if ack.status == "rejected":
        raise AdminError(ack.reason)
    return key
