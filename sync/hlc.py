"""Hybrid logical clock: wall time in ms, a counter, and the device id.

A timestamp is encoded as a fixed-width string ``"<ms:15>-<counter:6>-<device>"``
so that plain string comparison orders timestamps by (time, counter, device):
ties between devices are broken by device id, and the value is readable in the
``sqlite3`` shell. The clock takes the current time as an argument: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DRIFT_MS = 24 * 3600 * 1000
"""A remote timestamp further ahead of our wall clock than this is refused."""

MAX_AHEAD_MS = 5 * 60 * 1000
"""HQ takes a device's stamp as it comes up to this far ahead of HQ's own
clock; a stamp further ahead (a till whose clock runs fast) is replaced by
one of HQ's time of arrival (``Restamp``)."""


@dataclass(frozen=True, order=True)
class Stamp:
    """One HLC reading."""

    ms: int
    counter: int
    device: str

    def encode(self) -> str:
        return f"{self.ms:015d}-{self.counter:06d}-{self.device}"

    @classmethod
    def decode(cls, text: str) -> Stamp:
        ms, counter, device = _parts(text)
        return cls(ms, counter, device)


def _parts(text: str) -> tuple[int, int, str]:
    try:
        ms, counter, device = text.split("-", 2)
        return int(ms), int(counter), device
    except ValueError:
        raise ValueError(f"not an HLC timestamp: {text!r}") from None


def check_stamp(text: str) -> str | None:
    """Why ``text`` is not an HLC timestamp, or None (``Stamp.decode`` would
    accept it; this check runs for every op the server ingests)."""
    try:
        _parts(text)
    except ValueError as exc:
        return str(exc)
    return None


class ClockDriftError(ValueError):
    """A peer's clock is implausibly far ahead of ours."""


class Clock:
    """The HLC of one device."""

    def __init__(self, device: str, last: Stamp | None = None) -> None:
        self.device = device
        self.last = last or Stamp(0, 0, device)

    def now(self, wall_ms: int) -> str:
        """A new timestamp for a local event, later than every one seen."""
        if wall_ms > self.last.ms:
            self.last = Stamp(wall_ms, 0, self.device)
        else:
            self.last = Stamp(self.last.ms, self.last.counter + 1, self.device)
        return self.last.encode()

    def observe(self, remote: str, wall_ms: int) -> None:
        """Merge a timestamp received from a peer, so later local ones sort after it."""
        r = Stamp.decode(remote)
        if r.ms - wall_ms > MAX_DRIFT_MS:
            raise ClockDriftError(f"timestamp {remote} is more than a day ahead of this clock")
        top = max(self.last.ms, r.ms, wall_ms)
        if top == self.last.ms == r.ms:
            counter = max(self.last.counter, r.counter) + 1
        elif top == self.last.ms:
            counter = self.last.counter + 1
        elif top == r.ms:
            counter = r.counter + 1
        else:
            counter = 0
        self.last = Stamp(top, counter, self.device)


def span(ms: int) -> str:
    """``ms`` in words read at a glance (5 min, 3 h, 2 days)."""
    minutes = round(ms / 60_000)
    if minutes < 120:
        return f"{minutes} min"
    hours = round(ms / 3_600_000)
    return f"{hours} h" if hours < 48 else f"{round(ms / 86_400_000)} days"


def ahead_by(stamp: str, now_ms: int) -> int:
    """How many ms ``stamp`` is ahead of ``now_ms`` (<= 0: not ahead, or not a stamp)."""
    ms = stamp.partition("-")[0]
    return int(ms) - now_ms if ms.isdigit() else 0


class Restamp:
    """HQ's bound on the stamps of one device's edits.

    A device whose clock runs fast would win every last-writer-wins race with
    edits made genuinely later elsewhere, for as long as its clock is ahead,
    and its stamps would stay ahead after its clock is set right (an HLC
    never goes back). HQ cannot know when such an edit was made, only that it
    arrived: a stamp more than ``MAX_AHEAD_MS`` ahead of HQ's clock is
    replaced by one of HQ's time, kept in order with the device's earlier
    replaced stamps (one device's edits of a row must still follow each other)."""

    def __init__(self, device: str) -> None:
        self.last = Stamp(0, 0, device)

    def bound(self, stamp: str, now_ms: int) -> str | None:
        """The stamp HQ uses instead of ``stamp``, or None when ``stamp`` is
        within the bound (or malformed: validation refuses it)."""
        if ahead_by(stamp, now_ms) <= MAX_AHEAD_MS:
            return None
        last = self.last
        if now_ms > last.ms:
            self.last = Stamp(now_ms, 0, last.device)
        else:
            self.last = Stamp(last.ms, last.counter + 1, last.device)
        return self.last.encode()
