"""The edge device most client tests start from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from client.edge import Edge


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    """Till s1-till1 of site S1, set up; its server is unreachable (port 1)."""
    e = Edge(tmp_path / "till.db")
    e.configure("ws://127.0.0.1:1/sync", "s1-till1", "S1", "bl_token")
    yield e
    e.close()
