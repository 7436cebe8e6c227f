"""Fixtures for end-to-end tests: a real server process on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import fresh_database

from .procs import EdgeProc, ServerProc


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hq.db'}"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProc]:
    proc = ServerProc(db_url, tmp_path).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def edges(server: ServerProc, tmp_path: Path) -> Iterator[dict[str, EdgeProc]]:
    """HQ's PC, two tills at store S1, one till at store S2, all registered."""
    made = {}
    server.add_user("admin", "hq_admin", "HQ")
    for device, site in [("hq-pc", "HQ"), ("s1-till1", "S1"), ("s1-till2", "S1"),
                         ("s2-till1", "S2")]:
        made[device] = EdgeProc(tmp_path, device, site).init(server, server.add_device(device, site))
    made["hq-pc"].user = "admin"
    made["hq-pc"].sync()  # learn the employees before acting as one of them
    try:
        yield made
    finally:
        for edge in made.values():
            edge.stop_daemon()
