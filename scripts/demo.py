"""The demo: an HQ server on SQLite, its console, and simulated stores trading.

HQ + stores S1 (two tills), S2, S3 and warehouse W1. HQ loads a generated
catalog of 5,000 products and stocks every site; then the tills sell, the
warehouse receives, customers are edited, and now and then a store's uplink
goes down for a while (its daemon is stopped) and comes back. Runs until
Ctrl-C. Everything lives under var/demo/.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client.edge import Edge  # noqa: E402
from client.inventory import Inventory  # noqa: E402
from client.pos import LineIn, Pos, PosError  # noqa: E402
from schema import SCHEMA  # noqa: E402
from schema.finance import CHART  # noqa: E402
from server.admin import hire  # noqa: E402
from server.api_auth import issue_api_token  # noqa: E402
from server.console.auth import set_password  # noqa: E402
from server.devices import issue_token  # noqa: E402
from server.store import Database  # noqa: E402
from sync.ids import new_id  # noqa: E402
from sync.replica import LocalRejected  # noqa: E402

BIN = Path(sys.executable).parent
WORK = ROOT / "var" / "demo"
PORT = int(os.environ.get("BRANCHLINE_DEMO_PORT", "8000"))
DEVICES = [("hq-pc", "HQ"), ("s1-till1", "S1"), ("s1-till2", "S1"), ("s2-till1", "S2"),
           ("s3-till1", "S3"), ("w1-handheld", "W1")]
STAFF = [("buyer", "buyer", "HQ", "procurement"), ("finance", "finance", "HQ", "finance"),
         ("admin", "hq_admin", "HQ", "it"), ("cashier", "cashier", "S1", "sales"),
         ("pam", "procurement_manager", "HQ", "procurement"),
         ("ops", "operations_manager", "HQ", "operations"), ("it", "it_admin", "HQ", "it")]
CONSOLE = [("pam", "procurement manager: approve or cancel purchase orders"),
           ("buyer", "buyer: change prices on a product's page, draft orders"),
           ("finance", "finance: trial balance, journal lines, sales"),
           ("ops", "operations manager: stock by site, resolve stock exceptions, transit"),
           ("it", "IT admin: devices (register, revoke), sync health, audit"),
           ("cashier", "cashier at S1: products only (no price form)"),
           ("admin", "HQ admin: every page")]


def demo_password(login: str) -> str:
    """The printed demo password of a console user (a demo, not a secret)."""
    return f"demo-{login}-pass"
SITES = [("HQ", "Head office", "hq"), ("S1", "Store Riverside", "store"),
         ("S2", "Store Old Town", "store"), ("S3", "Store Airport", "store"),
         ("W1", "Warehouse North", "warehouse"), ("TRANSIT", "Goods in transit", "transit")]
BRANDS = ["Alpine", "Brookside", "Cedar", "Dalton", "Evergreen", "Fairway", "Golden Field",
          "Harbor", "Ironwood", "Juniper", "Kestrel", "Lakeside", "Meadow", "Northwind"]
GOODS = [
    ("Oat milk", "1 l", 189), ("Whole milk", "1 l", 119), ("Greek yogurt", "500 g", 249),
    ("Sourdough bread", "800 g", 399), ("Basmati rice", "1 kg", 329),
    ("Olive oil", "750 ml", 899), ("Espresso beans", "1 kg", 1599),
    ("Green tea", "20 bags", 279), ("Dark chocolate", "100 g", 229),
    ("Pasta fusilli", "500 g", 149), ("Tomato passata", "700 g", 169),
    ("Peanut butter", "350 g", 359), ("Dish soap", "500 ml", 219),
    ("Laundry liquid", "2 l", 1099), ("Paper towels", "4 rolls", 499),
    ("Toothpaste", "75 ml", 259), ("Shampoo", "250 ml", 449), ("AA batteries", "4 pack", 599),
    ("Orange juice", "1 l", 259), ("Sparkling water", "1.5 l", 89),
]


def catalog(n: int, rnd: random.Random) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        name, size, price = GOODS[i % len(GOODS)]
        brand = BRANDS[(i // len(GOODS)) % len(BRANDS)]
        variant = i // (len(GOODS) * len(BRANDS))
        label = f"{brand} {name} {size}" + (f" #{variant + 1}" if variant else "")
        sell = max(49, price + rnd.randint(-40, 60))
        out.append({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"branchline-demo/{i}")),
                    "sku": f"SKU-{i:05d}", "name": label, "price": sell,
                    "cost": int(sell * rnd.uniform(0.45, 0.7)), "tax_rate": 2000,
                    "barcode": f"40{i:011d}", "category": name.split()[-1].lower(),
                    "unit": "each"})
    return out


def main() -> int:
    rnd = random.Random(7)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    db_url = f"sqlite:///{WORK / 'hq.db'}"
    db = Database(db_url, SCHEMA)
    tokens = {d: issue_token(db, d, site) for d, site in DEVICES}
    for login, role, site, department in STAFF:
        hire(db, login, role, site, department=department)
        set_password(db, login, demo_password(login))
    finance_token = issue_api_token(db, "finance")  # the REST reports need a reader's token
    db.dispose()
    url = f"ws://127.0.0.1:{PORT}/sync"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with open(WORK / "server.log", "wb") as log:
        procs["server"] = subprocess.Popen(
            [str(BIN / "branchline"), "server", "--db", db_url, "--port", str(PORT),
             "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    edges = {}
    for device, site in DEVICES:
        edges[device] = Edge(WORK / f"{device}.db")
        edges[device].configure(url, device, site, tokens[device])

    print("loading 5,000 products and opening stock at HQ ...", flush=True)
    hq = edges["hq-pc"]
    subprocess.run([str(BIN / "branchline-edge"), "--db", str(hq.path), "sync"], check=True,
                   stdout=subprocess.DEVNULL)  # learn the employees first
    products = catalog(5000, rnd)
    customers = [new_id(int(time.time() * 1000)) for _ in range(50)]
    with hq.transaction():
        for p in products:
            hq.replica.write("product", str(p["id"]), {k: v for k, v in p.items() if k != "id"},
                             "buyer", int(time.time() * 1000))
        for code, name, kind in SITES:
            hq.replica.write("site", str(uuid.uuid5(uuid.NAMESPACE_URL, code)),
                             {"code": code, "name": name, "kind": kind}, "admin",
                             int(time.time() * 1000))
        for code, (name, kind) in CHART.items():
            hq.replica.write("account", str(uuid.uuid5(uuid.NAMESPACE_URL, "acct" + code)),
                             {"code": code, "name": name, "type": kind}, "finance",
                             int(time.time() * 1000))
        for i, c in enumerate(customers):
            hq.replica.write("customer", c, {"name": f"Customer {i + 1}", "phone": f"555-{i:04d}"},
                             "crm", int(time.time() * 1000))
    for site in ("S1", "S2", "S3", "W1"):  # opening stock, booked against opening equity
        Inventory(hq).opening_stock([(str(p["id"]), rnd.randint(5, 40), int(str(p["cost"])))
                                     for p in products[: 400 if site != "W1" else 2000]],
                                    "warehouse", site)
    for lines in ("SKU-00000:24:1.20", "SKU-00001:5000:1.20"):  # the second needs two approvals
        subprocess.run([str(BIN / "branchline-edge"), "--db", str(hq.path), "po", "create",
                        "--site", "S1", "--supplier", "Brookside Dairy", lines, "--user", "buyer"],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(BIN / "branchline-edge"), "--db", str(hq.path), "sync"], check=True,
                   stdout=subprocess.DEVNULL)

    def start_daemon(device: str) -> None:
        with open(WORK / f"{device}-daemon.log", "ab") as dlog:
            procs[device] = subprocess.Popen(
                [str(BIN / "branchline-edge"), "--db", str(edges[device].path), "daemon"],
                stdout=dlog, stderr=subprocess.STDOUT)

    for device, _ in DEVICES:
        start_daemon(device)
    tills = {device: Pos(edges[device]) for device, _ in DEVICES}
    logins = "\n".join(f"                 {login:8} / {demo_password(login):20} {what}"
                       for login, what in CONSOLE)
    print(f"""
