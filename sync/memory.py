"""In-memory stores for both ends: the reference implementations of the
``ServerStore`` and ``LocalStore`` protocols, used by the protocol tests.

The SQL stores in ``server/`` and ``client/`` must behave exactly like these;
the shared store tests run against all of them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import msgspec

from .audit import GENESIS, AuditRecord, chain_hash
from .merge import Conflict, Outcome
from .messages import Ack, Change, Op, Row, mark_of


def _visible(sites: frozenset[str] | None, site: str | None) -> bool:
    return site is None or sites is None or site in sites


class MemoryServerStore:
    """Server storage held in dicts and lists."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.sites: dict[tuple[str, str], frozenset[str] | None] = {}
        self.acks: dict[str, Ack] = {}
        self.log: list[tuple[Change, frozenset[str] | None]] = []
        self.audit: list[tuple[AuditRecord, str]] = []
        self.conflicts: list[Conflict] = []

    def prefetch(self, ops: list[Op]) -> None:
        return None

    def seen(self, op_id: str) -> Ack | None:
        return self.acks.get(op_id)

    def load(self, entity: str, key: str) -> Row | None:
        return self.rows.get((entity, key))

    def record(self, outcome: Outcome, audit: AuditRecord, sites: frozenset[str] | None) -> None:
        if outcome.changed and outcome.after is not None:
            row = outcome.after
            self.rows[(row.entity, row.key)] = row
            self.sites[(row.entity, row.key)] = sites
            self.log.append((Change(len(self.log) + 1, row), sites))
        self.acks[outcome.op.op_id] = outcome.ack
        previous = self.audit[-1][1] if self.audit else GENESIS
        self.audit.append((audit, chain_hash(previous, audit)))
        self.conflicts.extend(outcome.conflicts)

    def children(self, entity: str, field: str, key: str) -> list[Row]:
        return sorted((r for (e, _), r in self.rows.items()
                       if e == entity and r.fields.get(field) == key), key=lambda r: r.key)

    def head(self) -> int:
        return len(self.log)

    def mark(self, seq: int) -> str:
        return mark_of(self.log[seq - 1][0].row) if 0 < seq <= len(self.log) else ""

    def changes(self, site: str | None, cursor: int, limit: int) -> tuple[list[Change], int]:
        out: list[Change] = []
        last = cursor
        for change, sites in self.log[cursor:]:
            last = change.seq
            if _visible(sites, site):
                out.append(change)
                if len(out) >= limit:
                    break
        return out, last

    def snapshot(self, site: str | None, after: tuple[str, str], limit: int) -> list[Row]:
        keys = sorted(k for k in self.rows if _visible(self.sites[k], site))
        start = bisect.bisect_right(keys, after)
        return [self.rows[k] for k in keys[start : start + limit]]

    def stored_snapshot(self, site: str | None, after: tuple[str, str], limit: int) -> None:
        return None  # rows are kept decoded: the session sends ``snapshot``


class MemoryLocalStore:
    """Edge storage held in dicts."""

    def __init__(self) -> None:
        self.bases: dict[tuple[str, str], Row] = {}
        self.views: dict[tuple[str, str], Row] = {}
        self.pending: dict[int, Op] = {}
        self.position = 0
        self.state: dict[str, str] = {}
        self.rejections: list[tuple[Op, str]] = []

    def base(self, entity: str, key: str) -> Row | None:
        return self.bases.get((entity, key))

    def put_base(self, row: Row) -> None:
        self.bases[(row.entity, row.key)] = row

    def view(self, entity: str, key: str) -> Row | None:
        return self.views.get((entity, key))

    def put_view(self, entity: str, key: str, row: Row | None) -> None:
        if row is None:
            self.views.pop((entity, key), None)
        else:
            self.views[(entity, key)] = row

    def add_outbox(self, op: Op) -> None:
        if any(queued.op_id == op.op_id for queued in self.pending.values()):
            raise ValueError(f"op {op.op_id} is already in the outbox")
        self.position += 1
        self.pending[self.position] = op

    def outbox(self, after: int, limit: int) -> list[tuple[int, Op]]:
        return [(pos, op) for pos, op in self.pending.items() if pos > after][:limit]

    def outbox_for(self, entity: str, key: str) -> list[Op]:
        return [op for op in self.pending.values() if op.entity == entity and op.key == key]

    def drop_outbox(self, op_id: str, sent_ms: int | None = None) -> Op | None:
        for pos, op in self.pending.items():
            if op.op_id == op_id:
                del self.pending[pos]
                return op
        return None

    def snapshot_done(self) -> None:
        return None  # keeps no answered ops, so never rejoins

    def get_state(self, name: str) -> str | None:
        return self.state.get(name)

    def set_state(self, name: str, value: str) -> None:
        self.state[name] = value

    def add_rejection(self, op: Op, reason: str) -> None:
        self.rejections.append((op, reason))

    def apply_rows(self, rows: list[Row], check_versions: bool = True,
                   blobs: Sequence[bytes | msgspec.Raw] | None = None) -> list[Row]:
        pending = {(op.entity, op.key) for op in self.pending.values()}
        rest = []
        for row in rows:
            k = (row.entity, row.key)
            if k in pending:
                rest.append(row)
            elif k not in self.bases or self.bases[k].version < row.version:
                self.bases[k] = row
                self.views[k] = row
        return rest
