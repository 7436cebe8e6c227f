"""Authorization by department role, from the matrix in ``schema.people``.

``check`` is pure: it takes the op, the row it applies to, the sending
device's site, and a function that tells a user's employee record (role and
site; the server reads employee rows, the edge its replica of them), and says
why the user may not do it, or None.

The user who made a row (its entity's ``creator_field``) takes none of its
state moves declared ``not_by_creator``: whoever drafts a purchase order does
not approve it, first or second approval (segregation of duties). Refused
as the role matrix refuses, so the REST API answers 403.

An op taking an action the matrix limits (a price, a credit limit, a delete,
an employee's role) must come from an employee, and one of the sending
device's site unless the device is HQ's: a till cannot act as HQ's finance, nor
as another store's manager. Actions the matrix leaves open to every role (a
customer's phone, a sale, a stock movement: the till's own facts) name their
user for the record only and cost no lookup, so a sale rung up offline by a
cashier who has left since still books.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from schema import HQ_SITE, Entity
from schema.people import GUARDED, OWN_RECORD_FIXED, VALUED, allowed, employee_key

from .messages import Op, Row


class Staff(NamedTuple):
    """What the permission check needs of a user's employee record."""

    role: str | None
    site: str | None


RoleOf = Callable[[str], "Staff | None"]
"""A user's employee record (None: no such employee, or deleted)."""


def staff_of(row: Row | None) -> Staff | None:
    """The ``Staff`` of an employee row (None for no row or a deleted one)."""
    if row is None or row.deleted:
        return None
    role, site = row.fields.get("role"), row.fields.get("site")
    return Staff(role if isinstance(role, str) else None, site if isinstance(site, str) else None)


def actions(entity: Entity, current: Row | None, op: Op) -> list[str]:
    """What an op does, in the words of the permission matrix."""
    if op.delete:
        return ["delete"]
    out = ["create" if current is None else "update"]
    machine = entity.machine
    for name, value in op.fields.items():
        if current is not None and current.fields.get(name) == value:
            continue
        if machine is not None and name == machine.field:
            if current is not None:
                out.append(f"move:{value}")
        else:
            out.append(f"set:{name}")
            if (entity.name, name) in VALUED:  # a value only some roles give
                out.append(f"set:{name}={value}")
    return out


def check(entity: Entity, current: Row | None, op: Op, role_of: RoleOf,
          site: str = HQ_SITE) -> str | None:
    """Why ``op.user``, sending from a device of ``site``, may not make this op,
    or None when every action is allowed."""
    if entity.name not in GUARDED:  # every action on it is open to every role
        return None if entity.creator_field is None else _as_creator(entity, current, op)
    fixed = OWN_RECORD_FIXED.get(entity.name, ())
    if fixed and op.key == employee_key(op.user):
        if op.delete:
            return f"user {op.user} may not delete their own {entity.name} record"
        now = current.fields if current is not None else {}
        for name in fixed:
            if name in op.fields and op.fields[name] != now.get(name):
                return f"user {op.user} may not change their own {name}; ask HR or an admin"
    staff: Staff | None = None
    looked = False
    for action in actions(entity, current, op):
        roles = allowed(entity.name, action)
        if roles is None:
            continue  # open to every role: nothing to look up
        what = action.replace("set:", "set ").replace("move:", "move to ")
        if not looked:
            staff, looked = role_of(op.user), True
            if staff is None:
                return (f"user {op.user} has no employee record; only employees may {what} "
                        f"on {entity.name}")
            if site != HQ_SITE and staff.site != site:
                return (f"user {op.user} works at {staff.site}, not at {site}: a device acts "
                        "for the employees of its own site only")
        assert staff is not None
        if staff.role not in roles:
            return (f"user {op.user} ({staff.role}) may not {what} on {entity.name}; "
                    f"allowed: {', '.join(sorted(roles))}")
    return None if entity.creator_field is None else _as_creator(entity, current, op)


def _as_creator(entity: Entity, current: Row | None, op: Op) -> str | None:
    """Why ``op.user`` may not take the state move ``op`` makes on a row they
    made themselves (its ``creator_field``), or None: a move declared
    ``not_by_creator`` (approving a purchase order) is someone else's."""
    creator, machine = entity.creator_field, entity.machine
    if (current is None or machine is None or creator is None
            or current.fields.get(creator) != op.user):
        return None
    state = current.fields.get(machine.field)
    target = op.fields.get(machine.field, state)
    move = machine.find(str(state), str(target)) if target != state else None
    if move is None or not move.not_by_creator:
        return None
    return f"you drafted this {entity.name.replace('_', ' ')}; another approver must approve it"
