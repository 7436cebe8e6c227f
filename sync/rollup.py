"""Fields summed from child rows (``schema.Rollup``): a purchase order's
total is what its lines come to, qty x unit_cost, never a figure typed over
them.

Two uses, both of rows HQ holds:

* ``derived`` -- the change that brings a row's field to its children's sum.
  HQ's server writes it (``server.rollups``) after every transaction that
  made a child row or changed the row, as an HQ-owned write every replica
  takes; a row past the states in which it changes (an approved order) keeps
  what was approved.
* ``disagrees`` -- why a move declared ``Transition.checks_rollup`` (an
  approval) cannot be judged: the row has no child rows, or its field is not
  their sum (a line HQ took in this very transaction, before HQ worked the
  total out again). The server refuses such a move with that reason
  (``sync.server``); approving again after HQ's write succeeds.

Pure functions: the caller finds the child rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from schema import Entity, Rollup, Schema

from .ids import short
from .messages import Row


def summed(rollup: Rollup, children: Iterable[Row]) -> int:
    """What the live ``children`` come to (0 for none)."""
    a, b = rollup.factors
    return sum(int(r.fields.get(a) or 0) * int(r.fields.get(b) or 0)
               for r in children if not r.deleted)


def disagrees(entity: Entity, row: Row, children: list[Row]) -> str | None:
    """Why ``row`` cannot be judged by its rollup field, given the child rows
    HQ holds, or None when the field is their sum."""
    rollup = entity.rollup
    assert rollup is not None
    live = [r for r in children if not r.deleted]
    name = f"{entity.name} {short(row.key)}"
    if not live:
        return (f"{name} has no {rollup.child} rows at HQ: there is nothing to approve "
                "until its lines are there")
    value, total = row.fields.get(rollup.field), summed(rollup, live)
    if value != total:
        return (f"{name} has {rollup.field} {value}, but the {len(live)} {rollup.child} "
                f"rows HQ holds come to {total}; HQ brings its {rollup.field} to them, "
                "then it can be approved")
    return None


def derived(entity: Entity, row: Row, children: list[Row]) -> dict[str, int] | None:
    """The change that brings ``row``'s rollup field to its children's sum;
    None when it is there already, or when the row is deleted or in a state
    in which its fields no longer change."""
    rollup, machine = entity.rollup, entity.machine
    assert rollup is not None
    if row.deleted or (machine is not None and machine.editable_in is not None
                       and row.fields.get(machine.field) not in machine.editable_in):
        return None
    total = summed(rollup, children)
    return None if row.fields.get(rollup.field) == total else {rollup.field: total}


def children_of(schema: Schema) -> dict[str, Entity]:
    """Child entity -> the entity whose rollup sums its rows."""
    return schema.rollups


def touched(schema: Schema, rows: Iterable[Row]) -> set[tuple[str, str]]:
    """The (entity, key) of every row with a rollup that ``rows`` -- new
    versions -- may have put out of step: the parent of each child row, and
    each such row itself."""
    parents = children_of(schema)
    summing = {e.name for e in parents.values()}
    out: set[tuple[str, str]] = set()
    for row in rows:
        if row.entity in summing:
            out.add((row.entity, row.key))
        elif row.entity in parents:
            parent = parents[row.entity]
            assert parent.rollup is not None
            ref = row.fields.get(parent.rollup.link)
            if isinstance(ref, str):
                out.add((parent.name, ref))
    return out
