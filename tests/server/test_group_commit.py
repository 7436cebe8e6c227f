"""Group commit: concurrent pushes share one transaction, and one push that
fails does not sink the others."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from schema import SCHEMA
from server.fanout import Hub
from server.group_commit import GroupCommit
from server.store import Database
from sync.hlc import Clock
from sync.merge import Actor
from sync.messages import Acks, Op, Push, ServerMessage, Status
from sync.server import ServerSession

PRODUCT = str(uuid.UUID(int=1))


def _push(device: str, site: str, n: int) -> Push:
    clock = Clock(device)
    return Push(batch=0, ops=[
        Op(str(uuid.uuid4()), "stock_movement", str(uuid.uuid4()), 0,
           {"site": site, "product_id": PRODUCT, "qty": -1, "reason": "sale"},
           clock.now(1_800_000_000_000 + i), "u", device, SCHEMA.version)
        for i in range(n)])


class Exploding(ServerSession):
    def handle(self, store: object, msg: object, now_ms: int | None = None
               ) -> list[ServerMessage]:
        raise RuntimeError("boom")


def test_concurrent_pushes_commit_together_and_a_failure_stays_alone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'hq.db'}", SCHEMA)
    try:
        hub = Hub()
        group = GroupCommit(db, hub)
        ok = [ServerSession(SCHEMA, Actor(f"t{i}", f"S{i}"), 0) for i in range(3)]
        bad = Exploding(SCHEMA, Actor("tx", "S9"), 0)
        pushes = [_push(f"t{i}", f"S{i}", 50) for i in range(3)]

        async def main() -> list[object]:
            hub.subscribe()  # the hub publishes into this loop
            jobs = [group.push(s, p) for s, p in zip(ok, pushes, strict=True)]
            jobs.insert(1, group.push(bad, _push("tx", "S9", 5)))
            return await asyncio.gather(*jobs, return_exceptions=True)

        results = asyncio.run(main())
        assert isinstance(results[1], RuntimeError)
        for answer in (results[0], *results[2:]):
            assert isinstance(answer, list) and isinstance(answer[0], Acks)
            assert {a.status for a in answer[0].acks} == {Status.ACCEPTED}
        with db.transaction(write=False) as store:
            changes, _ = store.changes(None, 0, 1000)
            moved = [c for c in changes if c.row.entity == "stock_movement"]
            assert len(moved) == 150  # (plus a stock exception per site, raised once)
            resent = pushes[0].ops[:3]
            assert [store.seen(op.op_id) is not None for op in resent] == [True] * 3
    finally:
        db.dispose()
