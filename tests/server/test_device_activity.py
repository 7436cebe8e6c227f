"""Each device's latest audit record is kept in ``device_activity`` by every
commit, so the IT page's "last op" reads one row per device instead of
grouping the whole audit log: it always equals what that grouping gives, on
SQLite and PostgreSQL, with two servers writing at once, and after an upgrade."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select

from schema import SCHEMA
from server.store import Database
from server.tables import DEVICE_ACTIVITY_TABLE
from sync.merge import Actor
from sync.server import apply_ops
from tests.pg import fresh_database
from tests.sync.kit import PRODUCT, S1_TILL1, S1_TILL2, S2_TILL1, hire_staff, key, op

from .conftest import Backend


def _move(site: str, qty: int) -> dict[str, object]:
    return {"site": site, "product_id": PRODUCT, "qty": qty, "reason": "sale"}


def kept_and_grouped(db: Database) -> tuple[dict[str, tuple[int, str]],
                                             dict[str, tuple[int, str]]]:
    """(what ``device_activity`` holds, what grouping the audit log gives)."""
    audit, activity = db.t["audit"], db.t[DEVICE_ACTIVITY_TABLE]
    with db.transaction(write=False) as store:
        kept = {d: (int(i), h) for d, i, h in store.conn.execute(
            select(activity.c.device, activity.c.audit_id, activity.c.hlc))}
        latest = select(func.max(audit.c.id)).group_by(audit.c.device)
        grouped = {d: (int(i), h) for d, i, h in store.conn.execute(
            select(audit.c.device, audit.c.id, audit.c.hlc).where(audit.c.id.in_(latest)))}
    return kept, grouped


def test_the_latest_op_of_each_device_is_kept_by_every_commit(sql_backend: Backend) -> None:
    db = sql_backend.db
    assert db is not None
    with db.transaction() as store:
        hire_staff(store)
    pushes: list[tuple[Actor, list[dict[str, object]]]] = [
        (S1_TILL1, [_move("S1", -1), _move("S1", -2)]),
        (S2_TILL1, [_move("S2", -1)]),
        (S1_TILL1, [_move("S1", 0)]),  # rejected (qty 0), and audited all the same
        (S1_TILL2, [_move("S1", -3)]),
        (S2_TILL1, [_move("S2", 4), _move("S2", -1)]),
    ]
    n = 0
    for actor, moves in pushes:
        ops = []
        for fields in moves:
            n += 1
            ops.append(op(actor, "stock_movement", key(5000 + n), fields, ms=1_000 + 60_000 * n))
        with db.transaction() as store:
            store.prefetch(ops)
            apply_ops(SCHEMA, store, actor, ops)
    kept, grouped = kept_and_grouped(db)
    assert kept == grouped
    assert set(kept) == {"hq-server", S1_TILL1.device, S1_TILL2.device, S2_TILL1.device}
    # the rejected op is S1_TILL1's latest: made at minute 4 of the pushes
    assert kept[S1_TILL1.device][1].startswith(f"{1_000 + 60_000 * 4:015d}")


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_servers_writing_at_once_keep_the_latest(kind: str, tmp_path: Path) -> None:
    """Two servers (two engines, as two processes have) take pushes of the same
    devices at once: each device's kept record is its latest, whichever server
    committed it."""
    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path}/hq.db" if kind == "sqlite"
               else stack.enter_context(fresh_database()))
        a, b = Database(url, SCHEMA), Database(url, SCHEMA)
        stack.callback(a.dispose)
        stack.callback(b.dispose)
        with a.transaction() as store:
            hire_staff(store)

        def pushes(db: Database, first: int) -> None:
            for n in range(15):
                till = (S1_TILL1, S2_TILL1)[n % 2]
                ops = [op(till, "stock_movement", key(first + 20 * n + i),
                          _move(till.site, -1), ms=first + n) for i in range(20)]
                with db.transaction() as store:
                    store.prefetch(ops)
                    apply_ops(SCHEMA, store, till, ops)

        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(pushes, a, 10_000), pool.submit(pushes, b, 20_000)]:
                done.result()
        kept, grouped = kept_and_grouped(a)
        assert kept == grouped and len(kept) == 3  # the server (the hiring), two tills
