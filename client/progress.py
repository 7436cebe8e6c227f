"""Progress of long syncs on the terminal: rows received while bootstrapping,
ops acknowledged while draining a large backlog (rich bars on stderr)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)``: ``what`` is ``"bootstrap"`` (snapshot rows
stored, counting those stored before a restart, out of at most ``total``: HQ's
head, as the protocol sends no row count; 0 when unknown; ``done`` on the last
page) or ``"push"`` (ops acknowledged out of acknowledged + pending)."""

PUSH_BAR_FROM = 1000
"""A backlog smaller than this drains too fast to be worth a bar."""


@contextmanager
def rich_progress(enabled: bool | None = None) -> Iterator[Progress | None]:
    """A progress callback drawing rich bars on stderr, or None when disabled.
    ``enabled=None``: only when stderr is a terminal; True forces the bars."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn
    from rich.progress import Progress as Bars

    bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                console=Console(stderr=True, force_terminal=True), transient=True)
    tasks: dict[str, TaskID] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            if what == "push" and total < PUSH_BAR_FROM:
                return
            label = ("bootstrapping: rows stored, of at most" if what == "bootstrap"
                     else "ops acknowledged")
            tasks[what] = bars.add_task(label, total=total or None)
        bars.update(tasks[what], completed=done, total=total or None)

    with bars:
        yield update
