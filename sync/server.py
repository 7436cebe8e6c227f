"""The server's half of the protocol, as a sans-I/O session.

``ServerSession.handle(msg)`` takes one decoded client message and returns the
messages to send back. It reads and writes rows only through a ``ServerStore``
(an in-memory one in ``sync.memory``, the SQLAlchemy one in ``server.store``);
the caller wraps each ``handle`` in one database transaction and sends the
answer only after that transaction committed, so an ack always means durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from schema import HQ_SITE, Policy, Schema
from schema.model import MAX_LEDGER_MONEY
from schema.people import employee_key

from .audit import AuditRecord, audit_of
from .authorize import RoleOf, Staff, staff_of
from .hlc import MAX_AHEAD_MS, Restamp, ahead_by, span
from .ids import short
from .merge import Actor, Outcome, decide
from .messages import (
    MAX_BATCH_OPS,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Ack,
    Acks,
    Change,
    Changes,
    ClientMessage,
    Error,
    ErrorCode,
    Hello,
    Op,
    Outgoing,
    Pull,
    Push,
    Row,
    SnapshotPage,
    SnapshotRequest,
    Status,
    StoredPage,
    Welcome,
    encode,
    mark_of,
)
from .rollup import disagrees, summed


class ServerStore(Protocol):
    """What the server's sync logic needs from storage. One call = inside one transaction."""

    def prefetch(self, ops: list[Op]) -> None:
        """A hint before a batch: the store may load these ops' acks and rows at once."""
        ...

    def seen(self, op_id: str) -> Ack | None:
        """The ack already given for this op id, if it was applied before."""
        ...

    def load(self, entity: str, key: str) -> Row | None:
        """The current row, or None."""
        ...

    def record(self, outcome: Outcome, audit: AuditRecord, sites: frozenset[str] | None) -> None:
        """Persist one decided op: new row version and its change (if changed),
        the ack (for dedupe), the audit record and any conflicts. ``sites`` is the
        row's scope (None: every site)."""
        ...

    def children(self, entity: str, field: str, key: str) -> list[Row]:
        """The rows of ``entity`` whose ``field`` holds ``key`` (a purchase
        order's lines), this transaction's included, in key order."""
        ...

    def head(self) -> int:
        """The last change sequence number."""
        ...

    def mark(self, seq: int) -> str:
        """``mark_of`` the row of the change at ``seq`` ("" if there is none)."""
        ...

    def changes(self, site: str | None, cursor: int, limit: int) -> tuple[list[Change], int]:
        """Changes after ``cursor`` visible to ``site`` (None: HQ, all), at most
        ``limit``, and the cursor to continue from."""
        ...

    def snapshot(
        self, site: str | None, after: tuple[str, str], limit: int
    ) -> list[Row]:
        """Current rows visible to ``site`` ordered by (entity, key), after ``after``."""
        ...

    def stored_snapshot(
        self, site: str | None, after: tuple[str, str], limit: int
    ) -> list[msgspec.Raw] | None:
        """The rows ``snapshot`` returns, each as the msgpack the store keeps it
        in, to be sent as it is; None from a store that keeps rows decoded."""
        ...


def row_sites(schema: Schema, row: Row) -> frozenset[str] | None:
    """The sites a row is visible to (None: all sites)."""
    return schema[row.entity].sites_of(row.fields)


def check_hello(
    schema: Schema, hello: Hello, token_device: str, token_site: str
) -> Error | None:
    """Why a Hello from an authenticated token must be refused, or None."""
    if hello.protocol != PROTOCOL_VERSION:
        return Error(
            ErrorCode.SCHEMA,
            f"client speaks protocol {hello.protocol}; server speaks {PROTOCOL_VERSION}",
            fatal=True,
        )
    if not schema.min_compatible <= hello.schema_version <= schema.version:
        return Error(
            ErrorCode.SCHEMA,
            f"client schema version {hello.schema_version} is not supported; the server "
            f"accepts {schema.min_compatible} to {schema.version}: upgrade this device",
            fatal=True,
        )
    if hello.device != token_device:
        return Error(ErrorCode.AUTH, f"token was issued to another device, not {hello.device}",
                     fatal=True)
    if hello.site != token_site:
        return Error(
            ErrorCode.SCOPE,
            f"device {hello.device} belongs to site {token_site}, not {hello.site}",
            fatal=True,
        )
    return None


