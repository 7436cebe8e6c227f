"""How long HQ waits on its database: SQLite's busy timeout, and PostgreSQL's
connect, keepalive, statement, lock and write-queue limits. Without them a
silent network partition or a hung backend stalls every push for good, with
nothing logged."""

from __future__ import annotations

from typing import Any

ADVISORY_LOCK = 7262_2024

SQLITE_BUSY_MS = 30_000
"""How long a SQLite writer waits for another process's write (busy_timeout)."""

# PostgreSQL time limits (seconds).
CONNECT_TIMEOUT = 5
"""Establishing a connection (libpq ``connect_timeout``)."""
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
             "keepalives_count": 3, "tcp_user_timeout": 30_000}
"""TCP keepalives on every connection: an idle link that died (a partition, a
host gone) is noticed after 10 + 3 x 5 = 25 s; data unacknowledged for 30 s
(``tcp_user_timeout``, ms) breaks the connection too."""
STATEMENT_TIMEOUT = 30.0
"""Any one statement of a server transaction (a read, or a writer's statement
once it holds the write lock). A push's statements take milliseconds; the
biggest group commit's flush well under a second; a REST report over a year of
sales a few seconds. 30 s is a hung backend, not load."""
LOCK_TIMEOUT = 10.0
"""Waiting for a row or table lock (other than the write lock): nothing of the
server's holds those for long (writers are serialized already), so only
maintenance does (``LOCK TABLE``, ``VACUUM FULL``, a plain ``CREATE INDEX``).
10 s answers the device before its websocket keepalive (20 s) gives up; it
pushes again later."""
WRITE_QUEUE_TIMEOUT = 60.0
"""Waiting for the advisory write lock: writers are serialized, so a writer
waits for every writer ahead of it. One holds the lock for milliseconds to
about a second (a group commit of a few thousand ops); with 16 connections
per server process even a full queue behind a slow write drains in well under
a minute. Past 60 s the holder is stuck (a hung backend, a server cut off
mid-transaction, which PostgreSQL drops after ``IDLE_IN_TRANSACTION_TIMEOUT``)
and the waiter fails with "lock timeout" instead of queueing for good."""
IDLE_IN_TRANSACTION_TIMEOUT = 60.0
"""PostgreSQL ends a session idle inside a transaction this long: a server
process frozen or cut off while it holds the write lock releases it."""

def _ms(seconds: float) -> int:
    return int(seconds * 1000)



def engine_args(is_sqlite: bool, timeouts: bool) -> dict[str, Any]:
    """``create_engine`` arguments: the limits above on every connection
    (``timeouts`` False: none but connecting, for migrations and checks)."""
    if is_sqlite:
        return {"connect_args": {"timeout": SQLITE_BUSY_MS / 1000,
                                 "check_same_thread": False},
                "pool_size": 8, "max_overflow": 8}
    connect: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **KEEPALIVE}
    if timeouts:
        connect["options"] = (
            f"-c statement_timeout={_ms(STATEMENT_TIMEOUT)} "
            f"-c lock_timeout={_ms(LOCK_TIMEOUT)} "
            f"-c idle_in_transaction_session_timeout={_ms(IDLE_IN_TRANSACTION_TIMEOUT)}")
    return {"pool_size": 8, "max_overflow": 8, "pool_pre_ping": True,
            "connect_args": connect}


def lock_sql(timeouts: bool, bounded: bool) -> str:
    """Take the write lock, waiting at most ``WRITE_QUEUE_TIMEOUT`` when bounded
    (then back to the per-statement limits): one round trip, as before."""
    take = f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})"
    if not timeouts:
        return take
    if not bounded:  # migrations at start-up: as long as they take
        return f"SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; {take}"
    queue = _ms(WRITE_QUEUE_TIMEOUT)
    # the statement may take a second more than the wait: a stuck holder is
    # reported as what it is, "lock timeout"
    return (f"SET LOCAL statement_timeout = {queue + 1000}; SET LOCAL lock_timeout = {queue}; "
            f"{take}; SET LOCAL statement_timeout = {_ms(STATEMENT_TIMEOUT)}; "
            f"SET LOCAL lock_timeout = {_ms(LOCK_TIMEOUT)}")
