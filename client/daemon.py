"""The sync daemon: moves frames between the websocket and ``sync.client.ClientSession``.

``sync_once`` connects, bootstraps or catches up, pushes the outbox until every
op is acknowledged, and returns. ``run_daemon`` stays connected, sends new
local writes (made by any process sharing the database) within ~50 ms, applies
live changes, and reconnects with exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import ClientConnection, connect

from sync.client import ClientSession, Phase
from sync.messages import (
    MAX_MESSAGE_BYTES,
    ClientMessage,
    ProtocolError,
    SnapshotPage,
    decode_server,
    encode,
)

from .edge import Edge, now_ms

log = logging.getLogger("branchline.daemon")
FATAL_CLOSE = {4401, 4403, 4426}
LOCAL_POLL_S = 0.05


class Unreachable(Exception):
    """The server could not be reached (or the connection dropped)."""


class Refused(Exception):
    """The server refused this device for good: bad or revoked token, wrong site,
    unsupported version. Retrying will not help; HQ must act."""


@dataclass
class SyncResult:
    pushed: int
    received_rows: int
    pending: int
    cursor: int
    seconds: float


Progress = Callable[[str, int, int], None]
"""progress(what, done, total): called while bootstrapping or draining."""


async def _session(edge: Edge, url: str, *, until_idle: bool, stop: asyncio.Event | None,
                   progress: Progress | None, on_ready: Callable[[], None] | None) -> SyncResult:
    start = time.monotonic()
    token = edge.setting("token")
    pending_at_start = edge.store.pending_count()
    try:
        ws = await connect(url, max_size=MAX_MESSAGE_BYTES + 1024, open_timeout=5,
                           compression=None, ping_interval=20, ping_timeout=20)
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        raise Unreachable(f"cannot reach {url}: {exc}") from exc
    session = ClientSession(edge.replica, token)
    rows = 0
    try:
        await _send(ws, session.start())
        last_pos = edge.store.last_outbox_pos()
        ready_told = False
        while True:
            if stop is not None and stop.is_set():
                break
            try:
                frame = await asyncio.wait_for(ws.recv(), LOCAL_POLL_S)
            except TimeoutError:
                pos = edge.store.last_outbox_pos()
                if pos != last_pos:  # another process wrote: push it now
                    last_pos = pos
                    await _send(ws, session.pushes())
                if until_idle and session.idle:
                    break
                continue
            if not isinstance(frame, bytes):
                raise Unreachable("server sent a text frame")
            msg = decode_server(frame)
            with edge.transaction():
                replies = session.receive(msg, now_ms())
            if isinstance(msg, SnapshotPage):
                rows += len(msg.rows)
                if progress:
                    progress("bootstrap", rows, 0)
            await _send(ws, replies)
            if session.phase is Phase.CLOSED:
                assert session.error is not None
                raise Refused(session.error.message)
            if session.phase is Phase.READY:
                if not ready_told:
                    ready_told = True
                    with edge.transaction():
                        edge.store.set_state("last_sync_ms", str(now_ms()))
                    if on_ready:
                        on_ready()
                if progress and pending_at_start:
                    left = edge.store.pending_count()
                    progress("push", pending_at_start - left, pending_at_start)
                if until_idle and session.idle:
                    break
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        if code in FATAL_CLOSE:
            reason = session.error.message if session.error else exc.rcvd.reason if exc.rcvd else ""
            raise Refused(f"server refused device (close {code}): {reason}") from exc
        raise Unreachable(f"connection lost: {exc}") from exc
    except ProtocolError as exc:
        raise Unreachable(f"bad frame from server: {exc}") from exc
    finally:
        await ws.close()
    with edge.transaction():
        edge.store.set_state("last_sync_ms", str(now_ms()))
    return SyncResult(
        pushed=pending_at_start - edge.store.pending_count(), received_rows=rows,
        pending=edge.store.pending_count(), cursor=edge.replica.cursor,
        seconds=time.monotonic() - start,
    )


async def _send(ws: ClientConnection, messages: Sequence[ClientMessage]) -> None:
    for msg in messages:
        await ws.send(encode(msg))


async def sync_once(edge: Edge, url: str | None = None, timeout: float = 300,
                    progress: Progress | None = None) -> SyncResult:
    """Connect, catch up, push everything, wait for every ack, disconnect."""
    try:
        return await asyncio.wait_for(
            _session(edge, url or edge.setting("server"), until_idle=True, stop=None,
                     progress=progress, on_ready=None), timeout)
    except TimeoutError:
        raise Unreachable(f"sync did not finish within {timeout:.0f} s") from None


async def run_daemon(edge: Edge, url: str | None = None, stop: asyncio.Event | None = None,
                     *, base_delay: float = 0.5, max_delay: float = 30.0,
                     progress: Progress | None = None) -> None:
    """Stay connected until ``stop`` is set; reconnect with backoff and full jitter."""
    stop = stop or asyncio.Event()
    attempt = 0

    def ready() -> None:
        nonlocal attempt
        attempt = 0
        log.info("connected and caught up")

    while not stop.is_set():
        try:
            await _session(edge, url or edge.setting("server"), until_idle=False, stop=stop,
                           progress=progress, on_ready=ready)
        except Refused:
            raise
        except Unreachable as exc:
            log.warning("%s", exc)
        if stop.is_set():
            return
        delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
        attempt += 1
        log.info("reconnecting in %.1f s", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


def rich_progress() -> tuple[Progress, Callable[[], None]]:
    """A progress callback drawing rich bars on stderr (only when it is a terminal)."""
    if not sys.stderr.isatty():
        return (lambda what, done, total: None), (lambda: None)
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn
    from rich.progress import Progress as Bar

    bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
              transient=True)
    tasks: dict[str, TaskID] = {}
    bar.start()

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            label = "bootstrapping rows" if what == "bootstrap" else "pushing ops"
            tasks[what] = bar.add_task(label, total=total or None)
        bar.update(tasks[what], completed=done, total=total or None)

    return update, bar.stop