def check_cursor(hello: Hello, head: int, found: str, answered: bool) -> Error | None:
    """Why a device whose Hello names its cursor, the mark of the change there
    and the last op HQ answered cannot be served by a server whose change
    sequence ends at ``head``, whose change at the cursor has the mark
    ``found`` and which has (``answered``) or has not kept that answer; or None.

    Each means HQ lost changes the device has (a restore from an older
    backup, a new database): a cursor beyond the head; another change at the
    cursor, once other stores have pushed since the restore; or no record of
    an op HQ acknowledged to the device. Serving it would skip HQ's next
    changes for good, and the device's acked sales are no longer at HQ. Only
    people can mend that. A device that names no mark or op (it last synced
    with an older server) is checked by its cursor alone."""
    cursor, mark = hello.cursor, hello.mark
    if cursor > head:
        lost = f"HQ's change sequence ends at {head}"
    elif mark and cursor and mark != found:
        lost = f"HQ's change {cursor} is not the one this device received"
    elif hello.acked and not answered:
        lost = f"HQ has no record of op {hello.acked}, which it acknowledged to this device"
    else:
        return None
    return Error(
        ErrorCode.DIVERGED,
        f"this device has HQ's changes up to {cursor}, but {lost}: HQ's database was "
        "restored from an older backup or replaced. Nothing was synced; the device "
        "keeps working offline and keeps its sales in its own file. IT must bring HQ "
        "back to its latest database; if that is lost for good, `branchline-edge rejoin` "
        "sends HQ again what it acknowledged to this device in the last days",
        fatal=True,
    )


def apply_op(schema: Schema, store: ServerStore, actor: Actor, op: Op) -> Ack:
    """Decide and record one op exactly once; the store's transaction makes it atomic."""
    return apply_ops(schema, store, actor, [op])[0]


SERVER_DEVICE = "hq-server"
"""The server's own device id, for HQ operations made through its API. No
token is ever issued to it; its ``system`` user acts as hq_admin."""


SYSTEM_STAFF = Staff("hq_admin", HQ_SITE)


def role_reader(schema: Schema, store: ServerStore, actor: Actor) -> RoleOf | None:
    """A user's employee record (role, site), from the employee rows in ``store``."""
    if schema.get("employee") is None:
        return None

    def role_of(user: str) -> Staff | None:
        if user == "system" and actor.device == SERVER_DEVICE:
            return SYSTEM_STAFF
        return staff_of(store.load("employee", employee_key(user)))

    return role_of


def apply_ops(schema: Schema, store: ServerStore, actor: Actor, ops: list[Op],
              bound: tuple[Restamp, int] | None = None) -> list[Ack]:
    """Decide and record a batch of ops, each op id at most once.

    Consecutive ops sharing a ``group`` are one business transaction: if any of
    them is rejected, all of them are, each with the reason of the first one.
    ``bound``: the sending device's ``Restamp`` and HQ's clock, for ops from a
    device (HQ's own ops carry HQ's stamps).
    """
    notes: dict[str, str] = {}
    if bound is not None:
        ops = _bounded(ops, *bound, notes)
    acks: list[Ack] = []
    start = 0
    role_of = role_reader(schema, store, actor)
    while start < len(ops):
        end = start + 1
        group = ops[start].group
        if group:
            while end < len(ops) and ops[end].group == group:
                end += 1
        acks.extend(_apply_group(schema, store, actor, ops[start:end], role_of, notes))
        start = end
    return acks


