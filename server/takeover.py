"""One live sync connection per device: the newest takes over.

A till's disk image cloned onto a second till, a daemon started on two
machines, a half-dead TCP connection HQ has not noticed while the till
reconnects: each puts two connections of one device on ``/sync``. Two
sessions of one device would interleave pushes from one clock and one outbox
(HQ's restamp order, its dedupe and the edge's rebase assume one stream per
device), so HQ serves only the newest: a till reconnecting after a network
blip needs exactly that, its old connection may be half dead.

Each Hello HQ accepts takes its device's next *connection generation*
(``devices.conn_gen``, with the address it came from) in one short write
(``claim``). On PostgreSQL the same transaction notifies ``CONNECTIONS``
(delivered at commit) and every server process ends its connection of that
device of an older generation (``Links.newer``); a connection of the same
process is taken over at once (``Links.register``). The token watch reads the
generation with the tokens every few seconds (``sync_ws.TokenWatch``), so a
notice lost while LISTEN reconnects, or a second server process on SQLite
(no NOTIFY), still ends the older connection within that time. A push reads
and writes nothing more for it.

The older connection finishes the message in hand (a push commits and its
acks go out), then gets an ``Error`` (``replaced``) and close code 4410
(``sync_ws``). Each take-over is logged as a warning and kept a week
(``device_takeovers``) for the IT page: a device taken over again and again
within an hour is connected from two places.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy import Connection, delete, func, insert, select, update

from .devices import when
from .fanout import CONNECTIONS
from .store import Database
from .tables import TAKEOVERS_TABLE

log = logging.getLogger("branchline.sync")

STEP_DOWN_WAIT = 5.0
"""Seconds a new connection of this process waits for the one it takes over
from to finish the message in hand before it is welcomed all the same (a
half-dead link may hold the answer's send that long)."""
KEEP_MS = 7 * 86_400_000
"""How long a take-over is kept for the IT page."""
HOUR_MS = 3_600_000
TWO_PLACES = 3
"""Take-overs of one device within an hour at which the IT page says it is
connected from two places (one is a till reconnecting over a link HQ had not
seen die; a cloned till and its twin take turns every few minutes)."""


@dataclass(frozen=True)
class Claim:
    """A Hello HQ accepted: its device, generation, address and time."""

    device: str
    gen: int
    peer: str
    ms: int

    def payload(self) -> str:
        """The claim as the notice on ``CONNECTIONS`` carries it."""
        return json.dumps([self.device, self.gen, self.peer, self.ms])

    @classmethod
    def parse(cls, payload: str) -> Claim:
        device, gen, peer, ms = json.loads(payload)
        return cls(str(device), int(gen), str(peer), int(ms))

    def reason(self) -> str:
        """What the connection it takes over from is told (the close reason
        keeps the first 120 characters: who, from where)."""
        return (f"another connection of device {self.device} took over from {self.peer} at "
                f"{when(self.ms)}: HQ serves one connection per device, the newest. If this "
                "device did not just reconnect, another machine uses its identity (a cloned "
                "till?)")


class Link(Protocol):
    """A connection of this process, as ``Links`` sees it."""

    peer: str
    claim: Claim | None

    def step_down(self, by: Claim) -> Coroutine[Any, Any, None]:
        """Finish the message in hand and handle nothing more (then return),
        and close saying ``by`` took over."""
        ...


def claim(db: Database, device: str, peer: str) -> Claim | None:
    """Take ``device``'s next connection generation for a Hello from
    ``peer``; on PostgreSQL notify every server process of it (at commit).
    None if the device is gone."""
    devices = db.t["devices"]
    now = int(time.time() * 1000)
    with db.engine.begin() as conn:
        gen = conn.execute(
            update(devices).where(devices.c.device == device)
            .values(conn_gen=func.coalesce(devices.c.conn_gen, 0) + 1, conn_peer=peer,
                    conn_ms=now)
            .returning(devices.c.conn_gen)).scalar_one_or_none()
        if gen is None:
            return None
        made = Claim(device, int(gen), peer, now)
        if not db.is_sqlite:
            conn.execute(select(func.pg_notify(CONNECTIONS, made.payload())))
    return made


def note_takeover(db: Database, old_peer: str, by: Claim) -> None:
    """Keep a take-over for the IT page; forget the device's older than ``KEEP_MS``."""
    table = db.t[TAKEOVERS_TABLE]
    with db.engine.begin() as conn:
        conn.execute(delete(table).where(table.c.device == by.device,
                                         table.c.at_ms < by.ms - KEEP_MS))
        conn.execute(insert(table).values(device=by.device, at_ms=by.ms, old_peer=old_peer,
                                          new_peer=by.peer))


@dataclass(frozen=True)
class Takeovers:
    """A device's take-overs within the last hour, for the IT page."""

    count: int
    last_ms: int
    old_peer: str
    new_peer: str

    def __str__(self) -> str:
        places = "connected from two places: " if self.count >= TWO_PLACES else ""
        return (f"{places}{self.count} take-over{'s' if self.count > 1 else ''} in the last "
                f"hour (latest {when(self.last_ms)}: {self.new_peer} took over from "
                f"{self.old_peer})")


def recent_takeovers(db: Database, conn: Connection | None = None,
                     now_ms: int | None = None) -> dict[str, Takeovers]:
    """Each device taken over within the last hour: how often, the latest."""
    table = db.t[TAKEOVERS_TABLE]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    found: dict[str, Takeovers] = {}
    with db.reading(conn) as read:
        for row in read.execute(select(table).where(table.c.at_ms >= now - HOUR_MS)
                                .order_by(table.c.at_ms, table.c.id)):
            count = found[row.device].count + 1 if row.device in found else 1
            found[row.device] = Takeovers(count, row.at_ms, row.old_peer, row.new_peer)
    return found


class Links:
    """The live connection of each device on this server process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.live: dict[str, Link] = {}
        self.latest: dict[str, Claim] = {}
        """The newest claim heard of per device (a notice may come before
        the connection it outdates is registered)."""
        self._retiring: set[asyncio.Task[None]] = set()

    async def register(self, link: Link, made: Claim) -> Claim | None:
        """Serve ``link`` as its device's connection: the one it replaces
        finishes its message and closes first (waiting ``STEP_DOWN_WAIT`` at
        most). Returns the newer claim when ``link`` is outdated already."""
        newest = self.latest.get(made.device)
        if newest is not None and newest.gen > made.gen:
            return newest
        self.latest[made.device] = made
        link.claim = made
        old = self.live.get(made.device)
        self.live[made.device] = link
        if old is not None and old is not link:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._retire(old, made)),
                                       STEP_DOWN_WAIT)
        return None

    def unregister(self, link: Link) -> None:
        if link.claim is not None and self.live.get(link.claim.device) is link:
            del self.live[link.claim.device]

    def notice(self, payload: str) -> None:
        """A Hello accepted by some server process (``CONNECTIONS``)."""
        self.newer(Claim.parse(payload))

    def newer(self, made: Claim) -> None:
        """End this process's connection of ``made.device`` if it is older."""
        newest = self.latest.get(made.device)
        if newest is None or made.gen > newest.gen:
            self.latest[made.device] = made
        old = self.live.get(made.device)
        if old is not None and old.claim is not None and old.claim.gen < made.gen:
            del self.live[made.device]
            self._retire(old, made)

    def _retire(self, old: Link, by: Claim) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._step_down(old, by))
        self._retiring.add(task)  # held until done: the loop keeps weak references only
        task.add_done_callback(self._retiring.discard)
        return task

    async def _step_down(self, old: Link, by: Claim) -> None:
        log.warning("device %s: the connection from %s took over from the one from %s",
                    by.device, by.peer, old.peer)
        await old.step_down(by)
        try:
            await anyio.to_thread.run_sync(note_takeover, self.db, old.peer, by)
        except Exception:
            log.exception("could not keep the take-over of device %s", by.device)
