"""The HQ web console: server-rendered pages for HQ departments (finance,
procurement, sales, operations, IT admin), behind a login.

* ``auth``: passwords, signed session cookies, the request context, login and logout.
* ``html``: escaping, tables, forms and the page frame.
* one module per department page; which roles may open which page is
  ``schema.people.CONSOLE_PAGES``, and what a form may change is decided
  where every change is decided, on the apply path (``apply_as_hq`` with the
  logged-in user).

Every POST form carries litestar's CSRF token; every page is sent with
``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware

from ..store import Database
from .auth import (
    CSRF_COOKIE,
    PAGE_PATHS,
    PAGE_TITLES,
    Ctx,
    Keys,
    LoginRequired,
    PageForbidden,
    console_ctx,
    csrf_failed_handler,
    forbidden_handler,
    login,
    login_page,
    login_required_handler,
    logout,
    server_secret,
)
from .finance import close_books, finance
from .it import it_admin, register_device, revoke_api_token, revoke_device
from .operations import operations, resolve
from .overview import overview
from .procurement import approve, cancel, procurement
from .products import product, products, set_price
from .sales import sales


@get("/")
async def home(ctx: NamedDependency[Ctx]) -> Response[Any]:
    """The first console page the user's role may open."""
    first = next((p for p in PAGE_TITLES if ctx.may(p)), "products")
    return ctx.redirect(PAGE_PATHS[first])


def console_router(db: Database) -> Router:
    """The console's routes, with their CSRF middleware and error pages."""
    keys = Keys.of(server_secret(db))
    csrf = CSRFConfig(secret=keys.csrf_secret, cookie_name=CSRF_COOKIE, cookie_httponly=True,
                      cookie_samesite="strict")

    def _keys() -> Keys:
        return keys

    def _denied(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, PageForbidden):
            return forbidden_handler(request, exc)
        assert isinstance(exc, PermissionDeniedException)
        return csrf_failed_handler(request, exc)

    return Router(
        path="/",
        route_handlers=[home, login_page, login, logout, overview, finance, close_books,
                        procurement, approve, cancel, sales, operations, it_admin, register_device,
                        revoke_device, revoke_api_token, products, product, set_price,
                        resolve],
        dependencies={"keys": Provide(_keys, sync_to_thread=False),
                      "ctx": Provide(console_ctx, sync_to_thread=True)},
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        exception_handlers={LoginRequired: login_required_handler,
                            PermissionDeniedException: _denied,
                            PageForbidden: forbidden_handler},
        include_in_schema=False,
    )


__all__ = ["console_router"]
