"""The hub's buffer of recently committed changes stays in seq order, also when
a commit is published after a later one, and keeps only the newest ``keep``."""

from __future__ import annotations

from server.fanout import Hub
from sync.messages import Change, Changes, Row, decode_server


def _run(*seqs: int) -> list[tuple[Change, frozenset[str] | None]]:
    return [(Change(s, Row("product", f"k{s}", 1, {})), frozenset({f"S{s}"})) for s in seqs]


def test_changes_stay_in_seq_order_with_their_scope() -> None:
    hub = Hub(keep=5)
    hub.publish(_run(5, 6))
    hub.publish(_run(3, 4))  # committed before 5 and 6, published after them
    hub.publish(_run(7))
    assert [c.seq for c in hub.changes] == [3, 4, 5, 6, 7]
    assert hub.sites == [frozenset({f"S{s}"}) for s in (3, 4, 5, 6, 7)]
    run, sites = hub.run_after(4)
    assert [c.seq for c in run] == [5, 6, 7] and sites[0] == frozenset({"S5"})
    hub.publish(_run(8, 9))
    assert [c.seq for c in hub.changes] == [5, 6, 7, 8, 9]  # the oldest are let go
    assert [c.row.key for c in hub.run_after(0)[0]] == ["k5", "k6", "k7", "k8", "k9"]


def test_a_live_frame_is_encoded_once_per_publish_and_decodes_to_its_message() -> None:
    hub = Hub()
    hub.publish(_run(1, 2))
    run, _ = hub.run_after(0)
    msg = Changes(run, 2, since=0, live=True)
    first = hub.frame(msg)
    assert hub.frame(Changes(run, 2, since=0, live=True)) is first  # another session, same view
    assert decode_server(first) == msg
    assert hub.frame(Changes(run[1:], 2, since=0, live=True)) != first  # another site's view
    hub.publish(_run(3))
    assert hub.frame(msg) is not first  # a publish starts afresh
