"""What one write transaction adds to the running totals (``server.totals``).

``SqlServerStore.record`` counts each ledger row it writes into each total
kept of its ledger (the old version out, the new one in), and its flush adds
what was counted with one upsert per total, in the same transaction. A total
whose date key the books' close moves (``Totals.posted``) counts a row on its
posting day (``schema.finance.posting_day``): the day the books are closed
through is read once, at the first such row, and each row posted on another
day than its date is handed back for ``late_posting``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, auto
from typing import Any, cast

from schema.finance import posting_day
from sync.messages import Row

from . import totals
from .tables import Totals


class _Unread(Enum):
    """Not read yet: a sentinel where None has a meaning (books never closed)."""

    UNREAD = auto()


class Tally:
    """The running totals one transaction adds to, and its late postings."""

    def __init__(self, kept: dict[str, tuple[Totals, ...]],
                 books: Callable[[], tuple[str | None, str]]) -> None:
        """``kept``: ledger entity -> its totals. ``books``: (the day the books
        are closed through or None, HQ's day), asked at the first dated row."""
        self.kept = kept
        self._books = books
        self._closed: str | _Unread | None = _Unread.UNREAD
        self._today = ""
        self._sums: dict[str, dict[tuple[Any, ...], list[int]]] = {}
        """Total's table -> key -> [sums..., count] this transaction adds to it."""
        self._late: dict[tuple[str, str], str] = {}
        """(entity, key) -> the posting day of a row posted on another day than its date."""

    def add(self, before: Row | None, after: Row) -> None:
        """Count a ledger row's new version into each running total kept of its
        ledger, the old one out."""
        spec: Totals
        for spec in self.kept[after.entity]:
            sums = self._sums.setdefault(spec.table, {})
            for row, sign in ((before, -1), (after, 1)):
                if row is None or row.deleted:
                    continue
                f = row.fields
                k = tuple(map(f.get, spec.keys))
                if None in k:
                    continue  # not placed under every key (a movement with no product): no total
                if spec.posted is not None:
                    k = self._posting(spec, row, k)
                got = sums.get(k)
                if got is None:
                    got = sums[k] = [0] * len(spec.columns)
                for n, value in enumerate(totals.adds(spec, f)):
                    got[n] += sign * value

    def _posting(self, spec: Totals, row: Row, key: tuple[Any, ...]) -> tuple[Any, ...]:
        """``key`` with its date moved to the posting day: a ledger row (written
        once, so never counted out again) dated inside a closed period counts
        on the first open day, one dated after HQ's tomorrow on HQ's today."""
        if self._closed is _Unread.UNREAD:
            self._closed, self._today = self._books()
        at = spec.keys.index(cast(str, spec.posted))
        day = posting_day(key[at], self._closed, self._today)
        if day == key[at]:
            return key
        self._late[(row.entity, row.key)] = day
        return (*key[:at], day, *key[at + 1:])

    def take(self) -> tuple[dict[str, list[tuple[Any, ...]]], list[tuple[str, str, str]]]:
        """What was counted since the last take: per total's table the rows
        (key..., sums..., count) to add, in key order; and the rows posted on
        another day than their date, as (key, entity, posting day)."""
        rows = {table: [(*k, *v) for k, v in sorted(sums.items()) if any(v)]
                for table, sums in self._sums.items()}
        late = [(key, entity, day) for (entity, key), day in sorted(self._late.items())]
        self._sums.clear()
        self._late.clear()
        return rows, late
