"""The HQ console in-process (litestar's TestClient): login, sessions, CSRF,
page permissions by role, and writes that go through the apply path."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from schema import SCHEMA
from server.admin import apply_as_hq, hire
from server.api_auth import issue_api_token
from server.app import create_app
from server.console.auth import LOGIN_FAILED, SESSION_COOKIE, set_password
from server.console.html import money, short_id
from server.console.throttle import FREE_FAILURES
from server.devices import authenticate, issue_token
from server.store import Database
from tests.pg import fresh_database
from tests.sync.kit import key

from .console_kit import PASSWORDS, ROLES, _csrf, _db, _draft, _login, _post, _staffed


def test_login_answers_unknown_login_and_wrong_password_alike(client: TestClient[Any]) -> None:
    assert client.get("/finance", follow_redirects=False).headers["location"] \
        == "/login?next=%2Ffinance"
    wrong, unknown = _login(client, "fin", "not-the-password"), _login(client, "nobody", "x" * 9)
    assert wrong.status_code == unknown.status_code == 401
    assert LOGIN_FAILED in wrong.text and LOGIN_FAILED in unknown.text
    assert wrong.text.replace('value="fin"', "") == unknown.text.replace('value="nobody"', "")
    assert SESSION_COOKIE not in client.cookies
    ok = _login(client, "fin")
    assert ok.status_code == 200 and "<h1>Overview</h1>" in ok.text
    assert "Finance" in client.get("/finance").text
    cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_guessing_a_password_is_slowed_down_and_costs_no_hash_while_it_waits(
        client: TestClient[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Five wrong passwords in a row are answered as such; the sixth must wait
    (429, how long), and waiting attempts are answered without an argon2
    hash. The rightful user gets in once the wait is over, and a success
    starts the count afresh."""
    from server.console import auth

    for _ in range(FREE_FAILURES):
        assert _login(client, "fin", "guess-guess").status_code == 401
    checked: list[str] = []
    real = auth.check_password
    monkeypatch.setattr(auth, "check_password",
                        lambda db, login, pw: checked.append(login) or real(db, login, pw))
    slow = _login(client, "fin")  # even the right password waits its turn
    assert slow.status_code == 429 and "Too many failed logins for fin; try again in 1 s" \
        in slow.text and checked == []
    logins = _db(client).t["console_logins"]
    with _db(client).engine.begin() as conn:  # the wait is over
        conn.execute(logins.update().where(logins.c.login == "fin")
                     .values(failed_ms=logins.c.failed_ms - 2_000))
    assert _login(client, "fin").status_code == 200 and checked == ["fin"]
    with _db(client).engine.begin() as conn:
        assert conn.execute(select(logins.c.failed).where(logins.c.login == "fin")).scalar() == 0


