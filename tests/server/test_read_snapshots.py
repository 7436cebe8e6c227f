"""A console page or a report of several statements reads the database as at
its first one (``Database.reading``), whatever a store pushes meanwhile: on
PostgreSQL too, whose default READ COMMITTED gives each statement its own
snapshot. Without it the overview's trial balance disagreed with its sales
table, a journal page's total with its lines, when a sale committed between
two of their statements.

Each request is made three times: before the sale, while the sale commits
right after the request's first statement of interest (another connection,
as another server process would), and after it. The second answer must be
the first one exactly; the third shows the sale (the request did read it)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from server.admin import apply_as_hq
from server.console.auth import set_password
from server.store import Database
from tests.pg import fresh_database
from tests.sync.kit import PRODUCT

from .rest_kit import Api, open_api, post_sale

TODAY = datetime.date.today().isoformat()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    with (fresh_database() if request.param == "postgres"
          else _path(f"sqlite:///{tmp_path / 'hq.db'}")) as url, open_api(url) as a:
        assert apply_as_hq(a.db, "product", PRODUCT, {
            "sku": "OAT-1", "name": "Oat", "price": 250}).status == "accepted"
        post_sale(a.db, "S1", PRODUCT, 2, 250, 120)
        post_sale(a.db, "S2", PRODUCT, 1, 250, 120)
        yield a


@contextmanager
def _path(url: str) -> Iterator[str]:
    yield url


@contextmanager
def a_sale_commits_after(db: Database, marker: str) -> Iterator[list[str]]:
    """Another store's sale commits right after the first statement whose SQL
    holds ``marker`` (and before the next one)."""
    seen: list[str] = []

    def after(_c: Any, _cur: Any, sql: str, _p: Any, _ctx: Any, _many: bool) -> None:
        if not seen and marker in sql:
            seen.append(sql)
            post_sale(db, "S1", PRODUCT, 1, 250, 120)

    event.listen(db.engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(db.engine, "after_cursor_execute", after)
    assert seen, f"no statement held {marker!r}"


def _console(api: Api, page: str) -> Callable[[], str]:
    set_password(api.db, "admin", "admin-sees-all")
    client = api.client
    token = re.search(r'name="_csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"login": "admin", "password": "admin-sees-all",
                                "_csrf_token": token.group(1), "next": "/"})

    def get() -> str:
        answer = client.get(page)
        assert answer.status_code == 200, answer.text
        return answer.text

    return get


def _report(api: Api, path: str, **params: str) -> Callable[[], Any]:
    return lambda: api.ok("GET", path, "admin", **params)


MONTH = {"date_from": TODAY[:8] + "01", "date_to": TODAY}
ASKED: dict[str, tuple[Callable[[Api], Callable[[], Any]], str]] = {
    # the page or report, and the text of its first statement of interest
    "overview": (lambda api: _console(api, "/overview"), "FROM changes"),
    "finance page": (lambda api: _console(api, "/finance"), "account_balance"),
    "sales page": (lambda api: _console(api, f"/sales?date_from={MONTH['date_from']}"),
                   "site_day_sales"),
    "journal": (lambda api: _report(api, "/api/reports/journal", site="S1"), "coalesce(sum("),
    "journal of a month": (lambda api: _report(api, "/api/reports/journal", **MONTH),
                           "coalesce(sum("),
    "sales of a month": (lambda api: _report(api, "/api/reports/sales", **MONTH),
                         "site_day_sales"),
}


@pytest.mark.parametrize("asked", sorted(ASKED))
def test_a_page_reads_one_snapshot_while_a_store_pushes(api: Api, asked: str) -> None:
    make, marker = ASKED[asked]
    read = make(api)
    before = read()
    with a_sale_commits_after(api.db, marker):
        during = read()
    after = read()
    assert during == before
    assert after != before  # the request reads what the sale changed
