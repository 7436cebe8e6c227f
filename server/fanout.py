"""Live fan-out: wake every connected session when new changes are committed.

In one process, a commit calls ``Hub.notify``. With PostgreSQL, every write
transaction that changed rows also runs ``pg_notify`` (delivered at commit),
and each server process LISTENs, so sessions connected to another process
wake up too: several servers share one database with no extra broker.
On SQLite, which has no NOTIFY, the server polls the head of the change
sequence once a second for commits made outside it (``branchline user add``,
a script).

The same LISTEN connection hears ``CONNECTIONS`` too: a device's Hello
accepted by another process, whose older connection here must end
(``server.takeover``); the hub hands each one to ``on_connection``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import psycopg

from sync.messages import Change, Changes

from .db_limits import CONNECT_TIMEOUT, KEEPALIVE
from .frames import fit

CHANNEL = "branchline_changes"
CONNECTIONS = "branchline_connections"
"""Channel of the devices' accepted Hellos (payload: ``takeover.Claim``)."""
log = logging.getLogger("branchline.fanout")

HEARTBEAT = 10.0
"""Seconds without a notification after which the LISTEN connection is asked
``SELECT 1``: a link that died silently (a half-open TCP connection, a hung
backend) would otherwise go unnoticed for good, and every notification with it."""
HEARTBEAT_TIMEOUT = 5.0
"""Seconds ``SELECT 1`` may take before the LISTEN connection is given up
(psycopg then tries to cancel the query, up to 10 s more, and closes it)."""
RETRY = 1.0
"""Seconds between attempts to LISTEN again."""
LISTEN_CONNECT: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **KEEPALIVE}
"""libpq settings of the LISTEN connection, as the engine's: it is idle most of
the time, so TCP keepalives notice a peer gone without a word (within 25 s)."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _seq(change: Change) -> int:
    return change.seq


class Hub:
    """Wakes subscribers and keeps the changes this process committed recently,
    so each connected session can take its share without reading the database.

    A session whose cursor is not right before the buffered run (it is behind,
    or another server process committed in between) reads the database instead.
    """

    def __init__(self, keep: int = 4096) -> None:
        self._events: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.keep = keep
        self.changes: list[Change] = []
        self.sites: list[frozenset[str] | None] = []
        self.external = 0
        """Bumped when another process committed: sessions must read the database."""
        self.on_connection: Callable[[str], None] | None = None
        """Called (on the event loop) with each notification's payload on
        ``CONNECTIONS``."""
        self._frames: dict[tuple[object, ...], bytes] = {}
        """Encoded live Changes of the latest publish, shared by the sessions that
        are sent the same one (all those at the same cursor with the same view)."""

    def subscribe(self) -> asyncio.Event:
        self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        self._events.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._events.discard(event)

    @property
    def connected(self) -> int:
        return len(self._events)

    def notify(self) -> None:
        """Wake every subscriber (call from the event loop)."""
        for event in self._events:
            event.set()

    def publish(self, committed: list[tuple[Change, frozenset[str] | None]]) -> None:
        """Add freshly committed changes (in seq order) and wake every subscriber."""
        if committed and (not self.changes or committed[0][0].seq > self.changes[-1].seq):
            # the usual case: this commit follows the last one published
            self.changes.extend(change for change, _ in committed)
            self.sites.extend(sites for _, sites in committed)
        else:  # a commit that was published late (another writer got in first)
            for change, sites in committed:
                at = bisect.bisect(self.changes, change.seq, key=_seq)
                self.changes.insert(at, change)
                self.sites.insert(at, sites)
        if len(self.changes) > self.keep:
            del self.changes[: -self.keep], self.sites[: -self.keep]
        self._frames.clear()
        self.notify()

    def frame(self, msg: Changes) -> bytes:
        """The frame of a live ``msg`` served from this buffer, encoded once for
        every session it goes to."""
        key = (msg.since, msg.cursor, msg.more, msg.live, *(c.seq for c in msg.changes))
        data = self._frames.get(key)
        if data is None:
            data = self._frames[key] = fit(msg)[0]
        return data

    def publish_threadsafe(self, committed: list[tuple[Change, frozenset[str] | None]]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.publish, committed)

    def run_after(self, cursor: int) -> tuple[list[Change], list[frozenset[str] | None]]:
        """The buffered changes after ``cursor``."""
        at = bisect.bisect(self.changes, cursor, key=_seq)
        return self.changes[at:], self.sites[at:]

    def notify_external(self) -> None:
        self.external += 1
        self.notify()

    async def listen_postgres(self, dsn: str) -> None:
        """LISTEN for commits made by other server processes; reconnects on failure.

        Notifications sent while this process was not listening are lost, so each
        time LISTEN is (re)established every session reads the database once: a
        commit made by another process during the gap reaches its devices now,
        not at the next unrelated commit. A failure is logged once per outage."""
        down_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True,
                                                             **LISTEN_CONNECT)
                async with conn:
                    await conn.execute(f"LISTEN {CONNECTIONS}")
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if down_since is not None:
                        log.warning("LISTEN %s restored after %.1f s; sessions read the "
                                    "database for what they missed", CHANNEL,
                                    loop.time() - down_since)
                        down_since = None
                    self.notify_external()  # whatever was committed while not listening
                    await self._listen(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the listener must outlive a database restart
                if down_since is None:
                    down_since = loop.time()
                    log.warning("LISTEN %s lost (%s); retrying every %g s, live changes "
                                "from other server processes wait until it is back",
                                CHANNEL, _one_line(exc), RETRY)
                else:
                    log.debug("LISTEN %s still failing (%s)", CHANNEL, _one_line(exc))
            await asyncio.sleep(RETRY)

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Wake sessions at each notification of a commit, hand those of a
        connection to ``on_connection``; ``SELECT 1`` after ``HEARTBEAT``
        seconds of silence, raising when the connection does not answer."""
        while True:
            async for note in conn.notifies(timeout=HEARTBEAT):
                if note.channel != CONNECTIONS:
                    self.notify_external()
                elif self.on_connection is not None:
                    try:
                        self.on_connection(note.payload)
                    except Exception:  # one bad notice must not cost the listener
                        log.exception("notice on %s not handled: %r", CONNECTIONS,
                                      note.payload[:200])
            try:
                async with asyncio.timeout(HEARTBEAT_TIMEOUT):
                    await conn.execute("SELECT 1")
            except TimeoutError:
                raise ConnectionError(f"no answer to SELECT 1 within "
                                      f"{HEARTBEAT_TIMEOUT:g} s") from None

    def start_postgres(self, dsn: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self.listen_postgres(dsn))

    async def watch_head(self, read_head: Callable[[], int], interval: float) -> None:
        """Wake sessions when the database head passes what this process
        committed: another process wrote. A commit of ours not yet published
        may look external too; sessions then read the database once, harmlessly."""
        known: int | None = None
        while True:
            try:
                head = await anyio.to_thread.run_sync(read_head)
            except Exception as exc:  # a locked or busy database: try again later
                log.warning("reading the change head failed (%s)", exc)
                head = known or 0
            ours = self.changes[-1].seq if self.changes else 0
            if known is not None and head > max(known, ours):
                self.notify_external()
            known = max(known or 0, head)
            await asyncio.sleep(interval)

    def start_polling(self, read_head: Callable[[], int], interval: float = 1.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self.watch_head(read_head, interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
