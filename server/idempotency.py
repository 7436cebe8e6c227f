"""``Idempotency-Key`` for the HQ REST API: a retried or double-clicked write
happens once.

A POST, PUT or PATCH under ``/api/hq`` may carry ``Idempotency-Key: <1 to
255 printable ASCII characters>`` (a fresh UUID per intended action does). The
key is the API user's own: another user's identical key is another key.

- The first request with the key is processed. If it wrote (the apply path
  ran, accepted or refused), its answer -- status and JSON body -- is stored
  with the key, the method and path and a hash of the body, **in the
  transaction of the write itself** (``keep``, called through
  ``admin.apply_as_hq``'s ``within``): a crash leaves both or neither.
- A repeat by the same user with the same method, path and body gets the
  stored answer again, with ``Idempotent-Replayed: true``; nothing runs.
- The same key with another method, path or body is a 422.
- A repeat while the first is still being processed is a 409 with
  ``Retry-After: 1``: retry it and you get the answer. (Two servers on one
  database agree: the key is claimed by inserting its row, whose primary key
  is (user, key), before the request runs.)
- A request that wrote nothing (a 400 for a bad body, a 404, a 409 of the
  field checks) or failed (5xx) keeps no answer: the key is free again, and
  the request may be retried, corrected or not, with it.
- Keys expire 24 hours after their first use; expired keys are purged by the
  next request that claims a key.

The claim reaches ``keep`` in the handler's worker thread through a context
variable the middleware sets (``_claim``); ``hq_api.write`` and
``hq_api.write_group`` pass ``keeping(...)`` to the apply path.

A request whose server died while it held the key leaves a claim without an
answer: after ``LEASE_MS`` another request with the key takes it over. Should
the first request still be running, its write is rolled back when it comes to
store its answer (``Superseded``), so the write still happens once.

Requests without the header behave exactly as before.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import ClientException, NotAuthorizedException
from litestar.middleware import ASGIMiddleware
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sync.messages import Ack

from .api_auth import login_of
from .db_health import DB_DOWN, short_reason
from .store import Database
from .tables import IDEMPOTENCY_TABLE

log = logging.getLogger("branchline.idempotency")

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"
METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_KEY = 255
TTL_MS = 24 * 3600 * 1000
"""A key is remembered this long after its first use."""
LEASE_MS = 5 * 60 * 1000
"""A claim without an answer this old is taken to be of a server that died:
longer than any request may take (the write queue waits at most a minute,
each statement 30 s)."""
RETRY_AFTER = "1"


class Superseded(ClientException):
    """This request's claim of its key was taken over by a retry (after
    ``LEASE_MS``): its write is rolled back, the retry's stands (409)."""

    status_code = 409


@dataclass
class Claim:
    """The key held by the request being processed."""

    db: Database
    login: str
    key: str
    attempt: str


@dataclass(frozen=True)
class Replay:
    """The answer stored for the key."""

    status: int
    body: bytes


@dataclass(frozen=True)
class Mismatch:
    """The key was used for another request."""

    request: str
    same_request: bool
    """same method and path, another body"""


@dataclass(frozen=True)
class Busy:
    """Another request holds the key and has not answered yet."""


_claim: ContextVar[Claim | None] = ContextVar("idempotency_claim", default=None)
"""The claim of the request being handled (set by ``IdempotencyMiddleware``;
the handler's worker thread sees it)."""


def fingerprint(body: bytes) -> str:
    """SHA-256 of the body: of its JSON with keys sorted when it is JSON, so a
    client that re-serializes its request with another key order or spacing
    sends the same request; of the bytes as sent otherwise."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except (msgspec.DecodeError, RecursionError):  # not JSON, or nested past the stack
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def claim(db: Database, login: str, key: str, request: str, body_hash: str,
          now_ms: int | None = None) -> Claim | Replay | Mismatch | Busy:
    """Take ``key`` for ``login``'s ``request`` (method and path), or say why not."""
    now = _now_ms() if now_ms is None else now_ms
    t = db.t[IDEMPOTENCY_TABLE]
    attempt = str(uuid.uuid4())
    insert = (sqlite_insert if db.is_sqlite else pg_insert)(t).values(
        login=login, key=key, request=request, body_hash=body_hash, attempt=attempt,
        created_ms=now, claimed_ms=now).on_conflict_do_nothing().returning(t.c.attempt)
    with db.transaction() as store:
        conn = store.conn
        conn.execute(delete(t).where(t.c.created_ms < now - TTL_MS))
        if conn.execute(insert).first() is not None:  # inserted: the key is this request's
            return Claim(db, login, key, attempt)
        row = conn.execute(select(t).where(t.c.login == login, t.c.key == key)).one()
        if (row.request, row.body_hash) != (request, body_hash):
            return Mismatch(row.request, row.request == request)
        if row.status is not None:
            return Replay(int(row.status), bytes(row.answer))
        if now - row.claimed_ms < LEASE_MS:
            return Busy()
        taken = conn.execute(update(t).where(
            t.c.login == login, t.c.key == key, t.c.attempt == row.attempt,
            t.c.status.is_(None)).values(attempt=attempt, claimed_ms=now))
        return Claim(db, login, key, attempt) if taken.rowcount == 1 else Busy()


