"""The console's IT admin page: devices (register, re-key, revoke), who HQ
refuses and whose clock is off, REST API tokens, each device's last op."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.exceptions import NotAuthorizedException
from litestar.testing import TestClient

from schema import SCHEMA
from server.admin import hire
from server.api_auth import issue_api_token, login_of
from server.console.auth import set_password
from server.devices import authenticate, issue_token, list_devices
from sync.merge import Actor
from sync.messages import Error, Hello, Welcome, decode_server, encode
from sync.server import apply_ops
from tests.sync.kit import PRODUCT, key, op

from .console_kit import _db, _login, _post, _site


def test_it_admin_registers_and_revokes_a_device(client: TestClient[Any]) -> None:
    _login(client, "ian")
    typo = _post(client, "/it/devices", "/it", device="s9-till1", site="S9", expires_days="30")
    assert typo.status_code == 400 and "HQ has no site &#x27;S9&#x27;" in typo.text
    for name in ("x" * 65, "<b>x</b>", "-rm"):  # a Hello carries 64 characters at most
        bad = _post(client, "/it/devices", "/it", device=name, site="S1")
        assert bad.status_code == 400 and "is not a device id" in bad.text
    assert list_devices(_db(client)) == []
    _site(_db(client), "S9")
    made = _post(client, "/it/devices", "/it", device="s9-till1", site="S9", expires_days="30")
    token = re.search(r'id="device-token">(bl_[^<]+)<', made.text)
    assert made.status_code == 200 and token
    assert authenticate(_db(client), token.group(1)).device == "s9-till1"  # type: ignore[union-attr]
    assert token.group(1) not in client.get("/it").text  # shown once
    issue_token(_db(client), "s8-till1", "S8")
    gone = _post(client, "/it/devices/revoke", "/it", device="s9-till1")
    assert "device s9-till1 revoked" in gone.text
    assert "was revoked" in str(authenticate(_db(client), token.group(1)))


def test_the_it_page_shows_a_device_hq_refuses_until_someone_acts(
        client: TestClient[Any]) -> None:
    """A till ahead of a restored HQ is refused at every attempt: the IT page
    says which device, when and why, until HQ serves it again."""
    token = issue_token(_db(client), "s1-till9", "S1")

    def hello(cursor: int) -> object:
        with client.websocket_connect("/sync") as ws:
            ws.send_bytes(encode(Hello("s1-till9", "S1", token, SCHEMA.version, cursor)))
            return decode_server(ws.receive_bytes(timeout=5))

    refused = hello(10**9)
    assert isinstance(refused, Error) and refused.code == "diverged"
    _login(client, "ian")
    row = re.search(r"<tr><td>s1-till9</td>.*?</tr>", client.get("/it").text, re.S)
    assert row and "this device has HQ&#x27;s changes up to 1000000000" in row.group(0)
    assert isinstance(hello(0), Welcome)
    row = re.search(r"<tr><td>s1-till9</td>.*?</tr>", client.get("/it").text, re.S)
    assert row and "changes up to" not in row.group(0)


def test_the_it_page_shows_a_device_whose_clock_is_off(client: TestClient[Any]) -> None:
    """A till whose clock is days off dates its receipts wrong and (when
    fast) has its edits dated by their arrival: IT sees which, and by how
    much, from its last Hello; once its clock is set right, the note goes."""
    import time

    token = issue_token(_db(client), "s1-till7", "S1")

    def hello(skew_ms: int) -> object:
        with client.websocket_connect("/sync") as ws:
            ws.send_bytes(encode(Hello("s1-till7", "S1", token, SCHEMA.version, 0,
                                       wall_ms=int(time.time() * 1000) + skew_ms)))
            return decode_server(ws.receive_bytes(timeout=5))

    def row() -> str:
        found = re.search(r"<tr><td>s1-till7</td>.*?</tr>", client.get("/it").text, re.S)
        assert found
        return found.group(0)

    assert isinstance(hello(3 * 86_400_000), Welcome)  # served all the same
    _login(client, "ian")
    assert "3 days ahead of HQ&#x27;s" in row()
    assert isinstance(hello(-5 * 3_600_000), Welcome)
    assert "5 h behind HQ&#x27;s" in row()
    assert isinstance(hello(1_000), Welcome)
    assert "HQ&#x27;s" not in row()
    assert list_devices(_db(client))[0].clock_ahead_ms is None


def test_the_it_page_shows_a_device_connected_from_two_places(client: TestClient[Any]) -> None:
    """Two tills with one identity take the device from each other: each
    connection is closed by the next one's Hello (4410), each take-over is
    kept, and three within an hour make the IT page say the device is
    connected from two places."""
    import contextlib
    import time

    from litestar.exceptions import WebSocketDisconnect

    token = issue_token(_db(client), "s1-till5", "S1")
    _login(client, "ian")

    def row() -> str:
        found = re.search(r"<tr><td>s1-till5</td>.*?</tr>", client.get("/it").text, re.S)
        assert found
        return found.group(0)

    def shows(text: str) -> str:
        deadline = time.monotonic() + 5
        while text not in (seen := row()) and time.monotonic() < deadline:
            time.sleep(0.02)  # a take-over is kept once the older connection is closed
        return seen

    with contextlib.ExitStack() as held:
        older = None
        for n in range(4):
            ws = held.enter_context(client.websocket_connect("/sync"))
            ws.send_bytes(encode(Hello("s1-till5", "S1", token, SCHEMA.version, 0,
                                       reads_replaced=True)))
            assert isinstance(decode_server(ws.receive_bytes(timeout=5)), Welcome)
            if older is not None:
                error = decode_server(older.receive_bytes(timeout=5))
                assert isinstance(error, Error) and error.code == "replaced"
                assert error.message.startswith("another connection of device s1-till5 took "
                                                "over from testclient at ")
                with pytest.raises(WebSocketDisconnect):
                    older.receive_bytes(timeout=5)
            if n == 0:
                assert "from testclient at " in row() and "take-over" not in row()
            if n == 1:
                one = shows("1 take-over in the last hour")
                assert "two places" not in one  # a till reconnecting over a dead link
            older = ws
    assert "connected from two places: 3 take-overs in the last hour (latest " in shows(
        "connected from two places")


@pytest.mark.parametrize(("days", "why"), [
    ("inf", "a token lives from a fraction of a day to 3650 days"),
    ("1e308", "to 3650 days"), ("nan", "not nan"), ("soon", "is not a number of days")])
def test_a_device_lifetime_that_is_no_number_of_days_is_a_400(
        client: TestClient[Any], days: str, why: str) -> None:
    _login(client, "ian")
    made = _post(client, "/it/devices", "/it", device="s9-till1", site="S1", expires_days=days)
    assert made.status_code == 400 and why in made.text
    assert list_devices(_db(client)) == []


def test_a_stores_it_admin_registers_and_revokes_that_stores_devices_only(
        client: TestClient[Any]) -> None:
    db = _db(client)
    hire(db, "sia", "it_admin", "S1")
    set_password(db, "sia", "sia-runs-s1-it")
    issue_token(db, "s2-till1", "S2")
    issue_token(db, "s1-till9", "S1")
    _login(client, "sia", "sia-runs-s1-it")
    page = client.get("/it").text
    assert "s1-till9" in page and "s2-till1" not in page
    for site in ("HQ", "S2"):  # an HQ token would sync with HQ's rights
        made = _post(client, "/it/devices", "/it", device="rogue", site=site)
        assert made.status_code == 403 and "registers its devices only" in made.text
    gone = _post(client, "/it/devices/revoke", "/it", device="s2-till1")
    assert gone.status_code == 403 and "revokes its devices only" in gone.text
    assert {d.device: d.revoked_ms for d in list_devices(db)} == {
        "s2-till1": None, "s1-till9": None}
    made = _post(client, "/it/devices", "/it", device="s1-till8", site="S1")
    assert made.status_code == 200 and 'id="device-token"' in made.text
    taken = _post(client, "/it/devices", "/it", device="s2-till1", site="S1")  # S2's till
    assert taken.status_code == 400 and "device s2-till1 is registered at S2" in taken.text
    assert {d.device: d.site for d in list_devices(db)}["s2-till1"] == "S2"


def test_it_admin_revokes_a_leavers_api_tokens(client: TestClient[Any]) -> None:
    db = _db(client)
    sams = [issue_api_token(db, "sam") for _ in range(2)]
    bobs = issue_api_token(db, "bob")
    hire(db, "sia", "it_admin", "S1")
    set_password(db, "sia", "sia-runs-s1-it")
    _login(client, "sia", "sia-runs-s1-it")  # a store's IT admin: that store's staff only
    page = client.get("/it").text
    assert ">sam<" in page and ">bob<" not in page
    refused = _post(client, "/it/api-tokens/revoke", "/it", login="bob")
    assert refused.status_code == 403 and "revokes the tokens of its own staff only" in refused.text
    assert login_of(db, f"Bearer {bobs}") == "bob"
    client.cookies.clear()
    _login(client, "ian")
    assert ">bob<" in client.get("/it").text
    done = _post(client, "/it/api-tokens/revoke", "/it", login="sam")
    assert "API tokens of sam revoked" in done.text
    for token in sams:
        with pytest.raises(NotAuthorizedException, match="the API token of sam was revoked"):
            login_of(db, f"Bearer {token}")
    assert login_of(db, f"Bearer {bobs}") == "bob"  # nobody else's
    again = _post(client, "/it/api-tokens/revoke", "/it", login="sam")
    assert again.status_code == 404 and "sam has no API token in force" in again.text


def test_it_page_shows_each_devices_last_op(client: TestClient[Any]) -> None:
    issue_token(_db(client), "s1-till7", "S1")
    till = Actor("s1-till7", "S1")
    made_at = 1_795_000_000_000  # 2026-11-18 11:06:40 UTC
    sale = op(till, "stock_movement", key(700), {"site": "S1", "product_id": PRODUCT,
                                                 "qty": -1, "reason": "sale"}, ms=made_at)
    with _db(client).transaction() as store:
        apply_ops(SCHEMA, store, till, [sale])
    _login(client, "ian")
    row = re.search(r"<tr><td>s1-till7</td>.*?</tr>", client.get("/it").text)
    assert row and "2026-11-18 11:06:40 UTC" in row.group(0)
