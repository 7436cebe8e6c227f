"""HQ operations made by the server itself (the ``hq-server`` device, user
``system``): they go through the same apply path, audit and change sequence
as every device's ops, and HQ brings the totals of the purchase orders they
touch to their lines in the same transaction (``server.rollups``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import Connection

from schema import HQ_SITE, Policy
from schema.model import is_site_code
from schema.people import ROLES, employee_key
from sync.hlc import Clock
from sync.merge import Actor, created_row
from sync.messages import Ack, Op
from sync.server import SERVER_DEVICE, ServerStore, apply_ops

from . import rollups
from .clock import fresh_id
from .fanout import Hub
from .store import Database, SqlServerStore

SYSTEM = Actor(SERVER_DEVICE, HQ_SITE)


class AdminError(ValueError):
    """An HQ operation that cannot be made as asked."""


_clock = Clock(SERVER_DEVICE)


def acting_for(store: ServerStore, user: str) -> Actor:
    """Whom HQ's server acts as for ``user`` (the REST API, the console): HQ
    itself for HQ's staff and for the system; for an employee of a store or a
    warehouse, that site, with exactly the rights a device of the site has
    (its rows only, no HQ-owned field or master data, no HQ-only state move),
    decided and audited by the same ``decide`` as a device's op. A user with
    no employee record (or no site) gets no site's rights: a site nothing
    belongs to, so master data, site rows and every limited action refuse."""
    if user == "system":
        return SYSTEM
    employee = store.load("employee", employee_key(user))
    site = employee.fields.get("site") if employee and not employee.deleted else None
    if site == HQ_SITE:
        return SYSTEM  # HQ staff
    return Actor(SERVER_DEVICE, site if isinstance(site, str) else NOWHERE)


NOWHERE = "-"
"""The site of a user with no employee record: no row is placed there and it
is not HQ (not a site code either, so no site can be made with it)."""


REFUSED_STATUS = {"role": 403, "scope": 403, Policy.HQ_OWNED.value: 403, "validation": 400}
"""The HTTP status of a refused change by the policy that refused it: 403
the user (their role, or their site's rights) may not, 400 a bad value;
anything else (a state move, a ledger rule) is a 409 conflict."""


def refused_status(ack: Ack) -> int:
    """The HTTP status that answers a rejected ack (REST and console alike)."""
    return REFUSED_STATUS.get(ack.policy, 409)


Within = Callable[[Connection, list[Ack]], None]
"""Called with the acks inside the transaction that applied them, before it
commits (the REST API stores an idempotent request's answer there,
``server.idempotency.keep``); raising rolls the change back."""


def apply_as_hq(db: Database, entity: str, key: str, fields: dict[str, Any],
                user: str = "system", hub: Hub | None = None,
                within: Within | None = None) -> Ack:
    """Apply one change as HQ's server, in one transaction; return its ack
    (a rejection is an ack too, with its reason). Connected devices in scope
    are told at once when ``hub`` is given (a web request), or at their next
    sync otherwise (the command line)."""
    op = Op(fresh_id(), entity, key, 0, fields, _clock.now(int(time.time() * 1000)),
            user, SERVER_DEVICE, db.schema.version)
    with db.transaction() as store:
        store.prefetch([op])
        (ack,) = apply_ops(db.schema, store, acting_for(store, user), [op])
        if rollups.derive(store):  # the answer shows the totals HQ worked out
            (ack,) = _as_left(store, [op], [ack])
        if ack.row is None and ack.status == "accepted":  # acks of creates omit the row
            ack = msgspec.structs.replace(ack, row=created_row(db.schema, op))
        if within is not None:
            store.flush()  # a write that fails, fails before its answer is kept
            within(store.conn, [ack])
    if hub is not None and store.published:
        hub.publish_threadsafe(store.published)
    return ack


def apply_group_as_hq(db: Database, changes: list[tuple[str, str, dict[str, Any]]],
                      user: str = "system", hub: Hub | None = None,
                      within: Within | None = None) -> list[Ack]:
    """Like ``apply_as_hq`` for several (entity, key, fields) that make one
    business transaction (a purchase order and its lines): one sync group,
    applied all or nothing, one ack each."""
    group = fresh_id()
    ops = [Op(fresh_id(), entity, key, 0, fields, _clock.now(int(time.time() * 1000)),
              user, SERVER_DEVICE, db.schema.version, group=group)
           for entity, key, fields in changes]
    with db.transaction() as store:
        store.prefetch(ops)
        acks = [msgspec.structs.replace(ack, row=created_row(db.schema, op))
                if ack.row is None and ack.status == "accepted" else ack
                for op, ack in zip(ops, apply_ops(db.schema, store, acting_for(store, user), ops),
                                   strict=True)]
        if rollups.derive(store):  # the answer shows the totals HQ worked out
            acks = _as_left(store, ops, acks)
        if within is not None:
            store.flush()  # a write that fails, fails before its answer is kept
            within(store.conn, acks)
    if hub is not None and store.published:
        hub.publish_threadsafe(store.published)
    return acks


def _as_left(store: SqlServerStore, ops: list[Op], acks: list[Ack]) -> list[Ack]:
    """The acks with each accepted op's row as this transaction leaves it (after
    HQ's own follow-up changes, such as an order's total from its lines)."""
    out = []
    for op, ack in zip(ops, acks, strict=True):
        row = store.load(op.entity, op.key) if ack.status != "rejected" else None
        out.append(msgspec.structs.replace(ack, row=row) if row is not None else ack)
    return out


def hire(db: Database, login: str, role: str, site: str, name: str | None = None,
         department: str = "operations") -> str:
    """Create or update the employee behind a user login; return its key."""
    if role not in ROLES:
        raise AdminError(f"unknown role {role!r}; roles: {', '.join(sorted(ROLES))}")
    if not is_site_code(site):
        raise AdminError(f"{site!r} is not a site code: short and upper case, such as S1")
    key = employee_key(login)
    ack = apply_as_hq(db, "employee", key, {"login": login, "name": name or login,
                                            "department": department, "site": site,
                                            "role": role})
    if ack.status == "rejected":
        raise AdminError(ack.reason)
    return key
