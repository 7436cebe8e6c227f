"""Small reads several console pages share."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from ..store import Database
from .html import short_id


def product_labels(db: Database, ids: Iterable[str], conn: Connection | None = None
                   ) -> dict[str, str]:
    """product id -> "SKU name" for the products given (unknown ids are left
    out); in ``conn``'s transaction when given."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    product = db.entities["product"]
    out: dict[str, str] = {}
    with db.reading(conn) as read:
        for start in range(0, len(wanted), 500):
            rows = read.execute(select(product.c.id, product.c.sku, product.c.name)
                                .where(product.c.id.in_(wanted[start:start + 500])))
            out.update({r.id: f"{r.sku} {r.name}" for r in rows})
    return out


def label(labels: dict[str, str], product_id: Any) -> str:
    return labels.get(str(product_id), short_id(product_id))


def parse_date(text: str | None, name: str) -> str | None:
    """A yyyy-mm-dd filter value, None when empty; ValueError saying which one is wrong."""
    if not text:
        return None
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a date yyyy-mm-dd, got {text!r}") from None
    return text
