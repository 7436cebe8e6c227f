"""``sync_once`` and ``run_daemon`` against a real ``branchline server`` process on
loopback: bootstrap, push, ack, changes from other devices, live fan-out,
writes by another process sharing the file, refusal, reconnection."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from client import cli
from client.daemon import probe, run_daemon, sync_once
from client.edge import Edge
from client.errors import Refused, Unreachable
from sync.messages import ErrorCode
from tests.e2e.procs import BIN, ServerProc, free_port

pytestmark = pytest.mark.e2e

PRODUCT = str(uuid.UUID(int=1))
CUSTOMER = str(uuid.UUID(int=2))


def _k() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    work = tmp_path_factory.mktemp("hq")
    proc = ServerProc(f"sqlite:///{work / 'hq.db'}", work).start()
    proc.add_user("admin", "hq_admin", "HQ")
    try:
        yield proc
    finally:
        proc.stop()


class Devices:
    """Edge databases registered with the module's server."""

    def __init__(self, server: ServerProc, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self.opened: list[Edge] = []

    def new(self, site: str, token: str | None = None) -> Edge:
        device = f"{site.lower()}-{uuid.uuid4().hex[:8]}"
        edge = self.open(self.folder / f"{device}.db")
        edge.configure(self.server.ws_url, device, site,
                       token or self.server.add_device(device, site))
        return edge

    def open(self, path: Path) -> Edge:
        edge = Edge(path)
        self.opened.append(edge)
        return edge

    def hq(self) -> Edge:
        """An HQ device that knows the employees (it synced once)."""
        edge = self.new("HQ")
        asyncio.run(sync_once(edge, timeout=30))
        return edge


@pytest.fixture
def devices(server: ServerProc, tmp_path: Path) -> Iterator[Devices]:
    made = Devices(server, tmp_path)
    yield made
    for edge in made.opened:
        edge.close()


def _seed(hq: Edge, qty: int = 10) -> None:
    if hq.get("product", PRODUCT) is None:
        hq.write("product", PRODUCT, {"sku": "OAT-1", "name": "Oat milk 1l", "price": 199},
                 user="admin")
        hq.write("customer", CUSTOMER, {"name": "Ada", "phone": "111"}, user="admin")
    hq.write("stock_movement", _k(), {"site": "S1", "product_id": PRODUCT, "qty": qty,
                                      "reason": "receipt"}, user="admin")
    result = asyncio.run(sync_once(hq, timeout=30))
    assert (result.pending, result.rejected) == (0, 0)


def test_bootstrap_push_ack_and_changes_from_another_device(devices: Devices) -> None:
    hq = devices.hq()
    _seed(hq)
    till = devices.new("S1")
    seen: list[tuple[str, int, int]] = []
    boot = asyncio.run(sync_once(till, timeout=30,
                                 progress=lambda what, done, total: seen.append(
                                     (what, done, total))))
    assert boot.snapshot_rows >= 3 and boot.pushed == 0 and boot.cursor > 0
    assert seen and seen[-1] == ("bootstrap", boot.snapshot_rows, boot.snapshot_rows)  # done
    assert till.get("customer", CUSTOMER)["phone"] == "111"  # type: ignore[index]
    on_hand = till.stock("S1", PRODUCT)
    assert on_hand >= 10 and till.stock_mismatches() == []
    assert till.status().bootstrapped and till.status().last_sync_ms is not None

    till.write("customer", CUSTOMER, {"phone": "222"})
    till.write("stock_movement", _k(), {"site": "S1", "product_id": PRODUCT, "qty": -2,
                                        "reason": "sale"})
    pushed = asyncio.run(sync_once(till, timeout=30))
    assert (pushed.pushed, pushed.rejected, pushed.pending) == (2, 0, 0)
    assert till.pending() == []
    assert till.get("customer", CUSTOMER)["_version"] > 1  # type: ignore[index]

    pulled = asyncio.run(sync_once(hq, timeout=30))
    assert pulled.received_rows >= 2
    assert hq.get("customer", CUSTOMER)["phone"] == "222"  # type: ignore[index]
    assert hq.stock("S1", PRODUCT) == till.stock("S1", PRODUCT) == on_hand - 2


def test_an_op_hq_rejects_comes_back_with_its_reason(devices: Devices) -> None:
    hq = devices.hq()
    _seed(hq)
    till = devices.new("S1")
    asyncio.run(sync_once(till, timeout=30))
    gone = _k()
    hq.write("customer", gone, {"name": "Temp"}, user="admin")
    asyncio.run(sync_once(hq, timeout=30))
    asyncio.run(sync_once(till, timeout=30))
    till.write("customer", gone, {"phone": "999"})  # offline, meanwhile HQ deletes it
    hq.delete("customer", gone, user="admin")
    asyncio.run(sync_once(hq, timeout=30))
    result = asyncio.run(sync_once(till, timeout=30))
    assert (result.pushed, result.rejected, result.pending) == (1, 1, 0)
    [rejection] = till.rejections()
    assert rejection.key == gone and "deleted" in rejection.reason
    assert till.get("customer", gone) is None


def test_an_unreachable_server_is_a_clear_error(devices: Devices) -> None:
    till = devices.new("S1", token="bl_never_used")
    url = f"ws://127.0.0.1:{free_port()}/sync"
    with pytest.raises(Unreachable, match="cannot reach"):
        asyncio.run(sync_once(till, url, timeout=10))
    assert asyncio.run(probe(url, 1)) is not None
    assert asyncio.run(probe(devices.server.ws_url, 2)) is None


def test_an_unknown_token_stops_sync_and_daemon_at_once(devices: Devices) -> None:
    till = devices.new("S1", token="bl_forged")
    with pytest.raises(Refused) as refused:
        asyncio.run(sync_once(till, timeout=10))
    assert refused.value.code == ErrorCode.AUTH

    async def daemon() -> None:
        await asyncio.wait_for(run_daemon(till, None, asyncio.Event()), 10)

    start = time.monotonic()
    with pytest.raises(Refused):
        asyncio.run(daemon())
    assert time.monotonic() - start < 5


def test_a_revoked_device_is_refused(devices: Devices) -> None:
    till = devices.new("S1")
    asyncio.run(sync_once(till, timeout=30))
    subprocess.run([str(BIN / "branchline"), "device", "revoke", "--db", devices.server.db_url,
                    "--device", till.setting("device")], check=True, capture_output=True,
                   timeout=60)
    with pytest.raises(Refused, match="auth"):
        asyncio.run(sync_once(till, timeout=10))


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _with_daemon(edge: Edge, url: str | None,
                       body: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_daemon(edge, url, stop, base_delay=0.05, max_delay=0.2))
    try:
        await body()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)  # a clean stop, not a cancellation


