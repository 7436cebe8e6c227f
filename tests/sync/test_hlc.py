"""The hybrid logical clock orders events by time, counter, then device."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.hlc import Clock, ClockDriftError, Stamp


def test_timestamps_increase_even_when_the_wall_clock_goes_back() -> None:
    clock = Clock("till")
    a = clock.now(5_000)
    b = clock.now(4_000)  # NTP stepped the clock back
    c = clock.now(5_000)
    assert a < b < c


def test_observing_a_remote_stamp_moves_later_local_stamps_after_it() -> None:
    clock = Clock("a")
    remote = Clock("b").now(9_000)
    clock.observe(remote, 1_000)
    assert clock.now(1_000) > remote


def test_a_stamp_from_far_in_the_future_is_refused() -> None:
    clock = Clock("a")
    with pytest.raises(ClockDriftError, match="more than a day ahead"):
        clock.observe(Stamp(10**12, 0, "b").encode(), 1_000)


def test_decode_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not an HLC"):
        Stamp.decode("noon")


@given(st.lists(st.tuples(st.integers(0, 10**13), st.integers(0, 999_999),
                          st.text("abc-", min_size=1, max_size=5)), min_size=2))
def test_string_order_is_stamp_order(stamps: list[tuple[int, int, str]]) -> None:
    parsed = [Stamp(*s) for s in stamps]
    assert sorted(parsed) == sorted(parsed, key=lambda s: s.encode())
    assert all(Stamp.decode(s.encode()) == s for s in parsed)
