"""Propagation: latency from a write at store A to its arrival at store B, with
many devices connected and receiving the same fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from sync.ids import new_id
from sync.messages import Changes, Pull, Push

from .common import RawDevice, RssSampler, Server, env_int


async def _listen(dev: RawDevice, key: str, arrivals: dict[str, float]) -> None:
    """Store B: note when each write arrives (runs until cancelled)."""
    while True:
        msg = await dev.recv()
        if isinstance(msg, Changes):
            now = time.perf_counter()
            for change in msg.changes:
                if change.row.key == key:
                    arrivals.setdefault(str(change.row.fields.get("name")), now)


async def _drain(dev: RawDevice) -> None:
    """Receive (and drop, undecoded) what another connected device is sent, until
    cancelled: a plain read per frame, so that the 200 devices sharing this one
    process cost as little as they can (a real store has a machine of its own)."""
    assert dev.ws is not None
    with contextlib.suppress(ConnectionClosed):
        async for _ in dev.ws:
            pass


async def _propagation(url: str, tokens: dict[str, tuple[str, str]], writes: int,
                       interval: float) -> list[float]:
    devices = [RawDevice(url, d, site, t) for d, (site, t) in tokens.items()]
    for d in devices:
        welcome = await d.connect()
        await d.send(Pull(welcome.head))  # catch up, then live
    writer, reader, others = devices[0], devices[1], devices[2:]
    key = new_id(int(time.time() * 1000))
    arrivals: dict[str, float] = {}
    await asyncio.sleep(0.5)
    listener = asyncio.create_task(_listen(reader, key, arrivals))
    drains = [asyncio.create_task(_drain(d)) for d in (*others, writer)]
    sent: dict[str, float] = {}
    for i in range(writes):
        name = f"customer-{i}"
        sent[name] = time.perf_counter()
        await writer.send(Push(batch=i, ops=[writer.op("customer", key, {"name": name})]))
        await asyncio.sleep(interval)
    deadline = time.perf_counter() + 10
    while len(arrivals) < writes and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for task in (listener, *drains):
        task.cancel()
    await asyncio.gather(listener, *drains, return_exceptions=True)
    for d in devices:
        await d.close()
    missing = writes - len(arrivals)
    if missing:
        raise RuntimeError(f"{missing} of {writes} writes never reached store B")
    return [(arrivals[n] - sent[n]) * 1000 for n in sent]


def measure_propagation(devices: int | None = None, writes: int | None = None,
                        interval: float = 0.02) -> dict[str, Any]:
    devices = devices or env_int("BENCH_PROPAGATION_DEVICES", 200)
    writes = writes or env_int("BENCH_PROPAGATION_WRITES", 300)
    with Server() as server:
        names = [(f"dev-{i}", f"S{i % 50 + 1}") for i in range(devices)]
        raw = server.add_devices(names)
        tokens = {d: (site, raw[d]) for d, site in names}
        with RssSampler(server.pid) as rss:
            lat = asyncio.run(_propagation(server.url, tokens, writes, interval))
    lat.sort()
    return {
        "devices": devices,
        "writes": writes,
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
        "max_ms": round(lat[-1], 2),
        **rss.summary(),
    }


if __name__ == "__main__":
    print(measure_propagation())
