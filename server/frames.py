"""Frames the server sends, each within ``MAX_MESSAGE_BYTES``: every client
refuses a larger one, and would then reconnect and ask for it again forever.

A snapshot page is asked for by row count, and rows differ a lot in size
(10,000 sale rows are about 9 MB): a page that does not fit is cut to the rows
that do and marked not done, so the device asks for the rest after the last
row it got, as after any page. Other messages cannot be cut here without the
session losing its place; one that does not fit is sent whole and logged.
"""

from __future__ import annotations

import logging

import msgspec

from sync.messages import MAX_MESSAGE_BYTES, Outgoing, SnapshotPage, StoredPage, encode

log = logging.getLogger("branchline.sync")


def fit(msg: Outgoing, cap: int = MAX_MESSAGE_BYTES) -> tuple[bytes, Outgoing]:
    """The frame to send for ``msg`` and the message it holds (a snapshot page
    may come back shorter)."""
    data = encode(msg)
    if len(data) <= cap:
        return data, msg
    if not isinstance(msg, SnapshotPage | StoredPage) or len(msg.rows) < 2:
        log.error("sending a %s of %d bytes, over the %d-byte limit",
                  type(msg).__name__, len(data), cap)
        return data, msg
    keep = len(msg.rows)
    while len(data) > cap and keep > 1:
        # rows of one page are alike in size: aim just under the cap, then step down
        keep = max(1, min(keep - 1, int(keep * cap / len(data) * 0.97)))
        msg = msgspec.structs.replace(msg, rows=msg.rows[:keep], done=False)
        data = encode(msg)
    return data, msg