def test_one_address_guessing_many_logins_is_slowed_down(
        client: TestClient[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from server.console import throttle

    monkeypatch.setattr(throttle, "ADDRESS_FAILURES", 3)
    for login in ("fin", "bob", "nobody"):
        assert _login(client, login, "guess-guess").status_code == 401
    slow = _login(client, "pam")
    assert slow.status_code == 429 and "Too many failed logins from this address" in slow.text


def test_forged_stale_and_logged_out_sessions_go_back_to_login(client: TestClient[Any]) -> None:
    _login(client, "fin")
    good = client.cookies[SESSION_COOKIE]
    payload, mac = good.split(".")
    client.cookies.set(SESSION_COOKIE, payload + "." + "0" * len(mac))
    assert client.get("/finance", follow_redirects=False).status_code == 303
    client.cookies.set(SESSION_COOKIE, good)
    assert client.get("/finance").status_code == 200
    page = client.get("/finance")
    assert page.headers["cache-control"] == "no-store"
    out = client.post("/logout", data={"_csrf_token": _csrf(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.set(SESSION_COOKIE, good)  # the old cookie, replayed after logout
    answer = client.get("/finance", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_post_without_csrf_token_is_refused(client: TestClient[Any]) -> None:
    _login(client, "ian")
    answer = client.post("/it/devices", data={"device": "x1", "site": "S1"})
    assert answer.status_code == 403 and "CSRF" in answer.text
    assert authenticate(_db(client), "bl_nothing") == "unknown device token"
    with _db(client).engine.connect() as conn:
        assert conn.execute(select(_db(client).t["devices"])).all() == []


def test_pages_follow_the_role(client: TestClient[Any]) -> None:
    _login(client, "clara")
    answer = client.get("/procurement")
    assert answer.status_code == 403
    assert "Your role (cashier) cannot open the Procurement page" in answer.text
    assert 'href="/procurement"' not in answer.text  # not in the navigation either
    assert client.get("/it").status_code == 403
    assert client.get("/finance").status_code == 403
    assert client.get("/products").status_code == 200


def test_price_form_for_buyers_only_and_a_forged_post_is_refused(client: TestClient[Any]
                                                                 ) -> None:
    db = _db(client)
    key = str(uuid.uuid4())
    assert apply_as_hq(db, "product", key, {"sku": "OAT-1", "name": "<b>Oat</b> milk",
                                            "price": 250}).status == "accepted"
    _login(client, "clara")
    page = client.get(f"/products/{key}")
    assert "<b>Oat</b>" not in page.text and "&lt;b&gt;Oat&lt;/b&gt;" in page.text
    assert 'id="price-form"' not in page.text
    forged = _post(client, f"/products/{key}/price", f"/products/{key}", price="0.01")
    assert forged.status_code == 403  # a site's employee, as a site's device: not HQ's price
    assert "price of product is owned by HQ; site S1 cannot change it" in forged.text
    with db.transaction(write=False) as store:
        assert store.load("product", key).fields["price"] == 250  # type: ignore[union-attr]
    client.post("/logout", data={"_csrf_token": _csrf(page.text)})
    _login(client, "bob")
    assert 'id="price-form"' in client.get(f"/products/{key}").text
    bad = _post(client, f"/products/{key}/price", f"/products/{key}", price="2.755")
    assert bad.status_code == 400 and "more than 2 decimals" in bad.text
    done = _post(client, f"/products/{key}/price", f"/products/{key}", price="2.75")
    assert done.status_code == 200 and "price changed to 2.75" in done.text
    with db.transaction(write=False) as store:
        assert store.load("product", key).fields["price"] == 275  # type: ignore[union-attr]
    audit = db.t["audit"]
    with db.engine.connect() as conn:
        users = conn.execute(select(audit.c.user).where(audit.c.key == key)
                             .order_by(audit.c.id)).scalars().all()
    assert users == ["system", "clara", "bob"]  # the refusal is audited too


def test_a_list_longer_than_a_page_shows_says_so(client: TestClient[Any]) -> None:
    """The product list shows 50 rows: with 51 products it says only the
    first 50 are shown, where it used to stop without a word."""
    db = _db(client)
    for n in range(51):
        assert apply_as_hq(db, "product", key(9000 + n), {
            "sku": f"SKU-{n:03}", "name": f"Product {n}", "price": 100}).status == "accepted"
    _login(client, "bob")
    page = client.get("/products").text
    assert "SKU-049" in page and "SKU-050" not in page
    assert "only the first 50 are shown; search to narrow them" in page
    narrowed = client.get("/products", params={"q": "SKU-05"}).text
    assert "SKU-050" in narrowed and "only the first" not in narrowed


def test_large_order_needs_two_procurement_managers(client: TestClient[Any]) -> None:
    db = _db(client)
    po = str(uuid.uuid4())
    _draft(db, po, "bob", [(1, 900_000)])
    _login(client, "bob")
    page = client.get("/procurement")
    assert po[:8] in page.text and "Approve" not in page.text  # buyers draft, not approve
    assert money(900_000) in page.text
    refused = _post(client, f"/procurement/orders/{po}/approve", "/procurement")
    assert refused.url.path == "/procurement"
    assert "may not move to first_approved" in refused.text
    client.post("/logout", data={"_csrf_token": _csrf(page.text)})
    _login(client, "pam")
    first = _post(client, f"/procurement/orders/{po}/approve", "/procurement")
    assert "has its first approval" in first.text
    again = _post(client, f"/procurement/orders/{po}/approve", "/procurement")
    assert again.url.path == "/procurement" and short_id(po) in again.text
    assert "pam already approved" in again.text and "role=\"alert\"" in again.text
    with db.transaction(write=False) as store:
        assert store.load("purchase_order", po).fields["status"] == "first_approved"  # type: ignore[union-attr]
    client.post("/logout", data={"_csrf_token": _csrf(client.get("/login").text)})
    _login(client, "pat")
    assert "approved" in _post(client, f"/procurement/orders/{po}/approve", "/procurement").text
    with db.transaction(write=False) as store:
        assert store.load("purchase_order", po).fields["status"] == "approved"  # type: ignore[union-attr]


def test_password_from_stdin_never_argv(url: str) -> None:
    cmd = [sys.executable, "-m", "server.cli", "user", "password", "--db", url, "fin"]
    short = subprocess.run(cmd, input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 3 and "at least 8" in short.stderr
    nobody = subprocess.run([*cmd[:-1], "nobody"], input="long-enough\n", capture_output=True,
                            text=True, timeout=60)
    assert nobody.returncode == 3 and "no employee" in nobody.stderr
    ok = subprocess.run(cmd, input="a-new-password\n", capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    add = subprocess.run([sys.executable, "-m", "server.cli", "user", "add", "--db", url,
                          "--login", "olga", "--role", "warehouse_clerk", "--site", "W1",
                          "--password-stdin"], input="olga-counts\n", capture_output=True,
                         text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    with TestClient(create_app(url)) as client:
        assert _login(client, "fin").status_code == 401  # the old password is gone
        assert _login(client, "fin", "a-new-password").status_code == 200
        client.cookies.clear()
        assert "Operations" in _login(client, "olga", "olga-counts").text


def test_operations_resolves_a_stock_exception(client: TestClient[Any]) -> None:
    db = _db(client)
    product, raised = str(uuid.uuid4()), str(uuid.uuid4())
    apply_as_hq(db, "product", product, {"sku": "OAT-1", "name": "Oat milk", "price": 250})
    assert apply_as_hq(db, "stock_exception", raised, {
        "site": "S1", "product_id": product, "on_hand": -2, "movement_id": str(uuid.uuid4()),
        "reason": "sale", "status": "open"}).status == "accepted"
    _login(client, "sam")  # a store manager at S1 sees it, without the Resolve form
    page = client.get("/operations")
    assert "OAT-1 Oat milk" in page.text and "Resolve" not in page.text
    forged = _post(client, f"/operations/exceptions/{raised}/resolve", "/operations",
                   resolution="counted")
    assert forged.status_code == 403 and "only HQ may move stock_exception" in forged.text
    client.post("/logout", data={"_csrf_token": _csrf(page.text)})
    _login(client, "otto")
    done = _post(client, f"/operations/exceptions/{raised}/resolve", "/operations",
                 resolution="counted 0 on the shelf")
    assert "stock exception resolved" in done.text and "no open stock exceptions" in done.text
    with db.transaction(write=False) as store:
        fields = store.load("stock_exception", raised).fields  # type: ignore[union-attr]
    assert (fields["status"], fields["resolved_by"]) == ("resolved", "otto")


def _rows_per_entity(html: str) -> dict[str, str]:
    """entity -> the figure the overview's "Rows per entity" shows."""
    section = html.split("Rows per entity", 1)[1]
    return dict(re.findall(r"<tr><td>(\w+)</td><td[^>]*>([^<]+)</td></tr>", section))


def _two_products(url: str) -> None:
    db = Database(url, SCHEMA)
    try:
        for n in (1, 2):
            assert apply_as_hq(db, "product", key(n), {"sku": f"P-{n}", "name": f"Product {n}",
                                                       "price": 100}).status == "accepted"
    finally:
        db.dispose()


def test_the_overview_counts_the_rows_of_each_entity(client: TestClient[Any], url: str
                                                     ) -> None:
    """SQLite counts every entity table (an index of a million rows in
    milliseconds): exact figures, none "about"."""
    _two_products(url)
    _login(client, "fin")
    rows = _rows_per_entity(client.get("/overview").text)
    assert set(rows) == {e.name for e in SCHEMA.entities}
    assert (rows["product"], rows["employee"], rows["journal_line"]) == ("2", f"{len(ROLES)}", "0")
    assert not any("about" in figure for figure in rows.values())


@pytest.mark.postgres
def test_the_overview_estimates_large_tables_on_postgresql(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL does not count a large table on every view of the overview:
    it shows the planner's estimate, "about" so many; a small one it counts."""
    with fresh_database() as url:
        _staffed(url)
        _two_products(url)
        with TestClient(create_app(url)) as client:
            _login(client, "fin")
            exact = _rows_per_entity(client.get("/overview").text)
            assert (exact["product"], exact["employee"]) == ("2", f"{len(ROLES)}")
            assert not any("about" in figure for figure in exact.values())
            with _db(client).engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")  # what autovacuum does after enough writes
            overview = importlib.import_module("server.console.overview")  # not the handler
            monkeypatch.setattr(overview, "EXACT_BELOW", 2)  # product and employee are "large"
            page = client.get("/overview").text
    rows = _rows_per_entity(page)
    assert (rows["product"], rows["employee"]) == ("about 2", f"about {len(ROLES)}")
    assert rows["journal_line"] == "0"  # estimated empty: counted
    assert "a table of fewer than 2 rows is counted" in page  # the page says what about means


def _section(html: str, heading: str) -> str:
    """The part of a page from the h2 that starts with ``heading`` to the next h2."""
    start = html.index("<h2", html.index(heading) - 60)
    end = html.find("<h2", start + 3)
    return html[start:end if end > 0 else None]


def _staff(db: Database, login: str, role: str, site: str) -> None:
    hire(db, login, role, site)
    PASSWORDS.setdefault(login, f"{login}-has-a-password")
    set_password(db, login, PASSWORDS[login])


def test_finance_shows_the_trial_balance_as_at_the_end_of_the_period(
        client: TestClient[Any]) -> None:
    """October had no journal lines at S1: its journal is empty, and the trial
    balance is as at 31 October (September's lines, not November's), the
    same figures as summing the journal lines dated up to that day; the
    heading says so. REST's trial balance takes the same date."""
    from server.reports import trial_balance
    from tests.server.rest_kit import post_sale

    db = _db(client)
    product = str(uuid.uuid4())
    apply_as_hq(db, "product", product, {"sku": "OAT-1", "name": "Oat milk", "price": 250})
    post_sale(db, "S1", product, 2, 250, 120, date="2026-09-15")
    post_sale(db, "S1", product, 5, 300, 130, date="2026-11-02")
    post_sale(db, "S2", product, 1, 250, 120, date="2026-09-20")
    jl = db.entities["journal_line"]
    with db.engine.connect() as conn:
        lines = conn.execute(select(jl.c.account, jl.c.debit, jl.c.credit)
                             .where(jl.c.site == "S1", jl.c.date <= "2026-10-31")).all()
    expected: dict[str, list[int]] = {}
    for account, debit, credit in lines:
        got = expected.setdefault(account, [0, 0])
        got[0] += debit
        got[1] += credit
    assert expected  # September's sale
    _login(client, "fin")
    page = client.get("/finance", params={"site": "S1", "date_from": "2026-10-01",
                                          "date_to": "2026-10-31"}).text
    assert "no journal lines" in _section(page, "Journal lines")
    tb = _section(page, "Trial balance, S1")
    assert "Trial balance, S1, as at 2026-10-31" in tb and "(balanced)" in tb
    shown = {a: (d, c) for a, d, c in re.findall(
        r"<tr><td>(\d+)</td><td>[^<]*</td><td>[^<]*</td><td class=\"num\">([^<]*)</td>"
        r"<td class=\"num\">([^<]*)</td>", tb)}
    assert shown == {a: (money(d), money(c)) for a, (d, c) in expected.items()}
    whole = _section(client.get("/finance", params={"site": "S1"}).text, "Trial balance, S1")
    assert "Trial balance, S1, to date" in whole and whole != tb
    as_at = trial_balance(db, "S1", upto="2026-10-31")
    assert {a.code: [a.debit, a.credit] for a in as_at.accounts} == expected
    assert trial_balance(db, "S1", upto="2026-12-31") == trial_balance(db, "S1")
    token = issue_api_token(db, "fin")
    rest = client.get("/api/reports/trial-balance", params={"site": "S1",
                                                            "date_to": "2026-10-31"},
                      headers={"authorization": f"Bearer {token}"})
    assert rest.status_code == 200
    assert {a["code"]: [a["debit"], a["credit"]] for a in rest.json()["accounts"]} == expected
    wrong = client.get("/api/reports/trial-balance", params={"date_to": "October"},
                       headers={"authorization": f"Bearer {token}"})
    assert wrong.status_code == 400 and "date_to must be a date" in wrong.text


@pytest.mark.parametrize(("role", "first"), [("it_admin", "Products"),
                                             ("procurement_manager", "Procurement")])
def test_a_stores_staff_never_meet_the_overview(client: TestClient[Any], role: str,
                                                 first: str) -> None:
    """The overview shows every site: HQ's staff only. A store's staff land on
    their first page after login, have no Overview link, and a typed
    /overview is a 403 that says why."""
    _staff(_db(client), "sia", role, "S1")
    landed = _login(client, "sia")
    assert landed.status_code == 200 and f"<h1>{first}</h1>" in landed.text
    assert 'href="/overview"' not in landed.text
    typed = client.get("/overview")
    assert typed.status_code == 403 and "for HQ staff; you work at S1" in typed.text
    assert client.get("/", follow_redirects=False).headers["location"] != "/overview"
    client.cookies.clear()
    assert 'href="/overview"' in _login(client, "ian").text  # HQ's IT admin keeps it


def test_a_stores_it_admin_sees_that_stores_conflicts_only(client: TestClient[Any]) -> None:
    db = _db(client)
    issue_token(db, "s1-till1", "S1")
    issue_token(db, "s2-till1", "S2")
    conflicts = db.t["conflicts"]
    with db.engine.begin() as conn:
        for device, value in (("s1-till1", "s1-proposal"), ("s2-till1", "s2-proposal")):
            conn.execute(conflicts.insert().values(
                op_id=str(uuid.uuid4()), entity="product", key=str(uuid.uuid4()),
                field="name", server_value="HQ's", proposed_value=value, device=device,
                hlc="0", resolved=False))
    _staff(db, "sia", "it_admin", "S1")
    _login(client, "sia")
    page = client.get("/it").text
    assert "s1-proposal" in _section(page, "Conflict queue")
    assert "s2-proposal" not in page
    assert re.search(r"<h2>Sync health</h2><table>.*?<td class=\"num\">1</td></tr></table>",
                     page)
    client.cookies.clear()
    _login(client, "ian")  # HQ's IT admin: every store's
    everything = client.get("/it").text
    assert "s1-proposal" in everything and "s2-proposal" in everything


def test_ids_made_together_are_told_apart(client: TestClient[Any]) -> None:
    """Ids are time-ordered: two orders made in the same millisecond share
    their first 8 characters. The console shows their last ones (the whole
    id in the title), in the table and in the message after an action."""
    from sync.ids import new_id

    db = _db(client)
    orders = [new_id(1_795_000_000_000) for _ in range(2)]
    assert orders[0][:8] == orders[1][:8]
    for po in orders:
        _draft(db, po, "bob", [(1, 1_000)])
    assert short_id(orders[0]) != short_id(orders[1])
    _login(client, "pam")
    page = client.get("/procurement").text
    for po in orders:
        assert f'title="{po}"' in page and f">{short_id(po)}</span>" in page
    assert f">{orders[0][:8]}<" not in page
    done = _post(client, f"/procurement/orders/{orders[1]}/approve", "/procurement")
    assert f"purchase order {short_id(orders[1])} approved" in done.text
    audit = _section(client.get("/overview").text, "Latest audit records")
    assert f">{short_id(orders[0])}</span>" in audit and f">{short_id(orders[1])}</span>" in audit


def test_a_refused_approval_comes_back_to_the_page(client: TestClient[Any]) -> None:
    """A refusal answers as a success does: a 303 back to the orders, the
    reason shown there as an alert, so a reload sends nothing again."""
    db = _db(client)
    po = str(uuid.uuid4())
    _draft(db, po, "bob", [(1, 1_000)])
    assert apply_as_hq(db, "purchase_order", po, {"status": "approved", "approved_by": "pam"},
                       "pam").status == "accepted"
    _login(client, "pam")
    token = _csrf(client.get("/procurement").text)
    refused = client.post(f"/procurement/orders/{po}/approve", data={"_csrf_token": token},
                          follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"] == "/procurement"
    shown = client.get("/procurement")
    assert re.search(r'class="error" role="alert">purchase order [^<]*: the purchase order is '
                     r"approved; there is nothing to approve<", shown.text)
    assert "role=\"alert\"" not in client.get("/procurement").text  # shown once
    missing = client.post(f"/procurement/orders/{uuid.uuid4()}/cancel",
                          data={"_csrf_token": token}, follow_redirects=False)
    assert missing.status_code == 303 and "no purchase order" in client.get("/procurement").text


def test_a_stores_procurement_manager_is_shown_no_approve_button(
        client: TestClient[Any]) -> None:
    """Approving is HQ's (every approval move of PO_MACHINE is ``Who.HQ``):
    a procurement manager of S1 sees S1's draft order with Cancel (anyone
    may cancel a draft) but no Approve, which the server would refuse."""
    db = _db(client)
    po = str(uuid.uuid4())
    _draft(db, po, "bob", [(1, 1_000)])
    _staff(db, "pia", "procurement_manager", "S1")
    _login(client, "pia")
    row = re.search(rf"<tr><td><span[^>]*data-id=\"{po}\".*?</tr>",
                    client.get("/procurement").text)
    assert row and "Cancel" in row.group(0) and "Approve" not in row.group(0)
    forged = _post(client, f"/procurement/orders/{po}/approve", "/procurement")
    assert "only HQ may move purchase_order" in forged.text  # what the button would get
    client.cookies.clear()
    _login(client, "pam")
    row = re.search(rf"<tr><td><span[^>]*data-id=\"{po}\".*?</tr>",
                    client.get("/procurement").text)
    assert row and "Approve" in row.group(0)


def test_the_drafter_of_an_order_is_shown_no_approve_button(client: TestClient[Any]) -> None:
    """pam drafted the order: she sees it, and that she drafted it, with
    Cancel but no Approve; the approval she forges is refused with why; pat
    approves it."""
    db = _db(client)
    po = str(uuid.uuid4())
    _draft(db, po, "pam", [(3, 2_000)])
    _login(client, "pam")
    row = re.search(rf"<tr><td><span[^>]*data-id=\"{po}\".*?</tr>",
                    client.get("/procurement").text)
    assert row and "Cancel" in row.group(0) and "Approve" not in row.group(0)
    assert "<td>pam</td>" in row.group(0) and money(6_000) in row.group(0)
    forged = _post(client, f"/procurement/orders/{po}/approve", "/procurement")
    assert (f"purchase order {short_id(po)}: you drafted this purchase order; another "
            "approver must approve it") in forged.text
    with db.transaction(write=False) as store:
        assert store.load("purchase_order", po).fields["status"] == "draft"  # type: ignore[union-attr]
    client.cookies.clear()
    _login(client, "pat")
    row = re.search(rf"<tr><td><span[^>]*data-id=\"{po}\".*?</tr>",
                    client.get("/procurement").text)
    assert row and "Approve" in row.group(0)
    assert "approved" in _post(client, f"/procurement/orders/{po}/approve", "/procurement").text
    with db.transaction(write=False) as store:
        assert store.load("purchase_order", po).fields["status"] == "approved"  # type: ignore[union-attr]


def test_an_orders_total_is_what_its_lines_come_to(client: TestClient[Any]) -> None:
    """An order typed at 1.00 with no lines shows "no lines" (and cannot be
    approved); a line of 7,500.00 makes its total, which then needs two
    approvers."""
    db = _db(client)
    po = str(uuid.uuid4())
    assert apply_as_hq(db, "purchase_order", po, {"site": "S1", "supplier": "Oatly",
                                                  "total": 100, "status": "draft"},
                       "bob").status == "accepted"
    with db.transaction(write=False) as store:
        assert store.load("purchase_order", po).fields["total"] == 0  # type: ignore[union-attr]
    _login(client, "pam")
    row = re.search(rf"<tr><td><span[^>]*data-id=\"{po}\".*?</tr>",
                    client.get("/procurement").text)
    assert row and "<td>no lines</td>" in row.group(0)
    refused = _post(client, f"/procurement/orders/{po}/approve", "/procurement")
    assert "has no po_line rows at HQ: there is nothing to approve" in refused.text
    assert apply_as_hq(db, "po_line", str(uuid.uuid4()), {
        "po_id": po, "site": "S1", "product_id": str(uuid.uuid4()), "qty": 1,
        "unit_cost": 750_000}, "bob").status == "accepted"
    row = re.search(rf"<tr><td><span[^>]*data-id=\"{po}\".*?</tr>",
                    client.get("/procurement").text)
    assert row and f"<td>{money(750_000)}</td>" in row.group(0)
    first = _post(client, f"/procurement/orders/{po}/approve", "/procurement")
    assert "has its first approval; another procurement manager must approve it too" in (
        first.text)


def test_the_sales_by_day_table_says_when_it_is_cut(client: TestClient[Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.server.rest_kit import post_sale

    sales = importlib.import_module("server.console.sales")  # not the handler
    monkeypatch.setattr(sales, "DAY_ROWS", 3)
    db = _db(client)
    product = str(uuid.uuid4())
    apply_as_hq(db, "product", product, {"sku": "OAT-1", "name": "Oat milk", "price": 250})
    for day in range(1, 5):
        post_sale(db, "S1", product, 1, 250, 120, date=f"2026-10-0{day}")
    _login(client, "fin")
    by_day = _section(client.get("/sales").text, "By day")
    assert "2026-10-02" in by_day and "2026-10-01" not in by_day
    assert "only the first 3 are shown; the latest days first" in by_day
    few = _section(client.get("/sales", params={"date_from": "2026-10-02"}).text, "By day")
    assert "only the first" not in few


def test_the_overviews_stock_exceptions_name_the_product(client: TestClient[Any]) -> None:
    from tests.server.rest_kit import post_sale

    db = _db(client)
    product = str(uuid.uuid4())
    apply_as_hq(db, "product", product, {"sku": "OAT-1", "name": "Oat milk", "price": 250})
    post_sale(db, "S1", product, 2, 250, 120)  # none in stock: on hand -2
    _login(client, "fin")
    shown = _section(client.get("/overview").text, "Stock exceptions")
    assert "<td>OAT-1 Oat milk</td>" in shown and product not in shown


def test_the_overviews_short_lists_say_when_they_are_cut(
        client: TestClient[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The overview shows the newest audit records only, and says so."""
    page = importlib.import_module("server.console.overview")  # not the handler of that name
    monkeypatch.setattr(page, "AUDIT_LIST", 3)
    db = _db(client)
    for n in range(2):
        apply_as_hq(db, "customer", str(uuid.uuid4()), {"name": f"Ada {n}"})
    _login(client, "fin")
    shown = _section(client.get("/overview").text, "Latest audit records")
    assert "only the first 3 are shown; the newest first" in shown
    assert shown.count("<td>accepted</td>") == 3
