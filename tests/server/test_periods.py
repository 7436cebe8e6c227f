"""Closing the books, on SQLite and a fresh PostgreSQL database: October's
figures stay as finance reported them when a till's offline sales of October
reach HQ in November; those sales are posted on the first open day, and
every total that reads the journal by day agrees with the ledger."""

from __future__ import annotations

import datetime
import threading
import uuid
from typing import Any

import pytest
from litestar.testing import TestClient

from server import periods, totals
from server.admin import apply_as_hq
from server.devices import issue_token
from server.store import Database
from sync.authorize import Staff

from .console_kit import _csrf, _db, _login, _post
from .rest_kit import Api, post_sale

PAST = "2025-10-31"


def _product(api: Api) -> str:
    return str(api.ok("POST", "/api/hq/products", "bob",
                      {"sku": "OAT-1", "name": "Oat milk", "price": 250, "cost": 120})["id"])


def _tb(api: Api, upto: str) -> tuple[int, dict[str, int]]:
    tb = api.ok("GET", "/api/reports/trial-balance", "fay", date_to=upto)
    return tb["debit"], {a["code"]: a["balance"] for a in tb["accounts"]}


def test_a_late_sale_of_a_closed_month_is_posted_on_the_first_open_day(api: Api) -> None:
    product = _product(api)
    post_sale(api.db, "S1", product, 2, 250, 120, date="2025-10-20")
    october = _tb(api, PAST)
    books = api.ok("POST", "/api/hq/periods/close", "fay", {"through": PAST})
    assert (books["closed_through"], books["closed_by"], books["late_lines"]) == (PAST, "fay", 0)

    late = post_sale(api.db, "S1", product, 3, 250, 120, date="2025-10-30")  # offline since
    post_sale(api.db, "S1", product, 1, 250, 120, date="2025-11-02")
    assert _tb(api, PAST) == october, "October's trial balance moved after it was closed"
    debit, balances = _tb(api, "2025-11-01")
    assert debit == october[0] + 900 + 360  # cash 750 + 20% tax, cost of 3 at 120
    assert balances["4000"] == october[1]["4000"] - 3 * 250
    assert _tb(api, "2025-11-30")[1]["4000"] == october[1]["4000"] - 4 * 250

    # the line keeps its own date; the journal by day counts it on 1 November
    lines = api.ok("GET", "/api/reports/journal", "fay", date_from="2025-10-01",
                   date_to="2025-10-31")
    posted = {ln["entry_id"]: (ln["date"], ln["posted"]) for ln in lines["lines"]}
    assert posted[late] == ("2025-10-30", "2025-11-01")
    assert {v for k, v in posted.items() if k != late} == {("2025-10-20", None)}
    # the listing's sums count the lines it lists: by their own dates
    assert (lines["total"], lines["debit"]) == (10, 840 + 1260)  # the sales of 2 and 3
    assert api.ok("GET", "/api/reports/journal", "fay", date_from="2025-11-01")["total"] == 5
    margin = api.ok("GET", "/api/reports/margin", "fay", period="month")
    by_month = {m["period"]: m["revenue"] for m in margin}
    assert by_month == {"2025-10": 500, "2025-11": 1000}
    assert api.ok("GET", "/api/hq/periods", "fay")["late_lines"] == 5
    # the sales report agrees with the books: by posting day, October does not move
    october_sales = api.ok("GET", "/api/reports/sales", "fay", date_from="2025-10-01",
                           date_to=PAST)
    november_sales = api.ok("GET", "/api/reports/sales", "fay", date_from="2025-11-01",
                            date_to="2025-11-30")
    assert [(s["receipts"], s["net"], s["cost"]) for s in october_sales] == [(1, 500, 240)]
    assert [(s["receipts"], s["net"], s["cost"]) for s in november_sales] == [(2, 1000, 480)]
    assert {m["period"]: (m["revenue"], m["cogs"]) for m in margin} == {
        "2025-10": (500, 240), "2025-11": (1000, 480)}
    with api.db.transaction(write=False) as store:
        assert totals.drifts(store.conn, api.db.metadata) == []


def test_a_rebuilt_journal_total_keeps_the_posting_days(api: Api) -> None:
    product = _product(api)
    api.ok("POST", "/api/hq/periods/close", "admin", {"through": PAST})
    post_sale(api.db, "S1", product, 3, 250, 120, date="2025-10-30")
    before = _tb(api, "2025-11-01")
    with api.db.transaction() as store:
        for spec in totals.kept(api.db.metadata):
            totals.fill(store.conn, api.db.metadata, spec)
    assert _tb(api, "2025-11-01") == before
    assert _tb(api, PAST)[0] == 0


