"""Property: devices at several sites edit offline and sync in random orders over a
faulty network; afterwards every replica agrees with the server, each op took
effect at most once, stock is the sum of its movements, and everything is audited.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from schema import HQ_SITE, SCHEMA
from sync.audit import verify_chain
from sync.merge import Actor
from sync.messages import Op
from sync.replica import LocalRejected

from .kit import CUSTOMER, PO, PRODUCT, TRANSFER, key, seeded_server
from .simnet import SimDevice, SimNet, visible

SITES = [HQ_SITE, "S1", "S2"]
DAY = 86_400_000
SKEWS = [0, 0, 0, 10 * 60_000, 2 * DAY, -3 * DAY]
"""How far a device's clock is ahead of HQ's: most agree, some run minutes or
days fast (HQ dates their edits by arrival), some days slow."""
ACTIONS = ["sell", "sell", "basket", "basket", "receive", "customer", "credit", "new_customer", "description",
           "price", "po", "transfer", "delete_customer", "connect", "cut", "steps", "steps",
           "duplicate", "duplicate", "fan_out", "push", "steps"]


def _stock(rows: dict[tuple[str, str], object], site: str) -> int:
    return sum(
        r.fields["qty"] for (e, _), r in rows.items()  # type: ignore[attr-defined]
        if e == "stock_movement" and r.fields["site"] == site  # type: ignore[attr-defined]
    )


def _write(d: SimDevice, net: SimNet, rnd: random.Random, action: str, made: list[Op],
           customers: list[str], moves: Counter[str]) -> None:
    r, site, ms = d.replica, d.actor.site, net.tick() + d.skew
    n = len(made) * 10 + 10_000
    try:
        match action:
            case "sell" | "receive":
                qty = -rnd.randint(1, 3) if action == "sell" else rnd.randint(1, 5)
                made.append(r.write("stock_movement", key(n), {
                    "site": site, "product_id": PRODUCT, "qty": qty, "reason": action}, "u", ms))
                moves[site] += qty
            case "basket":  # one sale of two lines: one transaction, maybe tampered with
                group, qty = f"g{n}", -rnd.randint(1, 2)
                for i in range(2):
                    made.append(r.write("stock_movement", key(n * 10 + i), {
                        "site": site, "product_id": PRODUCT, "qty": qty, "reason": "sale"},
                        "u", ms, group=group))
                if site != HQ_SITE and rnd.random() < 0.4:
                    forged = Op(f"forged-{n}", "product", PRODUCT, 0, {"price": 1},
                                r.clock.now(ms), "u", d.actor.device, SCHEMA.version, group=group)
                    d.store.add_outbox(forged)
                    made.append(forged)
                else:
                    moves[site] += 2 * qty
            case "customer":
                field = rnd.choice(["name", "phone", "email"])
                made.append(r.write("customer", rnd.choice(customers),
                                    {field: f"{field}-{d.actor.device}-{n}"}, "u", ms))
            case "credit":
                made.append(r.write("customer", rnd.choice(customers),
                                    {"credit_limit": rnd.randint(0, 9) * 1000}, "u", ms))
            case "new_customer":
                made.append(r.write("customer", key(n), {"name": f"c{n}"}, "u", ms))
                customers.append(key(n))
            case "description":
                made.append(r.write("product", PRODUCT, {"description": f"d{n}"}, "u", ms))
            case "price":
                if d.actor.site == HQ_SITE:
                    made.append(r.write("product", PRODUCT, {"price": rnd.randint(1, 999)},
                                        "u", ms))
                else:  # a forged op that skipped the edge's check: the server must refuse it
                    forged = Op(f"forged-{n}", "product", PRODUCT, 0, {"price": 1}, r.clock.now(ms),
                                "u", d.actor.device, SCHEMA.version)
                    d.store.add_outbox(forged)
                    made.append(forged)
            case "po":
                status = rnd.choice(["approved", "received", "cancelled", "draft"])
                made.append(r.write("purchase_order", PO, {"status": status}, "u", ms))
            case "transfer":
                status = rnd.choice(["received", "cancelled"])
                made.append(r.write("transfer", TRANSFER, {"status": status}, "u", ms))
            case "delete_customer":
                made.append(r.write("customer", rnd.choice(customers), {}, "u", ms, delete=True))
    except LocalRejected:
        pass  # the edge refused it; nothing was queued


@given(
    extra=st.lists(st.sampled_from(SITES), min_size=0, max_size=3),
    actions=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 5)), min_size=10, max_size=100),
    rnd=st.randoms(use_true_random=False),
    skews=st.lists(st.sampled_from(SKEWS), min_size=6, max_size=6),
)
def test_replicas_converge_and_nothing_is_lost_or_doubled(
    extra: list[str], actions: list[tuple[str, int]], rnd: random.Random, skews: list[int]
) -> None:
    server = seeded_server()
    sites = [HQ_SITE, "S1", "S2", *extra]
    devices = [SimDevice(Actor(f"dev{i}-{s.lower()}", s), skew)
               for i, (s, skew) in enumerate(zip(sites, skews, strict=False))]
    net = SimNet(server, devices, start_ms=40 * DAY)
    net.settle()  # every device bootstraps from a snapshot

    made: list[Op] = []
    customers = [CUSTOMER]
    moves: Counter[str] = Counter({"S1": 10, "S2": 10})
    for action, who in actions:
        d = devices[who % len(devices)]
        match action:
            case "connect":
                net.connect(d)
            case "cut":
                net.cut(d, keep=rnd.randint(0, 3))
            case "steps":
                for _ in range(rnd.randint(1, 12)):
                    net.random_step(rnd)
            case "duplicate":
                net.duplicate(rnd)
            case "fan_out":
                net.fan_out(rnd if who % 2 else None)
            case "push":
                net.push_local(d)
            case _:
                _write(d, net, rnd, action, made, customers, moves)
    net.settle()
    net.fan_out()
    net.settle()

    # convergence: every replica holds exactly the server's rows in its scope
    for d in devices:
        assert not d.store.pending, f"{d.actor.device} still has pending ops"
        expected = visible(server, d.actor.site)
        assert d.store.views == expected, f"{d.actor.device} diverged"
        assert d.store.bases == expected

    # lww: every surviving row holds, per lww field, the value of the latest
    # write, by the stamp HQ took it with (a clock far ahead: its arrival)
    stamped = {a.op_id: a.hlc for a, _ in server.audit}
    latest: dict[tuple[str, str, str], tuple[str, object]] = {}
    for o in made:
        entity = SCHEMA[o.entity]
        for name, value in o.fields.items():
            if entity.field(name).policy == "lww" and not o.op_id.startswith("forged"):
                k = (o.entity, o.key, name)
                if k not in latest or stamped[o.op_id] > latest[k][0]:
                    latest[k] = (stamped[o.op_id], value)
    for (e, k, name), (_, value) in latest.items():
        row = server.rows[(e, k)]
        if not row.deleted:
            assert row.fields[name] == value, f"lww {e}.{name}: latest write lost"

    # stock truth: on hand = sum of movements = what the tills did, on every replica
    for site in ("S1", "S2", HQ_SITE):
        assert _stock(server.rows, site) == moves[site]
        for d in devices:
            if d.actor.site in (site, HQ_SITE):
                assert _stock(d.store.views, site) == moves[site]

    # at most once, and audited: one audit record and one ack per op id
    audited = Counter(a.op_id for a, _ in server.audit)
    assert all(n == 1 for n in audited.values())
    assert {o.op_id for o in made} <= set(audited)
    assert set(server.acks) == set(audited)
    assert verify_chain(server.audit) is None
    # every change in the sequence is a distinct version of its row
    versions = Counter((c.row.entity, c.row.key, c.row.version) for c, _ in server.log)
    assert all(n == 1 for n in versions.values())
