"""Every message of the sync protocol, in one tagged union, msgpack on the wire.

Compatibility rules (msgspec "schema evolution"): a new field always gets a
default, a field's type never changes, unknown fields are ignored. The protocol
version in ``Hello`` changes only when those rules cannot be kept.

Conversation::

    client                                  server
    Hello(device, site, token, cursor) -->
                                        <-- Welcome(head, snapshot_required)
    SnapshotRequest(after) -------------->                  (new device only)
                                        <-- SnapshotPage(rows, next, done, at)
    Pull(cursor) ------------------------>
                                        <-- Changes(changes, cursor, more)
    Push(batch, ops) -------------------->
                                        <-- Acks(batch, acks)   (after commit)
                                        <-- Changes(..., live=True)  (fan-out)
    any bad message -------------------->
                                        <-- Error(code, message)
"""

from __future__ import annotations

from enum import StrEnum
from hashlib import blake2b
from typing import Annotated, Any

import msgspec

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Size cap of one frame in either direction; larger frames are refused."""
MAX_BATCH_OPS = 5000
"""Most ops one Push may carry."""


class Op(msgspec.Struct, frozen=True, omit_defaults=True):
    """One change made at the edge; the unit of sync, audit and dedupe."""

    op_id: str
    """UUID made by the device; the server applies each op id at most once."""
    entity: str
    """Entity name from the schema, e.g. ``customer``."""
    key: str
    """The row's UUID key, made at the edge."""
    base_version: int
    """Server version of the row the device had when it made the op (0: none)."""
    fields: dict[str, Any]
    """Changed fields and their new values (every required field on create)."""
    hlc: str
    """Hybrid logical clock timestamp of the edit (see ``sync.hlc``)."""
    user: str
    """The user who made the edit."""
    device: str
    """The device that made the edit; must be the authenticated device."""
    schema_version: int
    """Schema version the device was built with."""
    delete: bool = False
    """True: the op deletes the row (``fields`` is then empty)."""
    group: str = ""
    """Ops of one business transaction (a sale, its lines, its stock movements and
    journal lines) share a group id; the server applies a group all or nothing."""


class Row(msgspec.Struct, omit_defaults=True):
    """A row as the server holds it: values plus the versions that merging needs."""

    entity: str
    """Entity name."""
    key: str
    """The row's UUID key."""
    version: int
    """Server version, +1 on every accepted change of the row."""
    fields: dict[str, Any]
    """Every field of the entity and its value (None where unset)."""
    deleted: bool = False
    """Tombstone: the row was deleted; kept so the delete propagates."""
    meta: dict[str, tuple[str, int]] = {}
    """Per field: (HLC of the write that set it, row version it was set at)."""


class Status(StrEnum):
    """What the server did with one op."""

    ACCEPTED = "accepted"
    MERGED = "merged"
    REJECTED = "rejected"


class Ack(msgspec.Struct, omit_defaults=True):
    """The server's answer for one op, sent only after it is durable."""

    op_id: str
    """The op answered."""
    status: Status
    """accepted (applied as sent), merged (partly applied), rejected (not applied)."""
    reason: str = ""
    """Why the op was merged or rejected, in words a store manager can read."""
    row: Row | None = None
    """The authoritative row after the op (or as it stands, if rejected)."""
    dropped: list[str] = []
    """lww fields not applied because a later write already won."""
    conflicts: list[str] = []
    """manual fields sent to the conflict queue; the server kept its value."""
    policy: str = ""
    """What decided a rejection: validation, scope, role, state, hq-owned, ledger, ..."""


class Change(msgspec.Struct):
    """One entry of the server's change sequence: a row as it became."""

    seq: int
    """Server-assigned position in the change sequence."""
    row: Row
    """The whole row after the change."""


def mark_of(row: Row) -> str:
    """The mark of the change that made ``row`` what it is: which row, at which
    version, by the write of which clock (the version alone repeats when a
    change lost in a restore is made again by hand). A device keeps the mark
    of the change at its cursor and names it in its Hello; HQ finds another
    change at that position when its database was restored from an older
    backup and its sequence numbers were given again to other changes
    (``sync.server.check_cursor``)."""
    latest = max(row.meta.values())[0] if row.meta else ""
    ident = f"{row.entity}\0{row.key}\0{row.version}\0{latest}".encode()
    return blake2b(ident, digest_size=8).hexdigest()


