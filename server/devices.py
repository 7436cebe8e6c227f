"""Device registration: HQ issues a token bound to one device and one site.

Only the SHA-256 of a token is stored (a token is 32 random bytes, so a slow
password hash adds nothing). A revoked device's token is refused at once; a
token expires after ``DEFAULT_TTL_DAYS`` unless issued with another lifetime
(or none), and re-keying the device (``branchline device add`` again) gives it
a fresh one. A device keeps working offline with an expired token; only its
sync is refused, with a reason saying when it expired.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from schema import HQ_SITE
from schema.model import is_site_code
from sync.hlc import MAX_AHEAD_MS
from sync.server import SERVER_DEVICE

from .store import Database


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    site: str
    created_ms: int
    revoked_ms: int | None
    expires_ms: int | None = None
    refused_ms: int | None = None
    """When HQ last refused this device until someone acts (diverged, schema,
    scope); None once HQ serves it again."""
    refused: str | None = None
    """Why."""
    clock_ahead_ms: int | None = None
    """How far its clock was ahead of HQ's (negative: behind) at its last
    Hello, when off by more than ``hlc.MAX_AHEAD_MS``; None when it agrees."""
    conn_gen: int = 0
    """How many Hellos HQ accepted from it (``server.takeover``): only a
    connection of the latest is served."""
    conn_peer: str | None = None
    """The address its latest accepted Hello came from."""
    conn_ms: int | None = None
    """When."""

    def state(self, now_ms: int | None = None) -> str:
        """active, revoked, or expired (as an IT admin reads it)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if self.revoked_ms is not None:
            return f"revoked {when(self.revoked_ms)}"
        if self.expires_ms is not None and self.expires_ms <= now:
            return f"expired {when(self.expires_ms)}"
        if self.expires_ms is not None:
            return f"active until {when(self.expires_ms)}"
        return "active, never expires"


DEFAULT_TTL_DAYS = 365
"""How long a device token lives unless issued with another lifetime."""
MAX_TTL_DAYS = 3650
"""The longest lifetime a token may be given (ten years); a token meant to
live longer is issued with no expiry and lives until revoked."""

_DAY_MS = 86_400_000


def when(ms: int) -> str:
    """A wall time in ms as IT reads it (UTC, to the minute)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A device id: what its Hello may carry (64 characters at most) and what
reads well in a log line and a file name."""


def site_known(db: Database, code: str) -> bool:
    """Whether ``code`` is HQ or names a live site row."""
    if code == HQ_SITE:
        return True
    site = db.entities["site"]
    with db.reading() as conn:
        return conn.execute(select(site.c.id).where(
            site.c.code == code, site.c._deleted.is_(False)).limit(1)).first() is not None


def issue_token(db: Database, device: str, site: str,
                ttl_days: float | None = DEFAULT_TTL_DAYS, move: bool = False) -> str:
    """Register ``device`` at ``site`` (or re-key it) and return its new token,
    valid for ``ttl_days`` (None: until revoked). A device registered at
    another site moves only when asked (``move``): re-keying cuts the till
    that holds the old token off, and its sales would then be filed under the
    new site."""
    if not device or not site:
        raise ValueError("device and site are required")
    if not DEVICE_ID.fullmatch(device):
        raise ValueError(f"{device[:80]!r} is not a device id: up to 64 letters, digits, "
                         "'.', '_' and '-', such as s1-till1")
    if not is_site_code(site):
        raise ValueError(f"{site!r} is not a site code: short and upper case, such as S1")
    if ttl_days is not None and not (0 < ttl_days <= MAX_TTL_DAYS):  # also refuses nan
        raise ValueError(f"a token lives from a fraction of a day to {MAX_TTL_DAYS} days, "
                         f"not {ttl_days}")
    if device == SERVER_DEVICE:
        raise ValueError(f"{SERVER_DEVICE} is the server's own device id")
    token = "bl_" + secrets.token_urlsafe(32)  # never starts with "-"; easy to grep for
    devices = db.t["devices"]
    now = int(time.time() * 1000)
    with db.engine.begin() as conn:
        found = conn.execute(select(devices.c.site).where(devices.c.device == device)).first()
        if found and found.site != site and not move:
            raise ValueError(
                f"device {device} is registered at {found.site}: registering it at {site} "
                f"would cut that till off and file its sales under {site}. Register the new "
                f"till under another id, or move this one on purpose (--move)")
        values = {"site": site, "token_hash": _hash(token), "created_ms": now,
                  "revoked_ms": None,
                  "expires_ms": None if ttl_days is None else now + int(ttl_days * _DAY_MS)}
        if found:
            conn.execute(update(devices).where(devices.c.device == device).values(values))
        else:
            conn.execute(devices.insert().values(device=device, **values))
    return token


