"""The HQ console in a real browser (Playwright driving Debian's chromium)
against a real server process on SQLite, with real edge devices: a
procurement manager approves a purchase order and the store's device gets
it; a cashier meets a 403 page and cannot change a price; finance reads the
journal lines a till's sale posted; IT revokes a device and its next sync is
refused; after logout the back button shows no data."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .procs import BIN, EdgeProc, ServerProc, wait_for

pytestmark = pytest.mark.e2e

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
PRODUCT = str(uuid.UUID(int=21))
STAFF = {  # login: (role, site, department, password)
    "pam": ("procurement_manager", "HQ", "procurement", "pam-approves-orders"),
    "bob": ("buyer", "HQ", "procurement", "bob-buys-oat-milk"),
    "clara": ("cashier", "S1", "sales", "clara-rings-up"),
    "fin": ("finance", "HQ", "finance", "fin-keeps-books"),
    "ian": ("it_admin", "HQ", "it", "ian-keeps-it-up"),
    "admin": ("hq_admin", "HQ", "management", "admin-does-all"),
}


class Chain:
    """A server, HQ's PC, a store's two devices and a second store, all real processes."""

    def __init__(self, workdir: Path) -> None:
        self.server = ServerProc(f"sqlite:///{workdir / 'hq.db'}", workdir).start()
        self.base = f"http://127.0.0.1:{self.server.port}"
        for login, (role, site, department, password) in STAFF.items():
            subprocess.run(
                [str(BIN / "branchline"), "user", "add", "--db", self.server.db_url,
                 "--login", login, "--role", role, "--site", site, "--department", department,
                 "--password-stdin"],
                input=password + "\n", check=True, capture_output=True, text=True,
                cwd=workdir, timeout=60)
        self.edges = {d: EdgeProc(workdir, d, s).init(self.server, self.server.add_device(d, s))
                      for d, s in [("hq-pc", "HQ"), ("s1-till1", "S1"), ("s2-till1", "S2")]}
        hq = self.edges["hq-pc"]
        hq.user = "admin"
        hq.sync()  # learn the employees first
        hq.put("product", PRODUCT, sku="OAT-1", name="Oat milk 1l", price=250, cost=120,
               tax_rate=2000, barcode="4000000000017")
        hq.sync()
        self.store = self.edges["s1-till1"]
        self.store.sync()
        self.store.start_daemon()
        wait_for(lambda: self.server.health()["connected"] >= 1, 10, "the store's daemon")

    def stop(self) -> None:
        for edge in self.edges.values():
            edge.stop_daemon()
        self.server.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    made = Chain(tmp_path_factory.mktemp("console"))
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def login(page: Any, chain: Chain, who: str) -> None:
    page.goto(f"{chain.base}/login")
    page.get_by_label("Login").fill(who)
    page.get_by_label("Password").fill(STAFF[who][3])
    page.get_by_role("button", name="Log in").click()
    playwright_api.expect(page.locator("header .who")).to_contain_text(who)


def logout(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    playwright_api.expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_procurement_manager_approves_and_the_store_gets_it(chain: Chain, page: Any) -> None:
    hq = chain.edges["hq-pc"]
    po = hq.run("po", "create", "--site", "S1", "--supplier", "Oatly", "OAT-1:10:1.20",
                "--user", "bob").stdout.split()[2]
    hq.sync()
    wait_for(lambda: chain.store.query("SELECT status FROM purchase_order WHERE id = ?", po)
             == [("draft",)], 5, "the draft order at the store")
    # a wrong password and an unknown login get the same answer
    for who, password in [("pam", "not-her-password"), ("nobody", "whatever-it-is")]:
        page.goto(f"{chain.base}/login")
        page.get_by_label("Login").fill(who)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        playwright_api.expect(page.get_by_role("alert")).to_have_text("Wrong login or password.")
    login(page, chain, "pam")
    page.goto(f"{chain.base}/procurement")
    stale = page.context.new_page()  # a second tab, left open on the draft
    stale.goto(f"{chain.base}/procurement")
    row = page.locator("tr", has=page.locator(f"[data-id='{po}']"))
    playwright_api.expect(row).to_contain_text("OAT-1 Oat milk 1l x 10")
    playwright_api.expect(row).to_contain_text("draft")
    row.get_by_role("button", name="Approve").click()
    playwright_api.expect(page.get_by_role("status")).to_have_text(
        f"purchase order …{po[-8:]} approved")
    # the tab left open approves again: refused, and the browser is back on
    # the orders (a 303, as after a success), so a reload sends nothing
    stale.locator("tr", has=stale.locator(f"[data-id='{po}']")).get_by_role(
        "button", name="Approve").click()
    playwright_api.expect(stale.get_by_role("alert")).to_contain_text(
        "is approved; there is nothing to approve")
    assert stale.url == f"{chain.base}/procurement"
    stale.reload()
    assert stale.get_by_role("alert").count() == 0
    stale.close()
    wait_for(lambda: chain.store.query("SELECT status FROM purchase_order WHERE id = ?", po)
             == [("approved",)], 5, "the approved order at the store's device")
    # approving again is refused by the state machine, and the page says why
    page.goto(f"{chain.base}/procurement?status=approved")
    playwright_api.expect(page.locator(f"[data-id='{po}']")).to_be_visible()
    assert page.locator("tr", has=page.locator(f"[data-id='{po}']")).get_by_role(
        "button", name="Approve").count() == 0
    answer = page.request.post(f"{chain.base}/procurement/orders/{po}/approve",
                               form={"_csrf_token": _csrf(page)}, max_redirects=0)
    assert answer.status == 303 and answer.headers["location"] == "/procurement"


def _csrf(page: Any) -> str:
    """The CSRF token a page's forms carry (what a forger with the user's
    session and cookies could at best send)."""
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "bl_csrf"]
    return str(cookie["value"])


def test_cashier_sees_no_procurement_and_cannot_change_a_price(chain: Chain, page: Any) -> None:
    login(page, chain, "clara")
    assert page.get_by_role("link", name="Procurement").count() == 0
    response = page.goto(f"{chain.base}/procurement")
    assert response is not None and response.status == 403
    playwright_api.expect(page.locator("main")).to_contain_text(
        "Your role (cashier) cannot open the Procurement page")
    assert page.locator("[data-id]").count() == 0
    page.goto(f"{chain.base}/products/{PRODUCT}")
    playwright_api.expect(page.locator("#price")).to_have_text("2.50")
    assert page.locator("#price-form").count() == 0
    forged = page.request.post(f"{chain.base}/products/{PRODUCT}/price",
                               form={"price": "0.01", "_csrf_token": _csrf(page)})
    assert forged.status == 403
    # clara works at S1, so she acts with S1's rights: a price is HQ's to set
    assert "price of product is owned by HQ; site S1 cannot change it" in forged.text()
    without_token = page.request.post(f"{chain.base}/products/{PRODUCT}/price",
                                      form={"price": "0.01"})
    assert without_token.status == 403 and "CSRF" in without_token.text()
    logout(page)
    # a buyer changes it from the same page, and the store's till gets the new price
    login(page, chain, "bob")
    page.goto(f"{chain.base}/products/{PRODUCT}")
    page.get_by_label("New price").fill("2.75")
    page.get_by_role("button", name="Change price").click()
    playwright_api.expect(page.get_by_role("status")).to_have_text("price changed to 2.75")
    playwright_api.expect(page.locator("#price")).to_have_text("2.75")
    wait_for(lambda: chain.store.query("SELECT price FROM product WHERE id = ?", PRODUCT)
             == [(275,)], 5, "the new price at the store")


def test_finance_sees_the_journal_lines_of_a_sale_then_logs_out(chain: Chain, page: Any
                                                                ) -> None:
    receipt = chain.store.run("sell", "OAT-1:2", "--cash", "10.00").stdout.split()[1][:-1]
    wait_for(lambda: chain.store.pending() == 0, 10, "the sale to reach HQ")
    lines = chain.store.query("SELECT account, debit, credit FROM journal_line WHERE memo = ?",
                              f"sale {receipt}")
    assert len(lines) >= 4
    login(page, chain, "fin")
    page.get_by_role("link", name="Finance").click()
    # the label that starts with "Site" (account 1210's name, "Inter-site ...", has it too)
    page.get_by_label(re.compile(r"^Site")).select_option("S1")
    page.get_by_role("button", name="Show").click()
    journal = page.locator("table").last
    playwright_api.expect(journal).to_contain_text(f"sale {receipt}")
    shown = journal.locator("tr", has_text=f"sale {receipt}")
    assert shown.count() == len(lines)
    for account, debit, credit in lines:
        assert shown.filter(has_text=account).filter(
            has_text=f"{debit / 100:,.2f}").filter(has_text=f"{credit / 100:,.2f}").count() >= 1
    playwright_api.expect(page.locator("h2", has_text="Trial balance, S1")).to_contain_text(
        "(balanced)")
    # logout, then the back button: the browser asks again and gets the login page
    logout(page)
    page.go_back()
    playwright_api.expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert "/login" in page.url
    assert f"sale {receipt}" not in page.content()
    page.goto(f"{chain.base}/finance?site=S1")
    assert "/login" in page.url and f"sale {receipt}" not in page.content()


def test_it_admin_revokes_a_device_and_its_next_sync_is_refused(chain: Chain, page: Any
                                                                ) -> None:
    s2 = chain.edges["s2-till1"]
    s2.sync()
    login(page, chain, "clara")
    assert page.goto(f"{chain.base}/it").status == 403  # type: ignore[union-attr]
    logout(page)
    login(page, chain, "ian")
    page.get_by_role("link", name="IT admin").click()
    row = page.locator("tr", has_text="s2-till1")
    playwright_api.expect(row).to_contain_text("active until")
    row.get_by_role("button", name="Revoke").click()
    playwright_api.expect(page.get_by_role("status")).to_contain_text("device s2-till1 revoked")
    playwright_api.expect(page.locator("tr", has_text="s2-till1")).to_contain_text("revoked")
    refused = s2.run("sync", check=False)
    assert refused.returncode == 4, refused.stderr
    assert "revoked" in refused.stderr
    assert chain.store.run("sync").returncode == 0  # the other store is not affected
