"""Closing the books: finance closes a period, and what reaches HQ later
dated inside it is posted on the first open day.

Tills sell offline, so October's sales keep arriving in November. Once the
controller has reported October, its figures must not move: ``close`` records
the day the books are closed through (``period_close``), and from its commit
on, the store posts each journal line dated on or before that day on the day
after it (``schema.finance.posting_day``, counted so in ``journal_day``, noted
in ``late_posting``). The line itself keeps its date: the sale happened on 31
October. What reads the journal by day (the trial balance as at a day, the
margin by month or over a range) reads posting days, so October's trial
balance is the same before and after a late sale, and November's shows it.

A line dated after HQ's tomorrow (a till whose clock runs months ahead) is
posted on HQ's day of arrival the same way, so it cannot land in a month
that has not begun.

A close takes the write lock every push takes, so a push commits wholly
before it (its lines count on their dates) or wholly after (posted late).
The books are closed through a day that is over in every time zone (tills
date sales by their local day; HQ keeps no zone per site), and only forward: the
boundary is the latest ``through``. Before closing, ``quiet_devices`` lists
the devices HQ has heard nothing from since the end of the period, whose
sales of it may still be on their way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table, func, select

from schema import HQ_SITE
from schema.finance import next_day
from schema.people import PERIOD_CLOSERS
from sync.authorize import Staff

from .clock import now_ms
from .tables import DEVICE_ACTIVITY_TABLE, LATE_POSTING_TABLE, PERIOD_CLOSE_TABLE

if TYPE_CHECKING:
    from .store import Database

LATE_COLUMNS = ("id", "entity", "posted", "arrived_ms")
"""Insert column order of ``late_posting``."""


class CloseRefused(ValueError):
    """A close that cannot be done; the message says why."""


@dataclass(frozen=True)
class Closing:
    """The books' state: closed through ``through`` (None: never closed)."""

    through: str | None
    closed_by: str | None = None
    closed_ms: int | None = None
    late_lines: int = 0
    """Journal lines posted on another day than their date (``late_posting``)."""
    late_receipts: int = 0
    """Receipts (sales and returns) likewise."""


@dataclass(frozen=True)
class QuietDevice:
    """A device with no op dated after the end of a period."""

    device: str
    site: str
    last_op_ms: int | None


def closed_through(conn: Connection, tables: Mapping[str, Table]) -> str | None:
    """The day the books are closed through, or None."""
    t = tables[PERIOD_CLOSE_TABLE]
    found = conn.execute(select(func.max(t.c.through))).scalar_one_or_none()
    return str(found) if found is not None else None


def state(db: Database, conn: Connection) -> Closing:
    """Where the books stand: the latest close and the lines posted late."""
    t = db.t[PERIOD_CLOSE_TABLE]
    last = conn.execute(select(t.c.through, t.c.closed_by, t.c.closed_ms)
                        .order_by(t.c.through.desc()).limit(1)).first()
    t_late = db.t[LATE_POSTING_TABLE]
    late = {str(entity): int(n) for entity, n in conn.execute(
        select(t_late.c.entity, func.count()).group_by(t_late.c.entity))}
    lines, receipts = int(late.get("journal_line", 0)), int(late.get("sale", 0))
    if last is None:
        return Closing(None, late_lines=lines, late_receipts=receipts)
    return Closing(str(last[0]), str(last[1]), int(last[2]), lines, receipts)


LAST_ZONE_MS = 12 * 3_600_000
"""How far the last time zone on Earth (UTC-12) runs behind UTC: a day is
over everywhere 12 hours after it is over in UTC."""


def today(ms: int | None = None) -> str:
    """HQ's day (UTC) at ``ms`` (now)."""
    return datetime.fromtimestamp((now_ms() if ms is None else ms) / 1000, UTC).date().isoformat()


def last_day_over(ms: int | None = None) -> str:
    """The latest day that is over in every time zone at ``ms`` (now). Tills
    date their sales by their own local day, and HQ does not keep the sites'
    zones: a chain on Pacific time still sells on 31 October at 00:20 UTC on
    1 November, so 31 October may be closed from 12:00 UTC on 1 November."""
    behind = (now_ms() if ms is None else ms) - LAST_ZONE_MS
    return (datetime.fromtimestamp(behind / 1000, UTC).date() - timedelta(days=1)).isoformat()


def day_over_ms(day: str) -> int:
    """When ``day`` is over in every time zone (Unix ms)."""
    end = datetime.fromisoformat(next_day(day)).replace(tzinfo=UTC).timestamp() * 1000
    return int(end) + LAST_ZONE_MS


def parse_day(text: str) -> str:
    """``text`` as a day (yyyy-mm-dd), or CloseRefused saying it is not one."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise CloseRefused(f"{text!r} is not a day (yyyy-mm-dd)") from None
    if len(text) != 10 or day == date.max:
        raise CloseRefused(f"{text!r} is not a day (yyyy-mm-dd) this calendar can close")
    return day.isoformat()


def check_through(through: str, current: str | None, over: str) -> str:
    """``through`` as a day the books may be closed through when ``over`` is
    the last day over everywhere, or CloseRefused."""
    day = parse_day(through)
    if day > over:
        raise CloseRefused(f"{day} is not over yet in every time zone (a store on the other "
                           f"side of the world may still be selling on it); the books can be "
                           f"closed through {over} now")
    if current is not None and day <= current:
        raise CloseRefused(f"the books are already closed through {current}; a period "
                           "once closed stays closed (post a correction in the open period)")
    return day


def may_close(staff: Staff | None) -> bool:
    """Whether an employee may close the books: finance or hq_admin, at HQ."""
    return staff is not None and staff.role in PERIOD_CLOSERS and staff.site == HQ_SITE


def close(db: Database, through: str, user: str, staff: Staff | None,
          ms: int | None = None,
          within: Callable[[Connection, Closing], None] | None = None) -> Closing:
    """Close the books through ``through`` as ``user`` (``may_close``).
    Serialized with every push by the write lock. ``within`` runs in the
    close's transaction with what it leaves (REST keeps its answer to an
    ``Idempotency-Key`` there)."""
    if not may_close(staff):
        who = f"{staff.role} at {staff.site}" if staff and staff.role else "no employee"
        raise PermissionError(f"closing the books is for {' or '.join(sorted(PERIOD_CLOSERS))} "
                              f"at HQ; {user} is {who}")
    ms = now_ms() if ms is None else ms
    with db.transaction() as store:
        conn = store.conn
        day = check_through(through, closed_through(conn, db.t), last_day_over(ms))
        conn.execute(db.t[PERIOD_CLOSE_TABLE].insert().values(
            through=day, closed_by=user, closed_ms=ms))
        done = state(db, conn)
        if within is not None:
            within(conn, done)
        return done


def quiet_devices(db: Database, conn: Connection, through: str) -> list[QuietDevice]:
    """Devices (not revoked) whose latest op is dated before ``through`` is
    over everywhere, or which never sent one: their sales of the period may
    not all be at HQ yet."""
    end = day_over_ms(through)
    devices, activity = db.t["devices"], db.t[DEVICE_ACTIVITY_TABLE]
    rows = conn.execute(
        select(devices.c.device, devices.c.site, activity.c.hlc)
        .select_from(devices.outerjoin(activity, activity.c.device == devices.c.device))
        .where(devices.c.revoked_ms.is_(None))
        .order_by(devices.c.site, devices.c.device)).all()
    out = []
    for device, site, hlc in rows:
        last = int(str(hlc)[:15]) if hlc else None
        if last is None or last < end:
            out.append(QuietDevice(str(device), str(site), last))
    return out