def _bounded(ops: list[Op], restamp: Restamp, now_ms: int, notes: dict[str, str]
             ) -> list[Op]:
    """``ops``, those stamped further ahead of HQ's clock than the bound
    restamped with HQ's time (``Restamp``), and why in ``notes`` by op id."""
    out = ops
    limit = f"{now_ms + MAX_AHEAD_MS:015d}"  # a stamp sorting below it is within the bound
    for i, op in enumerate(ops):
        if op.hlc <= limit:
            continue
        stamp = restamp.bound(op.hlc, now_ms)
        if stamp is None:
            continue
        if out is ops:
            out = list(ops)
        out[i] = msgspec.structs.replace(op, hlc=stamp)
        notes[op.op_id] = (f"the clock of {op.device} was {span(ahead_by(op.hlc, now_ms))} "
                           "ahead of HQ's: the edit is dated by its arrival at HQ")
    return out


def _noted(outcome: Outcome, notes: dict[str, str]) -> Outcome:
    """``outcome`` of an op HQ restamped: its reason says so, and its ack
    carries the row, so the device takes HQ's stamp for it too."""
    note = notes.get(outcome.op.op_id)
    if note is None or outcome.status is Status.REJECTED:
        return outcome
    o = outcome
    noted = Outcome(o.op, o.actor, o.status, f"{o.reason}; {note}" if o.reason else note,
                    o.policy, o.before, o.after, o.changed, o.dropped, o.conflicts)
    if noted.ack.row is None:
        noted.ack = msgspec.structs.replace(noted.ack, row=o.after)
    return noted


def _apply_group(schema: Schema, store: ServerStore, actor: Actor, ops: list[Op],
                 role_of: RoleOf | None, notes: dict[str, str]) -> list[Ack]:
    if len(ops) == 1:  # the common case, kept lean: it is the ingest hot path
        op = ops[0]
        previous = store.seen(op.op_id)
        if previous is not None:
            return [previous]
        current = store.load(op.entity, op.key) if schema.get(op.entity) else None
        outcome = _with_parent(schema, decide(schema, current, op, actor, role_of), store.load,
                               store.load)
        if outcome.status is not Status.REJECTED and (
                outcome.before is not None or op.entity in schema.rollups):
            outcome = _with_rollup(schema, outcome, store.children)
        if notes:
            outcome = _noted(outcome, notes)
        sites = row_sites(schema, outcome.after) if outcome.after is not None else None
        store.record(outcome, audit_of(outcome), sites)
        return [outcome.ack]
    given = ops
    firsts: set[str] = set()
    ops = [o for o in ops if o.op_id not in firsts and not firsts.add(o.op_id)]  # type: ignore[func-returns-value]
    seen = [store.seen(op.op_id) for op in ops]
    if all(ack is not None for ack in seen):
        answered = {op.op_id: ack for op, ack in zip(ops, seen, strict=True) if ack}
        return [answered[op.op_id] for op in given]
    staged: dict[tuple[str, str], Row | None] = {}

    def find(entity: str, key: str) -> Row | None:  # this transaction's rows first
        return staged[(entity, key)] if (entity, key) in staged else store.load(entity, key)

    outcomes: list[Outcome] = []
    for op, previous in zip(ops, seen, strict=True):
        if previous is not None:
            continue  # part of a group applied before (a resent tail): keep its answer
        k = (op.entity, op.key)
        if k not in staged:
            staged[k] = store.load(op.entity, op.key) if schema.get(op.entity) else None
        outcome = decide(schema, staged[k], op, actor, role_of)
        if outcome.changed:
            staged[k] = outcome.after
        outcomes.append(outcome)
    outcomes = [_with_parent(schema, o, find, store.load)  # a parent may come later
                for o in outcomes]

    def children(entity: str, field: str, key: str) -> list[Row]:  # with this group's
        rows = {r.key: r for r in store.children(entity, field, key)}
        rows.update((k, r) for (e, k), r in staged.items()
                    if e == entity and r is not None and r.fields.get(field) == key)
        return [rows[k] for k in sorted(rows)]

    outcomes = [_with_rollup(schema, o, children) for o in outcomes]
    if notes:
        outcomes = [_noted(o, notes) for o in outcomes]
    failed = next((o for o in outcomes if o.status is Status.REJECTED), None)
    if failed is not None and len(outcomes) > 1:
        reason = f"transaction {failed.op.group} rejected: {failed.reason}"
        outcomes = [
            o if o is failed else Outcome(
                o.op, o.actor, Status.REJECTED, reason, o.policy, o.before, o.before
            )
            for o in outcomes
        ]
    answers: dict[str, Ack] = {}
    for outcome in outcomes:
        sites = row_sites(schema, outcome.after) if outcome.after is not None else None
        store.record(outcome, audit_of(outcome), sites)
        answers[outcome.op.op_id] = outcome.ack
    for op, previous in zip(ops, seen, strict=True):
        if previous is not None:
            answers[op.op_id] = previous
    return [answers[op.op_id] for op in given]  # a repeated op id gets its first answer


