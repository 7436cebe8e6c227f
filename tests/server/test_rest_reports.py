"""HQ reports over REST behind API tokens and department roles, on SQLite and
a fresh PostgreSQL database: finance reads the journal a sale posted, store
managers their own store's sales and margin, and everyone else is refused
with the roles that may."""

from __future__ import annotations

import datetime

import pytest

from schema.people import REPORTS

from .rest_kit import Api, post_sale

REPORT_PATHS = {
    "trial_balance": "/api/reports/trial-balance", "journal": "/api/reports/journal",
    "sales": "/api/reports/sales", "margin": "/api/reports/margin",
    "stock": "/api/reports/stock", "valuation": "/api/reports/valuation",
    "suggestions": "/api/procurement/suggestions", "employees": "/api/hq/employees",
    "purchase_orders": "/api/hq/purchase-orders", "reorder_rules": "/api/hq/reorder-rules",
    "stock_exceptions": "/api/operations/stock-exceptions",
}


def _stocked_product(api: Api) -> str:
    product = str(api.ok("POST", "/api/hq/products", "bob",
                         {"sku": "OAT-1", "name": "Oat milk", "price": 250, "cost": 120})["id"])
    return product


def test_finance_reads_the_journal_lines_a_sale_posted(api: Api) -> None:
    product = _stocked_product(api)
    sale = post_sale(api.db, "S1", product, 2, 250, 120, date="2026-03-02")
    post_sale(api.db, "S2", product, 1, 250, 120, date="2026-03-05")
    code, out = api.call("GET", "/api/reports/journal", "fay", site="S1")
    assert code == 200
    lines = [(ln["entry_id"], ln["account"], ln["debit"], ln["credit"]) for ln in out["lines"]]
    assert sorted(lines) == sorted([(sale, "1000", 600, 0), (sale, "4000", 0, 500),
                                    (sale, "2100", 0, 100), (sale, "5000", 240, 0),
                                    (sale, "1200", 0, 240)])
    assert (out["total"], out["debit"], out["credit"]) == (5, 840, 840)
    assert {ln["date"] for ln in out["lines"]} == {"2026-03-02"}
    everything = api.ok("GET", "/api/reports/journal", "fay")
    assert everything["total"] == 10 and everything["debit"] == everything["credit"]
    paged = api.ok("GET", "/api/reports/journal", "fay", limit=3, offset=9)
    assert (len(paged["lines"]), paged["total"]) == (1, 10)
    assert api.ok("GET", "/api/reports/journal", "fay", account="4000")["credit"] == 750
    assert api.ok("GET", "/api/reports/journal", "fay", date_from="2026-03-03",
                  date_to="2026-03-31")["total"] == 5
    code, out = api.call("GET", "/api/reports/journal", "fay", date_to="March")
    assert code == 400 and "date_to must be a date" in out["detail"]
    tb = api.ok("GET", "/api/reports/trial-balance", "fay")
    assert tb["balanced"] and tb["debit"] == 1260


def test_reports_need_a_token_and_a_role_that_may_read_them(api: Api) -> None:
    assert set(REPORT_PATHS) == set(REPORTS)
    for report, path in REPORT_PATHS.items():
        code, out = api.call("GET", path)
        assert code == 401 and "Authorization: Bearer" in out["detail"], path
        code, out = api.call("GET", path, "clara", site="S1")
        assert code == 403, path
        readers = ", ".join(sorted(REPORTS[report]))
        assert out["detail"] == (f"clara (cashier) may not read the "
                                 f"{report.replace('_', ' ')} report; allowed: {readers}")
        assert api.call("GET", path, "admin")[0] == 200, path
    assert api.call("GET", "/api/reports/journal", "bob")[0] == 403
    assert api.call("GET", "/api/reports/sales", "fay")[0] == 200
    assert api.call("GET", "/api/reports/stock", "bob")[0] == 200
    assert api.call("GET", "/api/reports/valuation", "pam")[0] == 200
    assert api.call("GET", "/api/procurement/suggestions", "pam")[0] == 200
    assert api.call("GET", "/api/procurement/suggestions", "fay")[0] == 403


