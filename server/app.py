"""The HQ web app: the ``/sync`` websocket and a health endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from litestar import Litestar, Request, Response, WebSocket, get, websocket
from litestar.datastructures import State
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from schema import SCHEMA, Schema

from . import rollups
from .catalog_api import CatalogController
from .console import console_router
from .console.html import page, tag
from .customers_api import CustomerAccountsController
from .db_health import DB_DOWN, NotWritable, probe, short_reason
from .exceptions_api import StockExceptionsController
from .fanout import Hub
from .hq_api import IDEMPOTENCY, HqController
from .idempotency import IdempotencyMiddleware
from .masterdata_api import (
    AccountsController,
    CustomersController,
    EmployeesController,
    SitesController,
)
from .periods_api import PeriodsController
from .purchasing_api import (
    PurchaseOrdersController,
    ReorderRulesController,
    SuppliersController,
)
from .reports import ProcurementController, ReportsController
from .store import Database
from .strict_json import StrictJsonRequest
from .sync_ws import handle_socket

log = logging.getLogger("branchline.server")

HEALTH_TIMEOUT = 3.0
"""/health answers within this many seconds even when the database hangs."""


class Unusable(Exception):
    """The server cannot use its database (raised at start-up)."""


def db_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """503 for a request that met a database down: JSON for the API, a page for
    the console (instead of a bare 500 and a traceback per request)."""
    detail = f"HQ's database is unavailable: {short_reason(exc)}; retry shortly"
    log.warning("%s %s: %s", request.method, request.url.path, detail)
    if request.url.path.startswith(("/api", "/schema")):
        return Response({"status_code": 503, "detail": detail}, status_code=503,
                        headers={"retry-after": "5"})
    return page("HQ is unavailable", tag("p", "Reload this page in a moment."), error=detail,
                status=503)


def _libpq_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def create_app(db_url: str, schema: Schema = SCHEMA) -> Litestar:
    """The app for one database (``sqlite:///file.db`` or ``postgresql+psycopg://...``)."""
    db = Database(db_url, schema)
    try:  # a server that cannot write here would fail every push: refuse to start
        probe(db)
    except NotWritable as exc:
        db.dispose()
        raise Unusable(f"the database is not writable: {exc}") from exc
    rollups.derive_all(db)  # drafts of an older server: totals follow their lines
    hub = Hub()
    probing: list[float] = []
    """When the /health check still running started (one at a time: a hung
    database does not pile up threads)."""

    def check() -> int:
        try:
            return probe(db)
        finally:
            probing.clear()

    async def database_state() -> tuple[int | None, str]:
        if probing:
            return None, (f"unreachable: the check started {time.monotonic() - probing[0]:.0f} s"
                          " ago has not returned")
        probing.append(time.monotonic())
        try:
            with anyio.fail_after(HEALTH_TIMEOUT):
                head = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
        except TimeoutError:
            return None, f"unreachable: no answer within {HEALTH_TIMEOUT:g} s"
        except NotWritable as exc:
            return None, f"not writable: {exc}"
        except DB_DOWN as exc:
            return None, f"unreachable: {short_reason(exc)}"
        return head, "ok"

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if db.is_sqlite:
            hub.start_polling(db.head)
        else:
            hub.start_postgres(_libpq_dsn(db_url))
        try:
            yield
        finally:
            await hub.stop()
            db.dispose()

    @websocket("/sync")
    async def sync_socket(socket: WebSocket[Any, Any, State]) -> None:
        await handle_socket(socket, db, schema, hub)

    @get("/health")
    async def health() -> Response[dict[str, Any]]:
        """Health: 200 with the schema version, head of the change sequence and
        devices connected when the database answers and takes writes; else 503
        saying why ("database": "unreachable: ..." or "not writable: ..."),
        within ``HEALTH_TIMEOUT`` seconds."""
        head, state = await database_state()
        body: dict[str, Any] = {"status": "ok" if head is not None else "unavailable",
                                "database": state, "schema_version": schema.version,
                                "connected": hub.connected}
        if head is None:
            return Response(body, status_code=503)
        return Response({**body, "head": head})

    console = console_router(db)  # the HQ web console (login, department pages)
    app = Litestar([sync_socket, health, console, ReportsController, ProcurementController,
                    HqController, CatalogController, SitesController, CustomersController,
                    AccountsController, EmployeesController, SuppliersController,
                    ReorderRulesController, PurchaseOrdersController,
                    StockExceptionsController, CustomerAccountsController, PeriodsController],
                   lifespan=[lifespan],
                   request_class=StrictJsonRequest,  # "12" is no price (strict_json)
                   middleware=[IdempotencyMiddleware(db, HqController.path)],
                   exception_handlers=dict.fromkeys(DB_DOWN, db_unavailable),
                   # a 500 is logged with its traceback (Litestar logs none by
                   # default); a 4xx is the client's mistake and a 3xx (the
                   # console's "log in first") no mistake: answered, not logged
                   # (a database down is logged by db_unavailable, in one line)
                   logging_config=LoggingConfig(log_exceptions="always",
                                                disable_stack_trace={*range(300, 500),
                                                                     *DB_DOWN},
                                                configure_root_logger=False),
                   openapi_config=OpenAPIConfig(
                       title="Branchline HQ", version="0.1.0", use_handler_docstrings=True,
                       description="HQ over REST: master data, purchasing, reports. Send "
                                   "Authorization: Bearer <an employee's API token>. A "
                                   "body's values have their fields' JSON types: a price "
                                   "is the number 250, not \"250\" (400 naming the "
                                   "field).\n\n" + IDEMPOTENCY,
                       components=Components(security_schemes={"apiToken": SecurityScheme(
                           type="http", scheme="bearer",
                           description="an employee's API token (branchline user add "
                                       "--api-token)")})))
    app.state.db = db
    app.state.hub = hub
    return app
