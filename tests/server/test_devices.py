"""Device tokens: issued once, stored only as a hash, bound to one device and
site, refused once revoked; and the ``branchline device`` commands over them.
(Every command's help text is checked in ``tests/client/test_edge.py``.)"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from schema import SCHEMA
from server.cli import main
from server.devices import (
    DeviceInfo,
    authenticate,
    authenticate_many,
    issue_token,
    list_devices,
    revoke,
)
from server.store import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'hq.db'}", SCHEMA)
    yield d
    d.dispose()


def test_a_token_names_its_device_and_only_its_hash_is_stored(db: Database) -> None:
    token = issue_token(db, "s1-till1", "S1")
    who = authenticate(db, token)
    assert isinstance(who, DeviceInfo) and (who.device, who.site) == ("s1-till1", "S1")
    with db.engine.connect() as conn:
        stored = conn.execute(select(db.t["devices"].c.token_hash)).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    assert authenticate(db, token + "x") == "unknown device token"
    assert authenticate(db, "") == "unknown device token"


def test_many_tokens_are_judged_in_one_call(db: Database) -> None:
    """What the server's periodic check of every connected device sees."""
    good = issue_token(db, "s1-till1", "S1")
    gone = issue_token(db, "s1-till2", "S1")
    brief = issue_token(db, "s2-till1", "S2", ttl_days=1e-9)  # expired at once
    revoke(db, "s1-till2")
    verdicts = authenticate_many(db, [good, gone, brief, "bl_nobody"] + [f"x{n}" for n in
                                                                        range(1_200)])
    assert isinstance(verdicts[good], DeviceInfo) and verdicts[good].device == "s1-till1"
    assert verdicts[gone] == "the token of device s1-till2 was revoked"
    assert "the token of device s2-till1 expired on" in str(verdicts[brief])
    assert verdicts["bl_nobody"] == verdicts["x1199"] == "unknown device token"
    assert len(verdicts) == 1_204


def test_revoked_and_rekeyed_tokens_are_refused(db: Database) -> None:
    first = issue_token(db, "s1-till1", "S1")
    second = issue_token(db, "s1-till1", "S1")  # re-keyed: the first token is dead
    assert authenticate(db, first) == "unknown device token"
    assert revoke(db, "s1-till1") and not revoke(db, "nobody")
    assert authenticate(db, second) == "the token of device s1-till1 was revoked"
    assert [d.revoked_ms is not None for d in list_devices(db)] == [True]


def test_a_token_expires_and_a_new_one_revives_the_device(db: Database) -> None:
    old = issue_token(db, "s1-till1", "S1", ttl_days=1)
    assert isinstance(authenticate(db, old), DeviceInfo)
    devices = db.t["devices"]
    with db.engine.begin() as conn:  # a day and a bit later
        conn.execute(devices.update().values(expires_ms=devices.c.created_ms - 1))
    refused = authenticate(db, old)
    assert isinstance(refused, str) and refused.startswith("the token of device s1-till1 expired on")
    assert list_devices(db)[0].state().startswith("expired ")
    fresh = issue_token(db, "s1-till1", "S1", ttl_days=None)
    assert isinstance(authenticate(db, fresh), DeviceInfo)
    assert list_devices(db)[0].state() == "active, never expires"


def test_the_server_device_and_empty_ids_get_no_token(db: Database) -> None:
    for device, site in (("hq-server", "HQ"), ("", "S1"), ("s1-till1", "")):
        with pytest.raises(ValueError):
            issue_token(db, device, site)


@pytest.mark.parametrize(("site", "days", "why"), [
    ("s1", 30, "'s1' is not a site code"),  # a typo would file sales under a ghost site
    ("S 1", 30, "is not a site code"),
    ("S1", float("inf"), "not inf"),
    ("S1", float("nan"), "not nan"),
    ("S1", 1e308, "to 3650 days"),
    ("S1", 0, "to 3650 days"),
])
def test_a_bad_site_code_or_lifetime_is_refused_and_nothing_registered(
        db: Database, site: str, days: float, why: str) -> None:
    with pytest.raises(ValueError) as info:
        issue_token(db, "s9-till1", site, days)
    assert why in str(info.value)
    assert list_devices(db) == []


def test_device_add_refuses_an_endless_lifetime_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    assert main(["device", "add", "--db", url, "--device", "s9", "--site", "S1",
                 "--expires-days", "inf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refused: a token lives") and "Traceback" not in err
    assert main(["user", "add", "--db", url, "--login", "x", "--role", "cashier",
                 "--site", "s1"]) == 3
    assert "'s1' is not a site code" in capsys.readouterr().err


def test_device_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["device", "add", "--db", url, "--device", "s1-till1", "--site", "S1"]) == 0
    token = capsys.readouterr().out.split()[-1]
    assert main(["device", "list", "--db", url]) == 0
    assert capsys.readouterr().out.startswith("s1-till1\tS1\tactive until ")
    assert main(["device", "add", "--db", url, "--device", "s1-till2", "--site", "S1",
                 "--expires-days", "-1"]) == 2
    assert "a token lives from a fraction of a day to 3650 days" in capsys.readouterr().err
    assert main(["device", "add", "--db", url, "--device", "s1-till2", "--site", "S1",
                 "--no-expiry"]) == 0
    assert "never expires" in capsys.readouterr().out
    assert main(["device", "revoke", "--db", url, "--device", "s1-till1"]) == 0
    assert main(["device", "revoke", "--db", url, "--device", "nobody"]) == 1
    capsys.readouterr()
    assert main(["device", "list", "--db", url]) == 0
    assert "revoked" in capsys.readouterr().out
    db = Database(url, SCHEMA)
    assert "revoked" in str(authenticate(db, token))
    db.dispose()


def test_a_device_moves_to_another_site_only_when_asked(
        db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Re-keying a device at another site cuts the till holding its token off
    and files its sales elsewhere: a typo in the device id must not do that."""
    s2 = issue_token(db, "s2-till1", "S2")
    with pytest.raises(ValueError, match="device s2-till1 is registered at S2"):
        issue_token(db, "s2-till1", "S1")
    assert isinstance(authenticate(db, s2), DeviceInfo)  # untouched
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    assert main(["device", "add", "--db", url, "--device", "s2-till1", "--site", "S1"]) == 2
    assert "--move" in capsys.readouterr().err
    assert main(["device", "add", "--db", url, "--device", "s2-till1", "--site", "S1",
                 "--move"]) == 0
    out = capsys.readouterr()
    assert "device s2-till1 at site S1" in out.out
    assert "HQ has no site S1 yet" in out.err  # registered, with a word on the unknown code
    assert authenticate(db, s2) == "unknown device token"
    for bad in ("", "x" * 65, "s1 till", "<b>x</b>"):
        with pytest.raises(ValueError):
            issue_token(db, bad, "S1")