def test_a_store_manager_sees_sales_and_margin_of_the_own_store_only(api: Api) -> None:
    product = _stocked_product(api)
    day = datetime.date.today().isoformat()
    post_sale(api.db, "S1", product, 2, 250, 120)
    post_sale(api.db, "S1", product, 1, 250, 100)
    post_sale(api.db, "S2", product, 4, 250, 120)
    code, out = api.call("GET", "/api/reports/sales", "sam")
    assert code == 403 and out["detail"] == ("sam works at S1 and reads its figures only; "
                                             "ask with site=S1")
    assert api.call("GET", "/api/reports/margin", "sam", site="S2")[0] == 403
    sales = api.ok("GET", "/api/reports/sales", "sam", site="S1")
    assert sales == [{"site": "S1", "receipts": 2, "net": 750, "tax": 150, "cost": 340,
                      "margin": 410}]
    margin = api.ok("GET", "/api/reports/margin", "sam", site="S1")
    assert margin == [{"site": "S1", "period": "all", "revenue": 750, "cogs": 340,
                       "margin": 410, "margin_bp": 5466}]
    by_day = api.ok("GET", "/api/reports/margin", "fay", period="day")
    assert [(m["site"], m["period"], m["margin"]) for m in by_day] == [("S1", day, 410),
                                                                      ("S2", day, 520)]
    assert api.ok("GET", "/api/reports/margin", "fay", period="month")[1]["period"] == day[:7]
    assert api.call("GET", "/api/reports/margin", "fay", period="week")[0] == 400
    assert api.ok("GET", "/api/reports/margin", "fay", date_from="2999-01-01") == []
    # the warehouse clerk sees the warehouse's stock, not the stores'
    assert api.call("GET", "/api/reports/stock", "wes")[0] == 403
    assert api.ok("GET", "/api/reports/stock", "wes", site="W1") == {
        "items": [], "total": 0, "limit": 100, "offset": 0}
    assert [s["on_hand"] for s in api.ok("GET", "/api/reports/stock", "bob",
                                         site="S2")["items"]] == [-4]


def test_stock_on_hand_comes_a_page_at_a_time_with_the_count_of_all(api: Api) -> None:
    """Every (site, product) balance is reachable page by page, and the count
    says how many there are (the list stopped at 10,000 rows without a word)."""
    products = [str(api.ok("POST", "/api/hq/products", "bob", {
        "sku": f"P-{n}", "name": f"Product {n}", "price": 250})["id"]) for n in range(4)]
    for site, qty in (("S1", 1), ("S2", -2)):
        for product in products:
            post_sale(api.db, site, product, qty, 250, 120)
    first = api.ok("GET", "/api/reports/stock", "bob", limit=3)
    assert (len(first["items"]), first["total"], first["limit"], first["offset"]) == (3, 8, 3, 0)
    pages = [api.ok("GET", "/api/reports/stock", "bob", limit=3, offset=o)["items"]
             for o in (0, 3, 6)]
    seen = [(s["site"], s["product_id"], s["on_hand"]) for page in pages for s in page]
    assert seen == sorted((site, p, -qty) for site, qty in (("S1", 1), ("S2", -2))
                          for p in products)
    short = api.ok("GET", "/api/reports/stock", "bob", negative_only=True, limit=2, offset=3)
    assert (short["total"], [s["site"] for s in short["items"]]) == (4, ["S1"])
    assert api.call("GET", "/api/reports/stock", "bob", limit=501)[0] == 400


