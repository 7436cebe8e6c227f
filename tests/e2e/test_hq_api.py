"""HQ operations over REST with API tokens: the same roles, the same sync path."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from .procs import BIN, EdgeProc, ServerProc, wait_for

pytestmark = pytest.mark.e2e


def _token(server: ServerProc, login: str, role: str) -> str:
    out = subprocess.run([str(BIN / "branchline"), "user", "add", "--db", server.db_url,
                          "--login", login, "--role", role, "--site", "HQ", "--api-token"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return out.strip().splitlines()[-1].split()[-1]


def _call(server: ServerProc, path: str, body: Any = None, token: str | None = None
          ) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json",
                 **({"authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_master_data_and_approvals_over_rest(server: ServerProc,
                                             edges: dict[str, EdgeProc]) -> None:
    bob, clara, pam = (_token(server, "bob", "buyer"), _token(server, "clara", "cashier"),
                       _token(server, "pam", "procurement_manager"))
    oat = {"sku": "OAT-1", "name": "Oat milk 1l", "price": 250, "cost": 120}
    assert _call(server, "/api/hq/products", oat)[0] == 401
    code, body = _call(server, "/api/hq/products", oat, "bla_stale")
    assert (code, body["detail"]) == (401, "unknown API token")
    code, body = _call(server, "/api/hq/products", oat, clara)
    assert code == 403 and "clara (cashier) may not create on product" in body["reason"]
    s1 = edges["s1-till1"]
    s1.sync()
    s1.start_daemon()
    wait_for(lambda: server.health()["connected"] >= 1, 10, "the store's daemon")
    code, body = _call(server, "/api/hq/products", oat, bob)
    assert code == 201 and body["row"]["price"] == 250
    product = body["id"]
    wait_for(lambda: s1.query("SELECT price FROM product") == [(250,)], 2, "the new product")
    assert _call(server, f"/api/hq/products/{product}/price", {"price": 2.505}, bob)[0] == 400
    assert _call(server, f"/api/hq/products/{product}/price", {"price": 275}, bob)[0] == 200
    wait_for(lambda: s1.query("SELECT price FROM product") == [(275,)], 2, "the new price")
    # a purchase order drafted by bob at HQ's PC, approved by pam over REST
    hq = edges["hq-pc"]
    hq.sync()
    po = hq.run("po", "create", "--site", "S1", "--supplier", "Oatly", "OAT-1:10:1.20",
                "--user", "bob").stdout.split()[2]
    hq.sync()
    code, body = _call(server, f"/api/hq/purchase-orders/{po}/approve", {}, bob)
    assert code == 403
    code, body = _call(server, f"/api/hq/purchase-orders/{po}/approve", {}, pam)
    assert code == 200 and body["row"]["status"] == "approved"
    code, body = _call(server, f"/api/hq/purchase-orders/{po}/approve", {}, pam)
    assert code == 409 and "is approved; there is nothing to approve" in body["reason"]
    assert _call(server, "/api/hq/purchase-orders/nope/approve", {}, pam)[0] == 404
    wait_for(lambda: s1.query("SELECT status FROM purchase_order") == [("approved",)], 2,
             "the approved order at the store")
