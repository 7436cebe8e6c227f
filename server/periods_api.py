"""Closing the books over REST (OpenAPI at /schema): where the books stand,
which devices may still hold sales of a period, and the close itself
(``server.periods``). Finance and hq_admin at HQ close; the finance report
readers read. 400 a day that cannot be closed (with why), 403 another role.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException, ValidationException
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy import Connection

from sync.authorize import Staff

from . import periods
from .api_auth import api_user, current_user, readable_site
from .idempotency import keep
from .store import Database

Day = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$",
                                  description="a day, yyyy-mm-dd")]


class QuietDeviceOut(msgspec.Struct):
    device: str
    site: str
    last_op_ms: int | None
    """when its latest op at HQ was made (None: it never sent one)"""


class BooksOut(msgspec.Struct):
    closed_through: str | None
    """the last day of the closed periods (None: never closed)"""
    closed_by: str | None
    closed_ms: int | None
    late_lines: int
    """journal lines posted on another day than their date: dated inside a
    closed period (posted on the first open day), or after HQ's tomorrow
    (posted on the day they arrived)"""
    late_receipts: int
    """receipts (sales and returns) posted on another day than their date, the
    same way: the sales report counts them on their posting day too"""
    quiet_devices: list[QuietDeviceOut]
    """for ``through`` when asked: devices with no op dated after it, whose
    sales of the period may still be on their way"""


class CloseIn(msgspec.Struct, forbid_unknown_fields=True):
    through: Day
    """close the books through this day (inclusive); a past day after the
    current close"""


def _books(db: Database, through: str | None) -> BooksOut:
    with db.reading() as conn:
        now = periods.state(db, conn)
        quiet = periods.quiet_devices(db, conn, through) if through else []
    return _out(now, quiet)


def _out(now: periods.Closing, quiet: list[periods.QuietDevice]) -> BooksOut:
    return BooksOut(now.through, now.closed_by, now.closed_ms, now.late_lines,
                    now.late_receipts,
                    [QuietDeviceOut(q.device, q.site, q.last_op_ms) for q in quiet])


def _kept(conn: Connection, done: periods.Closing) -> None:
    """The close's answer, kept for its ``Idempotency-Key`` in its transaction."""
    keep(conn, Response(_out(done, []), status_code=HTTP_201_CREATED))


class PeriodsController(Controller):
    path = "/api/hq/periods"
    tags = ("finance",)
    dependencies = {"user": Provide(current_user, sync_to_thread=True)}  # noqa: RUF012

    @get("/", sync_to_thread=True, summary="Where the books stand")
    def index(self, state: State, user: NamedDependency[str],
              through: FromQuery[Day | None] = None) -> BooksOut:
        """The day the books are closed through, the lines posted late, and
        with ``through``, the devices whose sales up to that day may not all
        be at HQ yet."""
        db: Database = state.db
        readable_site(db, user, None, "books", "trial_balance")
        try:
            day = periods.parse_day(through) if through is not None else None
        except periods.CloseRefused as exc:
            raise ValidationException(f"through: {exc}") from None
        return _books(db, day)

    @post("/close", sync_to_thread=True, summary="Close the books through a day")
    def close(self, state: State, user: NamedDependency[str],
              data: JSONBody[CloseIn]) -> BooksOut:
        """From now on, a journal line dated on or before ``through`` that
        reaches HQ is posted on the day after: the figures of the closed
        period stay as they were reported."""
        db: Database = state.db
        who = api_user(db, user)
        try:
            done = periods.close(db, data.through, user, Staff(who.role, who.site),
                                 within=_kept)
        except PermissionError as exc:
            raise PermissionDeniedException(str(exc)) from None
        except periods.CloseRefused as exc:
            raise ValidationException(str(exc)) from None
        return _out(done, [])
