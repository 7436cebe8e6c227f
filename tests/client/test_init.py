"""`branchline-edge init`: a file stays with the device and site it was set up for."""

from __future__ import annotations

from pathlib import Path

import pytest

from client import cli
from client.edge import Edge
from client.errors import BadArgument, BelongsElsewhere
from client.store import REFUSED_STATE
from tests.sync.kit import key

URL = "ws://127.0.0.1:1/sync"


def _init(db: Path, device: str, site: str, token: str = "bl_x", *more: str,
          server: str = URL) -> int:
    return cli.main(["--db", str(db), "init", "--server", server, "--device", device,
                     "--site", site, "--token", token, *more])


def test_init_refuses_a_file_of_another_device_or_site(
        edge: Edge, capsys: pytest.CaptureFixture[str]) -> None:
    edge.write("customer", key(1), {"name": "Ada"})
    edge.close()
    for device, site in (("s3-till1", "S3"), ("s1-till2", "S1"), ("s1-till1", "S3")):
        assert _init(edge.path, device, site) == 2
        err = capsys.readouterr().err
        assert "belongs to device s1-till1 at site S1" in err
        assert "1 ops of device s1-till1 at site S1 not yet sent" in err
        assert "new file" in err
    with Edge(edge.path) as again:  # nothing changed
        assert (again.setting("device"), again.setting("site")) == ("s1-till1", "S1")
        assert len(again.pending()) == 1


def test_force_never_drops_unsent_ops(edge: Edge, capsys: pytest.CaptureFixture[str]) -> None:
    edge.write("customer", key(1), {"name": "Ada"})
    edge.close()
    assert _init(edge.path, "s3-till1", "S3", "bl_x", "--force") == 2
    assert "never drops them" in capsys.readouterr().err
    with Edge(edge.path) as again:
        assert again.setting("device") == "s1-till1" and len(again.pending()) == 1


def test_force_takes_over_a_drained_file_and_resets_its_sync_state(edge: Edge) -> None:
    with edge.transaction() as store:
        for name, value in (("cursor", "42"), ("bootstrapped", "1"), ("last_sync_ms", "1"),
                            ("acked", "op"), (REFUSED_STATE, "1 refused")):
            store.set_state(name, value)
    with pytest.raises(BelongsElsewhere):
        edge.configure(URL, "s3-till1", "S3", "bl_y")
    done = edge.configure(URL, "s3-till1", "S3", "bl_y", force=True)
    assert "taken over from device s1-till1 at site S1" in done[0]
    status = edge.status()
    assert (status.device, status.site, status.cursor, status.bootstrapped) == (
        "s3-till1", "S3", 0, False)
    assert status.last_sync_ms is None and not status.refused and status.rejoining


def test_a_new_token_or_server_for_the_same_device_is_taken_and_forgets_the_refusal(
        edge: Edge) -> None:
    with edge.transaction() as store:
        store.set_state(REFUSED_STATE, "1 HQ refused this device (auth): unknown device token")
    assert edge.configure(URL, "s1-till1", "S1", "bl_token") == []  # nothing new: kept
    assert edge.status().refused
    assert edge.configure(URL, "s1-till1", "S1", "bl_new") == [
        "HQ's last refusal of the old settings is forgotten"]
    assert not edge.status().refused and edge.setting("token") == "bl_new"
    with edge.transaction() as store:
        store.set_state(REFUSED_STATE, "1 HQ refused this device (auth): revoked")
    edge.configure("ws://hq2:8000/sync", "s1-till1", "S1", "bl_new")
    assert not edge.status().refused and edge.setting("server") == "ws://hq2:8000/sync"
    with edge.transaction() as store:  # only a rejoin settles a divergence
        store.set_state(REFUSED_STATE, "1 HQ refused this device (diverged): restored")
    edge.configure(URL, "s1-till1", "S1", "bl_newer")
    assert "diverged" in (edge.status().refused or "")


@pytest.mark.parametrize("site", ["s3", "S 3", "", "S1/2", "A" * 17])
def test_init_checks_the_site_code_as_hq_does(tmp_path: Path, site: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with Edge(tmp_path / "t.db") as e, pytest.raises(BadArgument, match="not valid"):
        e.configure(URL, "t1", site, "bl_x")
    assert _init(tmp_path / "cli.db", "t1", site) == 2
    assert f"site code {site!r} is not valid" in capsys.readouterr().err