def test_who_may_close_the_books_and_through_which_day(api: Api) -> None:
    code, out = api.call("POST", "/api/hq/periods/close", "bob", {"through": PAST})
    assert code == 403 and "closing the books is for finance or hq_admin" in out["detail"]
    code, out = api.call("POST", "/api/hq/periods/close", "fay", {"through": "2999-01-31"})
    assert code == 400 and "2999-01-31 is not over yet in every time zone" in out["detail"]
    code, out = api.call("POST", "/api/hq/periods/close", "fay", {"through": "2025-02-30"})
    assert code == 400 and "'2025-02-30' is not a day" in out["detail"]
    code, out = api.call("POST", "/api/hq/periods/close", "fay", {"through": "October"})
    assert code == 400
    api.ok("POST", "/api/hq/periods/close", "fay", {"through": PAST})
    code, out = api.call("POST", "/api/hq/periods/close", "fay", {"through": "2025-09-30"})
    assert code == 400 and "already closed through 2025-10-31" in out["detail"]
    assert api.ok("GET", "/api/hq/periods", "fay")["closed_through"] == PAST
    for odd in ("2024-02-30", "9999-12-31", "0000-01-01"):  # the shape of a day, not one
        code, out = api.call("GET", "/api/hq/periods", "fay", through=odd)
        assert code == 400 and f"through: '{odd}' is not a day" in out["detail"], odd


def test_a_store_finance_employee_cannot_close_the_company_books(api: Api) -> None:
    with pytest.raises(PermissionError, match="finance at S1"):
        periods.close(api.db, PAST, "sam", Staff("finance", "S1"))


def test_the_devices_that_may_still_hold_sales_of_the_period(api: Api) -> None:
    product = _product(api)
    post_sale(api.db, "S1", product, 1, 250, 120, date="2025-10-30")
    issue_token(api.db, "s2-till1", "S2")
    quiet = api.ok("GET", "/api/hq/periods", "fay", through="2999-12-31")["quiet_devices"]
    assert [q["device"] for q in quiet] == ["s2-till1"]  # never sent an op
    assert api.ok("GET", "/api/hq/periods", "fay", through="2000-01-01")["quiet_devices"] == [
        {"device": "s2-till1", "site": "S2", "last_op_ms": None}]


