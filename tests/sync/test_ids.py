"""Keys and op ids are version 7 UUIDs: canonical, unique, ordered by time."""

from __future__ import annotations

import uuid

from schema import is_uuid
from sync.ids import id_ms, new_id


def test_an_id_is_a_canonical_version_7_uuid_carrying_its_time() -> None:
    at = 1_795_000_000_123
    key = new_id(at)
    parsed = uuid.UUID(key)
    assert is_uuid(key) and str(parsed) == key
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert id_ms(key) == at


def test_ids_made_later_sort_later_and_never_repeat() -> None:
    base = 1_795_000_000_000
    keys = [new_id(base + ms) for ms in range(2000) for _ in range(50)]
    assert len(set(keys)) == len(keys)
    by_ms = [keys[i] for i in range(0, len(keys), 50)]
    assert by_ms == sorted(by_ms)  # an index takes each new ms at its right edge