def keep(conn: Connection, response: Response[Any]) -> None:
    """Store ``response`` as the answer to the current request's key, in
    ``conn``'s transaction (the write's); nothing without a key. Raises
    ``Superseded`` (rolling the write back) when a retry took the key over."""
    held = _claim.get()
    if held is None:
        return
    t = held.db.t[IDEMPOTENCY_TABLE]
    body = response.render(response.content, MediaType.JSON)
    stored = conn.execute(update(t).where(
        t.c.login == held.login, t.c.key == held.key, t.c.attempt == held.attempt,
    ).values(status=response.status_code, answer=body))
    if stored.rowcount != 1:
        raise Superseded(f"Idempotency-Key {held.key!r} was taken over by a retry of this "
                         "request; its answer is the retry's",
                         headers={"retry-after": RETRY_AFTER})


def keeping(answer: Callable[[list[Ack]], Response[Any]]
            ) -> Callable[[Connection, list[Ack]], None]:
    """An ``admin.apply_as_hq`` ``within`` that keeps the answer ``answer``
    makes of the acks."""
    return lambda conn, acks: keep(conn, answer(acks))


def release(held: Claim) -> None:
    """Free a key whose request stored no answer (it wrote nothing, or failed)."""
    t = held.db.t[IDEMPOTENCY_TABLE]
    with held.db.transaction() as store:
        store.conn.execute(delete(t).where(t.c.login == held.login, t.c.key == held.key,
                                           t.c.attempt == held.attempt,
                                           t.c.status.is_(None)))


def usable(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY and key.isascii() and key.isprintable()


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> ASGIResponse:
    """An answer of the middleware's own, shaped like the API's errors."""
    return ASGIResponse(body=msgspec.json.encode({"status_code": status, "detail": detail}),
                        status_code=status, media_type=MediaType.JSON, headers=headers)


class IdempotencyMiddleware(ASGIMiddleware):
    """Honours ``Idempotency-Key`` on the writes of the paths under ``prefix``."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, db: Database, prefix: str) -> None:
        self.db = db
        self.prefix = prefix.rstrip("/") + "/"

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        request: Request[Any, Any, Any] = Request(scope, receive)
        if (request.method not in METHODS or not (scope["path"] + "/").startswith(self.prefix)
                or (key := request.headers.get(HEADER)) is None):
            await next_app(scope, receive, send)
            return
        if not usable(key):
            await _json(400, f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII "
                             "characters")(scope, receive, send)
            return
        try:
            login = await anyio.to_thread.run_sync(
                login_of, self.db, request.headers.get("authorization"))
        except NotAuthorizedException:
            await next_app(scope, receive, send)  # answered 401 there, nothing to keep
            return
        target = f"{request.method} {scope['path']}"
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        found = await anyio.to_thread.run_sync(
            claim, self.db, login, key, target, fingerprint(await request.body()))
        match found:
            case Replay(status, body):
                await ASGIResponse(body=body, status_code=status, media_type=MediaType.JSON,
                                   headers={REPLAYED: "true"})(scope, receive, send)
            case Mismatch(other, same_request):
                what = "with another body" if same_request else f"for {other}"
                await _json(422, f"Idempotency-Key {key!r} was used {what}; send a new key for "
                                 "a new request")(scope, receive, send)
            case Busy():
                await _json(409, f"a request with Idempotency-Key {key!r} is still being "
                                 "processed; retry shortly for its answer",
                            {"retry-after": RETRY_AFTER})(scope, receive, send)
            case Claim() as held:
                await self._run(held, scope, receive, send, next_app)

    async def _run(self, held: Claim, scope: Scope, receive: Receive, send: Send,
                   next_app: ASGIApp) -> None:
        """Handle the request holding the key; free the key if it stored no answer.
        (Always asked: ``release`` leaves a committed answer alone, and an answer
        kept in a transaction that then failed to commit is no answer.)"""
        token = _claim.set(held)
        try:
            await next_app(scope, receive, send)
        finally:
            _claim.reset(token)
            try:
                await anyio.to_thread.run_sync(release, held)
            except DB_DOWN as exc:  # the claim lapses after LEASE_MS instead
                log.warning("Idempotency-Key %r of %s not released: %s", held.key,
                            held.login, short_reason(exc))


