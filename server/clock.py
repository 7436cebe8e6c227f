"""The server's reading of the wall clock, for what it stamps and keys itself."""

from __future__ import annotations

import time

from sync.ids import new_id


def now_ms() -> int:
    """Unix time in milliseconds."""
    return int(time.time() * 1000)


def fresh_id() -> str:
    """A new row key or op id made at HQ (time-ordered, see ``sync.ids``)."""
    return new_id(now_ms())
