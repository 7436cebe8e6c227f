"""Bootstrap: rows/s for a new store pulling a large catalog into its own SQLite.

The catalog is pushed by an HQ device first (not timed); then a brand-new
edge database runs ``sync_once`` and the clock covers everything from the
websocket connect to the last snapshot row committed in the store's SQLite.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from client.daemon import sync_once
from client.edge import Edge
from sync.ids import new_id
from sync.messages import MAX_BATCH_OPS, Acks, Push

from .common import RawDevice, RssSampler, Server, env_int


async def _seed(url: str, token: str, rows: int) -> float:
    hq = RawDevice(url, "bench-hq", "HQ", token)
    await hq.connect()
    start = time.perf_counter()
    batch = MAX_BATCH_OPS
    window, in_flight, sent, acked = 2, 0, 0, 0
    while acked < rows:
        while in_flight < window and sent < rows:
            n = min(batch, rows - sent)
            ops = [hq.op("product", new_id(int(time.time() * 1000)),
                         {"sku": f"SKU-{sent + i:07d}", "name": f"Product {sent + i}",
                          "price": 100 + (sent + i) % 5000}) for i in range(n)]
            await hq.send(Push(batch=sent, ops=ops))
            sent += n
            in_flight += 1
        msg = await hq.recv()
        if isinstance(msg, Acks):
            acked += len(msg.acks)
            in_flight -= 1
    await hq.close()
    return rows / (time.perf_counter() - start)


def measure_bootstrap(rows: int | None = None) -> dict[str, Any]:
    rows = rows or env_int("BENCH_BOOTSTRAP_ROWS", 1_000_000)
    with Server() as server:
        tokens = server.add_devices([("bench-hq", "HQ"), ("bench-new-store", "S9")])
        seed_rate = asyncio.run(_seed(server.url, tokens["bench-hq"], rows))
        folder = Path(tempfile.mkdtemp(prefix="branchline-edge-"))
        edge = Edge(folder / "new-store.db")
        edge.configure(server.url, "bench-new-store", "S9", tokens["bench-new-store"])
        with RssSampler(server.pid) as rss:
            result = asyncio.run(sync_once(edge, timeout=1800))
        got = edge.conn.execute("SELECT count(*) FROM product").fetchone()[0]
        edge.close()
        shutil.rmtree(folder, ignore_errors=True)
    if got != rows:
        raise RuntimeError(f"new store holds {got} products, expected {rows}")
    return {
        "rows": rows,
        "bootstrap_rows_per_s": round(rows / result.seconds),
        "seconds": round(result.seconds, 1),
        "seed_push_ops_per_s": round(seed_rate),
        **rss.summary(),
    }


if __name__ == "__main__":
    print(measure_bootstrap())
