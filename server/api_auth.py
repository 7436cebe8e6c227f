"""REST API users: an API token per employee login, only its SHA-256 stored.
Requests carry ``Authorization: Bearer bla_...``; the login it names is the
user of every change the request makes, checked against the role matrix.

Reports are read under ``report_guard``: the employee's role must be one of
the report's readers in ``schema.people.REPORTS`` (403 naming them), and an
employee of a site other than HQ reads that site only.

A token is only as good as its employee: every request reads the live
employee row (one indexed read), so a token of someone who left (row deleted
or gone) answers 401, and a changed role or site takes effect at the next
request, with no token to revoke. Tokens are still revoked on the IT page."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import anyio
import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.handlers import BaseRouteHandler
from sqlalchemy import Connection, func, select, update

from schema import HQ_SITE
from schema.people import employee_key, report_readers

from .store import Database


class ApiUser(msgspec.Struct):
    """The employee behind an API token."""

    login: str
    role: str | None
    site: str | None
    department: str | None


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


class ApiTokens(msgspec.Struct):
    """The API tokens of one login, as the IT page lists them."""

    login: str
    site: str | None
    """where the employee works (None: no employee record)"""
    active: int
    revoked: int
    last_ms: int
    """when the latest was issued"""


def api_tokens(db: Database, site: str | None = None, conn: Connection | None = None
               ) -> list[ApiTokens]:
    """Every login that was issued an API token, by login; with ``site``, only
    the employees of that site. In ``conn``'s transaction when given."""
    tokens, employee = db.t["api_tokens"], db.entities["employee"]
    q = (select(tokens.c.login, employee.c.site,
                func.count().filter(tokens.c.revoked_ms.is_(None)),
                func.count().filter(tokens.c.revoked_ms.is_not(None)),
                func.max(tokens.c.created_ms))
         .select_from(tokens.outerjoin(employee, (employee.c.login == tokens.c.login)
                                       & employee.c._deleted.is_(False)))
         .group_by(tokens.c.login, employee.c.site).order_by(tokens.c.login))
    if site is not None:
        q = q.where(employee.c.site == site)
    with db.reading(conn) as read:
        return [ApiTokens(login, s, int(a), int(r), int(ms))
                for login, s, a, r, ms in read.execute(q)]


def login_of(db: Database, header: str | None) -> str:
    """The login behind an ``Authorization`` header; raises a 401 saying why not."""
    if not header or not header.startswith("Bearer "):
        raise NotAuthorizedException("send Authorization: Bearer <API token>")
    tokens = db.t["api_tokens"]
    with db.reading() as conn:
        row = conn.execute(select(tokens.c.login, tokens.c.revoked_ms)
                           .where(tokens.c.token_hash == _hash(header[7:].strip()))).first()
    if row is None:
        raise NotAuthorizedException("unknown API token")
    if row.revoked_ms is not None:
        raise NotAuthorizedException(f"the API token of {row.login} was revoked")
    login = str(row.login)
    if _employee(db, login) is None:
        raise NotAuthorizedException(f"no employee record for {login} (left the company?)")
    return login


def current_user(request: Request[Any, Any, Any]) -> str:
    """Litestar dependency: the authenticated login of this request."""
    db: Database = request.app.state.db
    return login_of(db, request.headers.get("authorization"))


def _employee(db: Database, login: str) -> dict[str, Any] | None:
    """The fields of the live employee row of ``login`` (None: gone or deleted)."""
    with db.transaction(write=False) as store:
        row = store.load("employee", employee_key(login))
    return row.fields if row is not None and not row.deleted else None


def api_user(db: Database, login: str) -> ApiUser:
    """The login with its employee record (role, site, department), if any."""
    fields = _employee(db, login) or {}
    return ApiUser(login, fields.get("role"), fields.get("site"), fields.get("department"))


def may_read(user: ApiUser, report: str, site: str | None) -> str | None:
    """Why ``user`` may not read ``report`` (for ``site``, None: every site), or None."""
    readers = report_readers(report)
    if user.role not in readers:
        who = f"{user.login} ({user.role or 'no employee record'})"
        return (f"{who} may not read the {report.replace('_', ' ')} report; "
                f"allowed: {', '.join(sorted(readers))}")
    if user.site not in (None, HQ_SITE) and site != user.site:
        return (f"{user.login} works at {user.site} and reads its figures only; "
                f"ask with site={user.site}")
    return None


def readable_site(db: Database, login: str, site: str | None, what: str,
                  report: str | None = None) -> str | None:
    """The site whose ``what`` a request of ``login`` reads: the one asked for
    (None: every site), except that an employee of a site other than HQ reads
    that site's only (403 when asking for another). With ``report``, the
    employee's role must also be one of its readers (``schema.people.REPORTS``).
    No employee record, or one with no site, reads nothing (403)."""
    user = api_user(db, login)
    own = user.site
    refused = may_read(user, report, own) if report is not None else None
    if refused is not None:
        raise PermissionDeniedException(refused)
    if own is None:
        raise PermissionDeniedException(f"{login} has no employee record with a site; "
                                        f"no {what} to read")
    if own == HQ_SITE:
        return site
    if site not in (None, own):
        raise PermissionDeniedException(f"{login} works at {own} and sees its {what} only; "
                                        f"ask with site={own}")
    return own


async def report_guard(connection: ASGIConnection[Any, Any, Any, Any],
                       handler: BaseRouteHandler) -> None:
    """Litestar guard: 401 without a valid token, 403 unless the employee's role
    may read the report named in the handler's ``opt["report"]``."""
    db: Database = connection.app.state.db
    header = connection.headers.get("authorization")
    login = await anyio.to_thread.run_sync(login_of, db, header)
    user = await anyio.to_thread.run_sync(api_user, db, login)
    sites = connection.query_params.getall("site", [])
    if len(sites) > 1:  # the guard and the handler could each read another one
        raise ValidationException(f"site given {len(sites)} times; ask for one site, "
                                  "or none for every site you may read")
    refused = may_read(user, str(handler.opt["report"]), sites[0] if sites else None)
    if refused is not None:
        raise PermissionDeniedException(refused)
