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
