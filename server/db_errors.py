"""What HQ's database raises when it, not a request, is the trouble."""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

DB_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
"""Errors of a database that is down, cut off, read-only, full, locked too
long or too busy (not a bug of ours, nor anything a client did): answered
"retry shortly" -- 503 over HTTP, close 1013 on the sync socket -- and logged
in one line, without a traceback."""


def short_reason(exc: BaseException) -> str:
    """The driver's message in one line, without SQLAlchemy's SQL and link."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return (lines[0] if lines else type(orig).__name__)[:200]
