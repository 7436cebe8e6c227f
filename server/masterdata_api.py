"""HQ master data over REST: sites, customers, the chart of accounts and
employees (``server.hq_api`` describes the answers). Every write goes through
``apply_as_hq``; who may make it is decided by ``schema.people``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import ColumnElement, or_

from schema import HQ_SITE
from schema.finance import CHART
from schema.model import SITE_CODE
from schema.people import DEPARTMENTS, ROLES, employee_key

from .api_auth import report_guard
from .clock import fresh_id
from .hq_api import (
    AUTH,
    EXPLAIN,
    SECURITY,
    Limit,
    Money,
    Offset,
    Result,
    Text,
    changed,
    db_of,
    find,
    given,
    known_site,
    page,
    require,
    select_rows,
    unique,
    write,
)
from .store import Database

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType
Code = Annotated[str, msgspec.Meta(pattern=f"^{SITE_CODE}$",
                                   description="short upper-case id, e.g. S4")]
SiteKind = Literal["hq", "store", "warehouse", "transit"]
AccountCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$", description="4 digits")]
AccountType = Literal["asset", "liability", "equity", "revenue", "expense"]
Login = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9._-]{1,63}$",
                                    description="lower-case user name")]


def _key(prefix: str, code: str) -> str:
    """The key of a row named by a code (the convention of the demo's loader)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, prefix + code))


def _by_code(db: Database, entity: str, code: str) -> dict[str, Any]:
    rows = find(db, entity, db.entities[entity].c.code == code)
    if not rows:
        raise NotFoundException(f"no {entity} {code}")
    return rows[0]


# -- sites -------------------------------------------------------------------

class Site(msgspec.Struct):
    id: str
    code: str
    name: str
    kind: str


class SiteIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Text
    kind: SiteKind


class SiteUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The code never changes: devices, stock and documents carry it."""

    name: Text | Unset = UNSET
    kind: SiteKind | Unset = UNSET


class SitesController(Controller):
    path = "/api/hq/sites"
    tags = ("master data",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @post("/", sync_to_thread=True, summary="Create a site")
    def create_site(self, state: State, data: JSONBody[SiteIn],
                    user: NamedDependency[str]) -> Response[Result]:
        """Add HQ, a store, a branch warehouse or the transit location (hq_admin).
        The code must be new; there is one transit location."""
        db = db_of(state)
        unique(db, "site", "code", data.code)
        if data.kind == "transit":
            unique(db, "site", "kind", "transit")
        if (data.kind == "hq") != (data.code == HQ_SITE):
            raise ValidationException(f"the site of kind hq is {HQ_SITE}, and only it")
        return write(state, "site", _key("", data.code), given(data), user, created=True)

    @get("/", sync_to_thread=True, summary="List sites")
    def list_sites(self, state: State, user: NamedDependency[str]) -> list[Site]:
        """Every site, by code."""
        rows = find(db_of(state), "site")
        return [msgspec.convert(r, Site) for r in sorted(rows, key=lambda r: r["code"])]

    @get("/{code:str}", sync_to_thread=True, summary="Get a site")
    def get_site(self, state: State, code: FromPath[str], user: NamedDependency[str]) -> Site:
        """One site by its code."""
        return msgspec.convert(_by_code(db_of(state), "site", code), Site)

    @patch("/{code:str}", sync_to_thread=True, summary="Edit a site")
    def update_site(self, state: State, code: FromPath[str], data: JSONBody[SiteUpdate],
                    user: NamedDependency[str]) -> Response[Result]:
        """Rename a site or change its kind (hq_admin)."""
        db = db_of(state)
        site = _by_code(db, "site", code)
        fields = changed(data)
        if fields.get("kind", site["kind"]) == "hq" and code != HQ_SITE:
            raise ValidationException(f"the site of kind hq is {HQ_SITE}, and only it")
        if fields.get("kind") == "transit":
            unique(db, "site", "kind", "transit", site["id"])
        return write(state, "site", site["id"], fields, user)


# -- customers ---------------------------------------------------------------

class Customer(msgspec.Struct):
    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    credit_limit: int | None = None


class CustomerPage(msgspec.Struct):
    items: list[Customer]
    total: int
    limit: int
    offset: int


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Text
    phone: Text | None = None
    email: Text | None = None
    credit_limit: Money | None = None


class CustomerUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Text | Unset = UNSET
    phone: Text | Unset | None = UNSET
    email: Text | Unset | None = UNSET
    credit_limit: Money | Unset | None = UNSET
    """finance and store managers; a concurrent edit goes to the conflict queue"""


class CustomersController(Controller):
    path = "/api/hq/customers"
    tags = ("master data",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @post("/", sync_to_thread=True, summary="Create a customer")
    def create_customer(self, state: State, data: JSONBody[CustomerIn],
                        user: NamedDependency[str]) -> Response[Result]:
        """Open a customer account every store sees (a credit limit: finance,
        store managers)."""
        return write(state, "customer", fresh_id(), given(data), user, created=True)

    @get("/", sync_to_thread=True, summary="Search customers")
    def list_customers(self, state: State, user: NamedDependency[str],
                       q: FromQuery[str | None] = None, limit: Limit = 50,
                       offset: Offset = 0) -> CustomerPage:
        """Customers whose name, phone or e-mail contains ``q`` (any case), by name."""
        db = db_of(state)
        t = db.entities["customer"]
        query = select_rows(db, "customer")
        if q:
            query = query.where(or_(*(t.c[n].icontains(q.strip(), autoescape=True)
                                      for n in ("name", "phone", "email"))))
        rows, total = page(db, query.order_by(t.c.name, t.c.id), limit, offset)
        return CustomerPage([msgspec.convert(r, Customer) for r in rows], total, limit, offset)

    @get("/{customer_id:str}", sync_to_thread=True, summary="Get a customer")
    def get_customer(self, state: State, customer_id: FromPath[str],
                     user: NamedDependency[str]) -> Customer:
        """One customer by id."""
        row = require(db_of(state), "customer", customer_id)
        return msgspec.convert({"id": row.key, **row.fields}, Customer)

    @patch("/{customer_id:str}", sync_to_thread=True, summary="Edit a customer")
    def update_customer(self, state: State, customer_id: FromPath[str],
                        data: JSONBody[CustomerUpdate], user: NamedDependency[str]
                        ) -> Response[Result]:
        """Change a customer's name, phone, e-mail or credit limit."""
        require(db_of(state), "customer", customer_id)
        return write(state, "customer", customer_id, changed(data), user)


# -- chart of accounts -------------------------------------------------------

class Account(msgspec.Struct):
    id: str
    code: str
    name: str
    type: str
    standard: bool
    """one of the standard codes the posting rules use"""


class AccountIn(msgspec.Struct, forbid_unknown_fields=True):
    code: AccountCode
    name: Text
    type: AccountType


class AccountUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Text | Unset = UNSET
    type: AccountType | Unset = UNSET


def _account(row: dict[str, Any]) -> Account:
    return Account(row["id"], row["code"], row["name"], row["type"], row["code"] in CHART)


class AccountsController(Controller):
    path = "/api/hq/accounts"
    tags = ("finance",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @get("/", sync_to_thread=True, summary="List the chart of accounts")
    def list_accounts(self, state: State, user: NamedDependency[str]) -> list[Account]:
        """Every account, by code."""
        rows = find(db_of(state), "account")
        return [_account(r) for r in sorted(rows, key=lambda r: r["code"])]

    @post("/", sync_to_thread=True, summary="Create an account")
    def create_account(self, state: State, data: JSONBody[AccountIn],
                       user: NamedDependency[str]) -> Response[Result]:
        """Add an account (finance); a standard code must keep its standard type."""
        db = db_of(state)
        unique(db, "account", "code", data.code)
        standard = CHART.get(data.code)
        if standard is not None and standard[1] != data.type:
            raise ValidationException(f"account {data.code} is the standard {standard[0]!r}, "
                                      f"of type {standard[1]}")
        return write(state, "account", _key("acct", data.code), given(data), user,
                     created=True)

    @patch("/{code:str}", sync_to_thread=True, summary="Edit an account")
    def update_account(self, state: State, code: FromPath[str], data: JSONBody[AccountUpdate],
                       user: NamedDependency[str]) -> Response[Result]:
        """Rename an account or change its type (finance); the posting rules'
        standard accounts keep their type."""
        account = _by_code(db_of(state), "account", code)
        fields = changed(data)
        if code in CHART and fields.get("type", CHART[code][1]) != CHART[code][1]:
            raise ClientException(f"account {code} is used by the posting rules as "
                                  f"{CHART[code][1]}; its type cannot change", status_code=409)
        return write(state, "account", account["id"], fields, user)


# -- employees ---------------------------------------------------------------

class Employee(msgspec.Struct):
    id: str
    login: str
    name: str
    department: str
    site: str
    role: str


class EmployeeIn(msgspec.Struct, forbid_unknown_fields=True):
    login: Login
    name: Text
    department: str
    """sales, procurement, finance, operations, hr, it or management"""
    site: str
    role: str
    """cashier, store_manager, warehouse_clerk, buyer, procurement_manager,
    finance, hr, it_admin or hq_admin"""


class EmployeeUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Text | Unset = UNSET
    department: str | Unset = UNSET
    site: str | Unset = UNSET
    role: str | Unset = UNSET


def _check_employee(db: Database, fields: dict[str, Any]) -> None:
    """400 for an unknown role, department or site."""
    if "role" in fields and fields["role"] not in ROLES:
        raise ValidationException(f"unknown role {fields['role']!r}; roles: "
                                  f"{', '.join(sorted(ROLES))}")
    if "department" in fields and fields["department"] not in DEPARTMENTS:
        raise ValidationException(f"unknown department {fields['department']!r}; "
                                  f"departments: {', '.join(sorted(DEPARTMENTS))}")
    if "site" in fields:
        known_site(db, fields["site"])


class EmployeesController(Controller):
    path = "/api/hq/employees"
    tags = ("hr",)
    security = SECURITY
    dependencies = AUTH
    exception_handlers = EXPLAIN

    @post("/", sync_to_thread=True, summary="Hire an employee")
    def hire(self, state: State, data: JSONBody[EmployeeIn],
             user: NamedDependency[str]) -> Response[Result]:
        """Add an employee: the user login ops carry, a department, a site and a
        role (hr). The login must be new."""
        db = db_of(state)
        fields = given(data)
        _check_employee(db, fields)
        unique(db, "employee", "login", data.login)
        return write(state, "employee", employee_key(data.login), fields, user, created=True)

    @patch("/{login:str}", sync_to_thread=True, summary="Change an employee")
    def update_employee(self, state: State, login: FromPath[str],
                        data: JSONBody[EmployeeUpdate], user: NamedDependency[str]
                        ) -> Response[Result]:
        """Change an employee's role, department, site or name (hr); the new role
        applies to the next op or request."""
        db = db_of(state)
        key = employee_key(login)
        require(db, "employee", key)
        fields = changed(data)
        _check_employee(db, fields)
        return write(state, "employee", key, fields, user)

    @get("/", sync_to_thread=True, summary="List employees", guards=[report_guard],
         opt={"report": "employees"})
    def list_employees(self, state: State, site: FromQuery[str | None] = None,
                       department: FromQuery[str | None] = None,
                       role: FromQuery[str | None] = None) -> list[Employee]:
        """Employees, by login, optionally of one site, department or role
        (hr, it_admin, hq_admin)."""
        db = db_of(state)
        t = db.entities["employee"]
        where: list[ColumnElement[bool]] = []
        for column, value in (("site", site), ("department", department), ("role", role)):
            if value:
                where.append(t.c[column] == value)
        rows = find(db, "employee", *where)
        return [msgspec.convert(r, Employee) for r in sorted(rows, key=lambda r: r["login"])]
