"""Live fan-out: wake every connected session when new changes are committed.

In one process, a commit calls ``Hub.notify``. With PostgreSQL, every write
transaction that changed rows also runs ``pg_notify`` (delivered at commit),
and each server process LISTENs, so sessions connected to another process
wake up too: several servers share one database with no extra broker.
On SQLite, which has no NOTIFY, the server polls the head of the change
sequence once a second for commits made outside it (``branchline user add``,
a script).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable

import anyio.to_thread
import psycopg

from sync.messages import Change, Changes

from .frames import fit

CHANNEL = "branchline_changes"
log = logging.getLogger("branchline.fanout")


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
        """LISTEN for commits made by other server processes; reconnects on failure."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        self.notify_external()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the listener must outlive a database restart
                log.warning("LISTEN %s failed (%s); retrying in 1 s", CHANNEL, exc)
                await asyncio.sleep(1)

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