MAX_SEQ = 2**63 - 1
"""The largest change sequence number a store can hold (64-bit signed)."""
Cursor = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
"""A change sequence number a client names: a 64-bit signed integer, as stored."""


Name = Annotated[str, msgspec.Meta(max_length=64)]
"""A device id, site code or op id as a Hello names it: HQ quotes it back in
its refusals and keeps those for the IT page, so it is never a novel."""


class Hello(msgspec.Struct, tag=True):
    """First message of a connection: who is speaking, and from where."""

    device: Name
    """Device id the token was issued to."""
    site: Name
    """Site the device claims to belong to; must match its token."""
    token: Annotated[str, msgspec.Meta(max_length=256)]
    """Device token issued by HQ."""
    schema_version: int
    """Schema version of the client."""
    cursor: Cursor
    """Last change sequence number the client has applied (0: none)."""
    protocol: int = PROTOCOL_VERSION
    """Wire protocol version."""
    mark: Name = ""
    """``mark_of`` the change at ``cursor``, as HQ sent it ("" if unknown)."""
    acked: Name = ""
    """Op id of the last op HQ answered for this device ("" if none): HQ keeps
    every answer for good, so one it has lost means a restore."""
    wall_ms: int = 0
    """The device's wall clock as it said Hello (0: not told): HQ shows IT a
    device whose clock is off."""
    reads_replaced: bool = False
    """The device reads ``ErrorCode.REPLACED`` (edges since 2026-11-26): an
    older one, whose decoder refuses an error code it does not know, gets
    the close code 4410 of a take-over without the ``Error`` frame."""


class Welcome(msgspec.Struct, tag=True):
    """The server accepted the Hello."""

    head: int
    """Current end of the change sequence."""
    schema_version: int
    """The server's schema version."""
    snapshot_required: bool
    """True when the client must bootstrap from a snapshot first."""
    server_ms: int = 0
    """Server wall clock, for the client's HLC."""


class Push(msgspec.Struct, tag=True):
    """A batch of ops from the client's outbox, oldest first."""

    batch: int
    """Client-chosen batch number, echoed in the Acks."""
    ops: list[Op]
    """The ops, in the order they were made."""


class Acks(msgspec.Struct, tag=True):
    """Answers for every op of one Push, in the same order."""

    batch: int
    """Batch number of the Push answered."""
    acks: list[Ack]
    """One per op."""


class Pull(msgspec.Struct, tag=True):
    """Ask for changes after a cursor."""

    cursor: Cursor
    """Last sequence number the client has."""
    limit: int = 1000
    """Most changes wanted in one answer."""


class Changes(msgspec.Struct, tag=True):
    """Changes in the client's scope, in sequence order."""

    changes: list[Change]
    """The changes (only those in the client's scope)."""
    cursor: int
    """The client's new cursor: every change up to here was considered."""
    more: bool = False
    """True when more changes wait; pull again."""
    since: int = 0
    """The cursor these changes follow; a client whose cursor is lower has a gap."""
    live: bool = False
    """True when pushed by fan-out rather than asked for."""
    mark: str = ""
    """``mark_of`` the change at ``cursor`` ("" when the cursor did not move)."""


class SnapshotRequest(msgspec.Struct, tag=True):
    """Ask for the next page of a bootstrap snapshot."""

    after_entity: str = ""
    """Entity of the last row received ("" for the first page)."""
    after_key: str = ""
    """Key of the last row received."""
    at: Annotated[int, msgspec.Meta(ge=-1, le=MAX_SEQ)] = -1
    """Cursor the snapshot started at (-1 for the first page)."""
    limit: int = 5000
    """Most rows wanted in one page."""


class SnapshotPage(msgspec.Struct, tag=True):
    """One page of the rows in the client's scope."""

    rows: list[Row]
    """The rows, ordered by (entity, key)."""
    at: int
    """Cursor to pull changes from once the snapshot is done."""
    done: bool
    """True on the last page."""
    mark: str = ""
    """``mark_of`` the change at ``at``, on the last page."""

    def last_key(self) -> tuple[str, str]:
        """(entity, key) of the last row, where the next page starts."""
        return self.rows[-1].entity, self.rows[-1].key