def test_the_daemon_pushes_other_processes_writes_and_takes_live_changes(
        devices: Devices) -> None:
    hq = devices.hq()
    _seed(hq)
    till = devices.new("S1")
    other = devices.open(till.path)  # the CLI, in another process, on the same file
    key = _k()

    async def body() -> None:
        await _until(lambda: till.status().bootstrapped, 15, "the bootstrap")
        other.write("customer", key, {"name": "Walk-in"})
        await _until(lambda: other.status().pending == 0, 5, "the push of another writer")
        assert other.get("customer", key)["_version"] == 1  # type: ignore[index]
        hq.write("customer", CUSTOMER, {"email": f"{key}@example.org"}, user="admin")
        await asyncio.to_thread(lambda: asyncio.run(sync_once(hq, timeout=30)))
        await _until(lambda: (other.get("customer", CUSTOMER) or {}).get("email")
                     == f"{key}@example.org", 5, "a live change from HQ")

    asyncio.run(_with_daemon(till, None, body))
    assert hq.get("customer", key)["name"] == "Walk-in"  # type: ignore[index]
    assert till.status().pending == 0 and till.stock_mismatches() == []


def test_the_daemon_keeps_trying_until_the_server_comes_up(devices: Devices,
                                                          tmp_path: Path) -> None:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'late.db'}"
    late = ServerProc(db_url, tmp_path)
    late.port = port
    token = late.add_device("s1-late", "S1")
    till = devices.open(tmp_path / "late-till.db")
    till.configure(late.ws_url, "s1-late", "S1", token)
    till.write("customer", _k(), {"name": "Offline sale's customer"})

    async def body() -> None:
        await asyncio.sleep(0.5)  # a few failed attempts, no exception
        await asyncio.to_thread(late.start)
        await _until(lambda: till.status().pending == 0, 15, "the push after the server came up")

    try:
        asyncio.run(_with_daemon(till, None, body))
    finally:
        late.stop()