def revoke(db: Database, device: str) -> bool:
    """Revoke a device's token; False if no such device."""
    devices = db.t["devices"]
    with db.engine.begin() as conn:
        done = conn.execute(update(devices).where(devices.c.device == device)
                            .values(revoked_ms=int(time.time() * 1000)))
        return bool(done.rowcount)


def authenticate(db: Database, token: str) -> DeviceInfo | str:
    """The device a token belongs to, or the reason it is refused."""
    return authenticate_many(db, [token])[token]


_PER_QUERY = 500
"""Most token hashes in one ``IN (...)`` list."""


def authenticate_many(db: Database, tokens: Collection[str]) -> dict[str, DeviceInfo | str]:
    """For each token, the device it belongs to or the reason it is refused:
    one query per 500 tokens (the server checks every connected device's
    token again this way, every few seconds)."""
    devices = db.t["devices"]
    by_hash = {_hash(t): t for t in tokens}
    hashes = list(by_hash)
    rows: dict[str, Any] = {}
    with db.reading() as conn:
        for start in range(0, len(hashes), _PER_QUERY):
            chunk = hashes[start : start + _PER_QUERY]
            rows.update((r.token_hash, r) for r in conn.execute(
                select(devices).where(devices.c.token_hash.in_(chunk))))
    now = int(time.time() * 1000)
    return {token: _verdict(rows.get(h), now) for h, token in by_hash.items()}


def _verdict(row: Any, now_ms: int) -> DeviceInfo | str:
    if row is None:
        return "unknown device token"
    info = _info(row)
    if info.revoked_ms is not None:
        return f"the token of device {info.device} was revoked"
    if info.expires_ms is not None and info.expires_ms <= now_ms:
        return (f"the token of device {info.device} expired on {when(info.expires_ms)}; "
                "ask HQ for a new one (branchline device add)")
    return info


def _info(row: Any) -> DeviceInfo:
    return DeviceInfo(row.device, row.site, row.created_ms, row.revoked_ms, row.expires_ms,
                      row.refused_ms, row.refused, row.clock_ahead_ms, row.conn_gen or 0,
                      row.conn_peer, row.conn_ms)


MAX_REFUSAL_CHARS = 500
"""The most of a refusal's text kept for the IT page."""


def note_refusal(db: Database, device: str, why: str | None) -> None:
    """Keep HQ's refusal of ``device`` (why; None: HQ serves it again) for the
    IT page: a device refused until someone acts says so where IT looks."""
    devices = db.t["devices"]
    refused_ms = None if why is None else int(time.time() * 1000)
    if why is not None and len(why) > MAX_REFUSAL_CHARS:  # it may quote what the device sent
        why = why[: MAX_REFUSAL_CHARS - 1] + "…"
    with db.engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.device == device)
                     .values(refused_ms=refused_ms, refused=why))


def clock_to_note(who: DeviceInfo, ahead_ms: int) -> int | bool | None:
    """What to keep of a device's clock, ``ahead_ms`` ahead of HQ's at its
    Hello: the offset when it is off by more than HQ takes stamps as they
    come, None once it agrees again, or False when what is kept stands (the
    everyday case: no write on connect)."""
    off = abs(ahead_ms) > MAX_AHEAD_MS
    kept = who.clock_ahead_ms
    if not off:
        return None if kept is not None else False
    if kept is not None and abs(kept - ahead_ms) < 60_000:
        return False
    return ahead_ms


def note_clock(db: Database, device: str, ahead_ms: int | None) -> None:
    """Keep how far ``device``'s clock is off for the IT page (None: it agrees)."""
    devices = db.t["devices"]
    with db.engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.device == device)
                     .values(clock_ahead_ms=ahead_ms))


def list_devices(db: Database, conn: Connection | None = None) -> list[DeviceInfo]:
    """Every device, by name; in ``conn``'s transaction when given."""
    devices = db.t["devices"]
    with db.reading(conn) as read:
        return [_info(r) for r in read.execute(select(devices).order_by(devices.c.device))]