class StoredPage(msgspec.Struct, tag="SnapshotPage"):
    """A ``SnapshotPage`` as a store that keeps each row's msgpack sends it:
    the rows go out as the bytes they were stored as, not decoded and encoded
    again (that was most of HQ's work in a bootstrap). It encodes byte for
    byte as the ``SnapshotPage`` of those rows, and devices decode it as one;
    only the server ever holds a ``StoredPage``."""

    rows: list[msgspec.Raw]
    """Each row's msgpack, ordered by (entity, key)."""
    at: int
    done: bool
    mark: str = ""

    def last_key(self) -> tuple[str, str]:
        """(entity, key) of the last row, where the next page starts."""
        row = _row_decoder.decode(self.rows[-1])
        return row.entity, row.key


class ErrorCode(StrEnum):
    """Kinds of protocol error."""

    BAD_MESSAGE = "bad-message"
    TOO_LARGE = "too-large"
    AUTH = "auth"
    SCHEMA = "schema"
    SCOPE = "scope"
    STATE = "state"
    DIVERGED = "diverged"
    """The device has seen more of HQ's change sequence than HQ has: HQ's
    database was restored from an older backup or replaced."""
    REPLACED = "replaced"
    """Another connection of the same device took over from this one (HQ
    serves one connection per device: the newest)."""
    INTERNAL = "internal"


class Error(msgspec.Struct, tag=True):
    """Something the peer sent could not be handled."""

    code: ErrorCode
    """Machine-readable kind."""
    message: str
    """What was wrong and why."""
    fatal: bool = False
    """True when the server closes the connection after this."""


ClientMessage = Hello | Push | Pull | SnapshotRequest
ServerMessage = Welcome | Acks | Changes | SnapshotPage | Error
Message = ClientMessage | ServerMessage
Outgoing = ServerMessage | StoredPage
"""What the server's session answers with (a device decodes a ``StoredPage``
as the ``SnapshotPage`` it encodes as)."""

_encoder = msgspec.msgpack.Encoder()
_client_decoder = msgspec.msgpack.Decoder(ClientMessage)
_server_decoder = msgspec.msgpack.Decoder(ServerMessage)
_op_decoder = msgspec.msgpack.Decoder(Op)
_row_decoder = msgspec.msgpack.Decoder(Row)
_ack_decoder = msgspec.msgpack.Decoder(Ack)


class ProtocolError(Exception):
    """A frame could not be decoded into a message; ``code`` says why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    def to_error(self) -> Error:
        return Error(code=self.code, message=str(self), fatal=True)


def encode(msg: Message | StoredPage | Op | Row | Ack | Change) -> bytes:
    """Encode a message (or a stored Op/Row/Ack) to msgpack."""
    return _encoder.encode(msg)


def _decode(decoder: msgspec.msgpack.Decoder[Any], data: bytes, what: str) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{what} must be a binary msgpack frame")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"{what} is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}",
        )
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"malformed {what}: {exc}") from None


def decode_client(data: bytes) -> ClientMessage:
    """Decode a frame sent by a client; raises ProtocolError."""
    msg: ClientMessage = _decode(_client_decoder, data, "client message")
    return msg


def decode_server(data: bytes) -> ServerMessage:
    """Decode a frame sent by the server; raises ProtocolError."""
    msg: ServerMessage = _decode(_server_decoder, data, "server message")
    return msg


class _PageBlobs(msgspec.Struct, tag="SnapshotPage"):
    rows: list[msgspec.Raw]


_page_blobs_decoder = msgspec.msgpack.Decoder(_PageBlobs)


def snapshot_blobs(data: bytes) -> list[msgspec.Raw]:
    """The rows of a SnapshotPage frame as they came, each the msgpack of one
    ``Row``: the edge stores them as its base rows without encoding them again.
    Call it after ``decode_server`` accepted the frame as a SnapshotPage."""
    page: _PageBlobs = _decode(_page_blobs_decoder, data, "snapshot page")
    return page.rows


def decode_op(data: bytes) -> Op:
    """Decode an Op stored in an outbox."""
    op: Op = _op_decoder.decode(data)
    return op


def decode_row(data: bytes) -> Row:
    """Decode a stored Row."""
    row: Row = _row_decoder.decode(data)
    return row


def decode_ack(data: bytes) -> Ack:
    """Decode a stored Ack."""
    ack: Ack = _ack_decoder.decode(data)
    return ack
