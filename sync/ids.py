"""Row keys and op ids: time-ordered UUIDs (version 7, RFC 9562).

Every key and op id is made at the edge. A version 4 UUID is random, so the
server's indexes on keys and op ids (the movement's primary key, its (site,
id) index, the audit's op id) take each new entry on a random page: a commit
of a few thousand ops dirties nearly every page of those indexes, and ingest
slows down as the tables grow (measured here: 9.2k ops/s into an empty
server, 4.8k ops/s once it held 300,000 movements). A version 7 UUID starts
with the Unix time in milliseconds, so new entries land at the right edge of
each index, and a commit touches about the same few pages however big the
tables are. The other 74 bits are random: two devices' ids never collide.

Python's ``uuid`` module makes version 7 UUIDs from 3.14 on; until then, these
few lines. As everywhere in ``sync``, the caller reads the clock.
"""

from __future__ import annotations

from secrets import randbits


def new_id(now_ms: int) -> str:
    """A new lower-case canonical UUID whose first 48 bits are ``now_ms``
    (Unix time in ms) and whose other 74 bits are random."""
    rand = randbits(74)
    h = (f"{now_ms & 0xFFFF_FFFF_FFFF:012x}7{rand >> 62:03x}"
         f"{0x8000_0000_0000_0000 | (rand & 0x3FFF_FFFF_FFFF_FFFF):016x}")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def id_ms(key: str) -> int:
    """The time in ms a version 7 id was made at."""
    return int(key[:8] + key[9:13], 16)


SHORT_ID = 8
"""How many characters of an id a person reads (``short``)."""


def short(key: object) -> str:
    """An id as people read it in a message or a page: its last ``SHORT_ID``
    characters. Ids are time-ordered (``new_id``: the first 12 hex digits are
    the millisecond they were made), so their first 8 are the same for every
    row made within about a minute; the last ones are random."""
    text = "" if key is None else str(key)
    return "…" + text[-SHORT_ID:] if len(text) > SHORT_ID else text
