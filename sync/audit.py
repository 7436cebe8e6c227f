"""Audit records and their hash chain, so the log cannot be rewritten unseen.

Each record's ``hash`` is SHA-256 over the previous record's hash and the
record's canonical JSON. Changing, removing or reordering any record breaks
every hash after it; ``verify_chain`` finds the first broken link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

from .merge import Outcome

GENESIS = "0" * 64


class AuditRecord(msgspec.Struct, frozen=True):
    """Who did what to which row, from where, when, and which policy decided."""

    op_id: str
    entity: str
    key: str
    user: str
    device: str
    site: str
    hlc: str
    status: str
    policy: str
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def audit_of(outcome: Outcome) -> AuditRecord:
    """The audit record of one decided op."""
    op = outcome.op
    return AuditRecord(
        op_id=op.op_id,
        entity=op.entity,
        key=op.key,
        user=op.user,
        device=outcome.actor.device,
        site=outcome.actor.site,
        hlc=op.hlc,
        status=outcome.status.value,
        policy=str(outcome.policy),
        reason=outcome.reason,
        before=outcome.before.fields if outcome.before else None,
        after=outcome.after.fields if outcome.after and outcome.changed else None,
    )


_json = msgspec.json.Encoder(order="sorted")


def chain_hash(previous: str, record: AuditRecord) -> str:
    """Hash of ``record`` linked to the hash of the record before it."""
    return hashlib.sha256(previous.encode() + _json.encode(record)).hexdigest()


def verify_chain(records: Iterable[tuple[AuditRecord, str]]) -> int | None:
    """Index of the first record whose stored hash does not match, or None if intact."""
    previous = GENESIS
    for index, (record, stored) in enumerate(records):
        expected = chain_hash(previous, record)
        if expected != stored:
            return index
        previous = stored
    return None
