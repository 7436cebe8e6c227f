"""The vocabulary every entity is declared in: field kinds, merge policies, scopes.

Nothing here knows about a database or a socket. Server tables (SQLAlchemy Core)
and edge tables (sqlite-utils) are generated from these declarations by
``server.tables`` and ``client.tables``; they are never written twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HQ_SITE = "HQ"
"""Site id of headquarters. Devices of this site act with HQ rights."""

# matched whole (fullmatch): "$" would also let a trailing newline through
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_UNSAFE_TEXT_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
"""Characters no text field holds: C0 controls and DEL (tab, line feed and
carriage return aside) and the bidi embeddings, overrides and isolates that
make "x\\u202egnp.exe" display as "xexe.png"."""
MAX_TEXT = 2000
MAX_MONEY = 10**12
"""The largest amount anyone keys in, in minor units (10,000,000,000.00): at
a till, in the HQ console and over the REST API alike."""
MAX_LEDGER_MONEY = 10**15
"""The largest money value a row may hold (a document's total, a journal
line): HQ's 64-bit running totals (account balances, site sales) then hold
thousands of even the largest."""


SITE_CODE = r"[A-Z0-9][A-Z0-9_-]{0,15}"
"""What a site's code looks like: short, upper case (S1, W1, HQ)."""
_SITE_RE = re.compile(SITE_CODE)


def is_site_code(value: object) -> bool:
    """True for a well-formed site code (whether such a site exists aside)."""
    return isinstance(value, str) and _SITE_RE.fullmatch(value) is not None


def is_uuid(value: object) -> bool:
    """True for a lower-case canonical UUID string (the form every key takes)."""
    return isinstance(value, str) and _UUID_RE.fullmatch(value) is not None


class Kind(StrEnum):
    """The type of a field's value, as it travels on the wire and is stored."""

    TEXT = "text"
    INT = "int"
    MONEY = "money"  # integer minor units (cents); never a float
    BOOL = "bool"
    UUID = "uuid"  # a key made at the edge, lower-case canonical form
    REF = "ref"  # the id of a site (short text such as "S1") or a UUID row key
    DATE = "date"  # ISO yyyy-mm-dd


class Policy(StrEnum):
    """How concurrent changes of a field are merged by the server."""

    LEDGER = "ledger"  # append-only rows; merging is the union
    LWW = "lww"  # last writer wins by HLC, ties broken by device id
    HQ_OWNED = "hq-owned"  # only HQ may change it
    STATE = "state"  # declared states and transitions
    MANUAL = "manual"  # a concurrent edit goes to the conflict queue


class Scope(StrEnum):
    """Which sites receive an entity's rows (HQ always receives everything)."""

    ALL = "all"  # every site
    OWNER = "owner"  # the site named in the entity's ``site_field``
    NAMED = "named"  # every site named in the entity's ``scope_fields``


class Who(StrEnum):
    """Who may take a state transition."""

    HQ = "hq"
    ANY = "any"


