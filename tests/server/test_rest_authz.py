"""REST answers what the shared rules decide: HR does not promote itself, a
leaver's token dies with the employee row, lists are read by the roles that
read them, and a purchase order's two approvals need two people."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema.people import employee_key
from server.admin import hire
from server.api_auth import issue_api_token
from sync.hlc import Clock
from sync.merge import Actor
from sync.messages import Op
from sync.server import apply_ops

from .rest_kit import Api, open_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with open_api(f"sqlite:///{tmp_path / 'hq.db'}") as a:
        yield a


def test_hr_cannot_make_itself_hq_admin_nor_anyone_else(api: Api) -> None:
    code, out = api.call("PATCH", "/api/hq/employees/hal", "hal", {"role": "hq_admin"})
    assert code == 403 and "may not change their own role" in out["reason"]
    code, out = api.call("PATCH", "/api/hq/employees/clara", "hal", {"role": "hq_admin"})
    assert code == 403 and "may not set role=hq_admin" in out["reason"]
    api.ok("POST", "/api/hq/sites", "admin", {"code": "S1", "name": "Store", "kind": "store"})
    code, out = api.call("PATCH", "/api/hq/employees/hal", "hal", {"site": "S1"})
    assert code == 403 and "may not change their own site" in out["reason"]
    assert api.call("PATCH", "/api/hq/employees/clara", "admin", {"role": "it_admin"})[0] == 200
    assert api.ok("GET", "/api/hq/whoami", "hal")["role"] == "hr"


def test_a_leavers_token_stops_at_once(api: Api) -> None:
    hire(api.db, "lee", "store_manager", "S1")
    api.tokens["lee"] = issue_api_token(api.db, "lee")
    assert api.call("GET", "/api/hq/purchase-orders", "lee", site="S1")[0] == 200
    # HR deletes the record (on an HQ device: the REST API has no delete)
    gone = Op("del-lee", "employee", employee_key("lee"), 0, {},
              Clock("hq-pc").now(int(time.time() * 1000)), "hal", "hq-pc",
              api.db.schema.version, delete=True)
    with api.db.transaction() as store:
        (done,) = apply_ops(api.db.schema, store, Actor("hq-pc", "HQ"), [gone])
    assert done.status == "accepted", done.reason
    for path in ("/api/hq/whoami", "/api/hq/purchase-orders", "/api/hq/customers",
                 "/api/reports/stock"):
        code, out = api.call("GET", path, "lee")
        assert code == 401 and out["detail"] == (
            "no employee record for lee (left the company?)"), path
    assert api.call("POST", "/api/hq/customers", "lee", {"name": "made by a leaver"})[0] == 401


def test_lists_of_orders_rules_and_exceptions_are_for_their_readers(api: Api) -> None:
    for path in ("/api/hq/purchase-orders", "/api/hq/reorder-rules",
                 "/api/operations/stock-exceptions"):
        for who in ("hal", "clara"):
            code, out = api.call("GET", path, who)
            assert code == 403 and "may not read" in out["detail"], (path, who)
        assert api.call("GET", path, "admin")[0] == 200
        assert api.call("GET", path, "sam", site="S1")[0] == 200  # a store manager, own site
        assert api.call("GET", path, "sam", site="S2")[0] == 403
