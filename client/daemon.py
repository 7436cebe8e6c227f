"""The sync daemon: moves frames between a websocket and ``sync.client.ClientSession``.

All protocol decisions live in ``sync/``; this module connects, sends what the
session says, applies each server message inside ONE local transaction, and
notices ops queued by other processes sharing the database file (a till's CLI
while the daemon runs) within ``LOCAL_POLL_S``.

``sync_once`` connects, bootstraps or catches up, pushes the outbox until
every op is acknowledged, and returns. ``run_daemon`` stays connected until
told to stop and reconnects with exponential backoff and full jitter (reset by
every Welcome). A refusal that retrying cannot cure (unknown or revoked token,
wrong site, unsupported schema) raises ``Refused`` instead of hammering HQ.
When HQ closes the connection because another connection of this device took
over (close 4410: HQ serves one per device), the daemon warns that another
machine may use this till's identity (a cloned till) and waits minutes, not
seconds, before connecting again (``TAKEN_OVER_S``), so two tills sharing one
identity do not take the device from each other in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import random
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from sync.client import ClientSession
from sync.messages import (
    MAX_MESSAGE_BYTES,
    Acks,
    Changes,
    ClientMessage,
    Error,
    ErrorCode,
    ProtocolError,
    SnapshotPage,
    Status,
    Welcome,
    decode_server,
    encode,
    snapshot_blobs,
)

from .disk import disk_trouble
from .edge import Edge, clock_warning, now_ms
from .errors import (
    AlreadyRunning,
    LocalDatabaseError,
    NotConfigured,
    Refused,
    TakenOver,
    Unreachable,
)
from .progress import Progress
from .store import (
    KEEP_SENT_DAYS,
    LAST_SYNC_STATE,
    REFUSED_STATE,
    SNAPSHOT_ROWS_STATE,
    TAKEN_OVER_STATE,
)

log = logging.getLogger("branchline.daemon")

FATAL_CLOSE = {4401: ErrorCode.AUTH, 4403: ErrorCode.SCOPE, 4412: ErrorCode.DIVERGED,
               4426: ErrorCode.SCHEMA}
"""Close codes after which reconnecting cannot help: HQ must act first."""
FATAL_ERRORS = frozenset(FATAL_CLOSE.values())
TAKEN_OVER_CLOSE = 4410
"""HQ's close code when another connection of this device took over."""
TAKEN_OVER_S = 300.0
"""After a take-over the daemon waits this long, and up to twice as long
(jittered), before connecting again: a till and its clone then take turns
every few minutes instead of fighting every second, and HQ's IT page shows
the device connected from two places. (A till that reconnects after a
network blip is the one taking over; it does not wait.)"""
CLONE_WARNING = ("another device is using this till's identity: check for a cloned till "
                 "(the same device id and token on two machines)")
STABLE_SESSION_S = 30.0
"""A connection that lasted this long resets the reconnect backoff; one that
failed sooner (even after HQ's Welcome) counts as another failed attempt."""
FORGET_SENT_S = 3600.0
"""How often a long connection forgets the acked ops kept long enough."""
LOCAL_POLL_S = 0.05
"""How often the outbox is checked for ops queued by other processes."""
CONNECT_TIMEOUT_S = 5.0
IN_SYNC_MARK_S = 10.0
"""While connected, caught up and with nothing left to send,
``_state.last_sync_ms`` is refreshed this often even when nothing happens
(live changes would have arrived)."""


NOTE_BYTES = 512
"""Size of the daemon's side file (``DaemonLock``): written whole at start, so
the note of why it stopped overwrites it in place, with no new disk block
(the disk may be full by then)."""


def lock_path(db: str | Path) -> Path:
    """The daemon's side file next to the database: locked while it runs,
    and saying why it stopped."""
    return Path(f"{db}.daemon")


