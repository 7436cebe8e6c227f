"""HQ operations over REST (OpenAPI at /schema): the shared pieces of every
``/api/hq`` controller (answers, lookups, paging, money and quantity types)
and ``/api/hq/whoami``. The endpoints live by subject: ``catalog_api``
(products, prices), ``masterdata_api`` (sites, customers, accounts,
employees), ``purchasing_api`` (suppliers, reorder rules, purchase orders).

Every write goes through the sync layer's apply path as the ``hq-server``
device (``server.admin.apply_as_hq``), with the authenticated user's role
checked against the same permission matrix as every device's ops; the merge
policies and the audit apply, and devices in scope hear of it live.

Answers: 200/201 with the row; 400 a bad body or a refusal of the field
checks (with what was wrong); 401 no valid API token; 403 the user's role
does not allow it; 404 an unknown id in the path; 409 it conflicts with the
rules or the current state; 422 an Idempotency-Key used for another request.
Refusals carry the reason. A body's values must have their fields' JSON
types (``server.strict_json``): ``"12"`` is no price, a 400 names the field.

``IDEMPOTENCY`` (the OpenAPI description quotes it): a write sent with an
``Idempotency-Key`` happens once however often it is retried
(``server.idempotency``); ``write`` and ``write_group`` keep its answer in
the write's own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import QueryParameter
from litestar.types import ExceptionHandlersMap
from sqlalchemy import ColumnElement, Connection, Select, func, select

from schema import HQ_SITE, is_uuid
from schema.model import MAX_MONEY
from schema.retail import MAX_MOVED
from sync.messages import Ack, Row

from .admin import apply_as_hq, apply_group_as_hq, refused_status
from .api_auth import ApiUser, api_user, current_user
from .fanout import Hub
from .idempotency import keeping
from .store import Database

IDEMPOTENCY = """\
**Retries: `Idempotency-Key`.** Any POST, PUT or PATCH under `/api/hq` may carry
`Idempotency-Key: <1 to 255 printable ASCII characters>` -- a new UUID per action
the user means, sent again unchanged with every retry of it. The first request
is processed; if it wrote (accepted or refused), its answer (status and body) is
kept with the key, in the same transaction as the write. A repeat by the same
user with the same method, path and body gets that answer again, with
`Idempotent-Replayed: true`, and nothing is done twice. The same key with
another method, path or body: 422. A repeat while the first is still being
processed: 409 with `Retry-After: 1`; retry for the answer. A request that
wrote nothing (400, 404, a 409 of the field checks, a 5xx) keeps nothing: the
key may be used again. Keys are per API user and expire after 24 hours.
Without the header, every request is processed."""
"""How the HQ API treats ``Idempotency-Key`` (``server.idempotency``), for the
OpenAPI description."""

SECURITY: list[dict[str, list[str]]] = [{"apiToken": []}]
"""OpenAPI security requirement of every authenticated endpoint."""

AUTH = {"user": Provide(current_user, sync_to_thread=True)}
"""Controller dependency: ``user``, the login behind the request's API token."""

Money = Annotated[int, msgspec.Meta(
    ge=0, le=MAX_MONEY, description="integer minor units (cents): 2.50 is sent as 250")]
TaxRate = Annotated[int, msgspec.Meta(ge=0, le=10_000, description="basis points: 2000 = 20%")]
Qty = Annotated[int, msgspec.Meta(gt=0, le=MAX_MOVED, description="a positive whole quantity")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="rows per page (1 to 500)")]
MAX_OFFSET = 10**12
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="rows to skip")]


FRACTION = "Expected `int`, got `float`"
FRACTION_HINT = (": money is in integer minor units (2.50 is sent as 250), written "
                 "without a decimal point: 2.505 and 250.0 are refused; quantities are whole")


