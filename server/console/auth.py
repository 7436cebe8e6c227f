"""Console users: employees with a password, signed session cookies, the
request context every page gets, and the login and logout pages.

* A password is hashed with argon2id (argon2-cffi) into ``console_logins``,
  a server-only table that never syncs to a device. It is set from the
  command line (``branchline user add --password-stdin``, ``branchline user
  password LOGIN``), never from argv.
* A session is a cookie ``bl_session`` = payload.HMAC-SHA256(payload) with a
  secret kept in ``server_meta`` (so every server process on one database
  accepts it and a restart logs nobody out). The payload names the login,
  the login's session epoch and the time it was issued. Logout and a new
  password raise the epoch, which ends every older session of that login; a
  session also ends after ``SESSION_HOURS``.
* Every request re-reads the employee row, so a role changed by HR applies
  to the next page; a deleted employee is logged out.
* POST forms carry litestar's CSRF token (``CSRFMiddleware`` on the console
  router, secret derived from the same server secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect
from litestar.utils.scope.state import ScopeState
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from schema import HQ_SITE
from schema.people import CONSOLE_PAGES, ROLES, employee_key, may_view

from ..store import Database
from .html import Html, esc, hidden_csrf, page, tag
from .throttle import LoginThrottle, TooManyFailures

SESSION_COOKIE = "bl_session"
FLASH_COOKIE = "bl_flash"
CSRF_COOKIE = "bl_csrf"
SESSION_HOURS = 12
MIN_PASSWORD = 8
SECRET_NAME = "console_secret"
LOGIN_FAILED = "Wrong login or password."
"""The one answer to an unknown login and to a wrong password."""

PAGE_TITLES = {"overview": "Overview", "finance": "Finance", "procurement": "Procurement",
               "sales": "Sales", "operations": "Operations", "products": "Products",
               "it": "IT admin"}
HQ_ONLY_PAGES = frozenset({"overview"})
"""Pages for HQ staff only, whatever their role: the overview shows every
site, and an employee of a store or warehouse sees that site's figures only."""
PAGE_PATHS = {"overview": "/overview", "finance": "/finance", "procurement": "/procurement",
              "sales": "/sales", "operations": "/operations", "products": "/products",
              "it": "/it"}

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class PasswordError(ValueError):
    """A password that cannot be set as asked."""


# -- passwords ------------------------------------------------------------


def _employee(db: Database, login: str) -> dict[str, Any] | None:
    with db.transaction(write=False) as store:
        row = store.load("employee", employee_key(login))
    if row is None or row.deleted:
        return None
    return dict(row.fields)


def set_password(db: Database, login: str, password: str) -> None:
    """Set (or change) the console password of an existing employee; every
    session of that login ends."""
    if login == "system":
        raise PasswordError("system is the server's own user; it cannot log in")
    if _employee(db, login) is None:
        raise PasswordError(f"no employee with login {login!r} (branchline user add first)")
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"a password needs at least {MIN_PASSWORD} characters")
    hashed = _hasher.hash(password)
    logins = db.t["console_logins"]
    now = int(time.time() * 1000)
    with db.engine.begin() as conn:
        done = conn.execute(update(logins).where(logins.c.login == login).values(
            password_hash=hashed, changed_ms=now, session_epoch=logins.c.session_epoch + 1))
        if not done.rowcount:
            conn.execute(logins.insert().values(login=login, password_hash=hashed,
                                                changed_ms=now, session_epoch=1))


def check_password(db: Database, login: str, password: str) -> int | None:
    """The login's session epoch when the password is right, else None. An
    unknown login costs the same hash as a wrong password."""
    logins = db.t["console_logins"]
    with db.reading() as conn:
        row = conn.execute(select(logins.c.password_hash, logins.c.session_epoch)
                           .where(logins.c.login == login)).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return int(row.session_epoch) if row is not None and login != "system" else None


def end_sessions(db: Database, login: str) -> None:
    """Log ``login`` out everywhere."""
    logins = db.t["console_logins"]
    with db.engine.begin() as conn:
        conn.execute(update(logins).where(logins.c.login == login)
                     .values(session_epoch=logins.c.session_epoch + 1))


def _epoch(db: Database, login: str) -> int | None:
    logins = db.t["console_logins"]
    with db.reading() as conn:
        value = conn.execute(select(logins.c.session_epoch)
                             .where(logins.c.login == login)).scalar()
    return None if value is None else int(value)


# -- the server secret and signed values ------------------------------------


