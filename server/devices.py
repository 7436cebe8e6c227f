"""Device registration: HQ issues a token bound to one device and one site.

Only the SHA-256 of a token is stored (a token is 32 random bytes, so a slow
password hash adds nothing). A revoked device's token is refused at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select, update

from sync.server import SERVER_DEVICE

from .store import Database


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    site: str
    created_ms: int
    revoked_ms: int | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Database, device: str, site: str) -> str:
    """Register ``device`` at ``site`` (or re-key it) and return its new token."""
    if not device or not site:
        raise ValueError("device and site are required")
    if device == SERVER_DEVICE:
        raise ValueError(f"{SERVER_DEVICE} is the server's own device id")
    token = "bl_" + secrets.token_urlsafe(32)  # never starts with "-"; easy to grep for
    devices = db.t["devices"]
    now = int(time.time() * 1000)
    with db.engine.begin() as conn:
        found = conn.execute(select(devices.c.device).where(devices.c.device == device)).first()
        values = {"site": site, "token_hash": _hash(token), "created_ms": now,
                  "revoked_ms": None}
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
    devices = db.t["devices"]
    with db.engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.token_hash == _hash(token))).first()
    if row is None:
        return "unknown device token"
    info = DeviceInfo(row.device, row.site, row.created_ms, row.revoked_ms)
    if info.revoked_ms is not None:
        return f"the token of device {info.device} was revoked"
    return info


def list_devices(db: Database) -> list[DeviceInfo]:
    devices = db.t["devices"]
    with db.engine.connect() as conn:
        return [DeviceInfo(r.device, r.site, r.created_ms, r.revoked_ms)
                for r in conn.execute(select(devices).order_by(devices.c.device))]