def explain(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A 400 saying what was wrong; a number with a fraction where money or a
    quantity belongs is told how amounts are written."""
    extra = exc.extra
    if isinstance(extra, list):
        extra = [{**item, "message": item["message"] + FRACTION_HINT}
                 if isinstance(item, dict) and item.get("message") == FRACTION else item
                 for item in extra]
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=exc.status_code)


EXPLAIN: ExceptionHandlersMap = {ValidationException: explain}
"""Controller exception handlers: 400s that say how amounts are written."""


class Result(msgspec.Struct):
    """The answer to a write: the apply path's decision and the row after it."""

    status: str
    """accepted, merged or rejected"""
    reason: str
    """why it was rejected or merged; empty when accepted as sent"""
    id: str
    row: dict[str, Any] | None


def answer(key: str, ack: Ack, created: bool = False) -> Response[Result]:
    """The HTTP answer to an ack: a refusal's status (``admin.refused_status``),
    else 201 (created) or 200."""
    row = ack.row.fields if ack.row is not None else None
    code = refused_status(ack) if ack.status == "rejected" else 201 if created else 200
    return Response(Result(str(ack.status), ack.reason, key, row), status_code=code)


def given(data: msgspec.Struct) -> dict[str, Any]:
    """The fields a request body sets: unset fields and nulls are left out."""
    return {k: v for k, v in msgspec.structs.asdict(data).items()
            if v is not None and v is not msgspec.UNSET}


def changed(data: msgspec.Struct) -> dict[str, Any]:
    """The fields an update body sets (null clears an optional field); 400 if none."""
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if not fields:
        raise ValidationException("nothing to change: send at least one field")
    return fields


def db_of(state: State) -> Database:
    db: Database = state.db
    return db


def write(state: State, entity: str, key: str, fields: dict[str, Any], user: str,
          created: bool = False) -> Response[Result]:
    """Apply one change as HQ for ``user`` and answer it (the answer kept with
    the change for an ``Idempotency-Key``)."""
    hub: Hub = state.hub
    within = keeping(lambda acks: answer(key, acks[0], created))
    return answer(key, apply_as_hq(db_of(state), entity, key, fields, user, hub, within),
                  created)


def write_group(state: State, changes: list[tuple[str, str, dict[str, Any]]], user: str,
                created: bool = False) -> Response[Result]:
    """Apply changes that stand or fall together (``admin.apply_group_as_hq``)
    and answer with the first (an order, of the order and its lines)."""
    hub: Hub = state.hub
    key = changes[0][1]
    within = keeping(lambda acks: answer(key, acks[0], created))
    return answer(key, apply_group_as_hq(db_of(state), changes, user, hub, within)[0], created)


def load(db: Database, entity: str, key: str) -> Row | None:
    """The live row (None if missing or deleted)."""
    if not is_uuid(key):  # every key is a UUID
        return None
    with db.transaction(write=False) as store:
        row = store.load(entity, key)
    return None if row is None or row.deleted else row


def require(db: Database, entity: str, key: str) -> Row:
    """The row named in a path; 404 when there is none."""
    row = load(db, entity, key)
    if row is None:
        raise NotFoundException(f"no {entity.replace('_', ' ')} {key}")
    return row


def find(db: Database, entity: str, *where: ColumnElement[bool],
         conn: Connection | None = None) -> list[dict[str, Any]]:
    """Every live row of ``entity`` matching ``where`` (id and fields), in key
    order; in ``conn``'s transaction when given. (It stopped at 10,000 rows: a
    chain's 80,000 reorder rules were listed as 10,000, with no sign of the
    rest.)"""
    query = select_rows(db, entity).where(*where).order_by(db.entities[entity].c.id)
    with db.reading(conn) as read:
        return _dicts(read.execute(query).mappings())


def select_rows(db: Database, entity: str) -> Select[Any]:
    """SELECT id and every field of the live rows of ``entity``."""
    t = db.entities[entity]
    names = ["id", *(f.name for f in db.schema[entity].fields)]
    return select(*(t.c[n] for n in names)).where(t.c._deleted.is_(False))


def page(db: Database, query: Select[Any], limit: int, offset: int
         ) -> tuple[list[dict[str, Any]], int]:
    """One page of ``query`` (ordered by the caller, ending with a unique key)
    as dicts, and the number of rows it has in all."""
    with db.reading() as conn:  # the count and the page agree
        total = conn.execute(select(func.count()).select_from(
            query.order_by(None).subquery())).scalar_one()
        rows = _dicts(conn.execute(query.limit(limit).offset(offset)).mappings())
    return rows, int(total)


def _dicts(rows: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in rows]


def known_site(db: Database, code: str) -> str:
    """``code`` if it names HQ or a site row; else 400."""
    if code != HQ_SITE and not find(db, "site", db.entities["site"].c.code == code):
        raise ValidationException(f"unknown site {code!r}")
    return code


def known(db: Database, entity: str, key: str) -> Row:
    """The row a body refers to; 400 when there is none."""
    row = load(db, entity, key)
    if row is None:
        raise ValidationException(f"unknown {entity.replace('_', ' ')} {key!r}")
    return row


def unique(db: Database, entity: str, field: str, value: object, key: str | None = None) -> None:
    """409 when another live row of ``entity`` has ``field`` = ``value``."""
    t = db.entities[entity]
    for row in find(db, entity, t.c[field] == value):
        if row["id"] != key:
            raise ClientException(f"{entity} {row['id']} already has {field} {value!r}",
                                  status_code=409)


class HqController(Controller):
    path = "/api/hq"
    tags = ("hq",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @get("/whoami", sync_to_thread=True, summary="Who am I")
    def whoami(self, state: State, user: NamedDependency[str]) -> ApiUser:
        """The login behind the API token, with its role, site and department."""
        return api_user(db_of(state), user)
