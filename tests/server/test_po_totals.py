"""A purchase order's total follows its lines on HQ's SQL stores: devices'
pushes go through the sync session and the push automation, as the group
commit runs them (``server.sync_ws``), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from schema import SCHEMA
from server import rollups
from server.app import create_app
from server.automation import after_push
from server.store import Database
from sync.messages import Acks, Op, Push, Status
from sync.server import ServerSession, apply_ops
from tests.sync.kit import HQ, PRODUCT, S1_TILL1, by, hire, hire_staff, key, order

from .conftest import Backend

PO = key(700)


def _push(db: Database, *pushes: tuple[ServerSession, list[Op]]) -> list[Acks]:
    """Pushes answered in one write transaction with one run of the automation."""
    out: list[Acks] = []
    with db.transaction() as store:
        for n, (session, ops) in enumerate(pushes):
            (answer,) = session.handle(store, Push(batch=n + 1, ops=ops))
            assert isinstance(answer, Acks)
            out.append(answer)
        after_push(store)
    return out


def _order(db: Database) -> dict[str, object]:
    with db.transaction(write=False) as store:
        row = store.load("purchase_order", PO)
    assert row is not None
    return dict(row.fields)


def test_a_stores_order_takes_the_total_of_its_lines_and_the_store_hears_it(
        sql_backend: Backend) -> None:
    db = sql_backend.staffed()
    with db.transaction() as store:
        for login, role, site in (("buy1", "buyer", "S1"), ("pam", "procurement_manager", "HQ"),
                                  ("pat", "procurement_manager", "HQ")):
            hire(store, login, role, site)
    s1 = ServerSession(SCHEMA, S1_TILL1, 0)
    hq = ServerSession(SCHEMA, HQ, 0)
    (made,) = _push(db, (s1, order(S1_TILL1, "buy1", PO, "S1", [(2, 300_000)], total=100)))
    assert [a.status for a in made.acks] == [Status.ACCEPTED] * 2
    assert (_order(db)["total"], _order(db)["drafted_by"]) == (600_000, "buy1")
    with db.transaction(write=False) as store:
        told, _ = store.changes("S1", 0, 1000)
    mine = [c.row for c in told if c.row.entity == "purchase_order"]
    assert [r.fields["total"] for r in mine] == [100, 600_000]  # HQ's figure follows

    # one group commit: S1 adds a line, HQ approves; the approval is judged
    # with the line HQ now holds, before the automation has caught up
    line = by("buy1", S1_TILL1, "po_line", key(710), {"po_id": PO, "site": "S1",
                                                      "product_id": PRODUCT, "qty": 1,
                                                      "unit_cost": 50})
    approve = by("pam", HQ, "purchase_order", PO, {"status": "first_approved"})
    added, refused = _push(db, (s1, [line]), (hq, [approve]))
    assert added.acks[0].status is Status.ACCEPTED
    assert refused.acks[0].status is Status.REJECTED
    assert "has total 600000, but the 2 po_line rows HQ holds come to 600050" in (
        refused.acks[0].reason)
    assert (_order(db)["total"], _order(db)["status"]) == (600_050, "draft")

    # now it is approved by its lines, by two people, neither its drafter
    (first,) = _push(db, (hq, [by("pam", HQ, "purchase_order", PO,
                                  {"status": "first_approved"}, ms=5_000)]))
    assert first.acks[0].status is Status.ACCEPTED
    (second,) = _push(db, (hq, [by("pat", HQ, "purchase_order", PO, {"status": "approved"},
                                   ms=6_000)]))
    assert second.acks[0].status is Status.ACCEPTED
    assert (_order(db)["total"], _order(db)["status"]) == (600_050, "approved")


def test_a_draft_stored_by_an_older_server_takes_its_lines_total_at_start(
        tmp_path: Path) -> None:
    """An older server kept the typed total: the next one to start brings
    the draft's total to its lines, as a change the stores receive."""
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    db = Database(url, SCHEMA)
    with db.transaction() as store:
        hire_staff(store)
        acks = apply_ops(SCHEMA, store, HQ, order(HQ, "u", PO, "S1", [(3, 700)], total=1))
        assert [a.status for a in acks] == [Status.ACCEPTED] * 2  # no automation ran
    assert _order(db)["total"] == 1
    db.dispose()
    with TestClient(create_app(url)) as client:
        got = client.app.state.db
        assert _order(got)["total"] == 2_100
        with got.transaction(write=False) as store:
            told, _ = store.changes("S1", 0, 1000)
        assert told[-1].row.entity == "purchase_order" and told[-1].row.fields["total"] == 2_100
        assert rollups.derive_all(got) == 0  # once is enough
