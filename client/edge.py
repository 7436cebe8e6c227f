"""``Edge``: the Python API of one device's local database. Works fully offline.

Every write goes through ``sync.replica.Replica.write`` inside one local
transaction, so the visible row, the stock cache and the outbox entry commit
together; a write the server would refuse raises ``LocalRejected`` and leaves
nothing behind. Reads come from the entity view tables.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from schema import SCHEMA, Entity, Kind, Schema
from schema.model import SITE_CODE, is_site_code
from sync.hlc import MAX_AHEAD_MS, span
from sync.messages import Op
from sync.replica import HQ_CLOCK_STATE, Replica, hq_clock

from .errors import BadArgument, BelongsElsewhere, NeedsUpgrade, NotConfigured, UnknownName
from .sqlite_file import connect
from .store import (
    LAST_SYNC_STATE,
    REFUSED_STATE,
    REJOINING_STATE,
    SNAPSHOT_ROWS_STATE,
    TAKEN_OVER_STATE,
    SqliteLocalStore,
)
from .tables import StockSums, rebuild_stock, stock_mismatches, visible_columns

SETTINGS = ("server", "device", "site", "token")
"""What ``configure`` records in ``_state``."""


@dataclass(frozen=True)
class EdgeStatus:
    """Where this device stands, from its own database (no network)."""

    device: str
    site: str
    server: str
    pending: int
    """Ops in the outbox, not yet acknowledged by HQ."""
    cursor: int
    """Last change sequence number of HQ applied here."""
    rejections: int
    bootstrapped: bool
    last_sync_ms: int | None
    """Wall time of the last moment this device was wholly in sync with HQ:
    every op it had queued sent and answered, HQ's changes all pulled."""
    refused: str | None = None
    """HQ's last refusal of this device ("<ms> <why>"), until HQ takes it again."""
    rejoining: bool = False
    """A rejoin is under way: HQ's rows are being loaded again."""
    kept: tuple[int, int | None] = (0, None)
    """Ops HQ took that this device keeps for a rejoin, and when the oldest
    was acked."""
    snapshot_rows: int | None = None
    """Snapshot rows stored so far (None: no snapshot page stored yet, or a
    bootstrap begun by an older version, which did not count)."""
    snapshot_started: bool = False
    """A snapshot page is stored: an unfinished bootstrap resumes after it."""
    hq_clock: tuple[int, int] = (0, 0)
    """How many ms HQ's clock was ahead of this device's (negative: behind),
    and this device's time then, at the last connection ((0, 0): never)."""
    taken_over: str | None = None
    """The last time HQ closed this till's connection because another
    connection of its device took over ("<ms> <why>"); None: never."""

    def clock_warning(self) -> str | None:
        return clock_warning(self.hq_clock[0])


def clock_warning(hq_ahead_ms: int) -> str | None:
    """What to tell a store whose clock was ``hq_ahead_ms`` behind HQ's
    (negative: ahead) at the last sync, when that is more than HQ takes stamps
    as they come (``hlc.MAX_AHEAD_MS``); None when the clocks agree."""
    if abs(hq_ahead_ms) <= MAX_AHEAD_MS:
        return None
    off = f"{span(abs(hq_ahead_ms))} {'behind' if hq_ahead_ms > 0 else 'ahead of'}"
    return (f"this till's clock was {off} HQ's at the last sync: receipts, stock counts "
            "and reports are dated by it. Set the till's clock (HQ dates this till's "
            "edits by their arrival while its clock runs ahead)")


@dataclass(frozen=True)
class Rejection:
    """An op HQ refused; kept for the store manager to see."""

    op_id: str
    entity: str
    key: str
    reason: str
    at_ms: int
    op: Op


def now_ms() -> int:
    return int(time.time() * 1000)


