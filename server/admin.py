"""HQ operations made by the server itself (the ``hq-server`` device, user
``system``): they go through the same apply path, audit and change sequence
as every device's ops."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from schema import HQ_SITE, Schema
from schema.model import is_site_code
from schema.people import ROLES, employee_key
from sync.hlc import Clock
from sync.merge import Actor, created_row
from sync.messages import Ack, Op, Status
from sync.server import SERVER_DEVICE, ServerStore, apply_ops

from .clock import fresh_id
from .fanout import Hub
from .store import Database

SYSTEM = Actor(SERVER_DEVICE, HQ_SITE)


class AdminError(ValueError):
    """An HQ operation that cannot be made as asked."""


_clock = Clock(SERVER_DEVICE)


def outside_site(schema: Schema, store: ServerStore, ops: list[Op]) -> str | None:
    """Why an employee of a site other than HQ may not make these changes
    through HQ's server (the REST API, the console): a row that belongs to
    other sites, as it stands or as created. HQ's server acts for every site,
    so the user's own site bounds what it writes for them, as a device's site
    bounds what the device writes. None when every change stays in bounds."""
    users = {op.user for op in ops} - {"system"}
    for user in sorted(users):
        employee = store.load("employee", employee_key(user))
        site = employee.fields.get("site") if employee and not employee.deleted else None
        if site in (None, HQ_SITE):
            continue  # HQ staff act for every site; no employee: the role check refuses
        for op in (o for o in ops if o.user == user):
            entity = schema.get(op.entity)
            if entity is None:
                continue
            current = store.load(op.entity, op.key)
            sites = entity.sites_of(current.fields if current is not None else op.fields)
            if sites is not None and site not in sites:
                return (f"{user} works at {site}; {op.entity.replace('_', ' ')} "
                        f"{op.key[:8]} belongs to {', '.join(sorted(sites))}")
    return None


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
        refused = outside_site(db.schema, store, [op])
        if refused is not None:
            return Ack(op.op_id, Status.REJECTED, refused, policy="scope")
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
        refused = outside_site(db.schema, store, ops)
        if refused is not None:
            return [Ack(op.op_id, Status.REJECTED, refused, policy="scope") for op in ops]
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
    if not is_site_code(site):
        raise AdminError(f"{site!r} is not a site code: short and upper case, such as S1")
    key = employee_key(login)
    ack = apply_as_hq(db, "employee", key, {"login": login, "name": name or login,
                                            "department": department, "site": site,
                                            "role": role})
    if ack.status == "rejected":
        raise AdminError(ack.reason)
    return key