def test_a_close_and_a_push_racing_count_each_line_once(api: Api) -> None:
    """The close waits for the push's commit, or the push for the close's:
    either way each line counts once, on its date or on the posting day."""
    product = _product(api)
    done = threading.Event()

    def sell() -> None:
        for _ in range(20):
            post_sale(api.db, "S1", product, 1, 250, 120, date="2025-10-31")
        done.set()

    seller = threading.Thread(target=sell)
    seller.start()
    periods.close(api.db, PAST, "fay", Staff("finance", "HQ"))
    seller.join(60)
    assert done.is_set()
    with api.db.transaction(write=False) as store:
        assert totals.drifts(store.conn, api.db.metadata) == []
    october, november = _tb(api, PAST)[1], _tb(api, "2025-11-01")[1]
    assert november["4000"] == -20 * 250
    late = api.ok("GET", "/api/hq/periods", "fay")["late_lines"]
    assert (october.get("4000", 0) == -(20 - late // 5) * 250) and late % 5 == 0


def test_finance_closes_last_month_from_the_console(client: TestClient[Any]) -> None:
    """The finance page proposes the end of last month, names the tills that
    have sent nothing since, closes on the button, and a late sale's journal
    lines then show the day they were posted on. A buyer sees no form, and
    a close posted anyway is refused."""
    db = _db(client)
    issue_token(db, "s2-till1", "S2")
    # the end of the last month that is over in every time zone
    month_end = (datetime.date.fromisoformat(periods.last_day_over())
                 + datetime.timedelta(days=1)).replace(day=1) - datetime.timedelta(days=1)
    last_month_end = month_end.isoformat()
    _login(client, "fin")
    token = _csrf(client.get("/finance").text)
    _login(client, "bob")  # a buyer: no finance page, and a close posted anyway is refused
    assert client.get("/finance").status_code == 403
    refused = client.post("/finance/close", data={"_csrf_token": token,
                                                  "through": last_month_end})
    assert refused.status_code == 403 and _closing(db) == ""
    _login(client, "fin")
    page = client.get("/finance").text
    assert "The books have never been closed." in page
    assert f'name="through" value="{last_month_end}"' in page
    assert "s2-till1" in page and "have sent nothing dated after" in page
    done = _post(client, "/finance/close", "/finance", through=last_month_end)
    assert done.status_code == 200 and f"closed through {last_month_end}" in done.text
    assert f"The books are closed through {last_month_end} (by fin" in done.text

    product = str(uuid.uuid4())
    apply_as_hq(db, "product", product, {"sku": "OAT-1", "name": "Oat milk", "price": 250})
    post_sale(db, "S1", product, 1, 250, 120, date=last_month_end)
    page = client.get("/finance").text
    assert "5 journal lines are posted on another day than their date" in page
    first_open = (datetime.date.fromisoformat(last_month_end)
                  + datetime.timedelta(days=1)).isoformat()
    assert f"<td>{last_month_end}</td><td>{first_open}</td>" in page

    again = _post(client, "/finance/close", "/finance", through=last_month_end)
    assert "books not closed: the books are already closed through" in again.text


def _closing(db: Database) -> str:
    with db.reading() as conn:
        return periods.state(db, conn).through or ""


def test_a_sale_dated_by_a_clock_far_ahead_is_posted_on_the_day_it_arrives(api: Api) -> None:
    """A till whose clock is a year ahead dates its sale next year: the sale
    keeps that date, and the books count it today, not in a month that has
    not begun. A store a day ahead of HQ (east of it) keeps its own date."""
    product = _product(api)
    today = datetime.datetime.now(datetime.UTC).date()
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()
    ahead = post_sale(api.db, "S1", product, 1, 250, 120,
                      date=(today + datetime.timedelta(days=365)).isoformat())
    east = post_sale(api.db, "S1", product, 1, 250, 120, date=tomorrow)
    lines = api.ok("GET", "/api/reports/journal", "fay")["lines"]
    posted = {ln["entry_id"]: ln["posted"] for ln in lines}
    assert (posted[ahead], posted[east]) == (today.isoformat(), None)
    assert _tb(api, today.isoformat())[1]["4000"] == -250
    assert _tb(api, tomorrow)[1]["4000"] == -500
    with api.db.transaction(write=False) as store:
        assert totals.drifts(store.conn, api.db.metadata) == []


def _utc_ms(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text).timestamp() * 1000)


def test_a_day_can_be_closed_once_it_is_over_in_every_time_zone(api: Api) -> None:
    """Tills date sales by their local day: at 00:20 UTC on 1 November a
    chain on Pacific time is still selling on 31 October, so October closes
    at 12:00 UTC (the day is then over at UTC-12 too), and a till whose
    latest op is from the morning of 1 November (UTC) is still named."""
    fay = Staff("finance", "HQ")
    early = _utc_ms("2026-11-01T00:20:00+00:00")
    with pytest.raises(periods.CloseRefused, match=r"2026-10-31 is not over yet in every time "
                                                   r"zone.*closed through 2026-10-30 now"):
        periods.close(api.db, "2026-10-31", "fay", fay, ms=early)
    assert periods.last_day_over(_utc_ms("2026-11-01T11:59:59+00:00")) == "2026-10-30"
    assert periods.last_day_over(_utc_ms("2026-11-01T12:00:00+00:00")) == "2026-10-31"
    assert periods.day_over_ms("2026-10-31") == _utc_ms("2026-11-01T12:00:00+00:00")
    books = periods.close(api.db, "2026-10-31", "fay", fay,
                          ms=_utc_ms("2026-11-01T12:00:00+00:00"))
    assert books.through == "2026-10-31"


def test_a_retried_close_with_its_idempotency_key_gets_the_first_answer(api: Api) -> None:
    """A controller's script retries the close after a timeout: with the same
    Idempotency-Key it gets the close's answer again, not a refusal."""
    headers = {"authorization": f"Bearer {api.tokens['fay']}", "idempotency-key": "close-oct"}
    first = api.client.post("/api/hq/periods/close", json={"through": PAST}, headers=headers)
    again = api.client.post("/api/hq/periods/close", json={"through": PAST}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json() and first.json()["closed_through"] == PAST
    plain = api.client.post("/api/hq/periods/close", json={"through": PAST},
                            headers={"authorization": headers["authorization"]})
    assert plain.status_code == 400 and "already closed" in plain.json()["detail"]