@dataclass(frozen=True)
class Field:
    """One column of an entity."""

    name: str
    kind: Kind
    policy: Policy
    required: bool = True
    """A create must carry it; it can never be set to null."""
    doc: str = ""
    minimum: int | None = None
    """The smallest value an INT or MONEY field may hold (e.g. 0 for a price)."""
    maximum: int | None = None
    nonzero: bool = False
    """An INT field that may be negative or positive but never 0 (a movement)."""
    choices: tuple[str, ...] = ()
    """The values a TEXT field may hold; empty: any text."""

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not a valid value of this field, or None."""
        if value is None:
            return f"field {self.name!r} is required" if self.required else None
        return _CHECKS[self.kind](self, value)


def _check_text(f: Field, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"field {f.name!r} must be text, got {type(value).__name__}"
    if len(value) > MAX_TEXT:
        return f"field {f.name!r} is longer than {MAX_TEXT} characters"
    if not value.isprintable():  # the usual text is: one C call, no regex
        bad = _UNSAFE_TEXT_RE.search(value)
        if bad is not None:
            return (f"field {f.name!r} holds control or bidi override character "
                    f"U+{ord(bad.group()):04X}")
    if f.choices and value not in f.choices:
        return f"field {f.name!r} must be one of {', '.join(f.choices)}, got {value!r}"
    return None


def _check_int(f: Field, value: Any) -> str | None:
    if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"field {f.name!r} must be an integer, got {type(value).__name__}"
    if not -(2**62) < value < 2**62:
        return f"field {f.name!r} is out of range"
    if f.minimum is not None and value < f.minimum:
        return f"field {f.name!r} must be at least {f.minimum}, got {value}"
    if f.maximum is not None and value > f.maximum:
        return f"field {f.name!r} must be at most {f.maximum}, got {value}"
    if f.nonzero and value == 0:
        return f"field {f.name!r} cannot be 0"
    return None


def _check_bool(f: Field, value: Any) -> str | None:
    if not isinstance(value, bool):
        return f"field {f.name!r} must be true or false, got {type(value).__name__}"
    return None


def _check_uuid(f: Field, value: Any) -> str | None:
    if not is_uuid(value):
        return f"field {f.name!r} must be a lower-case UUID"
    return None


def _check_ref(f: Field, value: Any) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return f"field {f.name!r} must be an id (1 to 64 characters)"
    return None


def _check_date(f: Field, value: Any) -> str | None:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        return f"field {f.name!r} must be a date yyyy-mm-dd"
    return None


def _check_money(f: Field, value: Any) -> str | None:
    if value.__class__ is int and not -MAX_LEDGER_MONEY <= value <= MAX_LEDGER_MONEY:
        return f"field {f.name!r} is beyond {MAX_LEDGER_MONEY:,} minor units"
    return _check_int(f, value)


_CHECKS = {
    Kind.TEXT: _check_text, Kind.INT: _check_int, Kind.MONEY: _check_money,
    Kind.BOOL: _check_bool, Kind.UUID: _check_uuid, Kind.REF: _check_ref,
    Kind.DATE: _check_date,
}
"""The value check of each kind (a table, not a ``match``: this runs for every
field of every op the server ingests)."""


@dataclass(frozen=True)
class Transition:
    """A permitted move of a state field from one state to another."""

    source: str
    target: str
    who: Who = Who.ANY
    at_most: tuple[str, int] | None = None
    """(field, limit): only while the row's field is at most the limit."""
    not_by: str | None = None
    """A field naming a user who may not take this move (a second approver)."""
    by_field: str | None = None
    """A field of the row naming the site whose devices (and HQ) take this move,
    as a transfer's ``to_site`` receives it."""
    records: str | None = None
    """A field this move records its user in (``approved_by``): the op making the
    move sets it to its own user, and no other op sets it."""
    sets: tuple[str, ...] = ()
    """Fields the op making this move may set with it, whatever the machine's
    ``editable_in`` (a transfer's ``qty_received`` on receipt)."""
    not_by_creator: bool = False
    """The user who made the row (its entity's ``creator_field``) may not take
    this move: whoever drafts a purchase order does not approve it
    (segregation of duties, ``sync.authorize``)."""
    checks_rollup: bool = False
    """HQ takes this move only on a row that has child rows and whose
    ``Entity.rollup`` field agrees with the child rows HQ holds: a purchase
    order is approved by the sum of its lines, never by a figure typed over
    them (``sync.rollup``)."""


@dataclass(frozen=True)
class StateMachine:
    """The declared states of one field and the moves between them."""

    field: str
    initial: str
    transitions: tuple[Transition, ...]
    editable_in: tuple[str, ...] | None = None
    """The states in which the row's other fields may change (a purchase
    order's while it is a draft); None: in every state. A move's ``records``
    and ``sets`` fields change with the move whatever this says."""

    @property
    def states(self) -> frozenset[str]:
        return frozenset(
            {self.initial}
            | {t.source for t in self.transitions}
            | {t.target for t in self.transitions}
        )

    def find(self, source: str, target: str) -> Transition | None:
        for t in self.transitions:
            if t.source == source and t.target == target:
                return t
        return None


def _empty_fields() -> tuple[Field, ...]:
    return ()


@dataclass(frozen=True)
class ProductBound:
    """The product of two fields of one row stays within ``limit`` either way
    (checked when an op carries both, as a ledger row's create does)."""

    factors: tuple[str, str]
    limit: int


