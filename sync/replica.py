"""The edge's half of merging: local writes, acks, incoming rows, rebase.

A replica keeps, per row, the *base* (the server's authoritative row, as last
received) and the *view* (what the store sees: the base with the still-pending
ops of the outbox re-applied on top). The rebase uses ``sync.merge.decide``,
the same function the server applies, so the view shows what the server will
make of the pending ops, unless another site's edit arrives first.

All storage goes through ``LocalStore`` (SQLite in ``client.store``, memory in
``sync.memory``); the caller runs each method inside one local transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from schema import Schema
from schema.people import employee_key

from .authorize import Staff, staff_of
from .hlc import Clock, ClockDriftError, Stamp
from .ids import new_id
from .merge import Actor, created_row, decide
from .messages import Ack, Op, Row, Status


def _latest(row: Row) -> str:
    # (hlc, version) pairs: the greatest pair holds the greatest HLC
    return max(row.meta.values())[0] if row.meta else ""


class LocalRejected(Exception):
    """A local write was refused before it reached the outbox (nothing was written)."""


class LocalStore(Protocol):
    """What the edge's sync logic needs from its local database."""

    def base(self, entity: str, key: str) -> Row | None:
        """The server's row as last received."""
        ...

    def put_base(self, row: Row) -> None:
        """Store the server's row."""
        ...

    def view(self, entity: str, key: str) -> Row | None:
        """The row as the store sees it (base + pending ops)."""
        ...

    def put_view(self, entity: str, key: str, row: Row | None) -> None:
        """Replace the visible row (None: no such row)."""
        ...

    def add_outbox(self, op: Op) -> None:
        """Append an op to the outbox."""
        ...

    def outbox(self, after: int, limit: int) -> list[tuple[int, Op]]:
        """Pending ops with outbox position > ``after``, oldest first."""
        ...

    def outbox_for(self, entity: str, key: str) -> list[Op]:
        """Pending ops of one row, oldest first."""
        ...

    def drop_outbox(self, op_id: str, sent_ms: int | None = None) -> Op | None:
        """Remove an answered op; return it (None if it was not pending). With
        ``sent_ms`` (HQ took it, at that time) the store may keep it a while,
        to send again to an HQ restored from an older backup."""
        ...

    def snapshot_done(self) -> None:
        """The last page of a snapshot was stored (in this transaction)."""
        ...

    def get_state(self, name: str) -> str | None:
        """A persisted setting of the sync state (cursor, clock, ...)."""
        ...

    def set_state(self, name: str, value: str) -> None:
        """Persist a setting of the sync state."""
        ...

    def add_rejection(self, op: Op, reason: str) -> None:
        """Keep a rejected op and its reason, for the store manager to see."""
        ...

    def apply_rows(self, rows: list[Row], check_versions: bool = True,
                   blobs: Sequence[bytes | msgspec.Raw] | None = None) -> list[Row]:
        """Bulk path: store the rows that have no pending ops and are newer than
        the base, as base and view at once; return the rows left for ``on_row``.
        ``check_versions=False`` (snapshot pages: every row is the newest, and
        nothing else arrives meanwhile) skips reading the current versions.
        ``blobs``, when given, holds the msgpack of each row as received (the
        store may keep it instead of encoding the row again)."""
        ...


HQ_CLOCK_STATE = "hq_clock"
"""``"<ms HQ's clock was ahead> <this device's ms then>"`` at the last Welcome."""


def hq_clock(state: str | None) -> tuple[int, int]:
    """(ms HQ's clock was ahead of this device's, this device's ms when told)
    from ``HQ_CLOCK_STATE`` ((0, 0) if never told)."""
    ahead, _, at = (state or "").partition(" ")
    try:
        return int(ahead), int(at)
    except ValueError:
        return 0, 0


