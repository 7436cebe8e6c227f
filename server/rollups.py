"""HQ works out the fields summed from child rows (``schema.Rollup``): a
purchase order's total is what the lines HQ holds come to.

After every write transaction that made a line or changed an order (a
device's push, a REST or console write), HQ's server writes the total of
each such order that is still a draft as its own ``system`` user, in the
same transaction, when it differs: an HQ-owned write, so it wins over any
figure a device typed, and every replica of the order converges on it. The
lines may arrive with the order, before it in the same group, or later;
each time the total follows. An approved order keeps the total approved.

The server also does it once at start (``derive_all``), for drafts made
before totals followed their lines. The rules are ``sync.rollup``'s;
approvals are judged against the lines HQ holds by ``sync.server``, whatever
this has written yet.
"""

from __future__ import annotations

from sqlalchemy import select

from schema import HQ_SITE
from sync import rollup
from sync.hlc import Clock
from sync.merge import Actor
from sync.messages import Op
from sync.server import SERVER_DEVICE, apply_ops

from .clock import fresh_id, now_ms
from .store import Database, SqlServerStore

SYSTEM = Actor(SERVER_DEVICE, HQ_SITE)
_clock = Clock(SERVER_DEVICE)


def derive(store: SqlServerStore) -> int:
    """Bring each rollup field this transaction's changes may have put out of
    step to what its child rows come to; returns how many rows it changed."""
    if not store.published:
        return 0
    schema = store.db.schema
    return _bring(store, rollup.touched(schema, (change.row for change, _ in store.published)))


def derive_all(db: Database) -> int:
    """At start: bring every row still in a state in which it changes (a draft
    order) to what its child rows come to, in one transaction: orders
    drafted before totals followed their lines would otherwise wait, refused
    approval, for a change that brings them there. Returns how many it changed."""
    with db.transaction() as store:
        keys: set[tuple[str, str]] = set()
        for e in db.schema.entities:
            if e.rollup is None:
                continue
            t = db.entities[e.name]
            q = select(t.c.id).where(t.c._deleted.is_(False))
            if e.machine is not None and e.machine.editable_in is not None:
                q = q.where(t.c[e.machine.field].in_(e.machine.editable_in))
            keys.update((e.name, k) for k in store.conn.execute(q).scalars())
        return _bring(store, keys)


def _bring(store: SqlServerStore, keys: set[tuple[str, str]]) -> int:
    schema = store.db.schema
    ops: list[Op] = []
    for entity, key in sorted(keys):
        e, row = schema[entity], store.load(entity, key)
        if row is None or e.rollup is None:
            continue
        change = rollup.derived(e, row, store.children(e.rollup.child, e.rollup.link, key))
        if change is not None:
            ops.append(Op(fresh_id(), entity, key, row.version, change,
                          _clock.now(now_ms()), "system", SERVER_DEVICE, schema.version))
    if ops:
        apply_ops(schema, store, SYSTEM, ops)
    return len(ops)
