"""One live connection per device (``server.takeover``), without sockets: each
accepted Hello takes the device's next generation, and a connection is ended
by any newer one however the news arrives (its own process, another's notice,
a notice that comes before the connection it outdates is registered)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema import SCHEMA
from server.devices import DeviceInfo, authenticate, issue_token
from server.store import Database
from server.tables import TAKEOVERS_TABLE
from server.takeover import TWO_PLACES, Claim, Links, claim, recent_takeovers


class FakeLink:
    """A connection that records why it was told to step down."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.claim: Claim | None = None
        self.replaced_by: list[Claim] = []

    async def step_down(self, by: Claim) -> None:
        self.replaced_by.append(by)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'hq.db'}", SCHEMA)
    yield d
    d.dispose()


def _kept(db: Database) -> int:
    with db.reading() as conn:
        return len(conn.execute(db.t[TAKEOVERS_TABLE].select()).all())


def test_each_hello_takes_the_next_generation_and_the_token_check_reads_it(
        db: Database) -> None:
    token = issue_token(db, "s1-till1", "S1")
    first, second = claim(db, "s1-till1", "10.0.0.9"), claim(db, "s1-till1", "10.0.0.7")
    assert first is not None and second is not None
    assert (first.gen, second.gen) == (1, 2) and second.ms >= first.ms
    who = authenticate(db, token)
    assert isinstance(who, DeviceInfo)
    assert (who.conn_gen, who.conn_peer, who.conn_ms) == (2, "10.0.0.7", second.ms)
    assert claim(db, "nobody", "10.0.0.1") is None
    assert Claim.parse(second.payload()) == second


def test_the_newest_connection_is_served_whichever_way_the_news_comes(db: Database) -> None:
    issue_token(db, "s1-till1", "S1")
    claims = [claim(db, "s1-till1", peer) for peer in ("10.0.0.9", "10.0.0.7", "10.0.0.8")]
    c1, c2, c3 = (c for c in claims if c is not None)
    old, late, other = FakeLink("10.0.0.9"), FakeLink("10.0.0.7"), FakeLink("10.0.0.8")

    async def story() -> None:
        links = Links(db)
        assert await links.register(old, c1) is None
        links.notice(c3.payload())  # another process accepted c3, before c2 registers here
        await asyncio.sleep(0.05)
        assert old.replaced_by == [c3] and links.live == {}
        assert await links.register(late, c2) == c3  # outdated before it was served
        links.notice(c1.payload())  # an old notice, heard late: changes nothing
        assert late.replaced_by == [] and links.latest["s1-till1"] == c3
        c4 = claim(db, "s1-till1", "10.0.0.8")
        assert c4 is not None
        assert await links.register(other, c4) is None
        links.newer(c4)  # its own notice
        assert other.replaced_by == [] and links.live == {"s1-till1": other}
        links.unregister(other)
        assert links.live == {}
        for _ in range(100):
            if _kept(db) == 1:
                break
            await asyncio.sleep(0.02)

    asyncio.run(story())
    kept = recent_takeovers(db)["s1-till1"]
    assert (kept.count, kept.old_peer, kept.new_peer) == (1, "10.0.0.9", "10.0.0.8")
    assert str(kept).startswith("1 take-over in the last hour (latest ")


def test_a_device_taken_over_again_and_again_is_connected_from_two_places(
        db: Database) -> None:
    issue_token(db, "s1-till1", "S1")
    links = [FakeLink("10.0.0.9"), FakeLink("10.0.0.7")]

    async def story() -> None:
        registry = Links(db)
        for n in range(TWO_PLACES + 1):
            made = claim(db, "s1-till1", links[n % 2].peer)
            assert made is not None
            links[n % 2] = FakeLink(made.peer)
            assert await registry.register(links[n % 2], made) is None
        for _ in range(100):
            if _kept(db) == TWO_PLACES:
                break
            await asyncio.sleep(0.02)

    asyncio.run(story())
    shown = str(recent_takeovers(db)["s1-till1"])
    assert shown.startswith(f"connected from two places: {TWO_PLACES} take-overs in the last "
                            "hour")
    assert "10.0.0.7 took over from 10.0.0.9" in shown
    later = recent_takeovers(db, now_ms=recent_takeovers(db)["s1-till1"].last_ms + 3_600_001)
    assert later == {}
