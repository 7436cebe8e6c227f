"""The HQ web app: the ``/sync`` websocket and a health endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, WebSocket, get, websocket
from litestar.datastructures import State
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy import func, select

from schema import SCHEMA, Schema

from .catalog_api import CatalogController
from .console import console_router
from .customers_api import CustomerAccountsController
from .exceptions_api import StockExceptionsController
from .fanout import Hub
from .hq_api import HqController
from .masterdata_api import (
    AccountsController,
    CustomersController,
    EmployeesController,
    SitesController,
)
from .purchasing_api import (
    PurchaseOrdersController,
    ReorderRulesController,
    SuppliersController,
)
from .reports import ProcurementController, ReportsController
from .store import Database
from .sync_ws import handle_socket


def _libpq_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def create_app(db_url: str, schema: Schema = SCHEMA) -> Litestar:
    """The app for one database (``sqlite:///file.db`` or ``postgresql+psycopg://...``)."""
    db = Database(db_url, schema)
    hub = Hub()

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

    @get("/health", sync_to_thread=True)
    def health() -> dict[str, Any]:
        """Liveness: schema version, head of the change sequence, devices connected."""
        changes = db.t["changes"]
        with db.reading() as conn:
            head = conn.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one()
        return {"status": "ok", "schema_version": schema.version, "head": head,
                "connected": hub.connected}

    console = console_router(db)  # the HQ web console (login, department pages)
    app = Litestar([sync_socket, health, console, ReportsController, ProcurementController,
                    HqController, CatalogController, SitesController, CustomersController,
                    AccountsController, EmployeesController, SuppliersController,
                    ReorderRulesController, PurchaseOrdersController,
                    StockExceptionsController, CustomerAccountsController],
                   lifespan=[lifespan],
                   # a 500 is logged with its traceback (Litestar logs none by
                   # default); a 4xx is the client's mistake and a 3xx (the
                   # console's "log in first") no mistake: answered, not logged
                   logging_config=LoggingConfig(log_exceptions="always",
                                                disable_stack_trace=set(range(300, 500)),
                                                configure_root_logger=False),
                   openapi_config=OpenAPIConfig(
                       title="Branchline HQ", version="0.1.0", use_handler_docstrings=True,
                       description="HQ over REST: master data, purchasing, reports. Send "
                                   "Authorization: Bearer <an employee's API token>.",
                       components=Components(security_schemes={"apiToken": SecurityScheme(
                           type="http", scheme="bearer",
                           description="an employee's API token (branchline user add "
                                       "--api-token)")})))
    app.state.db = db
    app.state.hub = hub
    return app