def test_openapi_documents_every_endpoint(api: Api) -> None:
    doc = api.ok("GET", "/schema/openapi.json", "admin")
    paths = doc["paths"]
    expected = {
        "/api/hq/whoami": {"get"},
        "/api/hq/products": {"get", "post"},
        "/api/hq/products/{product_id}": {"get", "patch"},
        "/api/hq/products/{product_id}/price": {"post"},
        "/api/hq/products/{product_id}/price-changes": {"get", "post"},
        "/api/hq/sites": {"get", "post"},
        "/api/hq/sites/{code}": {"get", "patch"},
        "/api/hq/customers": {"get", "post"},
        "/api/hq/customers/{customer_id}": {"get", "patch"},
        "/api/hq/accounts": {"get", "post"},
        "/api/hq/accounts/{code}": {"patch"},
        "/api/hq/employees": {"get", "post"},
        "/api/hq/employees/{login}": {"patch"},
        "/api/hq/suppliers": {"get", "post"},
        "/api/hq/suppliers/{supplier_id}": {"get", "patch"},
        "/api/hq/reorder-rules": {"get", "put"},
        "/api/hq/purchase-orders": {"get", "post"},
        "/api/hq/purchase-orders/{po_id}": {"get"},
        "/api/hq/purchase-orders/{po_id}/approve": {"post"},
        "/api/hq/purchase-orders/{po_id}/cancel": {"post"},
        "/api/reports/trial-balance": {"get"}, "/api/reports/journal": {"get"},
        "/api/reports/sales": {"get"}, "/api/reports/margin": {"get"},
        "/api/reports/stock": {"get"}, "/api/reports/valuation": {"get"},
        "/api/procurement/suggestions": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert set(paths[path]) >= methods, path
        for method in methods:
            op = paths[path][method]
            assert op.get("summary") and op.get("description"), (path, method)
            assert op.get("security") == [{"apiToken": []}], (path, method)
            ok = op["responses"].get("200") or op["responses"].get("201")
            assert ok["content"]["application/json"]["schema"], (path, method)
            if method in ("post", "patch", "put") and not path.endswith(("/approve",
                                                                         "/cancel")):
                assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"]
    schemas = doc["components"]["schemas"]
    for name in ("ProductIn", "ProductUpdate", "ProductPage", "PriceChangeIn", "SiteIn",
                 "PurchaseOrderIn", "PurchaseOrderDetail", "JournalPage", "SiteMargin",
                 "EmployeeIn", "AccountIn", "ReorderRuleIn", "CustomerPage", "Result"):
        assert name in schemas, name
    assert schemas["ProductIn"]["properties"]["price"]["minimum"] == 0
    assert doc["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"


def test_all_time_figures_come_from_the_kept_balances_and_match_the_journal(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    """The trial balance, the all-time margin and the overview's sales read the
    balances kept per (site, account); they equal what scanning the journal
    lines and the receipts gives, and a hand-edited balance shows in them
    (so they really read the balances) until ``check-totals --rebuild``; so
    does the margin by month, from the journal's totals per day."""
    from sqlalchemy import update

    from server.cli import main as branchline
    from server.reports import margin_by_site, sales_by_site, sales_from_books, trial_balance
    from server.tables import ACCOUNT_BALANCE_TABLE, JOURNAL_DAY_TABLE

    product = _stocked_product(api)
    post_sale(api.db, "S1", product, 2, 250, 120, date="2026-03-02")
    post_sale(api.db, "S1", product, 1, 300, 120, date="2026-04-01")
    post_sale(api.db, "S2", product, 3, 250, 130, date="2026-03-05")
    assert sales_from_books(api.db) == sales_by_site(api.db)
    by_month = margin_by_site(api.db, period="month")
    for m in margin_by_site(api.db):  # all time: the months added up
        months = [x for x in by_month if x.site == m.site]
        assert (m.revenue, m.cogs) == (sum(x.revenue for x in months),
                                       sum(x.cogs for x in months))
    tb = trial_balance(api.db, "S1")
    assert tb.balanced and {a.code: a.balance for a in tb.accounts}["4000"] == -800

    balances = api.db.t[ACCOUNT_BALANCE_TABLE]
    with api.db.transaction() as store:  # what a bad restore or a hand edit leaves
        store.conn.execute(update(balances).where(balances.c.account == "4000")
                           .values(credit=balances.c.credit + 1))
    assert not trial_balance(api.db, None).balanced
    url = str(api.db.engine.url.render_as_string(hide_password=False))
    assert branchline(["check-totals", "--db", url]) == 1
    assert branchline(["check-totals", "--db", url, "--rebuild"]) == 0
    assert trial_balance(api.db, None).balanced
    assert sales_from_books(api.db) == sales_by_site(api.db)
    days = api.db.t[JOURNAL_DAY_TABLE]  # the journal's second total, per (day, site, account)
    with api.db.transaction() as store:
        store.conn.execute(update(days).where(days.c.account == "4000",
                                              days.c.date == "2026-04-01")
                           .values(credit=days.c.credit + 50))
    assert margin_by_site(api.db, period="month") != by_month
    assert branchline(["check-totals", "--db", url]) == 1
    assert "journal_day\t2026-04-01\tS1\t4000\tkept debit 0, credit 350" in capsys.readouterr().out
    assert branchline(["check-totals", "--db", url, "--rebuild"]) == 0
    assert margin_by_site(api.db, period="month") == by_month


def test_purchase_suggestions_come_a_page_at_a_time_with_their_number(api: Api) -> None:
    """A chain's suggestions (20,000 open at the scale hunt) came as one list;
    they come a page at a time (100 unless asked, at most 500), by site and
    product, with how many match: walking the pages gives each once."""
    import uuid

    from sqlalchemy import insert

    sites = {"S1": 130, "S2": 95}
    rows = [{"id": str(uuid.uuid4()), "site": site, "product_id": str(uuid.uuid4()),
             "qty": 24, "on_hand": 1, "status": status, "_version": 1, "_deleted": False,
             "_row": b"\x80", "_seq": 0}
            for site, n in sites.items() for status in ["open"] * n + ["dismissed"] * 7]
    with api.db.engine.begin() as conn:
        conn.execute(insert(api.db.entities["purchase_suggestion"]), rows)
    first = api.ok("GET", "/api/procurement/suggestions", "pam")
    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (
        225, 100, 0, 100)
    walked = [s for offset in (0, 100, 200) for s in api.ok(
        "GET", "/api/procurement/suggestions", "pam", offset=offset)["items"]]
    assert len({s["id"] for s in walked}) == 225
    assert [(s["site"], s["product_id"]) for s in walked] == sorted(
        (r["site"], r["product_id"]) for r in rows if r["status"] == "open")
    s2 = api.ok("GET", "/api/procurement/suggestions", "pam", site="S2", limit=500)
    assert (s2["total"], len(s2["items"]), {s["site"] for s in s2["items"]}) == (95, 95, {"S2"})
    dismissed = api.ok("GET", "/api/procurement/suggestions", "pam", status="dismissed")
    assert dismissed["total"] == 14 and {s["status"] for s in dismissed["items"]} == {
        "dismissed"}
    assert api.call("GET", "/api/procurement/suggestions", "pam", limit=501)[0] == 400
