"""The /sync endpoint in-process (litestar's TestClient): failures inside one
connection end that connection only."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient, WebSocketTestSession

from schema import SCHEMA
from server.devices import issue_token
from sync.hlc import Clock
from sync.messages import (
    Acks,
    Changes,
    Error,
    Hello,
    Op,
    Pull,
    Push,
    Welcome,
    decode_server,
    encode,
)
from sync.server import ServerSession


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    from server.app import create_app

    app = create_app(f"sqlite:///{tmp_path / 'hq.db'}")
    with TestClient(app) as c:
        yield c


def _join(client: TestClient[Any], stack: ExitStack, device: str, site: str
          ) -> WebSocketTestSession:
    token = issue_token(client.app.state.db, device, site)
    ws = stack.enter_context(client.websocket_connect("/sync"))
    ws.send_bytes(encode(Hello(device, site, token, SCHEMA.version, 0)))
    assert isinstance(decode_server(ws.receive_bytes(timeout=5)), Welcome)
    ws.send_bytes(encode(Pull(0)))
    assert isinstance(decode_server(ws.receive_bytes(timeout=5)), Changes)
    return ws


def test_a_failing_live_fan_out_closes_only_its_connection(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        s1 = _join(client, stack, "s1", "S1")
        s2 = _join(client, stack, "s2", "S2")
        real = ServerSession.live_run

        def broken(self: ServerSession, *args: Any) -> Any:
            if self.actor.device == "s2":
                raise RuntimeError("boom")
            return real(self, *args)

        monkeypatch.setattr(ServerSession, "live_run", broken)
        op = Op(str(uuid.uuid4()), "customer", str(uuid.uuid4()), 0, {"name": "Ada"},
                Clock("s1").now(int(time.time() * 1000)), "clerk", "s1", SCHEMA.version)
        s1.send_bytes(encode(Push(1, [op])))
        got = [decode_server(s1.receive_bytes(timeout=5)) for _ in range(2)]
        assert {type(m) for m in got} == {Acks, Changes}
        err = decode_server(s2.receive_bytes(timeout=5))
        assert isinstance(err, Error) and err.fatal
        with pytest.raises(WebSocketDisconnect) as closed:
            s2.receive_bytes(timeout=5)
        assert closed.value.code == 1011
        s1.send_bytes(encode(Pull(0)))  # the other connection is still served
        assert isinstance(decode_server(s1.receive_bytes(timeout=5)), Changes)
        s1.close()


def test_a_device_gone_while_hq_answers_is_no_error_in_the_log(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store's uplink drops while HQ sends it an answer (uvicorn raises
    ``ClientDisconnected``): an everyday event, logged as such, not as an
    error with a traceback that sends IT looking at 3 a.m."""
    from uvicorn.protocols.utils import ClientDisconnected

    from server.sync_ws import Connection

    real = Connection.send

    async def dropped(self: Connection, msgs: Any) -> Any:
        if self.device == "s2":
            raise ClientDisconnected()
        return await real(self, msgs)

    with ExitStack() as stack:
        s1 = _join(client, stack, "s1", "S1")
        s2 = _join(client, stack, "s2", "S2")
        monkeypatch.setattr(Connection, "send", dropped)
        caplog.set_level("INFO", logger="branchline.sync")
        s2.send_bytes(encode(Pull(0)))
        deadline = time.monotonic() + 5
        while "went away" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        s1.send_bytes(encode(Pull(0)))  # the other store is still served
        assert isinstance(decode_server(s1.receive_bytes(timeout=5)), Changes)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "branchline.sync"]
    assert ("INFO", "device s2 went away: ClientDisconnected") in said
    assert not [r for r in caplog.records if r.levelname == "ERROR"], said


def test_a_push_hq_cannot_store_says_the_database_is_unavailable_and_nothing_else(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """HQ's database fails a push (not writable, locked too long, down): the
    device is told so in words, with "try again later" (1013), IT's log has
    one warning without a traceback, and the other stores are still served."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from server.group_commit import GroupCommit

    def unwritable(self: GroupCommit, jobs: Any) -> Any:
        raise OperationalError("INSERT INTO sale ...", {},
                               sqlite3.OperationalError("attempt to write a readonly database"))

    with ExitStack() as stack:
        s1 = _join(client, stack, "s1", "S1")
        s2 = _join(client, stack, "s2", "S2")
        monkeypatch.setattr(GroupCommit, "_commit", unwritable)
        caplog.set_level("INFO", logger="branchline.sync")
        op = Op(str(uuid.uuid4()), "customer", str(uuid.uuid4()), 0, {"name": "Ada"},
                Clock("s2").now(int(time.time() * 1000)), "clerk", "s2", SCHEMA.version)
        s2.send_bytes(encode(Push(1, [op])))
        err = decode_server(s2.receive_bytes(timeout=5))
        assert isinstance(err, Error) and err.fatal
        assert err.message.startswith(
            "HQ's database is unavailable (attempt to write a readonly database): what this "
            "device sent since HQ's last answer was not stored")
        with pytest.raises(WebSocketDisconnect) as closed:
            s2.receive_bytes(timeout=5)
        assert closed.value.code == 1013
        s1.send_bytes(encode(Pull(0)))  # the other store is still served
        assert isinstance(decode_server(s1.receive_bytes(timeout=5)), Changes)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "branchline.sync"]
    assert [lvl for lvl, m in said if "database is unavailable" in m] == ["WARNING"]
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info], said
