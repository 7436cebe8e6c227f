"""``Edge``: the Python API of one device's local database. Works fully offline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schema import SCHEMA, Schema
from sync.messages import Op
from sync.replica import Replica

from .store import SqliteLocalStore, connect
from .tables import rebuild_stock, stock_mismatches


class NotConfigured(Exception):
    """The edge database has not been initialised with a device and a site."""


@dataclass(frozen=True)
class Status:
    device: str
    site: str
    server: str
    pending: int
    cursor: int
    rejections: int
    last_sync_ms: int | None


def now_ms() -> int:
    return int(time.time() * 1000)


class Edge:
    """One device's replica: local writes, reads, and the settings the daemon uses."""

    def __init__(self, path: str | Path, schema: Schema = SCHEMA) -> None:
        self.path = Path(path)
        self.schema = schema
        self.conn = connect(self.path)
        self.store = SqliteLocalStore(self.conn, schema)
        self._replica: Replica | None = None

    def close(self) -> None:
        self.conn.close()

    # -- configuration -----------------------------------------------------------
    def configure(self, server: str, device: str, site: str, token: str) -> None:
        with self.store.transaction():
            for name, value in (("server", server), ("device", device), ("site", site),
                                ("token", token)):
                self.store.set_state(name, value)
        self._replica = None

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
        with self.store.transaction() as store:
            yield store

    # -- writes --------------------------------------------------------------------
    def write(self, entity: str, key: str, fields: dict[str, Any], user: str = "clerk",
              *, delete: bool = False, group: str = "") -> Op:
        """One local change, with its outbox entry, in one transaction.
        Raises ``sync.replica.LocalRejected`` (nothing written) if it cannot stand."""
        with self.transaction():
            return self.replica.write(entity, key, fields, user, now_ms(), delete=delete,
                                      group=group)

    # -- reads ---------------------------------------------------------------------
    def get(self, entity: str, key: str) -> dict[str, Any] | None:
        if self.schema.get(entity) is None:
            raise KeyError(f"unknown entity {entity!r}")
        cur = self.conn.execute(f'SELECT * FROM "{entity}" WHERE id = ?', (key,))
        found = cur.fetchone()
        if found is None:
            return None
        return dict(zip([d[0] for d in cur.description], found, strict=True))

    def query(self, entity: str, **where: Any) -> list[dict[str, Any]]:
        e = self.schema.get(entity)
        if e is None:
            raise KeyError(f"unknown entity {entity!r}")
        unknown = set(where) - e.field_names - {"id"}
        if unknown:
            raise KeyError(f"{entity} has no field {sorted(unknown)[0]!r}")
        clause = " AND ".join(f'"{k}" = ?' for k in where) or "1"
        cur = self.conn.execute(f'SELECT * FROM "{entity}" WHERE _deleted = 0 AND {clause}',
                                tuple(where.values()))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def stock(self, site: str, product_id: str) -> int:
        found = self.conn.execute("SELECT qty FROM stock_on_hand WHERE site = ? AND "
                                  "product_id = ?", (site, product_id)).fetchone()
        return int(found[0]) if found else 0

    def rebuild_stock(self) -> None:
        with self.transaction():
            rebuild_stock(self.store.db)

    def stock_mismatches(self) -> list[tuple[str, str, int, int]]:
        return stock_mismatches(self.store.db)

    def pending(self) -> list[Op]:
        return [op for _, op in self.store.outbox(0, 1_000_000)]

    def rejections(self) -> list[tuple[str, str, str, str]]:
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in self.conn.execute(
            "SELECT op_id, entity, key, reason FROM _rejections ORDER BY at_ms")]

    def status(self) -> Status:
        last = self.store.get_state("last_sync_ms")
        return Status(
            device=self.setting("device"), site=self.setting("site"),
            server=self.setting("server"), pending=self.store.pending_count(),
            cursor=int(self.store.get_state("cursor") or 0),
            rejections=int(self.conn.execute("SELECT count(*) FROM _rejections").fetchone()[0]),
            last_sync_ms=int(last) if last else None,
        )