def _with_parent(schema: Schema, outcome: Outcome, find: Callable[[str, str], Row | None],
                 held: Callable[[str, str], Row | None]) -> Outcome:
    """``outcome``, or its rejection when it makes a row of an entity with a
    ``Parent`` (a receipt's line) whose parent HQ does not have -- in this
    business transaction or before -- or which differs from it in a field
    they must share, or which HQ had already and is past the states in which
    its rows change (an approved purchase order takes no new line). ``find``
    looks a row up, this transaction's first; ``held``, as HQ had it before."""
    after = outcome.after
    if outcome.before is not None or after is None or outcome.status is Status.REJECTED:
        return outcome
    parent = schema[after.entity].parent
    if parent is None:
        return outcome
    ref = after.fields.get(parent.field)
    row = find(parent.entity, ref) if isinstance(ref, str) else None
    name = f"{after.entity} {short(after.key)}"
    if row is None or row.deleted:
        why = (f"{name} belongs to {parent.entity} {short(str(ref))}, which HQ does not have; "
               f"it is made with its {parent.entity}, in one transaction")
    else:
        differ = [f for f in parent.same if row.fields.get(f) != after.fields.get(f)]
        machine = schema[parent.entity].machine
        editable = machine.editable_in if machine is not None else None
        state = row.fields.get(machine.field) if machine is not None else None
        if differ:
            why = (f"{name} must have the {', '.join(differ)} of its {parent.entity} "
                   f"{short(str(ref))} ({', '.join(str(row.fields.get(f)) for f in differ)})")
        elif (editable is not None and state not in editable
              and held(parent.entity, str(ref)) is not None):
            why = (f"{name} belongs to {parent.entity} {short(str(ref))}, which is {state}: "
                   f"its {after.entity} rows are made only while it is "
                   f"{' or '.join(editable)}")
        else:
            return outcome
    o = outcome
    return Outcome(o.op, o.actor, Status.REJECTED, why, "validation", o.before, o.before)


def _with_rollup(schema: Schema, outcome: Outcome,
                 children: Callable[[str, str, str], list[Row]]) -> Outcome:
    """``outcome``, or its rejection when it takes a state move declared
    ``checks_rollup`` (an approval) on a row with no child rows at HQ, or
    whose rollup field (a purchase order's total) is not what the child
    rows HQ holds come to (``sync.rollup``). ``children`` finds them, this
    transaction's included: the move is judged on what HQ holds, not on
    what the approver's device or a typed figure says."""
    before, after = outcome.before, outcome.after
    if after is None or outcome.status is Status.REJECTED:
        return outcome
    if before is None:
        return _within_rollup(schema, outcome, after, children)
    entity = schema[after.entity]
    machine, rollup = entity.machine, entity.rollup
    if machine is None or rollup is None:
        return outcome
    source, target = before.fields.get(machine.field), after.fields.get(machine.field)
    move = machine.find(str(source), str(target)) if source != target else None
    if move is None or not move.checks_rollup:
        return outcome
    why = disagrees(entity, after, children(rollup.child, rollup.link, after.key))
    if why is None:
        return outcome
    o = outcome
    return Outcome(o.op, o.actor, Status.REJECTED, why, Policy.STATE, o.before, o.before)


