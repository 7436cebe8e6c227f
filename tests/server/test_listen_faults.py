"""The LISTEN connection of a server process: a commit made by another process
while it reconnects wakes the sessions all the same, and a link gone silent is
noticed (heartbeat) and reported once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from schema import SCHEMA
from server import fanout
from server.store import Database
from tests.pg import fresh_database
from tests.server.pg_faults import Proxy, admin, customer, dbname, libpq, listeners, until

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_db() -> Iterator[tuple[str, Database]]:
    with fresh_database() as url:
        db = Database(url, SCHEMA)
        try:
            yield url, db
        finally:
            db.dispose()


def test_listen_catches_up_after_its_backend_is_terminated(
        pg_db: tuple[str, Database]) -> None:
    """A commit made by another process while LISTEN reconnects wakes every session."""
    url, db = pg_db

    async def main() -> None:
        hub = fanout.Hub()
        woken = hub.subscribe()
        hub.start_postgres(libpq(url))
        try:
            await until(lambda: listeners(dbname(url)) == 1, 10, "LISTEN")
            await asyncio.sleep(0.2)
            woken.clear()
            before = hub.external
            killed = admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND query LIKE 'LISTEN%%'", dbname(url))
            assert killed == [(1,)]
            await asyncio.to_thread(customer, db, "made during the gap")  # its NOTIFY is lost
            await asyncio.wait_for(woken.wait(), 3)
            assert hub.external > before  # sessions read the database, not the buffer
        finally:
            await hub.stop()

    asyncio.run(main())


def test_a_silent_listen_link_is_noticed_and_given_up_once(
        pg_db: tuple[str, Database], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A half-open LISTEN link: the heartbeat's SELECT 1 gets no answer, the
    listener reconnects (one WARNING while the database stays away, one when it
    is back) and the commit that went to the dead link reaches the sessions."""
    url, db = pg_db
    monkeypatch.setattr(fanout, "HEARTBEAT", 0.3)
    monkeypatch.setattr(fanout, "HEARTBEAT_TIMEOUT", 0.3)
    monkeypatch.setattr(fanout, "RETRY", 0.2)
    caplog.set_level(logging.WARNING, logger="branchline.fanout")

    async def main() -> None:
        proxy = await Proxy().start()
        hub = fanout.Hub()
        hub.subscribe()
        hub.start_postgres(f"postgresql://postgres@127.0.0.1:{proxy.port}/{dbname(url)}")
        try:
            await until(lambda: listeners(dbname(url)) == 1, 10, "LISTEN")
            await asyncio.sleep(0.5)  # a few heartbeats answered: nothing logged
            assert not caplog.records
            before = hub.external
            proxy.silence()
            proxy.refuse = True  # and for a while no new connection either
            await asyncio.to_thread(customer, db, "notified into the void")
            await asyncio.sleep(2)
            assert hub.external == before
            proxy.refuse = False
            took = await until(lambda: hub.external > before, 20, "the listener to catch up")
            assert took < 15
        finally:
            await hub.stop()
            proxy.close()

    asyncio.run(main())
    ours = [r for r in caplog.records if r.name == "branchline.fanout"]
    assert [r.getMessage().split(" (")[0].split(" after")[0] for r in ours] == [
        f"LISTEN {fanout.CHANNEL} lost", f"LISTEN {fanout.CHANNEL} restored"], ours
