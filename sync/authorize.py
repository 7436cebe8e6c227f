"""Authorization by department role, from the matrix in ``schema.people``.

``check`` is pure: it takes the op, the row it applies to, and a function
that tells a user's role (the server reads employee rows; the edge its
replica of them), and says why the user may not do it, or None.
"""

from __future__ import annotations

from collections.abc import Callable

from schema import Entity
from schema.people import GUARDED, allowed

from .messages import Op, Row

RoleOf = Callable[[str], "str | None"]


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
    return out


def check(entity: Entity, current: Row | None, op: Op, role_of: RoleOf) -> str | None:
    """Why ``op.user`` may not make this op, or None when every action is allowed."""
    if entity.name not in GUARDED:
        return None  # every action on it is open to every role
    role: str | None = None
    looked = False
    for action in actions(entity, current, op):
        roles = allowed(entity.name, action)
        if roles is None:
            continue
        if not looked:
            role, looked = role_of(op.user), True
        if role not in roles:
            who = f"user {op.user}" + (f" ({role})" if role else " (no employee record)")
            what = action.replace("set:", "set ").replace("move:", "move to ")
            return (f"{who} may not {what} on {entity.name}; "
                    f"allowed: {', '.join(sorted(roles))}")
    return None
