"""Push ingest: ops/s from N devices into one server (SQLite default)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from typing import Any

from sync.ids import new_id
from sync.messages import Acks, Op, Push

from .common import RawDevice, RssSampler, Server, env_int

PRODUCT = str(uuid.UUID(int=1))


def _batches(dev: RawDevice, n_ops: int, batch: int) -> list[list[Op]]:
    """The device's sales, made before the clock starts (as pouchdb's local fill is)."""
    ops = [
        dev.op("stock_movement", new_id(int(time.time() * 1000)),
               {"site": dev.site, "product_id": PRODUCT, "qty": -1, "reason": "sale"})
        for _ in range(n_ops)
    ]
    return [ops[i : i + batch] for i in range(0, n_ops, batch)]


async def _device(dev: RawDevice, batches: list[list[Op]], window: int) -> int:
    n_ops = sum(map(len, batches))
    acked = 0
    in_flight = 0
    sent = 0
    while acked < n_ops:
        while in_flight < window and sent < len(batches):
            await dev.send(Push(batch=sent, ops=batches[sent]))
            sent += 1
            in_flight += 1
        msg = await dev.recv()
        if isinstance(msg, Acks):
            acked += len(msg.acks)
            in_flight -= 1
            bad = [a for a in msg.acks if a.status != "accepted"]
            if bad:
                raise RuntimeError(f"op not accepted: {bad[0]}")
    await dev.close()
    return acked


async def _ingest(url: str, tokens: dict[str, str], per_device: int, batch: int,
                  window: int) -> float:
    devices = [RawDevice(url, d, f"S{i + 1}", t) for i, (d, t) in enumerate(tokens.items())]
    work = [_batches(d, per_device, batch) for d in devices]
    for d in devices:
        await d.connect()
    start = time.perf_counter()  # from the first push to the last ack
    done = await asyncio.gather(*(_device(d, w, window) for d, w in zip(devices, work,
                                                                         strict=True)))
    return sum(done) / (time.perf_counter() - start)


def measure_ingest(devices: int | None = None, per_device: int | None = None,
                   batch: int = 1000, window: int = 2, rounds: int | None = None
                   ) -> dict[str, Any]:
    """Push ``per_device`` stock movements from each of ``devices`` devices, in
    ``rounds`` rounds into the same server: the first round's rate is the
    headline; the last round's shows whether ingest holds up as the tables
    grow, and the RSS sampled over every round whether memory stays flat."""
    devices = devices or env_int("BENCH_INGEST_DEVICES", 4)
    per_device = per_device or env_int("BENCH_INGEST_OPS", 25_000)
    rounds = rounds or env_int("BENCH_INGEST_ROUNDS", 3)
    with Server() as server:
        tokens = server.add_devices([(f"bench-till-{i}", f"S{i + 1}") for i in range(devices)])
        with RssSampler(server.pid) as rss:
            rates = [asyncio.run(_ingest(server.url, tokens, per_device, batch, window))
                     for _ in range(rounds)]
        return {"push_ops_per_s": round(rates[0]), "round_ops_per_s": [round(r) for r in rates],
                "rounds": rounds, "devices": devices, "ops": devices * per_device,
                "batch": batch, **rss.summary()}


def _seed_history(db_url: str, sites: list[str], history: int) -> None:
    """``history`` past sales of PRODUCT spread over ``sites``, written straight
    into the movement ledger with sqlite3 (years of a store's history in a few
    seconds; the balances are then built by the server's own ``on_hand.fill``)."""
    from schema import SCHEMA
    from server import on_hand
    from server.store import Database

    db = Database(db_url, SCHEMA)
    table = db.entities["stock_movement"]
    columns = [c.name for c in table.columns]
    path = db_url.removeprefix("sqlite:///")
    db.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    start_ms = int(time.time() * 1000) - history  # ordered keys, older than the pushes
    insert = (f"INSERT INTO stock_movement ({', '.join(columns)}) "
              f"VALUES ({', '.join('?' * len(columns))})")
    conn.execute("BEGIN")
    for at in range(0, history, 100_000):
        rows = []
        for i in range(at, min(history, at + 100_000)):
            values = {"id": new_id(start_ms + i), "site": sites[i % len(sites)],
                      "product_id": PRODUCT, "qty": -1, "reason": "sale", "_version": 1,
                      "_deleted": 0, "_row": b"\x80", "_seq": 0}
            rows.append(tuple(values.get(c) for c in columns))
        conn.executemany(insert, rows)
    conn.execute("COMMIT")
    conn.close()
    db = Database(db_url, SCHEMA)
    with db.transaction() as store:
        on_hand.fill(store.conn, db.metadata)
    db.dispose()


def measure_ingest_with_history(history: int | None = None, devices: int | None = None,
                                per_device: int | None = None) -> dict[str, Any]:
    """The same push into a fresh server and into one whose ledger already holds
    ``history`` sales of the pushed product at the pushing sites, back to back:
    ingest must not slow down as a store's history grows."""
    history = history or env_int("BENCH_HISTORY", 1_000_000)
    devices = devices or env_int("BENCH_INGEST_DEVICES", 4)
    per_device = per_device or env_int("BENCH_INGEST_OPS", 25_000)
    sites = [f"S{i + 1}" for i in range(devices)]
    rates = {}
    for label, seeded in (("fresh", 0), ("history", history)):
        server = Server()
        if seeded:  # before the server opens the file
            _seed_history(server.db_url, sites, seeded)
        with server:
            tokens = server.add_devices([(f"bench-till-{i}", s) for i, s in enumerate(sites)])
            rates[label] = asyncio.run(_ingest(server.url, tokens, per_device, 1000, 2))
    return {"fresh_ops_per_s": round(rates["fresh"]),
            "history_ops_per_s": round(rates["history"]), "history": history,
            "ops": devices * per_device}


if __name__ == "__main__":
    print(measure_ingest())
