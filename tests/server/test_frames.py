"""Every frame the server sends fits the clients' size cap; a snapshot page
that would not is cut short and the device asks for the rest."""

from __future__ import annotations

import uuid

import msgspec

from server.frames import fit
from sync.messages import (
    Changes,
    Row,
    SnapshotPage,
    StoredPage,
    Welcome,
    decode_server,
    encode,
)


def _rows(n: int, size: int) -> list[Row]:
    return [Row("customer", str(uuid.UUID(int=i)), 1, {"name": "x" * size}) for i in range(n)]


def test_small_messages_pass_unchanged() -> None:
    page = SnapshotPage(_rows(10, 100), at=7, done=True)
    frame, sent = fit(page)
    assert sent is page and decode_server(frame) == page
    welcome = Welcome(head=1, schema_version=1, snapshot_required=False)
    assert fit(welcome)[1] is welcome


def test_a_large_snapshot_page_is_cut_to_fit_and_not_done() -> None:
    rows = _rows(2_000, 1_000)
    frame, sent = fit(SnapshotPage(rows, at=7, done=True), cap=500_000)
    assert len(frame) <= 500_000
    assert isinstance(sent, SnapshotPage) and decode_server(frame) == sent
    assert not sent.done and sent.at == 7
    assert sent.rows == rows[: len(sent.rows)] and len(sent.rows) > 400  # cut close to the cap


def test_rows_of_mixed_sizes_still_fit() -> None:
    rows = _rows(300, 10) + _rows(300, 3_000)
    frame, sent = fit(SnapshotPage(rows, at=1, done=False), cap=200_000)
    assert len(frame) <= 200_000 and isinstance(sent, SnapshotPage) and sent.rows


def test_other_messages_are_sent_whole() -> None:
    big = Changes([], cursor=1)
    assert fit(big, cap=1)[1] is big


def _stored(rows: list[Row]) -> list[msgspec.Raw]:
    return [msgspec.Raw(encode(r)) for r in rows]


def test_a_page_of_stored_rows_is_the_snapshot_page_of_those_rows() -> None:
    deleted = Row("product", str(uuid.UUID(int=99)), 3, {"price": 5}, True,
                  {"price": ("000001700000000000-000000-hq", 3)})
    rows = [*_rows(50, 30), deleted]
    stored = StoredPage(_stored(rows), at=12, done=False)
    assert encode(stored) == encode(SnapshotPage(rows, at=12, done=False))  # byte for byte
    assert decode_server(encode(stored)) == SnapshotPage(rows, at=12, done=False)
    assert stored.last_key() == ("product", str(uuid.UUID(int=99)))


def test_a_large_page_of_stored_rows_is_cut_to_fit_and_not_done() -> None:
    rows = _rows(2_000, 1_000)
    frame, sent = fit(StoredPage(_stored(rows), at=7, done=True), cap=500_000)
    assert len(frame) <= 500_000 and isinstance(sent, StoredPage) and not sent.done
    got = decode_server(frame)
    assert isinstance(got, SnapshotPage) and got.at == 7 and not got.done
    assert got.rows == rows[: len(got.rows)] and len(got.rows) == len(sent.rows) > 400