Branchline demo is running.
  console      http://127.0.0.1:{PORT}/      log in as (login / password):
{logins}
  health       http://127.0.0.1:{PORT}/health
  REST API     http://127.0.0.1:{PORT}/schema   (OpenAPI); finance's API token, e.g.
                 curl -H 'Authorization: Bearer {finance_token}' \\
                      http://127.0.0.1:{PORT}/api/reports/trial-balance
  a store      {BIN / 'branchline-edge'} --db {WORK / 's1-till1.db'} status
  logs         {WORK}/
Tills sell, the warehouse receives, and store uplinks drop now and then. Ctrl-C stops.
""", flush=True)

    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    offline: dict[str, float] = {}
    sales = reported = 0
    try:
        while not stop:
            time.sleep(0.2)
            now = time.time()
            for device, until in list(offline.items()):
                if now > until:
                    start_daemon(device)
                    del offline[device]
                    print(f"  {device}: uplink back, syncing what it did offline", flush=True)
            if rnd.random() < 0.02 and len(offline) < 2:
                device = rnd.choice([d for d, s in DEVICES if s not in ("HQ", "W1")
                                     and d not in offline])
                procs[device].terminate()
                offline[device] = now + rnd.uniform(8, 20)
                print(f"  {device}: uplink down; it keeps selling offline", flush=True)
            for device, site in DEVICES[1:]:
                edge = edges[device]
                try:
                    if site == "W1":
                        if rnd.random() < 0.3:
                            edge.write("stock_movement", new_id(int(time.time() * 1000)), {
                                "site": "W1", "product_id": rnd.choice(products)["id"],
                                "qty": rnd.randint(10, 50), "reason": "receipt"}, "receiver")
                        continue
                    if edge.store.get_state("bootstrapped") != "1":
                        continue  # this till has not received the catalog yet
                    basket = [LineIn(str(rnd.choice(products[:400])["sku"]), rnd.randint(1, 3))
                              for _ in range(rnd.randint(1, 4))]
                    if rnd.random() < 0.5:
                        tills[device].sell(basket, cash=100_000)  # change is given
                    else:
                        tills[device].sell(basket, card=tills[device].quote(basket).total)
                    sales += 1
                    customer = rnd.choice(customers)
                    if rnd.random() < 0.05 and edge.get("customer", customer) is not None:
                        edge.write("customer", customer,
                                   {"phone": f"555-{rnd.randint(0, 9999):04d}"}, "cashier")
                except (LocalRejected, PosError) as exc:
                    print(f"  {device}: refused locally: {exc}", flush=True)
            if sales // 1000 > reported:
                reported = sales // 1000
                print(f"  {sales:,} sales so far", flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for edge in edges.values():
            edge.close()
    print("demo stopped; databases kept in", WORK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