@dataclass(frozen=True)
class Rollup:
    """A field of a row that is the sum, over its child rows, of the product
    of two of their fields: a purchase order's ``total`` is qty x unit_cost
    summed over its lines. HQ works it out from the child rows it holds
    whenever they or the row change (``server.rollups``), as an HQ-owned
    write every replica takes; a create may carry its maker's figure, which
    stands until then (an order made offline shows what its lines come to)."""

    field: str
    child: str
    """The entity of the child rows (``po_line``)."""
    link: str
    """The child's field holding the row's id (its ``Parent.field``)."""
    factors: tuple[str, str]
    """The two fields of a child row whose product it adds (qty, unit_cost)."""


@dataclass(frozen=True)
class Parent:
    """A row that belongs to another, as a receipt's line to its receipt: it
    is made in the same business transaction as its parent or onto a parent
    HQ has, and shares ``same`` fields with it. A line on no receipt, or on
    another site's, would count in the per-site books it feeds without a
    receipt to show for it."""

    entity: str
    field: str
    """The field that holds the parent's id."""
    same: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entity:
    """One synced record type: its fields, owner, scope and merge policies.

    Every entity's key is a UUID made at the edge (field ``id``, never a server
    counter). ``owner_hq`` entities are master data: only HQ creates them.
    Site-owned entities name their owning site in ``site_field``; a device may
    only write rows whose scope includes its own site.
    """

    name: str
    fields: tuple[Field, ...] = field(default_factory=_empty_fields)
    owner_hq: bool = False
    scope: Scope = Scope.ALL
    site_field: str | None = None
    scope_fields: tuple[str, ...] = ()
    """Fields naming the sites that receive a row (for ``Scope.NAMED``)."""
    machine: StateMachine | None = None
    deletable: bool = True
    doc: str = ""
    distinct: tuple[str, ...] = ()
    """Fields that must differ from each other in one row (a transfer's two ends)."""
    bounded_products: tuple[ProductBound, ...] = ()
    """Products of two fields that must stay within a bound in one row (a
    movement's value, qty x unit cost, within what the 64-bit sums hold)."""
    parent: Parent | None = None
    """The row this one belongs to (checked by HQ when the row is made)."""
    created_by_field: str | None = None
    """A field naming the site whose devices (and HQ) create rows: a transfer
    is made by its ``from_site``, never drawn on another site by the receiver."""
    creator_field: str | None = None
    """A field the create records its user in (a purchase order's
    ``drafted_by``): the row's maker, whom a ``Transition.not_by_creator``
    move refuses. The op making the row sets it to its own user (or leaves it
    out), and no op changes it afterwards."""
    rollup: Rollup | None = None
    """A field summed from child rows (a purchase order's total from its lines)."""
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False, default_factory=dict)
    is_ledger: bool = field(init=False, repr=False, compare=False, default=False)
    """Every field is a ledger field: rows are append-only."""
    required: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())
    """Names of the fields a create must carry."""
    fixed_fields: frozenset[str] = field(init=False, repr=False, compare=False,
                                         default=frozenset())
    """Fields that place a row (its owner and scope); they never change."""
    names: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())
    """Every field name, in declaration order."""
    hq_owned: frozenset[str] = field(init=False, repr=False, compare=False,
                                     default=frozenset())
    """Names of the fields only HQ may set."""
    recorded: frozenset[str] = field(init=False, repr=False, compare=False,
                                     default=frozenset())
    """Fields a state move records its user in; only that move sets them."""
    hq_owned_made: frozenset[str] = field(init=False, repr=False, compare=False,
                                          default=frozenset())
    """The HQ-owned fields a site's create may not carry: all of them but the
    ``rollup`` field, whose maker's figure HQ replaces."""

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"entity {self.name}: duplicate field names")
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})
        if "id" in names or any(n.startswith("_") for n in names):
            raise ValueError(f"entity {self.name}: 'id' and '_*' names are reserved")
        if (self.scope is Scope.OWNER) != (self.site_field in names):
            raise ValueError(f"entity {self.name}: site_field is set exactly for owner scope")
        if self.scope is Scope.NAMED and not set(self.scope_fields) <= set(names):
            raise ValueError(f"entity {self.name}: unknown scope_fields")
        if not set(self.distinct) <= set(names):
            raise ValueError(f"entity {self.name}: unknown distinct fields")
        if not {n for b in self.bounded_products for n in b.factors} <= set(names):
            raise ValueError(f"entity {self.name}: unknown bounded_products fields")
        if self.parent is not None and not {self.parent.field, *self.parent.same} <= set(names):
            raise ValueError(f"entity {self.name}: unknown parent fields")
        if self.created_by_field is not None and self.created_by_field not in names:
            raise ValueError(f"entity {self.name}: unknown created_by_field")
        if self.creator_field is not None and (
                self.creator_field not in names or self.field(self.creator_field).required):
            raise ValueError(f"entity {self.name}: creator_field is an optional field of it")
        if self.rollup is not None and (
                self.rollup.field not in names
                or self.field(self.rollup.field).policy is not Policy.HQ_OWNED
                or self.field(self.rollup.field).required):
            raise ValueError(f"entity {self.name}: a rollup is an optional hq-owned field")
        recorded: set[str] = set()
        if self.machine is not None:
            f = self.field(self.machine.field)
            if f.policy is not Policy.STATE:
                raise ValueError(f"entity {self.name}: state field must use the state policy")
            states = self.machine.states
            if not set(self.machine.editable_in or ()) <= states:
                raise ValueError(f"entity {self.name}: unknown editable_in states")
            for t in self.machine.transitions:
                named = {t.by_field, t.records, *t.sets} - {None}
                if not named <= set(names) or self.machine.field in named:
                    raise ValueError(f"entity {self.name}: bad fields on move {t.target}")
                if (t.not_by_creator and self.creator_field is None) or (
                        t.checks_rollup and self.rollup is None):
                    raise ValueError(f"entity {self.name}: move {t.target} checks what the "
                                     "entity does not declare")
                if t.records is not None:
                    recorded.add(t.records)
        object.__setattr__(self, "recorded", frozenset(recorded))
        ledger = {f.policy is Policy.LEDGER for f in self.fields}
        if True in ledger and False in ledger:
            raise ValueError(f"entity {self.name}: ledger entities are ledger in every field")
        object.__setattr__(self, "is_ledger", ledger == {True})
        object.__setattr__(self, "required", tuple(f.name for f in self.fields if f.required))
        fixed = set(self.scope_fields) | ({self.site_field} if self.site_field else set())
        object.__setattr__(self, "fixed_fields", frozenset(fixed))
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "hq_owned", frozenset(
            f.name for f in self.fields if f.policy is Policy.HQ_OWNED))
        object.__setattr__(self, "hq_owned_made", self.hq_owned - (
            {self.rollup.field} if self.rollup is not None else set()))

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        by_name: dict[str, Field] = self._by_name
        return by_name[name]

    def get_field(self, name: str) -> Field | None:
        by_name: dict[str, Field] = self._by_name
        return by_name.get(name)

    def sites_of(self, values: dict[str, Any]) -> frozenset[str] | None:
        """The sites a row with these values is visible to; None means every site."""
        if self.site_field is not None:  # Scope.OWNER
            return frozenset((str(values.get(self.site_field)),))
        if self.scope_fields:  # Scope.NAMED
            return frozenset(str(values.get(n)) for n in self.scope_fields if values.get(n))
        return None


