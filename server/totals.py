"""Running totals kept beside ledger entities (``server.tables.TOTALS``).

The ledger stays the truth: stock on hand at (site, product) is the sum of
its movements, an account's balance at a site the sum of its journal lines.
Summing at every read grows with history, so the store keeps the sums
itself: ``SqlServerStore.record`` tallies each ledger row it writes into
each total kept of its ledger (the old version counted out, the new one in;
the journal keeps two: per (site, account) and per (posting day, site,
account), a line that arrived dated inside a closed period counting on the
day ``late_posting`` says, ``server.periods``),
and its flush adds the tallies in the same transaction with one upsert per
total, so a total commits or rolls back together with the rows that make
it, whichever server process wrote them.

``fill`` builds a total from its ledger (the upgrade of an older database,
and ``branchline check-totals --rebuild``); ``drift`` lists where the two
disagree, which should be nowhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, MetaData, Table, case, delete, func, select

from .tables import LATE_POSTING_TABLE, TOTALS, Sum, Totals, param_mark

BY_TABLE = {t.table: t for t in TOTALS}


def by_ledger(kept: list[Totals]) -> dict[str, tuple[Totals, ...]]:
    """Ledger entity -> the totals kept of it, in ``TOTALS`` order."""
    found: dict[str, tuple[Totals, ...]] = {}
    for t in kept:
        found[t.entity] = (*found.get(t.entity, ()), t)
    return found


class Drift(NamedTuple):
    table: str
    key: tuple[str, ...]
    kept: tuple[int, ...]
    """What the total says: its sums, then its count."""
    summed: tuple[int, ...]
    """What the ledger adds up to, likewise."""


def kept(metadata: MetaData) -> list[Totals]:
    """The totals this database keeps (those whose ledger the schema has)."""
    return [t for t in TOTALS if t.table in metadata.tables]


def upsert_sql(dialect: Dialect, totals: Totals) -> str:
    """Add (sums..., count) to the total of a key, creating it at need: one
    statement for SQLite and PostgreSQL alike, in the driver's style."""
    mark = param_mark(dialect)
    t = totals.table
    keys, values = totals.keys, totals.columns
    return (f"INSERT INTO {t} ({', '.join((*keys, *values))}) "
            f"VALUES ({', '.join([mark] * (len(keys) + len(values)))}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{c} = {t}.{c} + excluded.{c}" for c in values))


def adds(totals: Totals, fields: dict[str, Any]) -> list[int]:
    """What one live ledger row adds to the total of its key: its sums, then 1."""
    get = fields.get  # on the push path: once per ledger row written
    out = []
    for s in totals.sums:
        if s.unless is not None and get(s.unless) is not None:
            out.append(0)
        elif len(s.factors) == 1:
            out.append(int(get(s.factors[0]) or 0))
        else:
            n = 1
            for name in s.factors:
                n *= int(get(name) or 0)
            out.append(n)
    out.append(1)
    return out


def _summed(ledger: Table, s: Sum) -> Any:
    term: Any = ledger.c[s.factors[0]]
    for name in s.factors[1:]:
        term = term * ledger.c[name]  # NULL when a factor is: the row adds nothing
    if s.unless is not None:
        term = case((ledger.c[s.unless].is_(None), term), else_=None)
    return func.coalesce(func.sum(term), 0)


def _sums(metadata: MetaData, totals: Totals) -> Any:
    ledger = metadata.tables[totals.entity]
    fields = [ledger.c[k] for k in totals.keys]
    keys: list[Any] = list(fields)
    source: Any = ledger
    if totals.posted is not None:  # a row posted late counts on its posting day
        late = metadata.tables[LATE_POSTING_TABLE]
        at = totals.keys.index(totals.posted)
        keys[at] = func.coalesce(late.c.posted, fields[at]).label(totals.posted)
        source = ledger.outerjoin(late, (late.c.id == ledger.c.id)
                                  & (late.c.entity == totals.entity))
    return (select(*keys, *(_summed(ledger, s) for s in totals.sums), func.count())
            .select_from(source)
            .where(ledger.c._deleted.is_(False), *(k.is_not(None) for k in fields))
            .group_by(*keys))


def fill(conn: Connection, metadata: MetaData, totals: Totals) -> int:
    """Rebuild a total from its ledger; returns how many keys it has. Call it
    inside a write transaction."""
    if totals.table not in metadata.tables:
        return 0
    t = metadata.tables[totals.table]
    conn.execute(delete(t))
    conn.execute(t.insert().from_select([*totals.keys, *totals.columns],
                                        _sums(metadata, totals)))
    return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def drift(conn: Connection, metadata: MetaData, totals: Totals) -> list[Drift]:
    """Every key whose kept total is not what its ledger adds up to (a missing
    total counts as zeros)."""
    if totals.table not in metadata.tables:
        return []
    t = metadata.tables[totals.table]
    width = len(totals.keys)
    summed = {tuple(r[:width]): tuple(map(int, r[width:]))
              for r in conn.execute(_sums(metadata, totals))}
    held = {tuple(r[:width]): tuple(map(int, r[width:])) for r in conn.execute(
        select(*(t.c[c] for c in (*totals.keys, *totals.columns))))}
    zero = (0,) * (len(totals.sums) + 1)
    return [Drift(totals.table, k, held.get(k, zero), summed.get(k, zero))
            for k in sorted(summed.keys() | held.keys())
            if held.get(k, zero) != summed.get(k, zero)]


def drifts(conn: Connection, metadata: MetaData) -> list[Drift]:
    """``drift`` of every total the database keeps: [] when all hold."""
    return [d for t in kept(metadata) for d in drift(conn, metadata, t)]