class DaemonLock:
    """Held by a daemon for its life: an exclusive ``flock`` on ``<db>.daemon``
    (released by the kernel however the process ends), and in the file one
    line saying "running" or why the daemon stopped. Only one daemon runs
    per database file (``AlreadyRunning``). ``daemon_state`` reads it; the
    database itself may be unwritable (a full disk is one reason the daemon
    stops), so the note lives here, written best-effort."""

    def __init__(self, db: str | Path) -> None:
        self.path = lock_path(db)
        self.fd: int | None = None

    def __enter__(self) -> DaemonLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # an unwritable folder: the database fails next, and says why
            log.warning("cannot make %s (%s); `status` will not know a daemon runs",
                        self.path, exc)
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            running = daemon_state(self.path.with_suffix(""))[1]
            raise AlreadyRunning(f"a daemon already syncs {self.path.with_suffix('')}"
                                 f"{f' ({running})' if running else ''}") from None
        self.fd = fd
        self.note(f"running pid {os.getpid()} since {now_ms()}")
        return self

    def note(self, text: str) -> None:
        """Say what the daemon is doing, or why it stopped (best-effort)."""
        if self.fd is None:
            return
        data = " ".join(text.split()).encode()[: NOTE_BYTES - 1]
        try:
            os.pwrite(self.fd, data + b"\n" + b" " * (NOTE_BYTES - 1 - len(data)), 0)
            os.fsync(self.fd)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def stopped(self, why: str) -> None:
        self.note(f"stopped {now_ms()} {why}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def daemon_state(db: str | Path) -> tuple[bool, str]:
    """(whether a daemon runs for ``db`` now, its side file's note: "running
    pid N since MS", or "stopped MS WHY"; "" if no daemon ever ran). Reads
    only; works on a read-only disk."""
    try:
        fd = os.open(lock_path(db), os.O_RDONLY)
    except OSError:
        return False, ""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            running = True
        else:
            running = False
            fcntl.flock(fd, fcntl.LOCK_UN)
        note = os.pread(fd, NOTE_BYTES, 0).decode(errors="replace").strip()
    finally:
        os.close(fd)
    return running, note


@dataclass(frozen=True)
class SyncResult:
    pushed: int
    """Ops acknowledged by HQ during this sync (accepted, merged or rejected)."""
    rejected: int
    """Of those, ops HQ rejected (see ``Edge.rejections``)."""
    snapshot_rows: int
    """Rows received while bootstrapping."""
    received_rows: int
    """Rows received in all: snapshot pages and changes."""
    pending: int
    """Ops still in the outbox at the end."""
    cursor: int
    seconds: float


def backoff(attempt: int, base: float, cap: float,
            rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt))."""
    return rand() * min(cap, base * 2.0 ** min(attempt, 32))


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while one frame is decoded and stored.

    A 4 MiB snapshot page decodes into some 100,000 containers (rows, their
    fields and clocks) that all stay alive until the page is stored, so every
    collection the allocations trigger walks them again for nothing: it cost
    40% of a bootstrap. Nothing here makes cycles, and reference counting
    frees the page as usual; the collector resumes when the frame is done.
    (Synchronous code only: no other task runs in between.)"""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Link:
    """One connection: its socket, its session, and what went over it."""

    def __init__(self, edge: Edge, ws: ClientConnection, progress: Progress | None,
                 on_welcome: Callable[[], None] | None) -> None:
        self.edge = edge
        self.ws = ws
        self.session = ClientSession(edge.replica, edge.setting("token"))
        self.progress = progress
        self.on_welcome = on_welcome
        self.acked = self.rejected = self.snapshot_rows = self.received_rows = 0
        self.stored_rows = 0
        """Snapshot rows stored in all, by this connection and those before it."""
        self.head = 0
        """HQ's head at its Welcome: no scope holds more rows than HQ made changes,
        so it bounds the snapshot's size (the protocol sends no row count)."""

    async def send(self, messages: Sequence[ClientMessage]) -> None:
        for msg in messages:
            await self.ws.send(encode(msg))

    async def run(self, until_idle: bool, stop: asyncio.Event | None) -> None:
        """Talk until idle (``until_idle``), until ``stop`` is set, or until the
        connection fails."""
        loop = asyncio.get_running_loop()
        store = self.edge.store
        await self.send(self.session.start(now_ms()))
        seq = store.outbox_seq()
        next_poll = loop.time() + LOCAL_POLL_S
        next_mark = loop.time() + IN_SYNC_MARK_S
        next_forget = loop.time() + FORGET_SENT_S
        recv = asyncio.ensure_future(self.ws.recv())
        halt = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            while True:
                waiting = {recv} if halt is None else {recv, halt}
                done, _ = await asyncio.wait(waiting, timeout=max(0.0, next_poll - loop.time()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if halt is not None and halt in done:
                    return
                if recv in done:
                    frame = recv.result()
                    recv = asyncio.ensure_future(self.ws.recv())
                    await self.handle(frame)
                if loop.time() >= next_poll:
                    next_poll = loop.time() + LOCAL_POLL_S
                    if (latest := store.outbox_seq()) != seq:  # another process queued ops
                        seq = latest
                        await self.send(self.session.pushes())
                if loop.time() >= next_mark:
                    next_mark = loop.time() + IN_SYNC_MARK_S
                    if self.session.idle:
                        with self.edge.transaction():
                            store.set_state(LAST_SYNC_STATE, str(now_ms()))
                if loop.time() >= next_forget:
                    next_forget = loop.time() + FORGET_SENT_S
                    forget_sent(self.edge)
                if until_idle and self.session.idle:
                    return
        finally:
            for task in (recv, halt):
                if task is not None and not task.done():
                    task.cancel()
            if recv.done() and not recv.cancelled():
                recv.exception()  # retrieved: the caller handles a failure through recv.result()

    async def handle(self, frame: str | bytes) -> None:
        """Apply one server message in one local transaction, then answer it."""
        if not isinstance(frame, bytes):
            raise Unreachable("the server sent a text frame; the protocol is binary msgpack")
        with no_cycle_collection():
            msg = decode_server(frame)
        await self.send(self.session.ahead(msg))  # HQ prepares the next page meanwhile
        with no_cycle_collection():
            page = isinstance(msg, SnapshotPage)
            blobs = snapshot_blobs(frame) if page else None
            now = now_ms()
            # A snapshot page holds only what HQ can send again, and its progress
            # marker commits with it: it need not wait for the disk sync (see
            # ``SqliteLocalStore.resendable``; no await until FULL is back).
            with (self.edge.store.resendable() if page else contextlib.nullcontext()), \
                    self.edge.transaction() as store:
                if page:  # counted with the page it counts, for `status` and the progress bar
                    assert isinstance(msg, SnapshotPage)
                    before = (int(store.get_state(SNAPSHOT_ROWS_STATE) or 0)
                              if store.get_state("snapshot_after") else 0)
                    self.stored_rows = before + len(msg.rows)
                    store.set_state(SNAPSHOT_ROWS_STATE, str(self.stored_rows))
                replies = self.session.receive(msg, now, blobs)
                if self.session.idle:  # all sent and answered, HQ's changes all in
                    store.set_state(LAST_SYNC_STATE, str(now))
        self.observe(msg)
        await self.send(replies)

    def observe(self, msg: object) -> None:
        match msg:
            case Welcome(head=head):
                self.head = head
                log.info("connected to HQ (head %d, our cursor %d)", head,
                         self.edge.replica.cursor)
                if (clock := clock_warning(self.edge.replica.hq_ahead)) is not None:
                    log.warning("%s", clock)
                if self.edge.store.get_state(REFUSED_STATE):
                    with self.edge.transaction() as store:  # HQ takes this device again
                        store.set_state(REFUSED_STATE, "")
                if self.on_welcome is not None:
                    self.on_welcome()
            case SnapshotPage(rows=rows, done=done):
                self.snapshot_rows += len(rows)
                self.received_rows += len(rows)
                if self.progress is not None:
                    done_rows = self.stored_rows
                    most = done_rows if done else self.head if self.head >= done_rows else 0
                    self.progress("bootstrap", done_rows, most)
            case Changes(changes=changes):
                self.received_rows += len(changes)
            case Acks(acks=acks):
                self.acked += len(acks)
                self.rejected += sum(a.status is Status.REJECTED for a in acks)
                if self.progress is not None:
                    left = self.edge.store.pending_count()
                    self.progress("push", self.acked, self.acked + left)
            case Error(code=code, message=message, fatal=fatal):
                if code is ErrorCode.REPLACED:
                    raise TakenOver(f"HQ closed this connection: {message}")
                if code in FATAL_ERRORS:
                    raise Refused(f"HQ refused this device ({code}): {message}", code)
                if fatal:
                    raise Unreachable(f"HQ ended the connection ({code}): {message}")
                log.warning("HQ reported an error (%s): %s", code, message)

    def closed(self, exc: ConnectionClosed) -> Refused | Unreachable:
        """What a closed connection means for this device."""
        rcvd = exc.rcvd
        if rcvd is not None and rcvd.code == TAKEN_OVER_CLOSE:
            error = self.session.error
            why = error.message if error is not None else rcvd.reason
            return TakenOver(f"HQ closed this connection (close {rcvd.code}): {why}")
        if rcvd is not None and rcvd.code in FATAL_CLOSE:
            kind = FATAL_CLOSE[rcvd.code]
            why = self.session.error.message if self.session.error else rcvd.reason
            return Refused(f"HQ refused this device (close {rcvd.code}, {kind}): {why}", kind)
        return Unreachable(f"connection to HQ lost: {exc}")

    def result(self, seconds: float) -> SyncResult:
        store = self.edge.store
        return SyncResult(pushed=self.acked, rejected=self.rejected,
                          snapshot_rows=self.snapshot_rows, received_rows=self.received_rows,
                          pending=store.pending_count(), cursor=self.edge.replica.cursor,
                          seconds=seconds)


def forget_sent(edge: Edge) -> None:
    """Forget the acked ops kept longer than ``KEEP_SENT_DAYS``: at each
    connection, and every ``FORGET_SENT_S`` of one that lasts."""
    with edge.transaction() as store:
        store.forget_sent(now_ms() + edge.replica.hq_ahead, KEEP_SENT_DAYS * 86_400_000)


async def _open(url: str, timeout: float = CONNECT_TIMEOUT_S) -> ClientConnection:
    try:
        return await connect(url, max_size=MAX_MESSAGE_BYTES, open_timeout=timeout,
                             compression=None, ping_interval=20, ping_timeout=20,
                             close_timeout=2)
    except InvalidURI as exc:
        raise NotConfigured(f"server URL {url!r} is not a ws:// or wss:// URL: {exc}; "
                            "run `branchline-edge init` again") from None
    except InvalidStatus as exc:
        raise Unreachable(f"{url} answered HTTP {exc.response.status_code} instead of "
                          "opening a websocket (is it the /sync URL of a Branchline server?)"
                          ) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise Unreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc


async def _sync(edge: Edge, url: str, *, until_idle: bool, stop: asyncio.Event | None,
                progress: Progress | None,
                on_welcome: Callable[[], None] | None = None) -> SyncResult:
    start = time.monotonic()
    edge.replica  # noqa: B018 -- fail early (NotConfigured) before touching the network
    forget_sent(edge)
    ws = await _open(url)
    link = _Link(edge, ws, progress, on_welcome)
    try:
        try:
            await link.run(until_idle, stop)
        except ConnectionClosed as exc:
            raise link.closed(exc) from exc
        except ProtocolError as exc:
            raise Unreachable(f"HQ sent a frame this device cannot read: {exc}") from exc
    except Refused as exc:  # kept for `status`: the till says so once the daemon has stopped
        with edge.transaction() as store:
            store.set_state(REFUSED_STATE, f"{now_ms()} {exc}")
        raise
    except TakenOver as exc:  # kept for `status`: IT looks there for the twin
        with edge.transaction() as store:
            store.set_state(TAKEN_OVER_STATE, f"{now_ms()} {exc}")
        raise
    finally:
        await ws.close()
    return link.result(time.monotonic() - start)


async def sync_once(edge: Edge, url: str | None = None, timeout: float = 300.0,
                    progress: Progress | None = None) -> SyncResult:
    """Connect, bootstrap or catch up, push the outbox until every op is
    acknowledged, disconnect. Raises ``Unreachable`` (no server, connection
    lost, not done within ``timeout`` s) or ``Refused``."""
    url = url or edge.setting("server")
    try:
        async with asyncio.timeout(timeout):
            return await _sync(edge, url, until_idle=True, stop=None, progress=progress)
    except TimeoutError:
        raise Unreachable(f"sync with {url} did not finish within {timeout:g} s") from None


async def run_daemon(edge: Edge, url: str | None = None, stop_event: asyncio.Event | None = None,
                     *, base_delay: float = 0.5, max_delay: float = 30.0,
                     taken_over_delay: float = TAKEN_OVER_S,
                     progress: Progress | None = None) -> None:
    """Stay connected and in sync until ``stop_event`` is set; reconnect with
    backoff when the link fails, after ``taken_over_delay`` s (to twice that)
    when another connection of this device took over. Raises ``Refused``
    when HQ refuses the device."""
    stop = stop_event if stop_event is not None else asyncio.Event()
    url = url or edge.setting("server")
    with DaemonLock(edge.path) as lock:
        try:
            await _keep_syncing(edge, url, stop, base_delay, max_delay, taken_over_delay,
                                progress)
        except LocalDatabaseError as exc:
            lock.stopped(f"local fault: {exc}")
            raise
        except Refused as exc:
            lock.stopped(f"refused by HQ: {exc}")
            raise
        except (Exception, asyncio.CancelledError, KeyboardInterrupt) as exc:
            lock.stopped(f"failed: {type(exc).__name__}: {exc}")
            raise
        lock.stopped("asked to stop")


async def _keep_syncing(edge: Edge, url: str, stop: asyncio.Event, base_delay: float,
                        max_delay: float, taken_over_delay: float,
                        progress: Progress | None) -> None:
    attempt = 0
    welcomed_at: float | None = None

    def welcomed() -> None:
        nonlocal welcomed_at
        welcomed_at = time.monotonic()

    while not stop.is_set():
        welcomed_at = None
        delay: float | None = None
        try:
            await _sync(edge, url, until_idle=False, stop=stop, progress=progress,
                        on_welcome=welcomed)
        except Refused as exc:
            log.error("%s; the daemon stops", exc)
            raise
        except TakenOver as exc:
            delay = taken_over_delay * (1.0 + random.random())
            log.warning("%s. Unless this till's connection had just dropped, %s; reconnecting "
                        "in %s rather than take the device back at once", exc, CLONE_WARNING,
                        _span(delay))
        except Unreachable as exc:
            log.warning("%s", exc)
        except sqlite3.OperationalError as exc:
            if not _transient(exc):  # read-only, full, corrupt: waiting will not mend it
                trouble = disk_trouble(edge.path)
                why = (f"{trouble} (SQLite: {exc})" if trouble
                       else f"local database {edge.path}: {exc}")
                log.error("%s; the daemon stops", why)
                raise LocalDatabaseError(why) from exc
            log.warning("local database: %s", exc)  # locked by another process too long
        if stop.is_set():
            return
        if welcomed_at is not None and time.monotonic() - welcomed_at >= STABLE_SESSION_S:
            attempt = 0
        if delay is None:
            delay = backoff(attempt, base_delay, max_delay)
            attempt += 1
            log.info("reconnecting in %.1f s", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


def _span(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _transient(exc: sqlite3.OperationalError) -> bool:
    """A local database error that passes by itself (another process held the
    file), as opposed to one that needs a person (read-only, disk full, corrupt)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


async def probe(url: str, timeout: float = 2.0) -> str | None:
    """None if a websocket to ``url`` opens within ``timeout`` s and HQ's
    ``/health`` does not say its database is down, else why not."""
    try:
        async with asyncio.timeout(timeout):
            ws = await _open(url, timeout)
            await ws.close()
    except (Unreachable, NotConfigured) as exc:
        return str(exc)
    except (TimeoutError, OSError, WebSocketException) as exc:
        return f"cannot reach {url}: {exc or type(exc).__name__}"
    return await asyncio.to_thread(_database_down, url, timeout)


HEALTH_WAIT_S = 4.0
"""HQ's /health answers within 3 s even when its database hangs."""


def _database_down(url: str, timeout: float) -> str | None:
    """Why HQ at ``url`` (its /sync websocket) cannot take this device's sales
    although it answers: its /health's 503 says what its database does. None
    when /health is fine, or says nothing (an older server, a proxy)."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme)
    if scheme is None:
        return None
    health = urllib.parse.urlunsplit((scheme, parts.netloc, "/health", "", ""))
    try:
        with urllib.request.urlopen(health, timeout=max(timeout, HEALTH_WAIT_S)):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return None
        try:
            database = json.loads(exc.read()).get("database")
        except (ValueError, AttributeError, OSError):
            database = None
        return f"HQ answers, but its database does not: {database or 'unavailable'}"
    except (OSError, ValueError):
        return None
