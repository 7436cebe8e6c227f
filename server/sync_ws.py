"""The ``/sync`` websocket: moves frames between a socket, the database and a
``sync.server.ServerSession``. All protocol decisions live in ``sync/``.

Close codes (sent with an ``Error`` frame saying why, then the close):

====== =====================================================================
4400   malformed frame, or a first frame that is not a Hello
4401   unknown or revoked device token, or a token of another device
4403   the device claims a site other than its token's
4409   a message not allowed now (a second Hello)
4410   another connection of the same device took over (HQ serves one per device,
       the newest: ``server.takeover``); sent once the message in hand is answered
4413   a frame larger than ``sync.messages.MAX_MESSAGE_BYTES`` (4 MiB); frames over
       16 MiB are cut earlier by the web server itself (standard code 1009)
4426   protocol or schema version not supported: upgrade the device
1011   an unexpected server error on this connection (others are unaffected)
====== =====================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from schema import Schema
from sync.hlc import span
from sync.merge import Actor
from sync.messages import (
    ClientMessage,
    Error,
    ErrorCode,
    Hello,
    Outgoing,
    ProtocolError,
    Push,
    SnapshotPage,
    SnapshotRequest,
    StoredPage,
    decode_client,
    encode,
)
from sync.server import ServerSession, check_hello

from .clock import now_ms
from .db_health import DB_DOWN, short_reason
from .devices import (
    DeviceInfo,
    authenticate,
    authenticate_many,
    clock_to_note,
    note_clock,
    note_refusal,
)
from .fanout import Hub
from .frames import fit
from .group_commit import committer
from .store import Database, SqlServerStore
from .takeover import Claim, Links, claim

log = logging.getLogger("branchline.sync")
HELLO_TIMEOUT = 10.0
INBOX_FRAMES = 8
"""Frames read from a device ahead of their answers (``Connection.read``)."""
REAUTH_SECONDS = 5.0
"""How often the connected devices' tokens are checked again: a device revoked,
re-keyed or expired while connected is cut off (4401) within this time."""
CLOSE_CODES = {
    ErrorCode.BAD_MESSAGE: 4400,
    ErrorCode.AUTH: 4401,
    ErrorCode.SCOPE: 4403,
    ErrorCode.STATE: 4409,
    ErrorCode.REPLACED: 4410,
    ErrorCode.DIVERGED: 4412,
    ErrorCode.TOO_LARGE: 4413,
    ErrorCode.SCHEMA: 4426,
    ErrorCode.INTERNAL: 1011,
}
T = TypeVar("T")
Socket = WebSocket[Any, Any, Any]


def unavailable(exc: Exception) -> str:
    """What to tell a device (and IT's log) when HQ's database failed it."""
    return (f"HQ's database is unavailable ({short_reason(exc)}): what this device sent since HQ's "
            "last answer was not stored; the device keeps it and sends it again when it "
            "reconnects")


class TokenWatch:
    """Checks the token of every device connected to this app again every
    ``REAUTH_SECONDS``, all in one query (``authenticate_many``), and cuts off
    the connections whose token was revoked, replaced or expired meanwhile,
    and those of a device whose newer Hello another server process accepted
    (its generation, ``server.takeover``: the backstop of its notice).
    (Each connection checking its own token had cost a database read and a
    thread hop per device every few seconds: 400 a second with 2,000 tills.)"""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.watched: dict[Connection, str] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, conn: Connection) -> None:
        self.watched[conn] = conn.token
        loop = asyncio.get_running_loop()
        # one task, on the app's loop (a new one if the app was started again)
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())

    def unwatch(self, conn: Connection) -> None:
        self.watched.pop(conn, None)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REAUTH_SECONDS)
            if not self.watched:
                return  # the next connection starts another
            try:
                verdicts = await anyio.to_thread.run_sync(
                    authenticate_many, self.db, set(self.watched.values()))
            except Exception:
                log.exception("token check of %d devices failed; trying again",
                              len(self.watched))
                continue
            for conn, token in list(self.watched.items()):
                why = verdicts.get(token)
                if why is None:
                    continue
                if not isinstance(why, DeviceInfo):
                    self.watched.pop(conn, None)
                    conn.cut_off = asyncio.ensure_future(
                        conn.close_with(Error(ErrorCode.AUTH, why, True)))
                elif conn.claim is not None and why.conn_gen > conn.claim.gen:
                    # a newer Hello, on a process whose notice did not reach this one
                    self.watched.pop(conn, None)
                    conn.links.newer(Claim(why.device, why.conn_gen, why.conn_peer or "?",
                                           why.conn_ms or 0))


_watches: weakref.WeakKeyDictionary[Hub, TokenWatch] = weakref.WeakKeyDictionary()


def token_watch(db: Database, hub: Hub) -> TokenWatch:
    """The token watch of this app (one per hub, i.e. per app and database)."""
    found = _watches.get(hub)
    if found is None or found.db is not db:
        found = _watches[hub] = TokenWatch(db)
    return found


_links: weakref.WeakKeyDictionary[Hub, Links] = weakref.WeakKeyDictionary()


def links(db: Database, hub: Hub) -> Links:
    """The devices' live connections on this app (one registry per hub), told
    by the hub of the Hellos other server processes accept."""
    found = _links.get(hub)
    if found is None or found.db is not db:
        found = _links[hub] = Links(db)
        hub.on_connection = found.notice
    return found


def _peer(socket: Socket) -> str:
    """The address a connection comes from, as IT reads it ("?" if unknown)."""
    client = socket.client
    return client.host if client is not None and client.host else "?"


NEEDS_IT = frozenset({ErrorCode.DIVERGED, ErrorCode.SCHEMA, ErrorCode.SCOPE})
"""Refusals of an authenticated device that last until someone acts: logged
as warnings."""


class Closing(Exception):
    """End this connection with an Error frame and a close code."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


class Connection:
    """One device's socket, its session, and the two tasks that share it."""

    def __init__(self, socket: Socket, db: Database, schema: Schema, hub: Hub) -> None:
        self.socket = socket
        self.db = db
        self.schema = schema
        self.hub = hub
        self.session: ServerSession | None = None
        self.lock = asyncio.Lock()  # one message at a time touches the session
        self.device = "?"
        self.token = ""
        self.ahead: tuple[SnapshotRequest, asyncio.Future[list[Outgoing]]] | None = None
        self.committer = committer(db, hub)
        self.cut_off: asyncio.Future[None] | None = None
        """Set by the token watch when it ends this connection."""
        self.peer = _peer(socket)
        self.links = links(db, hub)
        self.claim: Claim | None = None
        """This connection's generation of its device (``server.takeover``)."""
        self.reads_replaced = False
        """The device decodes a take-over's Error (``Hello.reads_replaced``)."""
        self.ended = False
        """Set, under the lock, once HQ closes this connection: nothing more is handled."""
        self.closing: asyncio.Future[None] | None = None
        """HQ saying why and closing, once ``ended``."""

    async def in_db(self, write: bool, work: Callable[[SqlServerStore], T]) -> T:
        def run() -> T:
            with self.db.transaction(write=write) as store:
                result = work(store)
            if store.published:
                self.hub.publish_threadsafe(store.published)
            return result

        return await anyio.to_thread.run_sync(run)

    async def send(self, messages: list[Outgoing]) -> list[Outgoing]:
        """Send each message in a frame within the size cap; return what was sent
        (a snapshot page may have been cut short, see ``server.frames``)."""
        sent = []
        for msg in messages:
            frame, msg = fit(msg)
            await self.socket.send_bytes(frame)
            sent.append(msg)
        return sent

    async def receive(self) -> bytes:
        frame = await self.socket.receive_data("binary")
        if not isinstance(frame, bytes):
            raise Closing(Error(ErrorCode.BAD_MESSAGE, "frames must be binary msgpack", True))
        return frame

    async def handshake(self) -> None:
        try:
            frame = await asyncio.wait_for(self.receive(), HELLO_TIMEOUT)
        except TimeoutError:
            raise Closing(Error(ErrorCode.BAD_MESSAGE, "no Hello within 10 s", True)) from None
        hello = self.decode(frame)
        if not isinstance(hello, Hello):
            raise Closing(Error(ErrorCode.BAD_MESSAGE, "the first message must be a Hello", True))
        self.device, self.token = hello.device, hello.token
        self.reads_replaced = hello.reads_replaced
        who = await anyio.to_thread.run_sync(authenticate, self.db, hello.token)
        if not isinstance(who, DeviceInfo):
            raise Closing(Error(ErrorCode.AUTH, who, True))
        refused = check_hello(self.schema, hello, who.device, who.site)
        if refused is not None:
            await self.note_refusal(who, refused)
        session = ServerSession(self.schema, Actor(who.device, who.site), hello.cursor)
        welcome = await self.in_db(
            False, lambda s: session.greet(s, hello, now_ms()))
        if isinstance(welcome, Error):
            await self.note_refusal(who, welcome)
        if who.refused is not None:
            await self.note_refusal(who, None)  # served again: IT need not look
        if hello.wall_ms:
            await self.note_clock(who, hello.wall_ms - now_ms())
        made = await anyio.to_thread.run_sync(claim, self.db, who.device, self.peer)
        if made is None:
            raise Closing(Error(ErrorCode.AUTH, "unknown device token", True))
        newer = await self.links.register(self, made)
        if newer is not None:  # a newer Hello of this device came first
            raise Closing(Error(ErrorCode.REPLACED, newer.reason(), True))
        async with self.lock:
            if self.ended:  # taken over while the connection it replaced stepped down
                return
            self.session = session
            await self.send([welcome])

    async def note_refusal(self, who: DeviceInfo, error: Error | None) -> None:
        """Keep a refusal that lasts until someone acts for the IT page (None:
        the device is served again), then refuse with ``error`` if any. Should
        keeping it fail, the device is still answered."""
        if error is None or error.code in NEEDS_IT:
            try:
                await anyio.to_thread.run_sync(
                    note_refusal, self.db, who.device, None if error is None else error.message)
            except Exception:
                log.exception("could not note the refusal of device %s", who.device)
        if error is not None:
            raise Closing(error)

    async def note_clock(self, who: DeviceInfo, ahead_ms: int) -> None:
        """Keep for the IT page how far the device's clock is off, when that
        changed (``devices.clock_to_note``); should keeping it fail, the
        device is still served."""
        kept = clock_to_note(who, ahead_ms)
        if kept is False:
            return
        if kept is not None:
            log.warning("device %s: its clock is %s %s HQ's", who.device, span(abs(kept)),
                        "ahead of" if kept > 0 else "behind")
        try:
            await anyio.to_thread.run_sync(note_clock, self.db, who.device, kept)
        except Exception:
            log.exception("could not note the clock of device %s", who.device)

    def decode(self, frame: bytes) -> ClientMessage:
        try:
            return decode_client(frame)
        except ProtocolError as exc:
            raise Closing(exc.to_error()) from None

    async def read(self, inbox: asyncio.Queue[bytes | Exception]) -> None:
        """Read frames into ``inbox`` while earlier ones are answered. The
        server's websocket stops reading the socket until its frames are
        received, and with it the device's keepalive pings: a push waiting
        for the database longer than the ping timeout (a lock held by
        maintenance, a slow disk) would cut off every device that keeps
        selling. The inbox holds ``INBOX_FRAMES``: a device waits for answers
        to that many (a till has at most its window of pushes out)."""
        try:
            while True:
                await inbox.put(await self.receive())
        except Exception as exc:  # the connection ends: say why, in turn
            await inbox.put(exc)

    async def serve(self) -> None:
        try:
            await self.handshake()
            if self.session is not None:
                await self.answer()
        finally:
            self.links.unregister(self)
            if self.closing is not None:  # the close HQ began goes out before the handler ends
                with contextlib.suppress(Exception):
                    await self.closing

    async def answer(self) -> None:
        """Answer the device's messages, one at a time, until the connection ends."""
        assert self.session is not None
        session = self.session
        wake = self.hub.subscribe()
        pusher = asyncio.create_task(self.guarded(self.fan_out(session, wake)))
        inbox: asyncio.Queue[bytes | Exception] = asyncio.Queue(INBOX_FRAMES)
        reader = asyncio.create_task(self.read(inbox))
        watch = token_watch(self.db, self.hub)
        watch.watch(self)
        try:
            while True:
                frame = await inbox.get()
                if self.ended:
                    return  # HQ closed it (taken over, token revoked): the rest is not read
                if isinstance(frame, Exception):
                    raise frame
                msg = self.decode(frame)
                async with self.lock:
                    if self.ended:
                        return
                    ahead, self.ahead = self.ahead, None
                    if ahead is not None and ahead[0] == msg:
                        answers = await ahead[1]
                    elif isinstance(msg, Push):
                        answers = await self.committer.push(session, msg)
                    else:
                        answers = await self.in_db(False,
                                                   functools.partial(session.handle, msg=msg))
                    answers = await self.send(answers)
                    self.read_ahead(session, msg, answers)
                for answer in answers:
                    if isinstance(answer, Error) and answer.fatal:
                        raise Closing(answer)
        finally:
            watch.unwatch(self)
            self.hub.unsubscribe(wake)
            for task in (pusher, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def close_with(self, error: Error) -> None:
        """End this connection while it is served: its token was revoked,
        replaced or expired (4401), or another connection of its device took
        over (4410). The message in hand finishes first (a push commits and
        its acks are sent: this waits for the connection's lock), nothing
        after it is handled, and this returns; the ``error`` and the close
        follow (``closing``: a half-dead link may hold them up to the close
        timeout)."""
        async with self.lock:
            if self.ended:
                return
            self.ended = True
            self.closing = asyncio.ensure_future(self._close(error))

    async def _close(self, error: Error) -> None:
        level = logging.WARNING if error.code is ErrorCode.REPLACED else logging.INFO
        log.log(level, "closing %s (from %s): %s", self.device, self.peer, error.message)
        with contextlib.suppress(Exception):
            if self.reads(error):
                await self.socket.send_bytes(encode(error))
            await self.socket.close(CLOSE_CODES[error.code], error.message[:120])

    def reads(self, error: Error) -> bool:
        """Whether the device can decode ``error``: an edge older than the
        take-over code refuses an Error frame of it as malformed, and gets the
        close code alone (``Hello.reads_replaced``)."""
        return error.code is not ErrorCode.REPLACED or self.reads_replaced

    async def step_down(self, by: Claim) -> None:
        """Another connection of this device took over (``server.takeover``)."""
        await self.close_with(Error(ErrorCode.REPLACED, by.reason(), True))

    def read_ahead(self, session: ServerSession, msg: ClientMessage,
                   answers: list[Outgoing]) -> None:
        """While the device stores a snapshot page, read the page it will ask
        for next (its request is determined by the last row sent)."""
        if not (isinstance(msg, SnapshotRequest) and len(answers) == 1):
            return
        page = answers[0]
        if not isinstance(page, SnapshotPage | StoredPage) or page.done or not page.rows:
            return
        nxt = SnapshotRequest(*page.last_key(), page.at, msg.limit)
        future = asyncio.ensure_future(
            self.in_db(False, functools.partial(session.handle, msg=nxt)))
        self.ahead = (nxt, future)

    async def guarded(self, work: Awaitable[None]) -> None:
        """Run the live fan-out; should it fail, end this connection (the device
        reconnects and pulls) rather than leave the device connected but deaf."""
        try:
            await work
        except Exception as exc:
            down = isinstance(exc, DB_DOWN)
            error = Error(ErrorCode.INTERNAL, unavailable(exc) if down else "internal error", True)
            if down:
                log.warning("live fan-out to device %s: %s", self.device, error.message)
            else:
                log.exception("live fan-out to device %s failed; closing", self.device)
            with contextlib.suppress(Exception):
                await self.socket.send_bytes(encode(error))
                await self.socket.close(1011, "internal error")

    async def fan_out(self, session: ServerSession, wake: asyncio.Event) -> None:
        """Send new changes in scope as soon as any commit signals them: from the
        hub's buffer when it continues this device's cursor, else from the database."""
        external = self.hub.external
        while True:
            await wake.wait()
            wake.clear()
            async with self.lock:
                if self.ended:
                    return
                read_db = external != self.hub.external
                external = self.hub.external
                if not read_db:
                    run, sites = self.hub.run_after(session.cursor)
                    changes, read_db = session.live_run(run, sites)
                    if changes is not None:
                        await self.socket.send_bytes(self.hub.frame(changes))
                while read_db:
                    changes = await self.in_db(False, session.poll)
                    if changes is not None:
                        await self.send([changes])
                    read_db = changes is not None and changes.more


async def handle_socket(socket: Socket, db: Database, schema: Schema, hub: Hub) -> None:
    await socket.accept()
    conn = Connection(socket, db, schema, hub)
    try:
        await conn.serve()
    except Closing as stop:
        # a device HQ cannot serve until someone acts is worth IT's attention
        level = (logging.WARNING if stop.error.code in NEEDS_IT | {ErrorCode.REPLACED}
                 else logging.INFO)
        log.log(level, "closing %s: %s", conn.device, stop.error.message)
        with contextlib.suppress(Exception):
            if conn.reads(stop.error):
                await socket.send_bytes(encode(stop.error))
            await socket.close(CLOSE_CODES[stop.error.code], stop.error.message[:120])
    except WebSocketDisconnect:
        return
    except OSError as gone:  # the device went away while HQ answered it (uplink down)
        log.info("device %s went away: %s", conn.device, str(gone) or type(gone).__name__)
    except DB_DOWN as exc:  # HQ's database, not this device: no traceback to chase
        why = unavailable(exc)
        log.warning("closing %s: %s", conn.device, why)
        with contextlib.suppress(Exception):
            await socket.send_bytes(encode(Error(ErrorCode.INTERNAL, why, True)))
            await socket.close(1013, "HQ's database is unavailable")  # try again later
    except Exception:
        log.exception("connection of device %s failed", conn.device)
        with contextlib.suppress(Exception):
            await socket.send_bytes(encode(Error(ErrorCode.INTERNAL, "internal error", True)))
            await socket.close(1011, "internal error")
