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
