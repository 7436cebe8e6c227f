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
from pathlib import Path
from typing import Any

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


if __name__ == "__main__":
    print(measure_sqlite_ceiling())
    print(measure_pouchdb())
