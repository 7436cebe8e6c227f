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


def _batches(dev: RawDevice, n_ops: int, batch: int, products: list[str]
             ) -> list[list[Op]]:
    """The device's sales, made before the clock starts (as pouchdb's local fill is)."""
    ops = [
        dev.op("stock_movement", new_id(int(time.time() * 1000)),
               {"site": dev.site, "product_id": products[i % len(products)], "qty": -1,
                "reason": "sale"})
        for i in range(n_ops)
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
                  window: int, products: list[str] | None = None) -> float:
    devices = [RawDevice(url, d, f"S{i + 1}", t) for i, (d, t) in enumerate(tokens.items())]
    work = [_batches(d, per_device, batch, products or [PRODUCT]) for d in devices]
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


CATALOG = [str(uuid.UUID(int=1 + i)) for i in range(20_000)]
"""The products of a retail chain at scale: each site has a reorder rule for each."""


def _seed_chain(db_url: str, sites: list[str], history: int, sold: int) -> None:
    """A chain some years in: a reorder rule for every product of ``CATALOG`` at
    every site, five past (ordered) purchase suggestions per rule, and
    ``history`` past receipts of the first ``sold`` products. Written straight
    into the tables with sqlite3 (years of history in seconds; the push path
    reads these columns, never their ``_row``); the stock balances are then
    built by the server's own ``on_hand.fill``."""
    from schema import SCHEMA
    from server import on_hand
    from server.store import Database

    db = Database(db_url, SCHEMA)
    columns = {name: [c.name for c in db.entities[name].columns]
               for name in ("stock_movement", "reorder_rule", "purchase_suggestion")}
    db.dispose()
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    start_ms = int(time.time() * 1000) - history - 1  # ordered keys, older than the pushes
    bookkeeping = {"_version": 1, "_deleted": 0, "_row": b"\x80", "_seq": 0}

    def fill(table: str, rows: Any) -> None:
        cols = columns[table]
        conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) "
                         f"VALUES ({', '.join('?' * len(cols))})",
                         (tuple({**bookkeeping, **r}.get(c) for c in cols) for r in rows))

    conn.execute("BEGIN")
    fill("stock_movement", ({"id": new_id(start_ms + i), "site": sites[i % len(sites)],
                             "product_id": CATALOG[(i // len(sites)) % sold], "qty": 1,
                             "reason": "receipt"} for i in range(history)))
    fill("reorder_rule", ({"id": new_id(start_ms), "site": site, "product_id": p,
                           "level": 100, "order_qty": 50} for site in sites for p in CATALOG))
    fill("purchase_suggestion", ({"id": new_id(start_ms), "site": site, "product_id": p,
                                  "qty": 50, "on_hand": 90, "status": "ordered"}
                                 for _ in range(5) for site in sites for p in CATALOG))
    conn.execute("COMMIT")
    conn.close()
    db = Database(db_url, SCHEMA)
    with db.transaction() as store:
        on_hand.fill(store.conn, db.metadata)
    db.dispose()


def measure_ingest_at_scale(history: int | None = None, sold: int = 500,
                            devices: int | None = None, per_device: int | None = None
                            ) -> dict[str, Any]:
    """Push ingest into a chain some years in, against the headline workload
    in the same run: every site has a reorder rule for each of 20,000 products
    and 100,000 past suggestions, its ledger ``history`` past movements, and
    each push sells ``sold`` different products (as a day's receipts do), so the
    automation checks each of them against its balance and rule. It must run
    at the rate of the one-product push into an empty server."""
    history = history or env_int("BENCH_HISTORY", 1_000_000)
    devices = devices or env_int("BENCH_INGEST_DEVICES", 4)
    per_device = per_device or env_int("BENCH_INGEST_OPS", 25_000)
    sites = [f"S{i + 1}" for i in range(devices)]
    rates = {}
    for label, products in (("empty", [PRODUCT]), ("at_scale", CATALOG[:sold])):
        server = Server()
        if label == "at_scale":  # before the server opens the file
            _seed_chain(server.db_url, sites, history, sold)
        with server:
            tokens = server.add_devices([(f"bench-till-{i}", s) for i, s in enumerate(sites)])
            rates[label] = asyncio.run(_ingest(server.url, tokens, per_device, 1000, 2,
                                               products))
    return {"empty_ops_per_s": round(rates["empty"]),
            "at_scale_ops_per_s": round(rates["at_scale"]), "history": history,
            "products_sold": sold, "catalog": len(CATALOG), "ops": devices * per_device}


if __name__ == "__main__":
    print(measure_ingest())
