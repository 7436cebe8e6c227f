"""A till on a full disk or a read-only medium: reads still work, and what
cannot work says why in a store manager's words; a missing file is not made."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client import cli, disk
from client.edge import Edge
from client.errors import LocalDatabaseError
from client.sqlite_file import connect
from tests.sync.kit import PRODUCT, key

READS = (["pending"], ["rejections"], ["check-stock"],
         ["get", "customer", key(1)], ["trial-balance"], ["in-transit"], ["exceptions"])


def _till(path: Path) -> Path:
    with Edge(path) as e:
        e.configure("ws://127.0.0.1:1/sync", "s1-till1", "S1", "bl_x")
        e.write("customer", key(1), {"name": "Ada"})
        e.write("stock_movement", key(2), {"site": "S1", "product_id": PRODUCT, "qty": 5,
                                           "reason": "receipt"})
    assert not disk.wal_holds_data(path)  # the last connection checkpointed the log away
    return path


def _mount(folder: Path, size: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def read_only_till(tmp_path: Path) -> Iterator[Path]:
    """A till file alone on a read-only medium (no -wal, no -shm)."""
    folder = tmp_path / "ro"
    _mount(folder, "64m")
    try:
        shutil.copy(_till(tmp_path / "till.db"), folder / "till.db")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder / "till.db"
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def full_till(tmp_path: Path) -> Iterator[Path]:
    """A till file on a disk with no space left."""
    folder = tmp_path / "full"
    _mount(folder, "8m")
    try:
        db = _till(folder / "till.db")
        with open(folder / "filler", "wb") as filler, pytest.raises(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        yield db
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def _cli(db: Path, *args: str) -> int:
    return cli.main(["--db", str(db), *args])


@pytest.mark.parametrize("fixture", ["read_only_till", "full_till"])
def test_read_commands_work_and_writes_say_why_they_cannot(
        fixture: str, request: pytest.FixtureRequest,
        capsys: pytest.CaptureFixture[str]) -> None:
    db: Path = request.getfixturevalue(fixture)
    before = sorted(os.listdir(db.parent))
    assert _cli(db, "status", "--timeout", "0.2") == 6  # it works, and warns
    assert "local fault: " in capsys.readouterr().out
    for command in READS:
        assert _cli(db, *command) == 0, (command, capsys.readouterr().err)
    out = capsys.readouterr().out
    assert "Ada" in out and len(out.splitlines()) > 3
    assert _cli(db, "put", "customer", key(3), "name=Bo") == 2
    err = capsys.readouterr().err
    assert (f"{db} is on a read-only disk" in err if fixture == "read_only_till"
            else f"the disk holding {db} is full (" in err), err
    # nothing half written: at most SQLite's empty side files (a full disk lets
    # it make them, not size them)
    assert set(os.listdir(db.parent)) - set(before) <= {"till.db-wal", "till.db-shm"}
    assert not disk.wal_holds_data(db)
    with Edge(db, readonly=True) as e:
        assert len(e.pending()) == 2 and e.get("customer", key(3)) is None


def test_a_log_that_cannot_be_read_is_not_skipped(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    db = _till(tmp_path / "till.db")
    held = connect(db)  # keeps the log: changes in it are not in the file yet
    held.execute("PRAGMA wal_autocheckpoint=0")
    held.execute("UPDATE _state SET value = 'S9' WHERE name = 'site'")
    assert disk.wal_holds_data(db)
    real = sqlite3.connect

    def no_shm(database: str, **kw: Any) -> sqlite3.Connection:
        if "mode=ro" in database:  # as on a read-only disk without the -shm index
            raise sqlite3.OperationalError("unable to open database file")
        return real(database, **kw)

    monkeypatch.setattr(sqlite3, "connect", no_shm)
    with pytest.raises(LocalDatabaseError, match=r"latest changes are in .*till\.db-wal"):
        Edge(db, readonly=True)
    held.close()


def test_disk_trouble_in_a_store_managers_words(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "till.db"
    assert disk.disk_trouble(db) is None
    assert disk.disk_trouble(tmp_path / "gone" / "till.db") == (
        f"the folder {tmp_path / 'gone'} does not exist")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(disk.shutil, "disk_usage",
                        lambda _: usage._replace(free=12 * 1024))
    assert disk.disk_trouble(db) == f"the disk holding {db} is full (12 KB free)"


def test_a_command_on_a_missing_file_makes_none(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "typo.db"
    for command in (["status"], ["sell", "SKU-1:1"], ["sync"], ["pending"]):
        assert _cli(db, *command) == 2
        assert capsys.readouterr().err.strip() == (
            f"no till file at {db}; run `branchline-edge init` first")
    assert os.listdir(tmp_path) == []
    assert _cli(db, "init", "--server", "ws://h/sync", "--device", "t", "--site", "bad site",
                "--token", "x") == 2
    assert os.listdir(tmp_path) == []  # a refused init leaves no file behind
