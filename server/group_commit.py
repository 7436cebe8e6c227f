"""Group commit of the pushes of every device connected to this process:
one write transaction, one run of the push automation and one COMMIT (one
fsync) for whatever pushes queued while the last one ran, answered only
after that commit; plus the tuning of the process that the write path
needs (the cycle collector, the GIL's switch interval)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import weakref

from sync.messages import Outgoing, Push
from sync.server import ServerSession

from .automation import after_push
from .clock import now_ms
from .fanout import Hub
from .store import Database

log = logging.getLogger("branchline.sync")

GROUP_OPS = 20_000
"""At most this many ops share one group-commit transaction."""

_Job = tuple[ServerSession, Push, asyncio.AbstractEventLoop, "asyncio.Future[list[Outgoing]]"]


class GroupCommit:
    """Group commit of concurrent pushes.

    Pushes that arrive while a write transaction runs wait in a queue; the next
    transaction applies all of them (each through its own session, in arrival
    order) with one run of the automation and one COMMIT, i.e. one fsync, and
    only then are their answers released. Should anything in a shared
    transaction fail, it is rolled back whole and each push is retried in a
    transaction of its own, so one bad push cannot sink the others.
    """

    def __init__(self, db: Database, hub: Hub) -> None:
        self.db, self.hub = db, hub
        self._queue: list[_Job] = []
        self._wakeup = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        """One writer thread for the life of the app, started by the first push
        (starting a thread per burst made the event loop wait for each start)."""

    async def push(self, session: ServerSession, msg: Push) -> list[Outgoing]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Outgoing]] = loop.create_future()
        with self._wakeup:
            self._queue.append((session, msg, loop, future))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="group-commit",
                                                daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return await future

    def _drain(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue:
                    self._wakeup.wait()
                jobs: list[_Job] = []
                taken = 0
                while self._queue and (not jobs or taken + len(self._queue[0][1].ops)
                                       <= GROUP_OPS):
                    jobs.append(self._queue.pop(0))
                    taken += len(jobs[-1][1].ops)
            try:
                self._run(jobs)
            except BaseException as exc:  # never leave a waiting push hanging
                log.exception("group commit failed")
                for job in jobs:
                    _resolve(job, None, exc if isinstance(exc, Exception)
                             else RuntimeError("group commit interrupted"))
                if not isinstance(exc, Exception):
                    raise  # the thread ends; the next push starts another

    def _run(self, jobs: list[_Job]) -> None:
        try:
            results = self._commit(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                _resolve(jobs[0], None, exc)
                return
            for job in jobs:  # retry alone: only the push that fails fails
                try:
                    result = self._commit([job])[0]
                except Exception as alone:
                    _resolve(job, None, alone)
                else:
                    _resolve(job, result, None)
            return
        for job, result in zip(jobs, results, strict=True):
            _resolve(job, result, None)

    def _commit(self, jobs: list[_Job]) -> list[list[Outgoing]]:
        with self.db.transaction(write=True) as store:
            now = now_ms()  # HQ's clock bounds the devices' stamps (hlc.Restamp)
            results = [session.handle(store, msg, now) for session, msg, _, _ in jobs]
            after_push(store)
        if store.published:  # committed: fan out first, then release the acks
            self.hub.publish_threadsafe(store.published)
        return results


def _resolve(job: _Job, result: list[Outgoing] | None, exc: Exception | None) -> None:
    _, _, loop, future = job

    def settle() -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            assert result is not None
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # that loop is gone: nobody waits
        loop.call_soon_threadsafe(settle)


_committers: weakref.WeakKeyDictionary[Hub, GroupCommit] = weakref.WeakKeyDictionary()
GC_THRESHOLD = (50_000, 20, 10)
"""Python's cycle collector, tuned for a server whose transactions keep tens of
thousands of objects alive (a group commit of 5,000 ops: their rows, outcomes,
acks, audit records): at the default 700 allocations it walked them again and
again, some 15% of the ingest's CPU. It still runs, every 50,000 allocations."""


SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it."""


def tune_gc() -> None:
    """Raise the collector's thresholds once per process and move what the
    process holds after start (modules, the app) out of its reach; shorten
    the GIL's switch interval."""
    if gc.get_threshold()[0] < GC_THRESHOLD[0]:
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)
        # The write thread lets go of the GIL at every row SQLite steps and then
        # queues for it behind the event loop for up to the switch interval
        # (5 ms by default); 0.5 ms gave the ingest some 6% more.
        sys.setswitchinterval(SWITCH_INTERVAL)


def committer(db: Database, hub: Hub) -> GroupCommit:
    """The group committer of this app (one per hub, i.e. per app and database)."""
    found = _committers.get(hub)
    if found is None or found.db is not db:
        tune_gc()
        found = _committers[hub] = GroupCommit(db, hub)
    return found
