"""Guessing passwords at the console's login is slowed down, and never
starves the server.

* Each login may fail ``FREE_FAILURES`` times in a row; after that, each
  further attempt must wait ``2 ** (failures - FREE_FAILURES)`` seconds
  since the last failure, at most ``MOST_WAIT_S`` (kept in ``console_logins``,
  so every server process on the database counts the same failures, and a
  restart forgets none). The rightful user still gets in after the wait,
  so a stranger cannot lock anyone out for long; a success starts the count
  afresh. An attempt that must wait is answered without checking the
  password, so it costs no hash.
* Each client address may fail ``ADDRESS_FAILURES`` times in
  ``ADDRESS_WINDOW_S`` (in this process): guessing across many logins from
  one place is slowed the same way.
* At most ``HASHING_AT_ONCE`` password checks run at once: each is an
  argon2id hash of about 50 ms and 64 MiB, and a burst of them must not
  take the cores the stores' sync needs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from litestar.datastructures import State
from sqlalchemy import func, select, update

from ..store import Database

FREE_FAILURES = 5
MOST_WAIT_S = 300
ADDRESS_FAILURES = 30
ADDRESS_WINDOW_S = 600
HASHING_AT_ONCE = 2
HASHING_WAIT_S = 10.0


class TooManyFailures(Exception):
    """Wait before trying again; the message says how long."""


def wait_s(failures: int, last_ms: int | None, now_ms: int) -> int:
    """Seconds a login that failed ``failures`` times in a row, the last at
    ``last_ms``, must still wait at ``now_ms`` (0: it may try)."""
    if failures < FREE_FAILURES or last_ms is None:
        return 0
    wait_ms = min(2 ** (failures - FREE_FAILURES), MOST_WAIT_S) * 1000
    return int(max(0, -(-(last_ms + wait_ms - now_ms) // 1000)))


class LoginThrottle:
    """The throttle of one server process's console (``of``)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.hashing = threading.BoundedSemaphore(HASHING_AT_ONCE)
        self._by_address: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, state: State) -> LoginThrottle:
        """The app's throttle, made at its first login."""
        found = getattr(state, "login_throttle", None)
        if found is None:
            found = state.login_throttle = cls(state.db)
        return found

    def before(self, login: str, address: str) -> None:
        """Raise ``TooManyFailures`` when ``login`` or ``address`` must wait."""
        now = time.time()
        with self._lock:
            recent = self._by_address.get(address)
            while recent and recent[0] < now - ADDRESS_WINDOW_S:
                recent.popleft()
            if recent is not None and len(recent) >= ADDRESS_FAILURES:
                wait = int(recent[0] + ADDRESS_WINDOW_S - now) + 1
                raise TooManyFailures("Too many failed logins from this address; try again "
                                      f"in {wait} s.")
        logins = self.db.t["console_logins"]
        with self.db.reading() as conn:
            row = conn.execute(select(logins.c.failed, logins.c.failed_ms)
                               .where(logins.c.login == login)).first()
        if row is not None:
            wait = wait_s(row.failed or 0, row.failed_ms, int(now * 1000))
            if wait:
                raise TooManyFailures(f"Too many failed logins for {login}; try again in "
                                      f"{wait} s.")

    def after(self, login: str, address: str, ok: bool) -> None:
        """Count a failure of ``login`` from ``address``, or start afresh on success."""
        logins = self.db.t["console_logins"]
        now_ms = int(time.time() * 1000)
        if ok:
            with self.db.engine.begin() as conn:
                conn.execute(update(logins).where(logins.c.login == login, logins.c.failed > 0)
                             .values(failed=0))
            return
        with self._lock:
            self._by_address.setdefault(address, deque()).append(now_ms / 1000)
        with self.db.engine.begin() as conn:
            conn.execute(update(logins).where(logins.c.login == login).values(
                failed=func.coalesce(logins.c.failed, 0) + 1, failed_ms=now_ms))

    @contextmanager
    def checking(self) -> Iterator[None]:
        """Hold one of the ``HASHING_AT_ONCE`` places to check a password;
        ``TooManyFailures`` (busy) when none is free within ``HASHING_WAIT_S``."""
        if not self.hashing.acquire(timeout=HASHING_WAIT_S):
            raise TooManyFailures("The console is busy checking passwords; try again shortly.")
        try:
            yield
        finally:
            self.hashing.release()
