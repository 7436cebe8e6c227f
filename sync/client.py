"""The client's half of the protocol, as a sans-I/O state machine.

The daemon in ``client.daemon`` only moves bytes: it sends what ``start`` and
``receive`` return, and calls ``pushes`` when the till wrote something. One
session lives as long as one connection; a new connection makes a new session
and resends every op still pending (the server drops duplicates by op id).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import msgspec

from .messages import (
    Acks,
    Changes,
    ClientMessage,
    Error,
    Hello,
    Pull,
    Push,
    ServerMessage,
    SnapshotPage,
    SnapshotRequest,
    Welcome,
)
from .replica import Replica


class Phase(StrEnum):
    """Where a connection stands."""

    HELLO = "hello"  # Hello sent, waiting for Welcome
    SNAPSHOT = "snapshot"  # bootstrapping from snapshot pages
    CATCHUP = "catchup"  # pulling changes after the cursor
    READY = "ready"  # caught up: pushing the outbox, receiving live changes
    CLOSED = "closed"  # the server refused us


class ClientSession:
    """One connection's worth of conversation, driven by the daemon."""

    def __init__(
        self,
        replica: Replica,
        token: str,
        *,
        batch_size: int = 1000,
        window: int = 4,
        snapshot_page: int = 10_000,
    ) -> None:
        self.replica = replica
        self.token = token
        self.batch_size = batch_size
        self.window = window
        self.snapshot_page = snapshot_page
        self.phase = Phase.HELLO
        self.in_flight: dict[int, int] = {}
        """batch number -> outbox position of its last op."""
        self.sent_upto = 0
        self.next_batch = 1
        self.error: Error | None = None
        self.snapshot_rows = 0
        self.snapshot_head = 0
        self.asked_ahead: SnapshotRequest | None = None
        """The next snapshot page, asked for before this page was stored."""

    def start(self, now_ms: int = 0) -> list[ClientMessage]:
        """The first message of the connection, at the device's ``now_ms``."""
        r = self.replica
        return [
            Hello(
                device=r.actor.device,
                site=r.actor.site,
                token=self.token,
                schema_version=r.schema.version,
                cursor=r.cursor,
                mark=r.mark,
                acked=r.store.get_state("acked") or "",
                wall_ms=now_ms,
                reads_replaced=True,
            )
        ]

    @property
    def idle(self) -> bool:
        """Caught up, nothing in flight and nothing left to send."""
        return (
            self.phase is Phase.READY
            and not self.in_flight
            and not self.replica.store.outbox(self.sent_upto, 1)
        )

    def ahead(self, msg: ServerMessage) -> list[ClientMessage]:
        """What to send as soon as ``msg`` arrives, before it is stored: the
        request for the snapshot page after this one, which depends only on
        this page's last row. HQ then reads, encodes and sends that page while
        this one is being stored, instead of after. Should storing fail, the
        connection ends and the next one starts again after the last page
        stored, so an early page is never applied out of turn."""
        if (isinstance(msg, SnapshotPage) and msg.rows and not msg.done
                and self.phase is Phase.SNAPSHOT):
            entity, key = msg.last_key()
            self.asked_ahead = SnapshotRequest(after_entity=entity, after_key=key,
                                               at=msg.at, limit=self.snapshot_page)
            return [self.asked_ahead]
        return []

    def receive(self, msg: ServerMessage, now_ms: int,
                blobs: Sequence[bytes | msgspec.Raw] | None = None) -> list[ClientMessage]:
        """Handle one server message; return what to send next. ``blobs``: the
        rows of a SnapshotPage as received (``messages.snapshot_blobs``)."""
        r = self.replica
        match msg:
            case Welcome() as w:
                if w.server_ms:
                    r.note_hq_clock(w.server_ms, now_ms)
                if w.snapshot_required and r.store.get_state("bootstrapped") != "1":
                    self.phase = Phase.SNAPSHOT
                    self.snapshot_head = w.head
                    return [self._snapshot_request()]
                self.phase = Phase.CATCHUP
                return [Pull(r.cursor)]
            case SnapshotPage(rows=rows, at=at, done=done):
                r.on_rows(rows, now_ms, snapshot=True, blobs=blobs)
                self.snapshot_rows += len(rows)
                if rows:
                    r.store.set_state("snapshot_after", f"{rows[-1].entity} {rows[-1].key}")
                r.store.set_state("snapshot_at", str(at))
                early, self.asked_ahead = self.asked_ahead, None
                if not done:
                    request = self._snapshot_request()
                    return [] if request == early else [request]  # asked for already?
                if at > r.cursor:
                    r.advance(at, msg.mark)
                r.store.set_state("bootstrapped", "1")
                r.store.snapshot_done()
                self.phase = Phase.CATCHUP
                return [Pull(at)]
            case Changes(changes=changes, cursor=cursor, more=more, since=since):
                r.on_rows([c.row for c in changes], now_ms)  # newer versions only: always safe
                if since > r.cursor:
                    return [Pull(r.cursor)]  # a gap: ask again from where we are
                if cursor > r.cursor:
                    r.advance(cursor, msg.mark)
                if more:
                    return [Pull(r.cursor)] if not msg.live else []
                if self.phase is Phase.CATCHUP:
                    self.phase = Phase.READY
                    return list(self.pushes())
                return []
            case Acks(batch=batch, acks=acks):
                for ack in acks:
                    r.on_ack(ack, now_ms)
                if acks:
                    r.store.set_state("acked", acks[-1].op_id)
                self.in_flight.pop(batch, None)
                return list(self.pushes())
            case Error() as err:
                self.error = err
                if err.fatal:
                    self.phase = Phase.CLOSED
                return []
        return []

    def pushes(self) -> list[Push]:
        """Batches of pending ops to send now, keeping at most ``window`` in flight."""
        if self.phase is not Phase.READY:
            return []
        out: list[Push] = []
        while len(self.in_flight) < self.window:
            store = self.replica.store
            pending = store.outbox(self.sent_upto, self.batch_size)
            if not pending:
                break
            while pending[-1][1].group:  # never split a business transaction
                more = store.outbox(pending[-1][0], 1)
                if not more or more[0][1].group != pending[-1][1].group:
                    break
                pending.extend(more)
            batch = self.next_batch
            self.next_batch += 1
            self.sent_upto = pending[-1][0]
            self.in_flight[batch] = self.sent_upto
            out.append(Push(batch=batch, ops=[op for _, op in pending]))
        return out

    def _snapshot_request(self) -> SnapshotRequest:
        store = self.replica.store
        after = (store.get_state("snapshot_after") or " ").split(" ", 1)
        at = store.get_state("snapshot_at")
        return SnapshotRequest(
            after_entity=after[0],
            after_key=after[1],
            at=int(at) if at else -1,
            limit=self.snapshot_page,
        )
