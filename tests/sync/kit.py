"""Small builders shared by the sync tests: keys, ops, seeded servers, devices."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from schema import HQ_SITE, SCHEMA
from schema.people import employee_key
from sync.client import ClientSession
from sync.hlc import Clock
from sync.memory import MemoryLocalStore, MemoryServerStore
from sync.merge import Actor
from sync.messages import Ack, Error, Hello, Op
from sync.replica import Replica
from sync.server import SERVER_DEVICE, ServerSession, ServerStore, apply_op, apply_ops

HQ = Actor("hq-pc", HQ_SITE)
SYSTEM = Actor(SERVER_DEVICE, HQ_SITE)
S1_TILL1 = Actor("s1-till1", "S1")
S1_TILL2 = Actor("s1-till2", "S1")
S2_TILL1 = Actor("s2-till1", "S2")


def key(n: int) -> str:
    """A deterministic UUID key, so failures are readable."""
    return str(uuid.UUID(int=n))


_clocks: dict[str, Clock] = {}


def op(
    actor: Actor,
    entity: str,
    k: str,
    fields: dict[str, Any],
    *,
    ms: int = 1_000,
    base: int = 0,
    delete: bool = False,
    schema_version: int = SCHEMA.version,
    op_id: str | None = None,
) -> Op:
    """An op as ``actor`` would make it at wall time ``ms``."""
    clock = _clocks.setdefault(actor.device, Clock(actor.device))
    return Op(
        op_id=op_id or str(uuid.uuid4()),
        entity=entity,
        key=k,
        base_version=base,
        fields=fields,
        hlc=clock.now(ms),
        user="u-" + actor.device,
        device=actor.device,
        schema_version=schema_version,
        delete=delete,
    )


PRODUCT = key(100)
CUSTOMER = key(200)
PO = key(300)
PO_LINE = key(301)
TRANSFER = key(400)


def order(actor: Actor, user: str, k: str, site: str, lines: list[tuple[int, int]],
          total: int | None = None, line_keys: int | None = None) -> list[Op]:
    """A draft purchase order of ``site`` drafted by ``user`` with its lines
    (qty, unit_cost) of ``PRODUCT``, as one group, as a device makes it: the
    order carries what its lines come to (or ``total``, typed over them).
    Line keys count up from ``line_keys`` (default: the order's key + 1)."""
    first = line_keys if line_keys is not None else uuid.UUID(k).int + 1
    came_to = sum(q * c for q, c in lines)
    ops = [by(user, actor, "purchase_order", k, {
        "site": site, "supplier": "Oatly", "status": "draft",
        "total": came_to if total is None else total})]
    ops += [by(user, actor, "po_line", key(first + n), {
        "po_id": k, "site": site, "product_id": PRODUCT, "qty": qty, "unit_cost": cost})
        for n, (qty, cost) in enumerate(lines)]
    return [msgspec.structs.replace(o, group=f"po-{k}") for o in ops]


def seeded_server() -> MemoryServerStore:
    """A server holding a product, a customer, a draft PO for S1 (drafted by
    HQ's ``u``: one line, 100 x 1.00), a transfer S1->S2, and 10 units of the
    product at S1 and at S2."""
    _clocks.clear()
    store = MemoryServerStore()
    hire_staff(store)
    seed = [
        op(HQ, "product", PRODUCT, {"sku": "SKU-1", "name": "Oat milk 1l", "price": 199}),
        op(HQ, "customer", CUSTOMER, {"name": "Ada", "phone": "111", "credit_limit": 5000}),
        op(HQ, "transfer", TRANSFER, {"from_site": "S1", "to_site": "S2",
                                      "product_id": PRODUCT, "qty": 2, "status": "shipped"}),
        op(HQ, "stock_movement", key(500),
           {"site": "S1", "product_id": PRODUCT, "qty": 10, "reason": "receipt"}),
        op(HQ, "stock_movement", key(501),
           {"site": "S2", "product_id": PRODUCT, "qty": 10, "reason": "receipt"}),
    ]
    for o in seed:
        ack = apply_op(SCHEMA, store, HQ, o)
        assert ack.status == "accepted", ack.reason
    acks = apply_ops(SCHEMA, store, HQ, order(HQ, "u", PO, "S1", [(100, 100)]))
    assert [a.status for a in acks] == ["accepted"] * 2, [a.reason for a in acks]
    return store


STAFF = [("u-hq-pc", "hq_admin", "HQ"), ("u", "hq_admin", "HQ")] + [
    (f"u-{a.device}", "store_manager", a.site) for a in (S1_TILL1, S1_TILL2, S2_TILL1)]


def hire(store: ServerStore, login: str, role: str, site: str) -> None:
    """An employee record, made by the server's own system user."""
    made = op(SYSTEM, "employee", employee_key(login), {
        "login": login, "name": login, "department": "ops", "site": site, "role": role})
    made = msgspec.structs.replace(made, user="system")
    assert apply_op(SCHEMA, store, SYSTEM, made).status == "accepted"


def hire_staff(store: ServerStore) -> None:
    for login, role, site in STAFF:
        hire(store, login, role, site)


def push(store: MemoryServerStore, actor: Actor, *ops: Op) -> list[Ack]:
    return [apply_op(SCHEMA, store, actor, o) for o in ops]


class Diverged(Exception):
    """The server refused a device's Hello."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


class Device:
    """A device with its own replica, synced to a memory server over a perfect link."""

    def __init__(self, actor: Actor, server: MemoryServerStore) -> None:
        self.actor = actor
        self.server = server
        self.store = MemoryLocalStore()
        self.replica = Replica(SCHEMA, self.store, actor.device, actor.site)

    def write(self, entity: str, k: str, fields: dict[str, Any], ms: int = 2_000) -> Op:
        # the device's own employee (``STAFF``): guarded entities need one of its site
        return self.replica.write(entity, k, fields, f"u-{self.actor.device}", ms)

    def sync(self, ms: int = 3_000, hq_ms: int | None = None) -> ClientSession:
        """Connect, catch up, push everything, pull the answers: a whole sync,
        at this device's wall time ``ms`` and HQ's ``hq_ms`` (None: HQ's clock
        is not consulted)."""
        session = ClientSession(self.replica, "token")
        server = ServerSession(SCHEMA, self.actor, self.replica.cursor)
        [hello] = session.start()  # its token is checked by the real server, not here
        assert isinstance(hello, Hello)
        greeting = server.greet(self.server, hello, hq_ms or 0)
        if isinstance(greeting, Error):
            raise Diverged(greeting)
        outbox: list[Any] = []
        inbox: list[Any] = [greeting]
        while outbox or inbox:
            for msg in inbox:
                outbox.extend(session.receive(msg, ms))
            inbox = []
            for msg in outbox:
                inbox.extend(server.handle(self.server, msg, hq_ms))
            outbox = []
            if not inbox:
                live = server.poll(self.server)
                if live is not None:
                    inbox.append(live)
        assert session.idle, session.phase
        return session


def by(user: str, actor: Actor, entity: str, k: str, fields: dict[str, Any],
       **kw: Any) -> Op:
    """An op as ``actor``'s device makes it for ``user``."""
    return msgspec.structs.replace(op(actor, entity, k, fields, **kw), user=user)


def staffed() -> MemoryServerStore:
    """``seeded_server`` with people of every department, at HQ and S1."""
    server = seeded_server()
    for login, role, site in [("pam", "procurement_manager", "HQ"),
                              ("pat", "procurement_manager", "HQ"),
                              ("bob", "buyer", "HQ"), ("cash1", "cashier", "S1"),
                              ("cashhq", "cashier", "HQ"), ("hr", "hr", "HQ"),
                              ("fin", "finance", "HQ"), ("mgr1", "store_manager", "S1"),
                              ("admin", "hq_admin", "HQ")]:
        hire(server, login, role, site)
    return server


def big_po(server: MemoryServerStore, k: str = key(310)) -> str:
    """A draft order of S1's above the second-approval limit, drafted by buyer
    bob: one line, 1 x (the limit + 0.01)."""
    from schema.retail import SECOND_APPROVAL_ABOVE

    acks = apply_ops(SCHEMA, server, HQ, order(HQ, "bob", k, "S1",
                                               [(1, SECOND_APPROVAL_ABOVE + 1)]))
    assert [a.status for a in acks] == ["accepted"] * 2, [a.reason for a in acks]
    return k


def derive(server: MemoryServerStore, po: str) -> Ack | None:
    """What HQ's server does after a transaction touching ``po`` (``server.rollups``):
    bring its total to the lines it holds, as the ``system`` user; None if it
    is there already."""
    from sync.rollup import derived

    entity, row = SCHEMA["purchase_order"], server.load("purchase_order", po)
    assert row is not None
    change = derived(entity, row, server.children("po_line", "po_id", po))
    if change is None:
        return None
    made = msgspec.structs.replace(op(SYSTEM, "purchase_order", po, change, ms=90_000),
                                   user="system")
    return apply_op(SCHEMA, server, SYSTEM, made)
