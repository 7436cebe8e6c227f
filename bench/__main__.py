"""Run every benchmark in one go, print the figures, write them into the README.

    make bench                      # or: .venv/bin/python -m bench
    BENCH_QUICK=1 make bench        # smaller workloads, for a try-out

Figures are ratios against baselines measured in the same run (this machine is
shared and noisy): pouchdb-server for push and bootstrap, a plain sqlite3
executemany as the physical ceiling.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bootstrap import measure_bootstrap
from .ingest import measure_ingest, measure_ingest_at_scale
from .peer import measure_op_rows_floor, measure_pouchdb, measure_sqlite_ceiling
from .propagation import measure_propagation

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def run() -> dict[str, Any]:
    quick = bool(os.environ.get("BENCH_QUICK"))
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "machine": f"{os.cpu_count()} cores, {platform.python_version()}"}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("sqlite", lambda: measure_sqlite_ceiling(200_000 if quick else None)),
        ("floor", lambda: measure_op_rows_floor(20_000 if quick else None)),
        ("pouchdb", lambda: measure_pouchdb(10_000 if quick else None)),
        ("ingest", lambda: measure_ingest(per_device=5_000 if quick else None,
                                          rounds=2 if quick else None)),
        ("at_scale", lambda: measure_ingest_at_scale(
            100_000 if quick else None, per_device=5_000 if quick else None)),
        ("propagation", lambda: measure_propagation(devices=50 if quick else None,
                                                    writes=100 if quick else None)),
        ("bootstrap", lambda: measure_bootstrap(100_000 if quick else None)),
    ]
    for name, step in steps:
        # the previous step's gigabyte goes to disk now, not while this step's
        # server syncs its own commits (each one waits for the disk)
        os.sync()
        print(f"== {name}", file=sys.stderr, flush=True)
        out[name] = step()
        print(json.dumps(out[name]), file=sys.stderr, flush=True)
    return out


def table(r: dict[str, Any]) -> str:
    pouch, ing, prop, boot, sq, floor = (r["pouchdb"], r["ingest"], r["propagation"],
                                         r["bootstrap"], r["sqlite"], r["floor"])
    scale = r["at_scale"]
    floor_x = floor["op_rows_floor_ops_per_s"] / pouch["push_docs_per_s"]
    push_x = ing["push_ops_per_s"] / pouch["push_docs_per_s"]
    boot_x = boot["bootstrap_rows_per_s"] / pouch["bootstrap_docs_per_s"]
    rss = ing["rss_last_third_mean_mb"] / max(ing["rss_first_third_mean_mb"], 1)
    return "\n".join([
        f"Measured {r['when']} on {r['machine']} (SQLite server, shared machine).",
        "",
        "| workload | Branchline | pouchdb-server (same run) | ratio | target |",
        "|---|---|---|---|---|",
        f"| push ingest, {ing['devices']} devices, {ing['ops']:,} ops | "
        f"{ing['push_ops_per_s']:,} ops/s | {pouch['push_docs_per_s']:,} docs/s "
        f"({pouch['n']:,} docs) | {push_x:.1f}x | 15x |",
        f"| bootstrap of a new store, {boot['rows']:,} rows | "
        f"{boot['bootstrap_rows_per_s']:,} rows/s | {pouch['bootstrap_docs_per_s']:,} docs/s "
        f"| {boot_x:.1f}x | 15x |",
        f"| propagation store A -> store B, {prop['devices']} devices connected | "
        f"p50 {prop['p50_ms']} ms, p99 {prop['p99_ms']} ms | | | p99 <= 50 ms |",
        f"| push ingest sustained: {ing['rounds']} rounds of {ing['ops']:,} ops into one "
        f"server | {', '.join(f'{r:,}' for r in ing['round_ops_per_s'])} ops/s by round | | "
        f"last/first x{ing['round_ops_per_s'][-1] / ing['round_ops_per_s'][0]:.2f} | |",
        f"| server RSS over those rounds | {ing['rss_first_third_mean_mb']} MB first third, "
        f"{ing['rss_last_third_mean_mb']} MB last third (x{rss:.2f}), "
        f"max {ing['rss_max_mb']} MB | | | flat |",
        f"| push ingest into a chain some years in: {scale['catalog']:,} products with a "
        f"reorder rule at each site, 5 past suggestions per rule, {scale['history']:,} past "
        f"movements; each push sells {scale['products_sold']} products | "
        f"{scale['at_scale_ops_per_s']:,} ops/s, against {scale['empty_ops_per_s']:,} into an "
        f"empty server selling one product | | "
        f"x{scale['at_scale_ops_per_s'] / scale['empty_ops_per_s']:.2f} | |",
        f"| the rows one pushed op stores (movement, change, scope, audit) in the server's "
        f"tables, bare sqlite3, nothing else (floor of the layout) | "
        f"{floor['op_rows_floor_ops_per_s']:,} ops/s | | {floor_x:.1f}x | |",
        f"| sqlite3 executemany, same rows (ceiling) | "
        f"{sq['sqlite_executemany_rows_per_s']:,} rows/s with the UUID key, "
        f"{sq['sqlite_executemany_no_index_rows_per_s']:,} without | | | |",
    ])


def write_readme(text: str) -> None:
    readme = README.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in readme:
        readme = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme,
                        flags=re.S)
    else:
        readme += f"\n## Benchmark figures\n\n{block}\n"
    README.write_text(readme)


if __name__ == "__main__":
    results = run()
    text = table(results)
    print(text)
    if not os.environ.get("BENCH_QUICK"):
        write_readme(text)