@dataclass(frozen=True)
class Schema:
    """All entities at one schema version."""

    version: int
    entities: tuple[Entity, ...]
    min_compatible: int = 1
    """The oldest client schema version whose ops the server still accepts."""
    _by_name: dict[str, Entity] = field(init=False, repr=False, compare=False, default_factory=dict)
    _rollups: dict[str, Entity] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        by_name = {e.name: e for e in self.entities}
        if len(by_name) != len(self.entities):
            raise ValueError("duplicate entity names")
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_rollups", {e.rollup.child: e for e in self.entities
                                              if e.rollup is not None})
        for e in self.entities:
            r = e.rollup
            if r is None:
                continue
            child = by_name.get(r.child)
            if (child is None or child.parent is None or child.parent.entity != e.name
                    or child.parent.field != r.link
                    or not set(r.factors) <= set(child.names)):
                raise ValueError(f"entity {e.name}: its rollup names no child of it")

    def get(self, name: str) -> Entity | None:
        by_name: dict[str, Entity] = self._by_name
        return by_name.get(name)

    @property
    def rollups(self) -> dict[str, Entity]:
        """Child entity -> the entity whose rollup sums its rows (a po_line ->
        the purchase order); worked out once."""
        found: dict[str, Entity] = self._rollups
        return found

    def __getitem__(self, name: str) -> Entity:
        e = self.get(name)
        if e is None:
            raise KeyError(name)
        return e