def server_secret(db: Database) -> bytes:
    """The console's signing secret, made once per database and kept in
    ``server_meta`` (shared by every server process on that database)."""
    meta = db.t["server_meta"]
    with db.reading() as conn:
        found = conn.execute(select(meta.c.value).where(meta.c.name == SECRET_NAME)).scalar()
    if found is None:
        try:
            with db.engine.begin() as conn:
                conn.execute(meta.insert().values(name=SECRET_NAME,
                                                  value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another server made it first
        with db.reading() as conn:
            found = conn.execute(select(meta.c.value)
                                 .where(meta.c.name == SECRET_NAME)).scalar_one()
    return bytes.fromhex(str(found))


class Signer:
    """HMAC-SHA256 signatures of small JSON values, one purpose per key."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    def sign(self, value: Any) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
        mac = hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()
        return f"{payload}.{mac}"

    def unsign(self, token: str | None) -> Any:
        """The value, or None when the token is missing, forged or malformed."""
        if not token or token.count(".") != 1:
            return None
        payload, mac = token.split(".")
        good = hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, good):
            return None
        try:
            return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None


# -- the request context ----------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """The console's signers, made from the server secret when the app starts."""

    session: Signer
    flash: Signer
    csrf_secret: str

    @classmethod
    def of(cls, secret: bytes) -> Keys:
        csrf = hmac.new(secret, b"csrf", hashlib.sha256).hexdigest()
        return cls(Signer(secret, "session"), Signer(secret, "flash"), csrf)


@dataclass(frozen=True)
class User:
    login: str
    name: str
    role: str
    department: str
    site: str

    @property
    def site_filter(self) -> str | None:
        """The one site whose figures this user sees; None: every site (HQ staff)."""
        return None if self.site == HQ_SITE else self.site


class LoginRequired(HTTPException):
    status_code = 303
    detail = "log in first"


class PageForbidden(HTTPException):
    status_code = 403

    def __init__(self, ctx: Ctx, page_name: str) -> None:
        super().__init__(detail=page_name)
        self.ctx = ctx
        self.page_name = page_name


class Ctx:
    """What a console page needs: the user, the CSRF token for its forms, a
    message left by the previous POST, the navigation bar."""

    def __init__(self, request: Request[Any, Any, Any], user: User, keys: Keys) -> None:
        self.request = request
        self.user = user
        self.db: Database = request.app.state.db
        self.hub = request.app.state.hub
        self.csrf = str(ScopeState.from_scope(request.scope).csrf_token or "")
        self._flash_signer = keys.flash
        self._flash_read = FLASH_COOKIE in request.cookies
        flash = self._flash_signer.unsign(request.cookies.get(FLASH_COOKIE))
        self.flash = flash if isinstance(flash, str) else None
        refused = (flash[1] if isinstance(flash, list) and len(flash) == 2
                   and flash[0] == "error" and isinstance(flash[1], str) else None)
        self.flash_error: str | None = refused

    def may(self, page_name: str) -> bool:
        """Whether the user may open console page ``page_name``: the role's
        pages (``schema.people.may_view``), less the HQ-only ones for staff of
        a store or warehouse. The navigation, the first page after login and
        the 403 of every page follow it."""
        if page_name in HQ_ONLY_PAGES and self.user.site != HQ_SITE:
            return False
        return may_view(self.user.role, page_name)

    def nav(self, current: str | None) -> Html:
        links = [tag("a", PAGE_TITLES[p], href=PAGE_PATHS[p],
                     class_="on" if p == current else None)
                 for p in PAGE_TITLES if self.may(p)]
        u = self.user
        who = tag("span", f"{u.login} · {u.role} · {u.department} · {u.site} ",
                  tag("form", hidden_csrf(self.csrf), tag("button", "Log out", type="submit"),
                      method="post", action="/logout"), class_="who")
        return tag("header", tag("b", "Branchline HQ"), *links, who)

    def page(self, page_name: str | None, title: str, body: Any, *, error: str | None = None,
             notice: str | None = None, status: int = 200) -> Response[str]:
        response = page(title, body, nav=self.nav(page_name), notice=notice or self.flash,
                        error=error or self.flash_error, status=status)
        if self._flash_read:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def redirect(self, path: str, flash: str | None = None, *,
                 error: str | None = None) -> Response[Any]:
        """303 to ``path`` (the POST/redirect/GET pattern), with a message for
        it: ``flash`` a notice, ``error`` a refusal (shown as an alert), so a
        reload of the page shown never sends the form again."""
        response: Response[Any] = Redirect(path, status_code=303)
        message = ["error", error] if error else flash
        if message:
            response.set_cookie(FLASH_COOKIE, self._flash_signer.sign(message), path="/",
                                httponly=True, samesite="strict", max_age=60,
                                secure=self.request.url.scheme == "https")
        return response


def _user(db: Database, login: str) -> User | None:
    fields = _employee(db, login)
    if fields is None or fields.get("role") not in ROLES:
        return None
    return User(login, str(fields.get("name") or login), str(fields["role"]),
                str(fields.get("department") or ""), str(fields.get("site") or ""))


def console_ctx(request: Request[Any, Any, Any], keys: NamedDependency[Keys]) -> Ctx:
    """Litestar dependency of every console page: the logged-in user (or a
    redirect to the login page), refused with a 403 page when the handler's
    ``opt["page"]`` is not for the user's role."""
    db: Database = request.app.state.db
    value = keys.session.unsign(request.cookies.get(SESSION_COOKIE))
    user = None
    if (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int)
            and value[2] + SESSION_HOURS * 3_600_000 > time.time() * 1000
            and value[1] == _epoch(db, value[0])):
        user = _user(db, value[0])
    if user is None:
        raise LoginRequired()
    ctx = Ctx(request, user, keys)
    page_name = request.route_handler.opt.get("page")
    if page_name is not None and not ctx.may(page_name):
        raise PageForbidden(ctx, page_name)
    return ctx


def _login_form(csrf: str, next_path: str, login: str = "") -> Html:
    return tag(
        "form",
        hidden_csrf(csrf),
        tag("input", type="hidden", name="next", value=next_path),
        tag("p", tag("label", "Login ", tag("input", name="login", value=login,
                                             autocomplete="username", required=True,
                                             autofocus=True))),
        tag("p", tag("label", "Password ", tag("input", name="password", type="password",
                                                autocomplete="current-password",
                                                required=True))),
        tag("button", "Log in", type="submit"),
        method="post", action="/login")


def _safe_next(path: str | None) -> str:
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


def login_required_handler(request: Request[Any, Any, Any], _exc: Exception) -> Response[Any]:
    """Not (or no longer) logged in: back to the login page, cookie cleared."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/"
    response: Response[Any] = Redirect(f"/login?next={quote(target, safe='')}",
                                       status_code=303)
    if SESSION_COOKIE in request.cookies:
        response.delete_cookie(SESSION_COOKIE, path="/")
    response.headers["cache-control"] = "no-store"
    return response


def forbidden_handler(_request: Request[Any, Any, Any], exc: PageForbidden) -> Response[str]:
    ctx = exc.ctx
    title = PAGE_TITLES.get(exc.page_name, exc.page_name)
    roles = ", ".join(sorted(CONSOLE_PAGES.get(exc.page_name, frozenset())))
    if exc.page_name in HQ_ONLY_PAGES and may_view(ctx.user.role, exc.page_name):
        return ctx.page(None, "Not allowed", tag(
            "p", f"The {title} page shows every site and is for HQ staff; you work at "
                 f"{ctx.user.site} and see its figures on the other pages."), status=403)
    return ctx.page(None, "Not allowed", tag(
        "p", f"Your role ({ctx.user.role}) cannot open the {title} page; it is for: {roles}."),
        status=403)


def csrf_failed_handler(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[str]:
    """A POST without a valid CSRF token (litestar's ``CSRFMiddleware``)."""
    return page("Form refused", tag(
        "p", f"{exc.detail}: the form did not come from this console or has expired. ",
        tag("a", "Go back to the console", href="/")), status=403)


@get("/login")
async def login_page(request: Request[Any, Any, Any],
                     next: FromQuery[str | None] = None) -> Response[str]:
    """The login form."""
    csrf = str(ScopeState.from_scope(request.scope).csrf_token or "")
    return page("Log in", _login_form(csrf, _safe_next(next)))


@post("/login", sync_to_thread=True)
def login(request: Request[Any, Any, Any], state: State, keys: NamedDependency[Keys],
          data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    """Check the password; start a session or answer LOGIN_FAILED."""
    db: Database = state.db
    login_name = str(data.get("login", "")).strip()
    next_path = _safe_next(data.get("next"))
    address = request.client.host if request.client else "?"
    csrf = str(ScopeState.from_scope(request.scope).csrf_token or "")
    guard = LoginThrottle.of(state)
    try:
        guard.before(login_name, address)
        with guard.checking():
            epoch = check_password(db, login_name, str(data.get("password", "")))
    except TooManyFailures as slow:
        return page("Log in", _login_form(csrf, next_path, login_name), error=str(slow),
                    status=429)
    ok = epoch is not None and _user(db, login_name) is not None
    guard.after(login_name, address, ok)
    if not ok:
        return page("Log in", _login_form(csrf, next_path, login_name), error=LOGIN_FAILED,
                    status=401)
    response: Response[Any] = Redirect(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, keys.session.sign([login_name, epoch,
                                                     int(time.time() * 1000)]),
                        path="/", httponly=True, samesite="lax",
                        max_age=SESSION_HOURS * 3600, secure=request.url.scheme == "https")
    return response


@post("/logout", sync_to_thread=True)
def logout(request: Request[Any, Any, Any], state: State,
           keys: NamedDependency[Keys]) -> Response[Any]:
    """End the session (every session of this login) and go back to the login page."""
    value = keys.session.unsign(request.cookies.get(SESSION_COOKIE))
    if isinstance(value, list) and value and isinstance(value[0], str):
        end_sessions(state.db, value[0])
    response: Response[Any] = Redirect("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.headers["cache-control"] = "no-store"
    response.headers["clear-site-data"] = '"cache"'
    return response


__all__ = ["CSRF_COOKIE", "Ctx", "Keys", "LoginRequired", "PageForbidden", "PasswordError",
           "Signer", "User", "check_password", "console_ctx", "csrf_failed_handler",
           "end_sessions", "esc", "forbidden_handler", "login", "login_page",
           "login_required_handler", "logout", "server_secret", "set_password"]