def _within_rollup(schema: Schema, outcome: Outcome, made: Row,
                   children: Callable[[str, str, str], list[Row]]) -> Outcome:
    """``outcome``, or its rejection when the child row it makes (an order's
    line) would take its parent's rollup field (the order's total) past what
    the field holds: each line within bounds, their sum may not be."""
    parent = schema.rollups.get(made.entity)
    if parent is None or parent.rollup is None:
        return outcome
    rollup = parent.rollup
    ref = made.fields.get(rollup.link)
    if not isinstance(ref, str):
        return outcome
    rows = {r.key: r for r in children(made.entity, rollup.link, ref)}
    rows[made.key] = made
    total = summed(rollup, rows.values())
    if abs(total) <= MAX_LEDGER_MONEY:
        return outcome
    o = outcome
    return Outcome(o.op, o.actor, Status.REJECTED,
                   f"{made.entity} {short(made.key)}: the {rollup.child} rows of {parent.name} "
                   f"{short(ref)} would come to {total:,}, beyond the {MAX_LEDGER_MONEY:,} minor "
                   f"units its {rollup.field} holds", Policy.LEDGER, o.before, o.before)


_last_live: tuple[Row | None, str] = (None, "")


def _live_mark(row: Row) -> str:
    """``mark_of`` a row that every following session's live run ends at:
    worked out once per publish, not once per device."""
    global _last_live
    if _last_live[0] is not row:
        _last_live = (row, mark_of(row))
    return _last_live[1]


