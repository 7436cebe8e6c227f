"""The peer baseline measured in the same run: pouchdb-server (CouchDB protocol)
and a plain sqlite3 executemany, the physical ceiling of a SQLite write."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
import uuid
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from sync.ids import new_id

from .common import env_int, free_port

PEER = Path(__file__).parent / "peer"


def ensure_installed() -> None:
    """npm ci into bench/peer (pouchdb-server, pouchdb-node) when missing."""
    if (PEER / "node_modules" / ".bin" / "pouchdb-server").exists():
        return
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed for the pouchdb-server baseline")
    cmd = ["npm", "ci"] if (PEER / "package-lock.json").exists() else ["npm", "install"]
    subprocess.run([*cmd, "--no-audit", "--no-fund"], cwd=PEER, check=True, timeout=900)


def measure_pouchdb(n_docs: int | None = None) -> dict[str, Any]:
    n_docs = n_docs or env_int("BENCH_POUCH_DOCS", 50_000)
    ensure_installed()
    work = Path(tempfile.mkdtemp(prefix="pouch-"))
    port = free_port()
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen(
            [str(PEER / "node_modules" / ".bin" / "pouchdb-server"), "--host", "127.0.0.1",
             "--port", str(port), "--dir", str(work / "data"), "--no-stdout-logs"],
            stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError((work / "server.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        (work / "client").mkdir()
        out = subprocess.run(
            ["node", str(PEER / "pouch_bench.js"), f"http://127.0.0.1:{port}", str(n_docs),
             str(work / "client")], capture_output=True, text=True, timeout=900, check=True)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


def measure_sqlite_ceiling(n_rows: int | None = None) -> dict[str, Any]:
    """Rows/s of one executemany into a WAL SQLite file: the floor of any SQLite write."""
    n_rows = n_rows or env_int("BENCH_SQLITE_ROWS", 1_000_000)
    folder = Path(tempfile.mkdtemp(prefix="ceiling-"))
    conn = sqlite3.connect(folder / "c.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE m (id TEXT PRIMARY KEY, site TEXT, product_id TEXT, qty INT, "
                 "reason TEXT, hlc TEXT)")
    product = str(uuid.uuid4())
    rows = [(str(uuid.uuid4()), "S1", product, -1, "sale", f"{i:015d}-000000-t")
            for i in range(n_rows)]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    rate = n_rows / (time.perf_counter() - start)
    conn.execute("CREATE TABLE plain (id TEXT, site TEXT, product_id TEXT, qty INT, "
                 "reason TEXT, hlc TEXT)")
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO plain VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    plain = n_rows / (time.perf_counter() - start)
    conn.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"sqlite_executemany_rows_per_s": round(rate),
            "sqlite_executemany_no_index_rows_per_s": round(plain), "rows": n_rows}


def measure_op_rows_floor(n_ops: int | None = None, per_commit: int = 4000) -> dict[str, Any]:
    """Ops/s of writing only the rows one ingested stock movement stores, into
    the server's own tables (with their indexes): the entity row, its change,
    its scope row and its audit row, by plain sqlite3 executemany, committed
    every ``per_commit`` ops at synchronous=FULL as the server does. No
    decoding, no decision, no hashing: the floor of the server's storage
    layout on this machine, whatever the Python above it does."""
    from sqlalchemy import create_engine

    from schema import SCHEMA
    from server.tables import build

    n_ops = n_ops or env_int("BENCH_FLOOR_OPS", 100_000)
    folder = Path(tempfile.mkdtemp(prefix="floor-"))
    url = f"sqlite:///{folder / 'hq.db'}"
    metadata, entities = build(SCHEMA)
    engine = create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    table = entities["stock_movement"]
    columns = [c.name for c in table.columns]
    product, blob, ack = new_id(0), b"\x85" * 180, b"\x82" * 50
    after = json.dumps({c: None for c in columns if not c.startswith("_") and c != "id"})
    entity_rows: list[tuple[Any, ...]] = []
    change_rows: list[tuple[Any, ...]] = []
    scope_rows: list[tuple[Any, ...]] = []
    audit_rows: list[tuple[Any, ...]] = []
    for seq in range(1, n_ops + 1):
        now = int(time.time() * 1000)
        key, site = new_id(now), f"S{seq % 4 + 1}"
        values: dict[str, Any] = {
            "id": key, "site": site, "product_id": product, "qty": -1, "reason": "sale",
            "_version": 1, "_deleted": 0, "_row": blob, "_seq": seq}
        entity_rows.append(tuple(values.get(c) for c in columns))
        change_rows.append((seq, "stock_movement", key, blob))
        scope_rows.append((site, seq))
        audit_rows.append((seq, new_id(now), "stock_movement", key, "bench", "till",
                           site, f"{seq:015d}-000000-till", "accepted", "ledger", "", None,
                           after, "0" * 64, ack))
    tables: list[tuple[str, list[str], list[tuple[Any, ...]], int]] = [
        # (table, columns, rows, sort key): rows go in key order, as the server's do
        ("stock_movement", columns, entity_rows, 0),
        ("changes", ["seq", "entity", "key", "row"], change_rows, 0),
        ("change_scope", ["site", "seq"], scope_rows, 0),
        ("audit", ["id", "op_id", "entity", "key", "user", "device", "site", "hlc", "status",
                   "policy", "reason", "before", "after", "hash", "ack"], audit_rows, 1),
    ]
    conn = sqlite3.connect(folder / "hq.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA wal_autocheckpoint=16384")
    start = time.perf_counter()
    for at in range(0, n_ops, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        for name, cols, rows, sort_on in tables:
            _insert_blocks(conn, name, cols, sorted(rows[at : at + per_commit],
                                                    key=itemgetter(sort_on)))
        conn.execute("COMMIT")
    rate = n_ops / (time.perf_counter() - start)
    conn.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"op_rows_floor_ops_per_s": round(rate), "ops": n_ops}


def _insert_blocks(conn: sqlite3.Connection, table: str, columns: list[str],
                   rows: list[tuple[Any, ...]], per: int = 100) -> None:
    """Multi-row INSERTs of ``per`` rows (as ``server.store`` writes), the rest one by one."""
    one = f"({', '.join('?' * len(columns))})"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    whole = len(rows) - len(rows) % per
    block = head + ", ".join([one] * per)
    for at in range(0, whole, per):
        conn.execute(block, list(chain.from_iterable(rows[at : at + per])))
    conn.executemany(head + one, rows[whole:])


if __name__ == "__main__":
    print(measure_op_rows_floor())
    print(measure_sqlite_ceiling())
    print(measure_pouchdb())