def test_cli_sync_and_status_say_when_the_server_is_unreachable(
        devices: Devices, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "cli.db")
    url = f"ws://127.0.0.1:{free_port()}/sync"
    assert cli.main(["--db", db, "init", "--server", url, "--device", "d", "--site", "S1",
                     "--token", "bl_x"]) == 0
    assert cli.main(["--db", db, "sync", "--timeout", "5", "--no-progress"]) == 5
    assert "server unreachable: cannot reach" in capsys.readouterr().err
    assert cli.main(["--db", db, "status", "--timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert "reachable no" in out and "pending ops 0" in out and "last sync never" in out
    assert cli.main(["--db", db, "get", "customer", CUSTOMER]) == 1


def test_a_store_ahead_of_a_restored_hq_is_refused_and_status_says_so(
        devices: Devices, capsys: pytest.CaptureFixture[str]) -> None:
    """HQ restored from an older backup has a shorter change sequence than a
    store has seen: serving the store would skip HQ's next changes for good,
    so HQ refuses it (4412) and the store says why until HQ takes it again."""
    till = devices.new("S1")
    asyncio.run(sync_once(till, timeout=30))
    seen = till.status().cursor
    with till.transaction():  # as if HQ had lost its last 1,000 changes
        till.store.set_state("cursor", str(seen + 1_000))
    with pytest.raises(Refused, match="restored from an older backup") as refused:
        asyncio.run(sync_once(till, timeout=10))
    assert refused.value.code == ErrorCode.DIVERGED
    assert cli.main(["--db", str(till.path), "status"]) == 4
    out = capsys.readouterr().out
    assert "refused by HQ at " in out and "HQ's change sequence ends at" in out
    with till.transaction():  # IT brought HQ back to its latest database
        till.store.set_state("cursor", str(seen))
    asyncio.run(sync_once(till, timeout=30))
    assert cli.main(["--db", str(till.path), "status"]) == 0
    assert "refused by HQ" not in capsys.readouterr().out


def _sell(till: Edge, qty: int = -1) -> None:
    till.write("stock_movement", _k(), {"site": till.setting("site"), "product_id": PRODUCT,
                                        "qty": qty, "reason": "sale"})


def test_stores_are_refused_by_an_hq_restored_from_a_backup_older_than_their_sync(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """HQ restored from last night's backup, and a third store pushed before
    the first two came back, taking HQ's sequence past their cursors again:
    S2 got a price change HQ no longer has, and S1's two sales were acked by
    the HQ that was lost. Serving either would skip HQ's new changes at their
    cursors for good, so HQ refuses both (4412), saying what it lost, and the
    sales stay in S1's file."""
    work = tmp_path / "hq"
    work.mkdir()
    db = work / "hq.db"
    server = ServerProc(f"sqlite:///{db}", work).start()
    made = Devices(server, tmp_path)
    try:
        server.add_user("admin", "hq_admin", "HQ")
        hq = made.hq()
        _seed(hq)
        s1, s2, s3 = made.new("S1"), made.new("S2"), made.new("S3")
        for till in (s1, s2, s3):
            asyncio.run(sync_once(till, timeout=30))
        with sqlite3.connect(db) as live, sqlite3.connect(work / "backup.db") as backup:
            live.backup(backup)  # IT's nightly backup
        for _ in range(2):
            _sell(s1)
        assert asyncio.run(sync_once(s1, timeout=30)).pushed == 2
        hq.write("product", PRODUCT, {"price": 249}, user="admin")
        asyncio.run(sync_once(hq, timeout=30))
        lost_pc, walk_in = made.new("HQ"), _k()  # a PC that dies with HQ's disk
        lost_pc.write("customer", walk_in, {"name": "Walk-in"}, user="admin")
        asyncio.run(sync_once(lost_pc, timeout=30))
        asyncio.run(sync_once(s2, timeout=30))
        assert s2.get("customer", walk_in) is not None
        assert s2.get("product", PRODUCT)["price"] == 249  # type: ignore[index]
        lead = max(s1.status().cursor, s2.status().cursor)
        server.stop()  # the disk dies; IT restores last night's backup
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        (work / "backup.db").replace(db)
        server.start()
        while s3.status().cursor <= lead:  # S3 sells on, past the others' cursors
            _sell(s3)
            asyncio.run(sync_once(s3, timeout=30))
        for till, lost in ((s2, "is not the one this device received"),
                           (s1, "HQ has no record of op .* acknowledged to this device")):
            with pytest.raises(Refused, match=lost) as refused:
                asyncio.run(sync_once(till, timeout=10))
            assert refused.value.code == ErrorCode.DIVERGED
            assert cli.main(["--db", str(till.path), "status"]) == 4
            said = capsys.readouterr().out
            assert "restored from an older backup" in said
            assert ("kept for a rejoin: 2 acked ops, since " in said) == (till is s1)
        assert s1.stock("S1", PRODUCT) == 8 and s1.pending() == []

        # HQ's latest database is lost for good: every device rejoins, in any order
        assert cli.main(["--db", str(s3.path), "rejoin", "--no-progress"]) == 2  # not refused
        with pytest.raises(Refused, match="restored from an older backup"):
            asyncio.run(sync_once(hq, timeout=10))  # HQ's own PC: its price edit was lost
        for till in (s1, s2, hq):
            assert cli.main(["--db", str(till.path), "rejoin", "--no-progress"]) == 0
        for till in (hq, s2, s1, s3):  # a device that rejoined early pulls the later ones
            asyncio.run(sync_once(till, timeout=30))
        s3_sold = -len(s3.query("stock_movement", site="S3", reason="sale"))
        assert s1.stock("S1", PRODUCT) == hq.stock("S1", PRODUCT) == 8
        assert hq.stock("S3", PRODUCT) == s3.stock("S3", PRODUCT) == s3_sold < 0
        assert s2.get("product", PRODUCT)["price"] == 249  # type: ignore[index]
        assert s2.get("customer", walk_in) is None  # HQ lost it: no device keeps it
        assert all(till.pending() == [] and till.rejections() == [] and
                   till.stock_mismatches() == [] for till in (hq, s1, s2, s3))
        check = subprocess.run([str(BIN / "branchline"), "check-totals", "--db",
                                server.db_url], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        for edge in made.opened:
            edge.close()
        server.stop()


def test_status_says_a_revoked_device_was_refused_after_the_daemon_stopped(
        devices: Devices, capsys: pytest.CaptureFixture[str]) -> None:
    till = devices.new("S1")
    asyncio.run(sync_once(till, timeout=30))
    subprocess.run([str(BIN / "branchline"), "device", "revoke", "--db", devices.server.db_url,
                    "--device", till.setting("device")], check=True, capture_output=True,
                   timeout=60)
    with pytest.raises(Refused):
        asyncio.run(asyncio.wait_for(run_daemon(till, None, asyncio.Event()), 10))
    assert cli.main(["--db", str(till.path), "status"]) == 4
    out = capsys.readouterr().out
    assert "reachable yes" in out and "refused by HQ at " in out and "was revoked" in out


@pytest.mark.parametrize(("fault", "stops"), [
    ("attempt to write a readonly database", True), ("disk I/O error", True),
    ("database is locked", False)])
def test_the_daemon_stops_on_a_local_database_fault_and_waits_out_a_lock(
        devices: Devices, monkeypatch: pytest.MonkeyPatch, fault: str, stops: bool) -> None:
    """A fault right after HQ's Welcome must not reset the backoff: the daemon
    stops on a file it cannot write, and waits longer and longer on a lock."""
    import sqlite3

    from client import daemon
    from client.errors import LocalDatabaseError

    till = devices.new("S1")
    delays: list[int] = []
    stop = asyncio.Event()

    async def failing(*args: object, on_welcome: Callable[[], None] | None = None,
                      **kwargs: object) -> None:
        if on_welcome is not None:
            on_welcome()  # HQ said Welcome, then the local write failed
        if len(delays) >= 4:
            stop.set()
        raise sqlite3.OperationalError(fault)

    def backoff(attempt: int, base: float, most: float) -> float:
        delays.append(attempt)
        return 0.0

    monkeypatch.setattr(daemon, "_sync", failing)
    monkeypatch.setattr(daemon, "backoff", backoff)
    if stops:
        with pytest.raises(LocalDatabaseError, match=fault):
            asyncio.run(asyncio.wait_for(run_daemon(till, None, stop), 10))
        assert delays == []
    else:
        asyncio.run(asyncio.wait_for(run_daemon(till, None, stop), 10))
        assert delays == [0, 1, 2, 3]  # growing, although each attempt was welcomed


def test_a_till_whose_clock_runs_days_ahead_neither_wins_later_edits_nor_goes_unsaid(
        devices: Devices, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """HQ dates the edits of a till stamped days ahead of HQ's clock by their
    arrival, so an edit made a minute later at HQ still wins; the till's
    status tells the manager to set the clock."""
    hq = devices.hq()
    _seed(hq)
    till = devices.new("S1")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3 * 86_400)  # this process's tills
    asyncio.run(sync_once(till, timeout=30))
    till.write("customer", CUSTOMER, {"phone": "AHEAD"})
    assert asyncio.run(sync_once(till, timeout=30)).rejected == 0
    assert cli.main(["--db", str(till.path), "status", "--timeout", "5"]) == 0
    assert "clock: this till's clock was 3 days ahead of HQ's" in capsys.readouterr().out
    monkeypatch.setattr(time, "time", real)  # HQ's PC keeps the right time

    asyncio.run(sync_once(hq, timeout=30))
    assert hq.get("customer", CUSTOMER)["phone"] == "AHEAD"  # type: ignore[index]
    hq.write("customer", CUSTOMER, {"phone": "LATER"}, user="admin")
    assert asyncio.run(sync_once(hq, timeout=30)).rejected == 0
    monkeypatch.setattr(time, "time", lambda: real() + 3 * 86_400)
    asyncio.run(sync_once(till, timeout=30))
    assert till.get("customer", CUSTOMER)["phone"] == "LATER"  # type: ignore[index]
    assert hq.get("customer", CUSTOMER)["phone"] == "LATER"  # type: ignore[index]


def _hq_rows(server: ServerProc, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{server.db_url.removeprefix('sqlite:///')}?mode=ro",
                         uri=True) as hq:
        rows = hq.execute(sql, params).fetchall()
    hq.close()
    return rows


def test_a_daemon_a_cloned_till_takes_over_from_warns_waits_and_status_says_so(
        devices: Devices, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A till's disk image cloned onto a second till: both daemons sync as
    one device. HQ serves the newer; the older daemon warns that another
    device uses this till's identity and waits (minutes in the field),
    instead of taking the device back within a second; `status` says so."""
    till = devices.new("S1")
    device = till.setting("device")
    asyncio.run(sync_once(till, timeout=30))
    with sqlite3.connect(till.path) as disk, sqlite3.connect(tmp_path / "clone.db") as image:
        disk.backup(image)
    disk.close()
    image.close()
    clone = devices.open(tmp_path / "clone.db")
    server = devices.server

    def hellos() -> int:
        [(gen,)] = _hq_rows(server, "SELECT coalesce(conn_gen, 0) FROM devices WHERE device = ?",
                            device)
        return int(str(gen))

    def takeovers() -> int:
        return len(_hq_rows(server, "SELECT id FROM device_takeovers WHERE device = ?", device))

    async def story() -> None:
        stop = asyncio.Event()
        before = hellos()
        first = asyncio.create_task(run_daemon(till, None, stop, base_delay=0.05, max_delay=0.2,
                                               taken_over_delay=60))
        await _until(lambda: hellos() == before + 1, 10, "the first till's daemon")
        second = asyncio.create_task(run_daemon(clone, None, stop, base_delay=0.05,
                                                max_delay=0.2, taken_over_delay=60))
        try:
            await _until(lambda: takeovers() == 1, 10, "the clone to take over")
            clone.write("customer", _k(), {"name": "Sold on the clone"})
            await _until(lambda: clone.status().pending == 0, 10, "the clone's push")
            await asyncio.sleep(2)  # the first daemon would have taken the device back by now
            assert (takeovers(), hellos()) == (1, before + 2)
            assert not first.done() and not second.done()
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(first, second), 10)

    with caplog.at_level(logging.WARNING, "branchline.daemon"):
        asyncio.run(story())
    warned = [r.getMessage() for r in caplog.records if r.name == "branchline.daemon"]
    assert any(f"another connection of device {device} took over from 127.0.0.1" in m and
               "another device is using this till's identity: check for a cloned till" in m and
               "reconnecting in 1." in m for m in warned), warned
    assert cli.main(["--db", str(till.path), "status", "--timeout", "1"]) == 0
    said = capsys.readouterr().out
    assert f"last take-over {time.strftime('%Y-%m-%d', time.gmtime())}" in said
    assert f"another connection of device {device} took over from 127.0.0.1" in said
    assert cli.main(["--db", str(clone.path), "status", "--timeout", "1"]) == 0
    assert "last take-over" not in capsys.readouterr().out


def test_sync_while_the_daemon_runs_waits_for_it_instead_of_taking_its_connection(
        devices: Devices, capsys: pytest.CaptureFixture[str]) -> None:
    """`sync` on a till whose daemon runs would be a second connection of the
    device: it would take over from the daemon's and send the daemon into its
    long wait. It waits for the daemon to send what is queued instead."""
    till = devices.new("S1")
    device = till.setting("device")
    other = devices.open(till.path)

    async def body() -> None:
        await _until(lambda: till.status().bootstrapped, 15, "the bootstrap")
        other.write("customer", _k(), {"name": "Queued by the CLI"})
        code = await asyncio.to_thread(cli.main, ["--db", str(till.path), "sync", "--timeout",
                                                  "10", "--no-progress"])
        assert code == 0

    asyncio.run(_with_daemon(till, None, body))
    assert "syncs this till: everything queued here was sent and answered" in (
        capsys.readouterr().out)
    assert other.status().pending == 0
    assert _hq_rows(devices.server, "SELECT id FROM device_takeovers WHERE device = ?",
                    device) == []