class ServerSession:
    """One authenticated device's conversation with the server."""

    def __init__(self, schema: Schema, actor: Actor, cursor: int) -> None:
        self.schema = schema
        self.actor = actor
        self.cursor = cursor
        """Every change up to here was sent to this device or is outside its scope."""
        self.sent = cursor
        """The cursor the device was last told (the ``since`` of the next Changes)."""
        self.scope_site: str | None = None if actor.is_hq else actor.site
        self.restamp = Restamp(actor.device)
        self.following = False
        """True once the device pulled: only then does live fan-out start, so a
        device still bootstrapping is not sent the whole history."""

    def welcome(self, store: ServerStore, server_ms: int = 0) -> Welcome:
        head = store.head()
        return Welcome(
            head=head,
            schema_version=self.schema.version,
            snapshot_required=self.cursor == 0 and head > 0,
            server_ms=server_ms,
        )

    def greet(self, store: ServerStore, hello: Hello, server_ms: int = 0) -> Welcome | Error:
        """The answer to this session's ``hello``: a Welcome, or the Error that
        refuses a device whose history HQ no longer continues (``check_cursor``).
        HQ never drops a change, so the change at a cursor it gave out is there
        unless HQ lost it."""
        welcome = self.welcome(store, server_ms)
        cursor = hello.cursor
        found = store.mark(cursor) if hello.mark and 0 < cursor <= welcome.head else ""
        answered = not hello.acked or store.seen(hello.acked) is not None
        return check_cursor(hello, welcome.head, found, answered) or welcome

    def handle(self, store: ServerStore, msg: ClientMessage, now_ms: int | None = None
               ) -> list[Outgoing]:
        """Answer one client message inside the caller's transaction on ``store``;
        the caller commits before sending the answer. ``now_ms``: HQ's clock,
        which bounds how far ahead of it a device's stamps are taken
        (``hlc.Restamp``); None takes them as they come."""
        match msg:
            case Push(batch=batch, ops=ops):
                if len(ops) > MAX_BATCH_OPS:
                    return [Error(ErrorCode.TOO_LARGE,
                                  f"push of {len(ops)} ops; at most {MAX_BATCH_OPS} per batch")]
                store.prefetch(ops)
                bound = None if now_ms is None else (self.restamp, now_ms)
                acks = apply_ops(self.schema, store, self.actor, ops, bound)
                return [Acks(batch=batch, acks=acks)]
            case Pull(cursor=cursor, limit=limit):
                limit = max(1, min(limit, 5000))
                self.cursor = self.sent = cursor
                self.following = True
                return [self.poll(store, limit, live=False) or Changes([], cursor, since=cursor)]
            case SnapshotRequest() as req:
                return [self._snapshot(store, req)]
            case Hello():
                return [Error(ErrorCode.STATE, "already said hello on this connection",
                              fatal=True)]
        return [Error(ErrorCode.BAD_MESSAGE, f"unexpected message {type(msg).__name__}")]

    def poll(self, store: ServerStore, limit: int = 1000, live: bool = True) -> Changes | None:
        """Changes since this session's cursor, read from the store; advances the cursor.

        Live fan-out calls this when it cannot serve a device from ``live_run``
        (a gap, or a commit made by another server process).
        """
        if live and not self.following:
            return None
        changes, cursor = store.changes(self.scope_site, self.cursor, limit)
        more = len(changes) >= limit
        budget = MAX_MESSAGE_BYTES - 64 * 1024
        for n, change in enumerate(changes):
            budget -= len(encode(change))
            if budget < 0 and n > 0:  # the frame would be too large: stop here
                changes, cursor, more = changes[:n], changes[n - 1].seq, True
                break
        if cursor == self.cursor or (live and not changes):  # nothing the device is told
            return self._advance(changes, cursor, more, live, "")
        last = changes[-1] if changes else None
        mark = mark_of(last.row) if last and last.seq == cursor else store.mark(cursor)
        return self._advance(changes, cursor, more, live, mark)

    def live_run(self, run: Sequence[Change], sites: Sequence[frozenset[str] | None]
                 ) -> tuple[Changes | None, bool]:
        """Serve freshly committed changes without reading the store.

        ``run`` is ordered by seq, with the scope of each change in ``sites``.
        Returns (message to send or None, True if the run did not start right
        after this session's cursor, so the caller must ``poll`` the store).
        """
        if not self.following:
            return None, False
        last = self.cursor
        final: Change | None = None
        visible: list[Change] = []
        for change, scope in zip(run, sites, strict=True):
            if change.seq <= last:
                continue
            if change.seq != last + 1:
                break
            last, final = change.seq, change
            if self.scope_site is None or scope is None or self.scope_site in scope:
                visible.append(change)
        if final is None:
            newer = any(c.seq > last for c in run)
            return None, newer
        return self._advance(visible, last, False, True, _live_mark(final.row)), False

    def _advance(self, changes: list[Change], cursor: int, more: bool, live: bool,
                 mark: str) -> Changes | None:
        if cursor == self.cursor and not changes:
            return None
        self.cursor = cursor
        if not changes and live:
            return None  # nothing in scope: the device need not hear of it
        since, self.sent = self.sent, cursor
        return Changes(changes, cursor, more=more, since=since, live=live, mark=mark)

    def _snapshot(self, store: ServerStore, req: SnapshotRequest) -> Outgoing:
        at = store.head() if req.at < 0 else req.at
        limit = max(1, min(req.limit, 20000))
        after = (req.after_entity, req.after_key)
        stored = store.stored_snapshot(self.scope_site, after, limit)
        if stored is not None:
            done = len(stored) < limit
            return StoredPage(rows=stored, at=at, done=done, mark=self._mark_at(store, at, done))
        rows = store.snapshot(self.scope_site, after, limit)
        done = len(rows) < limit
        return SnapshotPage(rows=rows, at=at, done=done, mark=self._mark_at(store, at, done))

    @staticmethod
    def _mark_at(store: ServerStore, at: int, done: bool) -> str:
        return store.mark(at) if done and at > 0 else ""
