"""The /sync websocket against a real server process: bad input is refused with a
close code and a reason, nothing of it is stored, and other devices keep working."""

from __future__ import annotations

import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from schema import SCHEMA
from sync.hlc import Clock
from sync.messages import (
    MAX_MESSAGE_BYTES,
    Acks,
    Changes,
    Error,
    Hello,
    Op,
    Pull,
    Push,
    ServerMessage,
    SnapshotPage,
    SnapshotRequest,
    Welcome,
    decode_server,
    encode,
)
from tests.e2e.procs import BIN, ServerProc, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    workdir = tmp_path_factory.mktemp("ws")
    proc = ServerProc(f"sqlite:///{workdir / 'hq.db'}", workdir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tokens(server: ServerProc) -> dict[str, str]:
    return {d: server.add_device(d, site) for d, site in
            [("hq", "HQ"), ("s1", "S1"), ("s2", "S2"), ("gone", "S1")]}


def _connect(server: ServerProc) -> ClientConnection:
    # a plain connection that outlives this function (websockets 17: legacy=True)
    return connect(server.ws_url, max_size=None, open_timeout=5, compression=None, legacy=True)


def _recv(ws: ClientConnection, timeout: float = 5) -> ServerMessage:
    data = ws.recv(timeout)
    assert isinstance(data, bytes)
    return decode_server(data)


def _hello(ws: ClientConnection, device: str, site: str, token: str, **kw: Any) -> ServerMessage:
    ws.send(encode(Hello(device, site, token, kw.pop("schema_version", SCHEMA.version), 0, **kw)))
    return _recv(ws)


def _session(server: ServerProc, device: str, site: str, token: str,
             reads_replaced: bool = True) -> ClientConnection:
    """A device's connection, pulled up to HQ's head; by default of a current
    edge (``reads_replaced``), as ``sync.client`` says Hello."""
    ws = _connect(server)
    assert isinstance(_hello(ws, device, site, token, reads_replaced=reads_replaced), Welcome)
    ws.send(encode(Pull(0)))
    while True:
        msg = _recv(ws)
        if isinstance(msg, Changes) and not msg.live:
            if not msg.more:
                return ws
            ws.send(encode(Pull(msg.cursor)))


def _acks(ws: ClientConnection, timeout: float = 5) -> Acks:
    """The next Acks, passing over live changes (a device hears its own too)."""
    while True:
        msg = _recv(ws, timeout)
        if isinstance(msg, Acks):
            return msg


def _closed_with(ws: ClientConnection, code: int) -> str:
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(5):
            ws.recv(5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == code
    return info.value.rcvd.reason


def _op(device: str, entity: str, fields: dict[str, Any], key: str | None = None) -> Op:
    return Op(str(uuid.uuid4()), entity, key or str(uuid.uuid4()), 0, fields,
              Clock(device).now(int(time.time() * 1000)), "tester", device, SCHEMA.version)


def test_wrong_token_is_refused_with_4401(server: ServerProc, tokens: dict[str, str]) -> None:
    ws = _connect(server)
    err = _hello(ws, "s1", "S1", "bl_not-a-token")
    assert isinstance(err, Error) and err.message == "unknown device token"
    _closed_with(ws, 4401)


def test_revoked_token_is_refused(server: ServerProc, tokens: dict[str, str]) -> None:
    subprocess.run([str(BIN / "branchline"), "device", "revoke", "--db", server.db_url,
                    "--device", "gone"], check=True, capture_output=True)
    ws = _connect(server)
    err = _hello(ws, "gone", "S1", tokens["gone"])
    assert isinstance(err, Error) and "revoked" in err.message
    _closed_with(ws, 4401)


def test_an_expired_token_is_refused_with_when_it_expired(server: ServerProc) -> None:
    made = subprocess.run([str(BIN / "branchline"), "device", "add", "--db", server.db_url,
                           "--device", "brief", "--site", "S1", "--expires-days", "0.00002"],
                          check=True, capture_output=True, text=True).stdout
    token = made.split()[-1]
    assert "active until" in made
    time.sleep(2.0)  # the token lived 1.7 s
    ws = _connect(server)
    err = _hello(ws, "brief", "S1", token)
    assert isinstance(err, Error) and "expired on" in err.message and "device add" in err.message
    _closed_with(ws, 4401)
    listed = subprocess.run([str(BIN / "branchline"), "device", "list", "--db", server.db_url],
                            check=True, capture_output=True, text=True).stdout
    assert any(line.startswith("brief\tS1\texpired ") for line in listed.splitlines())


def test_a_connected_device_is_cut_off_once_revoked(server: ServerProc) -> None:
    token = server.add_device("stolen", "S1")
    ws = _session(server, "stolen", "S1", token)
    subprocess.run([str(BIN / "branchline"), "device", "revoke", "--db", server.db_url,
                    "--device", "stolen"], check=True, capture_output=True)
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as info:
        while True:  # live changes may come first; then the reason, then the close
            msg = _recv(ws, timeout=15)
            if isinstance(msg, Error):
                assert msg.code == "auth" and "revoked" in msg.message
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    assert time.monotonic() - started < 12  # checked again every 5 s


def test_only_the_revoked_device_is_cut_off_and_the_others_keep_pushing(
        server: ServerProc) -> None:
    """The tokens of every connected device are checked together: the one
    revoked is cut off (4401), the one beside it at the same store keeps its
    connection and its pushes are acked after the check."""
    lost = _session(server, "lost-till", "S1", server.add_device("lost-till", "S1"))
    kept = _session(server, "kept-till", "S1", server.add_device("kept-till", "S1"))
    subprocess.run([str(BIN / "branchline"), "device", "revoke", "--db", server.db_url,
                    "--device", "lost-till"], check=True, capture_output=True)
    assert "revoked" in _closed_with(lost, 4401)
    kept.send(encode(Push(1, [_sale("kept-till", "S1", 90)])))
    assert [a.status for a in _acks(kept).acks] == ["accepted"]


def test_a_device_claiming_another_site_is_refused_with_4403(
    server: ServerProc, tokens: dict[str, str]
) -> None:
    ws = _connect(server)
    err = _hello(ws, "s1", "S2", tokens["s1"])
    assert isinstance(err, Error) and err.message == "device s1 belongs to site S1, not S2"
    _closed_with(ws, 4403)


def test_an_old_schema_version_is_told_to_upgrade(server: ServerProc, tokens: dict[str, str]) -> None:
    ws = _connect(server)
    err = _hello(ws, "s1", "S1", tokens["s1"], schema_version=0)
    assert isinstance(err, Error) and "upgrade this device" in err.message
    _closed_with(ws, 4426)


def test_malformed_frame_closes_only_that_connection(
    server: ServerProc, tokens: dict[str, str]
) -> None:
    good = _session(server, "s2", "S2", tokens["s2"])
    bad = _session(server, "s1", "S1", tokens["s1"])
    bad.send(b"\x93\x01\x02")  # msgpack, but no message
    err = _recv(bad)
    assert isinstance(err, Error) and err.message.startswith("malformed client message")
    _closed_with(bad, 4400)
    bad2 = _connect(server)
    bad2.send("hello as text")
    _closed_with(bad2, 4400)
    good.send(encode(Push(1, [_op("s2", "customer", {"name": "Still served"})])))
    acks = _recv(good)
    assert isinstance(acks, Acks) and acks.acks[0].status == "accepted"


def test_oversized_frame_is_refused_and_nothing_is_stored(
    server: ServerProc, tokens: dict[str, str]
) -> None:
    ws = _session(server, "s1", "S1", tokens["s1"])
    key = str(uuid.uuid4())
    big = Push(1, [_op("s1", "customer", {"name": "x" * 1000}, key=key)] * 5000)
    frame = encode(big)
    assert len(frame) > MAX_MESSAGE_BYTES
    ws.send(frame)
    reason = _closed_with(ws, 4413)
    assert "limit" in reason or reason == ""
    hq = _session(server, "hq", "HQ", tokens["hq"])
    hq.send(encode(Pull(0)))
    seen = _recv(hq)
    assert isinstance(seen, Changes) and all(c.row.key != key for c in seen.changes)


def test_push_outside_scope_is_rejected_with_reason_and_not_stored(
    server: ServerProc, tokens: dict[str, str]
) -> None:
    ws = _session(server, "s2", "S2", tokens["s2"])
    product = str(uuid.UUID(int=77))
    forged = _op("s2", "stock_movement", {"site": "S1", "product_id": product, "qty": -50,
                                          "reason": "sale"})
    price = _op("s2", "product", {"sku": "X", "name": "X", "price": 1}, key=product)
    ws.send(encode(Push(7, [forged, price])))
    acks = _recv(ws)
    assert isinstance(acks, Acks) and acks.batch == 7
    assert [a.status for a in acks.acks] == ["rejected", "rejected"]
    assert "not to site S2" in acks.acks[0].reason
    assert "only HQ creates it" in acks.acks[1].reason
    s1 = _session(server, "s1", "S1", tokens["s1"])
    s1.send(encode(Pull(0)))
    seen = _recv(s1)
    assert isinstance(seen, Changes)
    assert forged.key not in {c.row.key for c in seen.changes}


def test_live_fan_out_respects_scope(server: ServerProc, tokens: dict[str, str]) -> None:
    s1 = _session(server, "s1", "S1", tokens["s1"])
    s2 = _session(server, "s2", "S2", tokens["s2"])
    hq = _session(server, "hq", "HQ", tokens["hq"])
    sale = _op("s1", "stock_movement", {"site": "S1", "product_id": str(uuid.UUID(int=5)),
                                        "qty": -1, "reason": "sale"})
    customer = _op("s1", "customer", {"name": "Live"})
    s1.send(encode(Push(1, [sale, customer])))
    got_hq: set[str] = set()
    while len(got_hq) < 2:
        msg = _recv(hq)
        if isinstance(msg, Changes):
            assert msg.live
            got_hq |= {c.row.key for c in msg.changes}
    assert {sale.key, customer.key} <= got_hq
    got_s2: set[str] = set()
    while customer.key not in got_s2:
        msg = _recv(s2)
        if isinstance(msg, Changes):
            got_s2 |= {c.row.key for c in msg.changes}
    assert sale.key not in got_s2


def test_unknown_message_type_in_a_valid_frame(server: ServerProc, tokens: dict[str, str]) -> None:
    ws = _session(server, "s1", "S1", tokens["s1"])
    ws.send(msgspec.msgpack.encode({"type": "Welcome", "head": 0, "schema_version": 1,
                                    "snapshot_required": False}))
    err = _recv(ws)
    assert isinstance(err, Error) and "malformed" in err.message
    _closed_with(ws, 4400)


def test_a_second_hello_closes_the_connection_with_4409(
        server: ServerProc, tokens: dict[str, str]) -> None:
    ws = _session(server, "s1", "S1", tokens["s1"])
    err = _hello(ws, "s1", "S1", tokens["s1"])
    assert isinstance(err, Error) and err.message == "already said hello on this connection"
    _closed_with(ws, 4409)


@pytest.mark.parametrize("frame", [
    {"type": "Pull", "cursor": 2**63},  # beyond what a sequence number can be
    {"type": "Pull", "cursor": -1},
    {"type": "SnapshotRequest", "at": 2**64 - 1},
])
def test_a_cursor_out_of_range_is_a_bad_message_and_the_others_are_served(
        server: ServerProc, tokens: dict[str, str], frame: dict[str, Any]) -> None:
    good = _session(server, "s2", "S2", tokens["s2"])
    bad = _session(server, "s1", "S1", tokens["s1"])
    bad.send(msgspec.msgpack.encode(frame))
    err = _recv(bad)
    assert isinstance(err, Error) and err.message.startswith("malformed client message")
    assert "cursor" in err.message or "at" in err.message
    _closed_with(bad, 4400)
    good.send(encode(Push(1, [_op("s2", "customer", {"name": "Still served"})])))
    assert _acks(good).acks[0].status == "accepted"


def test_server_log_shows_why_connections_closed(server: ServerProc) -> None:
    log = Path(server.workdir / f"server-{server.port}.log").read_text()
    assert "closing s1: device s1 belongs to site S1, not S2" in log


def test_a_device_ahead_of_hq_is_refused_with_4412_and_a_warning_in_the_log(
        server: ServerProc, tokens: dict[str, str]) -> None:
    """A device that has seen more of HQ's history than HQ has (HQ restored
    from an older backup): refused until IT acts, so the log says so even
    when the server runs with ``--log-level warning``."""
    ws = _connect(server)
    ws.send(encode(Hello("s1", "S1", tokens["s1"], SCHEMA.version, 2**40)))
    refused = _recv(ws)
    assert isinstance(refused, Error) and refused.code == "diverged" and refused.fatal
    _closed_with(ws, 4412)
    log = Path(server.workdir / f"server-{server.port}.log").read_text()
    assert "WARNING branchline.sync closing s1: this device has HQ's changes up to " in log


def _stored(server: ServerProc, entity: str, key: str) -> tuple[int, str] | None:
    path = server.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        row = conn.execute(f"SELECT _version, name FROM {entity} WHERE id = ?", (key,)).fetchone()
    conn.close()
    return None if row is None else (int(row[0]), str(row[1]))


def test_a_push_is_acked_once_stored_and_a_resend_changes_nothing(
    server: ServerProc, tokens: dict[str, str]
) -> None:
    ws = _session(server, "s1", "S1", tokens["s1"])
    key = str(uuid.uuid4())
    create = _op("s1", "customer", {"name": "Grace"}, key=key)
    rename = Op(str(uuid.uuid4()), "customer", key, 1, {"name": "Grace H."},
                Clock("s1").now(int(time.time() * 1000) + 1000), "tester", "s1", SCHEMA.version)
    ws.send(encode(Push(3, [create, rename])))
    acks = _acks(ws)
    assert [a.status for a in acks.acks] == ["accepted"] * 2
    assert _stored(server, "customer", key) == (2, "Grace H.")
    ws.send(encode(Push(4, [create, rename])))  # the device did not hear the acks: resend
    assert _acks(ws).acks == acks.acks
    assert _stored(server, "customer", key) == (2, "Grace H.")


def _sale(device: str, site: str, n: int) -> Op:
    return _op(device, "sale", {
        "site": site, "device": device, "receipt_no": f"{site}-{device}-{n:06d}", "kind": "sale",
        "customer_id": str(uuid.UUID(int=n)), "net": 1234, "discount": 0, "tax": 247,
        "total": 1481, "cash": 1481, "card": 0, "on_account": 0, "cashier": "alice",
        "date": "2026-11-23"})


def test_a_snapshot_larger_than_a_frame_arrives_in_pages_that_fit(
    server: ServerProc, tokens: dict[str, str]
) -> None:
    token = server.add_device("s7-till1", "S7")
    till = _session(server, "s7-till1", "S7", token)
    sales = [_sale("s7-till1", "S7", n) for n in range(5_000)]
    for batch in (sales[:2_500], sales[2_500:]):
        till.send(encode(Push(1, batch)))
        assert {a.status for a in _acks(till, 30).acks} == {"accepted"}
    new = _connect(server)
    new_token = server.add_device("s7-till2", "S7")
    welcome = _hello(new, "s7-till2", "S7", new_token)
    assert isinstance(welcome, Welcome) and welcome.snapshot_required
    got: list[tuple[str, str]] = []
    request = SnapshotRequest(limit=10_000)  # what a device asks for: ~9 MB of sales
    pages = 0
    while True:
        new.send(encode(request))
        frame = new.recv(30)
        assert isinstance(frame, bytes) and len(frame) <= MAX_MESSAGE_BYTES
        page = decode_server(frame)
        assert isinstance(page, SnapshotPage)
        got += [(r.entity, r.key) for r in page.rows]
        pages += 1
        if page.done:
            break
        request = SnapshotRequest(got[-1][0], got[-1][1], page.at, 10_000)
    assert pages >= 2 and got == sorted(set(got))
    assert {k for e, k in got if e == "sale"} == {s.key for s in sales}


def test_a_commit_by_another_process_reaches_connected_devices(
    server: ServerProc, tokens: dict[str, str]
) -> None:
    hq = _session(server, "hq", "HQ", tokens["hq"])
    server.add_user("late-hire", "cashier", "S1")  # the command line, not the server
    seen: set[str] = set()

    def heard() -> bool:
        try:
            msg = _recv(hq, 0.2)
        except TimeoutError:
            return False
        if isinstance(msg, Changes):
            assert msg.live
            seen.update(str(c.row.fields.get("login")) for c in msg.changes)
        return "late-hire" in seen

    wait_for(heard, 10, "the new employee to reach the connected HQ device", step=0)


def test_a_push_waiting_on_a_locked_database_keeps_the_device_connected(
        server: ServerProc) -> None:
    """While a push waits for the database (a lock held by maintenance, a
    slow disk), HQ still reads the socket, so the device's keepalive pings
    are answered and it is not cut off; the push is acked once the lock goes."""
    import asyncio

    from websockets.asyncio.client import connect as connect_async

    token = server.add_device("s1-pinger", "S1")

    async def story() -> list[Acks]:
        async with connect_async(server.ws_url, max_size=None, compression=None,
                                 ping_interval=0.2, ping_timeout=1.0) as ws:
            await ws.send(encode(Hello("s1-pinger", "S1", token, SCHEMA.version, 0)))
            assert isinstance(decode_server(await ws.recv()), Welcome)
            await ws.send(encode(Pull(0)))
            while not (isinstance(msg := decode_server(await ws.recv()), Changes)
                       and not msg.more):
                await ws.send(encode(Pull(msg.cursor)))  # type: ignore[union-attr]
            lock = sqlite3.connect(server.db_url.removeprefix("sqlite:///"),
                                   isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # HQ's next write waits for it
            try:
                for batch in (1, 2):  # the till keeps selling: a second push queues
                    await ws.send(encode(Push(batch, [_op("s1-pinger", "customer",
                                                          {"name": f"Ida {batch}"})])))
                    await asyncio.sleep(0.3)
                await asyncio.sleep(3)  # fifteen pings, each to be answered within a second
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            acks = []
            while len(acks) < 2:
                msg = decode_server(await asyncio.wait_for(ws.recv(), 10))
                if isinstance(msg, Acks):
                    acks.append(msg)
            return acks

    acks = asyncio.run(story())
    assert [(a.batch, [x.status for x in a.acks]) for a in acks] == [
        (1, ["accepted"]), (2, ["accepted"])]


def _until_closed(ws: ClientConnection, timeout: float = 10) -> tuple[list[ServerMessage], int,
                                                                       str]:
    """Every message up to the close (live changes left out), its code and reason."""
    got: list[ServerMessage] = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            msg = _recv(ws, timeout)
            if not isinstance(msg, Changes):
                got.append(msg)
    assert info.value.rcvd is not None, "closed without a close frame"
    return got, info.value.rcvd.code, info.value.rcvd.reason


def _follow(ws: ClientConnection) -> ClientConnection:
    """Pull up to HQ's head after the Welcome, as a device does."""
    ws.send(encode(Pull(0)))
    while not (isinstance(msg := _recv(ws), Changes) and not msg.live and not msg.more):
        if isinstance(msg, Changes) and not msg.live:
            ws.send(encode(Pull(msg.cursor)))
    return ws


def test_a_second_connection_of_a_device_takes_over_once_the_first_ones_push_is_acked(
        server: ServerProc) -> None:
    """A cloned till (same device id and token) connects while its twin's
    push waits for the database: the twin's push commits and is acked, then
    the twin is closed with 4410 saying who took over from where; the newer
    connection is served."""
    token = server.add_device("s1-twin", "S1")
    first = _session(server, "s1-twin", "S1", token)
    lock = sqlite3.connect(server.db_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the twin's push waits for the database
    try:
        in_flight = _op("s1-twin", "customer", {"name": "In flight"})
        first.send(encode(Push(1, [in_flight])))
        time.sleep(0.3)
        second = _connect(server)
        second.send(encode(Hello("s1-twin", "S1", token, SCHEMA.version, 0,
                                 reads_replaced=True)))
        time.sleep(0.3)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    got, code, reason = _until_closed(first)
    assert [type(m) for m in got] == [Acks, Error]
    acks, error = got
    assert isinstance(acks, Acks) and [a.status for a in acks.acks] == ["accepted"]
    assert isinstance(error, Error) and error.code == "replaced" and error.fatal
    assert error.message.startswith("another connection of device s1-twin took over from "
                                    "127.0.0.1 at ")
    assert "a cloned till?" in error.message
    assert code == 4410 and reason == error.message[:120]
    assert _stored(server, "customer", in_flight.key) == (1, "In flight")
    assert isinstance(_recv(second), Welcome)
    _follow(second).send(encode(Push(2, [_op("s1-twin", "customer", {"name": "After"})])))
    assert [a.status for a in _acks(second).acks] == ["accepted"]
    log = Path(server.workdir / f"server-{server.port}.log").read_text()
    assert ("WARNING branchline.sync closing s1-twin (from 127.0.0.1): another connection of "
            "device s1-twin took over from 127.0.0.1") in log


def test_an_older_edge_taken_over_gets_the_close_code_without_a_frame_it_cannot_read(
        server: ServerProc) -> None:
    """An edge of before the take-over code refuses an Error frame of it as
    malformed (and would reconnect at once); it gets close 4410 and its
    reason alone, as a dropped link."""
    token = server.add_device("s1-oldtill", "S1")
    old = _session(server, "s1-oldtill", "S1", token, reads_replaced=False)
    _session(server, "s1-oldtill", "S1", token)
    got, code, reason = _until_closed(old)
    assert got == [] and code == 4410
    assert reason.startswith("another connection of device s1-oldtill took over")


def test_a_device_connecting_to_another_server_process_on_sqlite_takes_over_within_seconds(
        server: ServerProc) -> None:
    """Two server processes on one SQLite file (no NOTIFY): the newer
    connection's Hello is read with the tokens every 5 s, so the older one,
    on the other process, is closed (4410) within that time."""
    token = server.add_device("s1-roamer", "S1")
    first = _session(server, "s1-roamer", "S1", token)
    other = ServerProc(server.db_url, server.workdir).start()
    try:
        second = _session(other, "s1-roamer", "S1", token)
        started = time.monotonic()
        _, code, reason = _until_closed(first, timeout=15)
        assert code == 4410 and "another connection of device s1-roamer took over" in reason
        assert time.monotonic() - started < 12
        second.send(encode(Push(1, [_op("s1-roamer", "customer", {"name": "Served"})])))
        assert [a.status for a in _acks(second).acks] == ["accepted"]
    finally:
        other.stop()


def _peer_of(server: ServerProc, device: str) -> str:
    """The address HQ recorded for the device's last Hello (the IT page's)."""
    db = sqlite3.connect(server.db_url.removeprefix("sqlite:///"))
    try:
        return str(db.execute("SELECT conn_peer FROM devices WHERE device = ?",
                              (device,)).fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize(("trusted", "seen"), [("127.0.0.1", "10.0.0.7"),
                                               ("10.9.9.9", "127.0.0.1")])
def test_a_till_behind_a_trusted_proxy_is_seen_at_its_own_address(
        tmp_path: Path, trusted: str, seen: str) -> None:
    """Behind a reverse proxy every till came from the proxy's address; a
    proxy named in --forwarded-allow-ips has its X-Forwarded-For believed, and
    any other client's header is ignored (a till cannot pose as another)."""
    proc = ServerProc(f"sqlite:///{tmp_path / 'hq.db'}", tmp_path,
                      "--forwarded-allow-ips", trusted).start()
    try:
        token = proc.add_device("s1-proxied", "S1")
        ws = connect(proc.ws_url, max_size=None, open_timeout=5, compression=None,
                     legacy=True, additional_headers={"X-Forwarded-For": "10.0.0.7"})
        assert isinstance(_hello(ws, "s1-proxied", "S1", token), Welcome)
        ws.close()
        assert _peer_of(proc, "s1-proxied") == seen
    finally:
        proc.stop()