class Edge:
    """One device's replica: local writes, reads, and the settings the daemon uses."""

    def __init__(self, path: str | Path, schema: Schema = SCHEMA, *,
                 readonly: bool = False) -> None:
        """``readonly``: for reads only; opening writes nothing (``sqlite_file.connect_readonly``),
        so it works on a full disk or a read-only medium; but a file an older
        version wrote is first brought up to date, which writes."""
        self.path = Path(path)
        self.schema = schema
        self.readonly = readonly
        self.conn = connect(self.path, readonly=readonly)
        try:
            self.store = SqliteLocalStore(self.conn, schema, may_upgrade=not readonly)
        except NeedsUpgrade:
            self.conn.close()
            self.readonly = False
            self.conn = connect(self.path)
            try:
                self.store = SqliteLocalStore(self.conn, schema)
            except BaseException:
                self.conn.close()
                raise
        except BaseException:
            self.conn.close()
            raise
        self._replica: Replica | None = None
        self._bools = {e.name: [f.name for f in e.fields if f.kind is Kind.BOOL]
                       for e in schema.entities}
        self._select = {e.name: "SELECT " + ", ".join(f'"{c}"' for c in visible_columns(e))
                                + f' FROM "{e.name}"' for e in schema.entities}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Edge:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- configuration ---------------------------------------------------------------
    def configure(self, server: str, device: str, site: str, token: str, *,
                  force: bool = False) -> list[str]:
        """Record the server URL, this device's id and site, and its token;
        returns what changed besides (e.g. an old refusal forgotten).

        A file holds one device's sales and what HQ sent that device's site,
        so it is refused (``BelongsElsewhere``, nothing changed) when it was set
        up for another device or site: its unsent ops would reach HQ under the
        new device's name (refused for good), and it would follow the new site
        from the old site's cursor. ``force`` takes such a file over anyway,
        but only with nothing left to send: the outbox must be empty; the sync
        state is then reset, so the next sync loads the new site's rows
        again (and drops the old site's ones once that snapshot is whole). A
        new token or server URL for the same device and site is always taken;
        it forgets HQ's last refusal of the old ones (not a "diverged" one,
        which only a rejoin settles)."""
        if not is_site_code(site):
            raise BadArgument(f"site code {site!r} is not valid: a site code is 1 to 16 upper "
                              f"case letters, digits, '-' or '_' ({SITE_CODE}), e.g. S1")
        if not device or device != device.strip():
            raise BadArgument(f"device id {device!r} is not valid")
        done: list[str] = []
        with self.store.transaction() as store:
            old = {name: store.get_state(name) for name in SETTINGS}
            moved = [f"{name} {old[name]}" for name, new in (("device", device), ("site", site))
                     if old[name] is not None and old[name] != new]
            if moved:
                pending = store.pending_count()
                owner = f"device {old['device']} at site {old['site']}"
                left = (f"; it still holds {pending} ops of {owner} not yet sent to HQ"
                        if pending else "")
                if not force:
                    raise BelongsElsewhere(
                        f"{self.path} belongs to {owner}, not device {device} at site {site}"
                        f"{left}: set up device {device} with a new file (--db NEW.db), or "
                        f"{'sync this one first, then ' if pending else ''}"
                        f"take it over with `init --force`")
                if pending:
                    raise BelongsElsewhere(
                        f"{self.path} belongs to {owner} and still holds {pending} ops not yet "
                        f"sent to HQ: `--force` never drops them. Run `branchline-edge --db "
                        f"{self.path} sync` while it is still set up as {old['device']}, "
                        f"or set up device {device} with a new file (--db NEW.db)")
                store.take_over()
                done.append(f"taken over from {owner}: the next sync loads the rows of "
                            f"site {site} again")
            elif (old["token"], old["server"]) != (token, server):
                refused = store.get_state(REFUSED_STATE) or ""
                if refused and "diverged" not in refused:
                    store.set_state(REFUSED_STATE, "")
                    done.append("HQ's last refusal of the old settings is forgotten")
            for name, value in zip(SETTINGS, (server, device, site, token), strict=True):
                store.set_state(name, value)
        self._replica = None
        return done

    def setting(self, name: str) -> str:
        value = self.store.get_state(name)
        if value is None:
            raise NotConfigured(f"{self.path} is not initialised: run `branchline-edge init`")
        return value

    @property
    def replica(self) -> Replica:
        if self._replica is None:
            self._replica = Replica(self.schema, self.store, self.setting("device"),
                                    self.setting("site"))
        return self._replica

    @contextmanager
    def transaction(self) -> Iterator[SqliteLocalStore]:
        """One local transaction; writes inside it commit together or not at all."""
        with self.store.transaction() as store:
            yield store

    # -- writes ----------------------------------------------------------------------
    def write(self, entity: str, key: str, fields: dict[str, Any], user: str = "clerk",
              *, delete: bool = False, group: str = "") -> Op:
        """One local change, with its outbox entry, in one transaction. Raises
        ``sync.replica.LocalRejected`` (nothing written) if it cannot stand."""
        with self.transaction():
            return self.replica.write(entity, key, fields, user, now_ms(), delete=delete,
                                      group=group)

    def delete(self, entity: str, key: str, user: str = "clerk", *, group: str = "") -> Op:
        """Delete a row (it stays as a tombstone until HQ confirms)."""
        return self.write(entity, key, {}, user, delete=True, group=group)

    def rejoin(self) -> tuple[int, int | None]:
        """Start over with an HQ restored from an older backup, keeping all this
        device did (``SqliteLocalStore.rejoin``): the ops HQ took in the last
        ``KEEP_SENT_DAYS`` go back into the outbox ahead of those still pending
        (HQ applies the ones it lost and answers the others as before, by op
        id), and the next sync loads HQ's rows again; once that snapshot is
        whole, every row HQ no longer has goes, so nothing it lost lingers.
        Until then the till keeps showing what it had. Returns how many ops
        were queued again, and when the oldest of them was acked."""
        with self.transaction() as store:
            return store.rejoin()

    # -- reads -----------------------------------------------------------------------
    def _entity(self, name: str) -> Entity:
        entity = self.schema.get(name)
        if entity is None:
            raise UnknownName(f"unknown entity {name!r}")
        return entity

    def _rows(self, entity: str, cur: Any) -> list[dict[str, Any]]:
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for name in self._bools[entity]:
            for row in rows:
                if row[name] is not None:
                    row[name] = bool(row[name])
        return rows

    def get(self, entity: str, key: str, *, include_deleted: bool = False
            ) -> dict[str, Any] | None:
        """The row as this device sees it (None if there is none, or it is deleted)."""
        self._entity(entity)
        cur = self.conn.execute(f"{self._select[entity]} WHERE id = ?", (key,))
        found = self._rows(entity, cur)
        if not found or (found[0]["_deleted"] and not include_deleted):
            return None
        return found[0]

    def query(self, entity: str, **where: Any) -> list[dict[str, Any]]:
        """Visible rows whose fields equal the given values (None matches NULL)."""
        e = self._entity(entity)
        unknown = set(where) - e.field_names - {"id"}
        if unknown:
            raise UnknownName(f"{entity} has no field {sorted(unknown)[0]!r}")
        clause = "".join(f' AND "{k}" IS NULL' if v is None else f' AND "{k}" = ?'
                         for k, v in where.items())
        cur = self.conn.execute(f"{self._select[entity]} WHERE _deleted = 0{clause}",
                                [v for v in where.values() if v is not None])
        return self._rows(entity, cur)

    def stock(self, site: str, product_id: str) -> int:
        """On hand at (site, product): the sum of its visible movements (cached)."""
        found = self.conn.execute("SELECT qty FROM stock_on_hand WHERE site = ? AND "
                                  "product_id = ?", (site, product_id)).fetchone()
        return int(found[0]) if found else 0

    def rebuild_stock(self) -> None:
        """Recompute the stock cache from the movement ledger."""
        with self.transaction():
            rebuild_stock(self.store.db)

    def stock_mismatches(self) -> list[tuple[str, str, StockSums, StockSums]]:
        """(site, product, cached, ledger) wherever the cache is wrong; [] when right."""
        return stock_mismatches(self.store.db)

    def pending(self) -> list[Op]:
        """Ops waiting for HQ, oldest first."""
        return [op for _, op in self.store.outbox(0, 2**62)]

    def rejections(self) -> list[Rejection]:
        """Ops HQ refused, oldest first, with the reason."""
        return [Rejection(op.op_id, op.entity, op.key, reason, at, op)
                for op, reason, at in self.store.rejections()]

    def status(self) -> EdgeStatus:
        last = self.store.get_state(LAST_SYNC_STATE)
        rows = self.store.get_state(SNAPSHOT_ROWS_STATE)
        return EdgeStatus(
            device=self.setting("device"), site=self.setting("site"),
            server=self.setting("server"), pending=self.store.pending_count(),
            cursor=int(self.store.get_state("cursor") or 0),
            rejections=self.store.rejection_count(),
            bootstrapped=self.store.get_state("bootstrapped") == "1",
            last_sync_ms=int(last) if last else None,
            refused=self.store.get_state("refused") or None,
            rejoining=self.store.get_state(REJOINING_STATE) is not None,
            kept=self.store.kept_sent(),
            hq_clock=hq_clock(self.store.get_state(HQ_CLOCK_STATE)),
            snapshot_rows=int(rows) if rows else None,
            snapshot_started=bool(self.store.get_state("snapshot_after")),
            taken_over=self.store.get_state(TAKEN_OVER_STATE) or None,
        )
