"""A large push is written in blocks (multi-row INSERTs on SQLite, executemany
for the rest): every row, change, ack and audit record must land exactly as a
row-by-row write would have stored it, on every store."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from schema import SCHEMA
from server.store import MULTI_ROW
from sync.audit import verify_chain
from sync.merge import Actor
from sync.messages import Op, Push, Status
from sync.server import ServerSession

from .conftest import Backend

PRODUCT = str(uuid.UUID(int=7))


def _movements(n: int) -> list[Op]:
    return [Op(str(uuid.uuid4()), "stock_movement", str(uuid.uuid4()), 0,
               {"site": "S1", "product_id": PRODUCT, "qty": -(i % 5) - 1,
                "reason": "sale" if i % 3 else "return",
                "document_id": None if i % 2 else str(uuid.UUID(int=i))},
               f"{1_800_000_000_000 + i:015d}-000000-till-1", "ann", "till-1", SCHEMA.version)
            for i in range(n)]


def test_a_push_of_blocks_and_a_remainder_lands_whole(backend: Backend) -> None:
    n = 2 * MULTI_ROW + 37  # two whole blocks and a remainder
    ops = _movements(n)
    session = ServerSession(SCHEMA, Actor("till-1", "S1"), 0)
    with backend.tx() as store:
        [acks] = session.handle(store, Push(batch=1, ops=ops))
    assert [a.status for a in acks.acks] == [Status.ACCEPTED] * n  # type: ignore[union-attr]
    backend.reopen()  # read back what was committed, nothing cached
    with backend.tx(write=False) as store:
        for op in ops:
            row = store.load("stock_movement", op.key)
            assert row is not None and row.version == 1
            assert {k: row.fields[k] for k in op.fields} == op.fields
            assert store.seen(op.op_id) is not None
        changes, cursor = store.changes("S1", 0, 1000)
        moved = [c.row.key for c in changes if c.row.entity == "stock_movement"]
        assert sorted(moved) == sorted(op.key for op in ops)
        seqs = [c.seq for c in changes]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and cursor >= seqs[-1]
    audit = backend.audit()
    assert {record.op_id for record, _ in audit} >= {op.op_id for op in ops}
    assert verify_chain(audit) is None
    total = sum(op.fields["qty"] for op in ops)
    if backend.is_sql:
        assert backend.db is not None
        t = backend.db.entities["stock_movement"]
        with backend.db.transaction(write=False) as sql:
            got = sql.conn.execute(select(func.sum(t.c.qty), func.count())
                                   .where(t.c.site == "S1")).one()
        assert (got[0], got[1]) == (total, n)