class Replica:
    """One device's local copy of the rows in its scope."""

    def __init__(self, schema: Schema, store: LocalStore, device: str, site: str) -> None:
        self.schema = schema
        self.store = store
        self.actor = Actor(device=device, site=site)
        self.clock = Clock(device)
        self._hq_ahead: int | None = None

    def _load_clock(self) -> Clock:
        # Re-read on every use: a CLI process and the daemon may share one database.
        last = self.store.get_state("hlc")
        if last:
            stamp = Stamp.decode(last)
            if stamp > self.clock.last:
                self.clock.last = stamp
        return self.clock

    @property
    def cursor(self) -> int:
        return int(self.store.get_state("cursor") or 0)

    @cursor.setter
    def cursor(self, value: int) -> None:
        self.store.set_state("cursor", str(value))

    @property
    def mark(self) -> str:
        """HQ's mark of the change at the cursor ("" if not known: the mark kept
        is of another cursor, when software that keeps none moved it)."""
        at, _, mark = (self.store.get_state("cursor_mark") or "").partition(" ")
        return mark if at == str(self.cursor) else ""

    def advance(self, cursor: int, mark: str) -> None:
        """Move the cursor to a change HQ sent, keeping that change's mark with it."""
        self.cursor = cursor
        self.store.set_state("cursor_mark", f"{cursor} {mark}")

    def write(
        self,
        entity: str,
        key: str,
        fields: dict[str, Any],
        user: str,
        now_ms: int,
        *,
        delete: bool = False,
        op_id: str | None = None,
        group: str = "",
    ) -> Op:
        """Make a local change: check it, show it, and queue it for the server.

        Raises ``LocalRejected`` (and writes nothing) when the server would
        reject it for sure: unknown field, wrong type, an HQ-owned field, an
        invalid state move. Ops of one business transaction pass the same
        ``group`` and are written in one local transaction by the caller.
        """
        base = self.store.base(entity, key)
        op = Op(
            op_id=op_id or new_id(now_ms),
            entity=entity,
            key=key,
            base_version=base.version if base else 0,
            fields=fields,
            hlc=self._load_clock().now(now_ms),
            user=user,
            device=self.actor.device,
            schema_version=self.schema.version,
            delete=delete,
            group=group,
        )
        outcome = decide(self.schema, self.store.view(entity, key), op, self.actor,
                         self._role_of)
        if outcome.status is Status.REJECTED:
            raise LocalRejected(outcome.reason)
        self.store.add_outbox(op)
        self.store.put_view(entity, key, outcome.after)
        self.store.set_state("hlc", self.clock.last.encode())
        return op

    def _role_of(self, user: str) -> Staff | None:
        if self.schema.get("employee") is None:
            return None
        return staff_of(self.store.view("employee", employee_key(user)))

    def rebase(self, entity: str, key: str) -> Row | None:
        """Recompute the visible row from the base and the pending ops."""
        row = self.store.base(entity, key)
        for op in self.store.outbox_for(entity, key):
            outcome = decide(self.schema, row, op, self.actor)
            if outcome.status is not Status.REJECTED:
                row = outcome.after
        self.store.put_view(entity, key, row)
        return row

    def on_row(self, row: Row, now_ms: int) -> bool:
        """Take a row from the server if it is newer than ours; True if taken."""
        base = self.store.base(row.entity, row.key)
        if base is not None and base.version >= row.version:
            return False
        self._observe(row, now_ms)
        self.store.put_base(row)
        self.rebase(row.entity, row.key)
        return True

    def on_rows(self, rows: list[Row], now_ms: int, snapshot: bool = False,
                blobs: Sequence[bytes | msgspec.Raw] | None = None) -> None:
        """Take many rows from the server (a snapshot page, a batch of changes);
        ``blobs``: each row's msgpack as received, if the caller has it."""
        if not rows:
            return
        for row in self.store.apply_rows(rows, check_versions=not snapshot, blobs=blobs):
            self.on_row(row, now_ms)
        # the greatest (hlc, version) pair of every row's clocks, in one pass
        pairs = [max(r.meta.values()) for r in rows if r.meta]
        if pairs:
            self._observe_hlc(max(pairs)[0], now_ms)

    def on_ack(self, ack: Ack, now_ms: int) -> Op | None:
        """Apply the server's answer to one of our ops; returns the op (None: a duplicate)."""
        taken = ack.status is not Status.REJECTED  # a rejected op stays void for good
        # kept for a rejoin from when HQ acked it, by HQ's clock (``forget_sent``)
        op = self.store.drop_outbox(ack.op_id, now_ms + self.hq_ahead if taken else None)
        if op is None:
            return None
        if (ack.row is None and ack.status is Status.ACCEPTED and self.schema.get(op.entity)
                and self.store.base(op.entity, op.key) is None):
            ack = msgspec.structs.replace(ack, row=created_row(self.schema, op))
        if ack.row is not None:
            base = self.store.base(ack.row.entity, ack.row.key)
            if base is None or base.version < ack.row.version:
                self._observe(ack.row, now_ms)
                self.store.put_base(ack.row)
        if ack.status is Status.REJECTED:
            self.store.add_rejection(op, ack.reason)
        if self.schema.get(op.entity) is not None:
            self.rebase(op.entity, op.key)
        return op

    def _observe(self, row: Row, now_ms: int) -> None:
        self._observe_hlc(_latest(row), now_ms)

    def note_hq_clock(self, server_ms: int, now_ms: int) -> None:
        """Keep how far HQ's clock is ahead of this device's (``HQ_CLOCK_STATE``):
        HQ bounds the stamps it takes by its own clock (``hlc.Restamp``), so
        stamps from HQ are trusted up to HQ's time, however far behind this
        device's clock is; and ``status`` tells a store whose clock is off."""
        self._hq_ahead = server_ms - now_ms
        self.store.set_state(HQ_CLOCK_STATE, f"{self._hq_ahead} {now_ms}")
        self._observe_hlc(Stamp(server_ms, 0, "").encode(), now_ms)  # not behind HQ's time

    @property
    def hq_ahead(self) -> int:
        """How many ms HQ's clock was ahead of this device's at the last
        Welcome (negative: behind; 0 if never told)."""
        if self._hq_ahead is None:
            self._hq_ahead = hq_clock(self.store.get_state(HQ_CLOCK_STATE))[0]
        return self._hq_ahead

    def _observe_hlc(self, latest: str, now_ms: int) -> None:
        if not latest:
            return
        try:  # HQ's stamps are within its clock: a slow till still observes them
            self._load_clock().observe(latest, now_ms + max(0, self.hq_ahead))
        except (ClockDriftError, ValueError):
            return  # a wild clock elsewhere must not stop this till
        self.store.set_state("hlc", self.clock.last.encode())
