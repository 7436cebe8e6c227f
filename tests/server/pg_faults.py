"""PostgreSQL misbehaving on purpose, for the fault tests: an admin connection,
a TCP proxy whose links can go silent, a commit made as a server makes one."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psycopg

from server.admin import apply_as_hq
from server.store import Database
from tests.pg import ADMIN_DSN


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def admin(sql: str, *params: Any) -> Any:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else None


def listeners(dbname: str) -> int:
    return int(admin("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                      "AND query LIKE 'LISTEN%%'", dbname)[0][0])


def customer(db: Database, name: str) -> str:
    """A commit made the way a server process makes one (pg_notify at commit)."""
    key = str(uuid.uuid4())
    assert apply_as_hq(db, "customer", key, {"name": name}).status == "accepted"
    return key


class Proxy:
    """A TCP proxy to PostgreSQL on loopback. ``silence()`` makes the links open
    now go quiet for good (no byte moves, no FIN, no RST: a half-open link);
    ``refuse`` closes new connections at once (the database host gone)."""

    def __init__(self) -> None:
        self.silenced: set[int] = set()
        self.links = 0
        self.refuse = False
        self.port = 0

    async def start(self) -> Proxy:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        return self

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if self.refuse:
            cw.close()
            return
        self.links += 1
        link = self.links
        sr, sw = await asyncio.open_connection("127.0.0.1", 5432)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    if link in self.silenced:
                        continue  # swallowed: the peer never hears of it
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))

    def silence(self) -> None:
        self.silenced.update(range(1, self.links + 1))

    def close(self) -> None:
        self._server.close()


async def until(check: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start
