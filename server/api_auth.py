"""REST API users: an API token per employee login, only its SHA-256 stored.
Requests carry ``Authorization: Bearer bla_...``; the login it names is the
user of every change the request makes, checked against the role matrix."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException
from sqlalchemy import select, update

from .store import Database


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(db: Database, login: str) -> str:
    """A new API token for ``login`` (older ones stay valid until revoked)."""
    token = "bla_" + secrets.token_urlsafe(32)
    with db.engine.begin() as conn:
        conn.execute(db.t["api_tokens"].insert().values(
            token_hash=_hash(token), login=login, created_ms=int(time.time() * 1000)))
    return token


def revoke_api_tokens(db: Database, login: str) -> int:
    tokens = db.t["api_tokens"]
    with db.engine.begin() as conn:
        done = conn.execute(update(tokens).where(tokens.c.login == login,
                                                 tokens.c.revoked_ms.is_(None))
                            .values(revoked_ms=int(time.time() * 1000)))
        return int(done.rowcount)


def login_of(db: Database, header: str | None) -> str:
    """The login behind an ``Authorization`` header; raises a 401 saying why not."""
    if not header or not header.startswith("Bearer "):
        raise NotAuthorizedException("send Authorization: Bearer <API token>")
    tokens = db.t["api_tokens"]
    with db.engine.connect() as conn:
        row = conn.execute(select(tokens.c.login, tokens.c.revoked_ms)
                           .where(tokens.c.token_hash == _hash(header[7:].strip()))).first()
    if row is None:
        raise NotAuthorizedException("unknown API token")
    if row.revoked_ms is not None:
        raise NotAuthorizedException(f"the API token of {row.login} was revoked")
    return str(row.login)


def current_user(request: Request[Any, Any, Any]) -> str:
    """Litestar dependency: the authenticated login of this request."""
    db: Database = request.app.state.db
    return login_of(db, request.headers.get("authorization"))
