"""A simulated, faulty network between devices and one server, driven by tests.

Each device connects, is cut off, reconnects. Within one connection messages
arrive in order (as on a websocket); faults are what real links do between and
around connections:

* drop   -- a connection dies: the server may still process some of what the
            device had sent (a prefix), the rest and everything on the way
            back is lost; the device resends its pending ops later;
* delay  -- a dead connection's last messages reach the server after the
            device already reconnected and sent newer ones;
* duplicate -- a message is delivered again later (a retrying proxy), in
            either direction;
* overtake -- live Changes and Acks are sent by different server tasks, so
            one may overtake the other on the way to the device.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from schema import SCHEMA
from sync.client import ClientSession
from sync.memory import MemoryLocalStore, MemoryServerStore
from sync.merge import Actor
from sync.messages import ClientMessage, Push, ServerMessage
from sync.replica import Replica
from sync.server import ServerSession, check_hello


@dataclass
class Link:
    """One connection of one device."""

    device: SimDevice
    client: ClientSession
    server: ServerSession | None = None
    up: deque[ClientMessage] = field(default_factory=deque)
    down: deque[ServerMessage] = field(default_factory=deque)
    alive: bool = True


class SimDevice:
    def __init__(self, actor: Actor, skew: int = 0) -> None:
        self.actor = actor
        self.skew = skew
        """How many ms this device's clock is ahead of HQ's (negative: behind)."""
        self.store = MemoryLocalStore()
        self.replica = Replica(SCHEMA, self.store, actor.device, actor.site)
        self.link: Link | None = None
        self.ops: list[str] = []


class SimNet:
    def __init__(self, server: MemoryServerStore, devices: list[SimDevice],
                 start_ms: int = 10_000) -> None:
        self.server = server
        self.devices = devices
        self.links: list[Link] = []
        self.sent_up: list[tuple[Link, ClientMessage]] = []
        self.sent_down: list[tuple[Link, ServerMessage]] = []
        self.ms = start_ms
        """HQ's clock; a device's is ``skew`` ahead of it."""

    def tick(self) -> int:
        self.ms += 7
        return self.ms

    # -- connections ---------------------------------------------------------
    def connect(self, d: SimDevice) -> None:
        if d.link is not None:
            self.cut(d, keep=0)
        link = Link(d, ClientSession(d.replica, "token", batch_size=3, window=2,
                                     snapshot_page=4))
        link.up.extend(link.client.start())
        d.link = link
        self.links.append(link)

    def cut(self, d: SimDevice, keep: int) -> None:
        """The device's connection dies; the server still gets ``keep`` queued messages."""
        link = d.link
        if link is None:
            return
        link.alive = False
        while len(link.up) > keep:
            link.up.pop()
        link.down.clear()
        d.link = None

    # -- delivery --------------------------------------------------------------
    def server_step(self, link: Link) -> None:
        msg = link.up.popleft()
        self.sent_up.append((link, msg))
        if link.server is None:
            error = check_hello(SCHEMA, msg, link.device.actor.device,  # type: ignore[arg-type]
                                link.device.actor.site)
            assert error is None
            link.server = ServerSession(SCHEMA, link.device.actor,
                                        msg.cursor)  # type: ignore[union-attr]
            answers: list[ServerMessage] = [link.server.welcome(self.server, self.ms)]
        else:
            answers = link.server.handle(self.server, msg, self.ms)
        if link.alive:
            link.down.extend(answers)

    def client_step(self, link: Link, overtake: bool = False) -> None:
        if overtake and len(link.down) > 1 and type(link.down[0]) is not type(link.down[1]):
            # live fan-out and acks leave the server from different tasks, so a
            # Changes may overtake an Acks (or the other way round)
            link.down.rotate(-1)
            msg = link.down.popleft()
            link.down.rotate(1)
        else:
            msg = link.down.popleft()
        self.sent_down.append((link, msg))
        link.up.extend(link.client.ahead(msg))  # sent before the message is stored
        link.up.extend(link.client.receive(msg, self.tick() + link.device.skew))

    def fan_out(self, rnd: random.Random | None = None) -> None:
        """Push new changes to connected devices: from the store (``poll``) or, as
        the real server does in-process, from the run of changes just committed,
        sometimes missing its first part (a commit published late)."""
        for link in self.links:
            if link.alive and link.server is not None and link.client.phase == "ready":
                changes = None
                if rnd is not None and self.server.log:
                    tail = self.server.log[-rnd.randint(1, 6):]
                    changes, gap = link.server.live_run([c for c, _ in tail],
                                                        [s for _, s in tail])
                    if gap:
                        changes = link.server.poll(self.server)
                else:
                    changes = link.server.poll(self.server)
                if changes is not None:
                    link.down.append(changes)

    def push_local(self, d: SimDevice) -> None:
        if d.link is not None:
            d.link.up.extend(d.link.client.pushes())

    def duplicate(self, rnd: random.Random) -> None:
        """Deliver some earlier message once more: a Push to the server, or
        anything to a client that is still connected."""
        pushes = [(link, msg) for link, msg in self.sent_up if isinstance(msg, Push)]
        if rnd.random() < 0.5 and pushes:
            link, msg = rnd.choice(pushes)
            if link.server is not None:
                answers = link.server.handle(self.server, msg, self.ms)
                if link.alive:
                    link.down.extend(answers)
        elif self.sent_down:
            link, msg = rnd.choice(self.sent_down)
            if link.alive:
                link.down.append(msg)

    def busy(self) -> list[tuple[str, Link]]:
        work: list[tuple[str, Link]] = [("up", link) for link in self.links if link.up]
        work += [("down", link) for link in self.links if link.alive and link.down]
        return work

    def random_step(self, rnd: random.Random) -> None:
        work = self.busy()
        if work:
            kind, link = rnd.choice(work)
            if kind == "up":
                self.server_step(link)
            else:
                self.client_step(link, overtake=rnd.random() < 0.3)

    # -- healing -----------------------------------------------------------------
    def settle(self, limit: int = 20_000) -> None:
        """Connect everyone and deliver everything until nobody has work left."""
        for _ in range(4):
            for d in self.devices:
                self.connect(d)
            for _ in range(limit):
                work = self.busy()
                if not work:
                    self.fan_out()
                    for d in self.devices:
                        self.push_local(d)
                    work = self.busy()
                    if not work:
                        break
                kind, link = work[0]
                (self.server_step if kind == "up" else self.client_step)(link)
            if all(d.link and d.link.client.idle for d in self.devices):
                return
        raise AssertionError("network did not settle")


def visible(server: MemoryServerStore, site: str) -> dict[tuple[str, str], Any]:
    """The server's rows that a site may see."""
    return {
        k: row for k, row in server.rows.items()
        if site == "HQ" or server.sites[k] is None or site in (server.sites[k] or ())
    }
