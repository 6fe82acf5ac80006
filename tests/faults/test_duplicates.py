"""Dramatiq delivers at least once, and can deliver one message twice at the same time: the
same (subscription, period) handled many times, by two worker processes, is charged once.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline, WorkerProcess
from worker import keys

pytestmark = pytest.mark.slow


def _handled(workers: list[WorkerProcess], key: str | None = None) -> int:
    return sum(len(w.runs(key)) for w in workers)


def test_one_charge_enqueued_five_times_on_two_workers_is_paid_once(pipeline: Pipeline) -> None:
    p = pipeline
    key = keys.work_member("sub-1", PERIOD)
    p.add_subscription("sub-1")
    # Slow calls keep the first run in flight while the copies arrive.
    p.add_fault({"kind": "latency", "endpoint": "any", "latencyMs": 500})
    workers = [p.start_worker("a"), p.start_worker("b")]
    p.request("sub-1")
    p.enqueue("sub-1", times=4)
    p.wait_paid(["sub-1"], alive=workers)
    p.wait_drained(alive=workers)
    # the janitor may ring once more for the open period: at least our 5 were handled
    p.wait_for("all 5 messages handled", lambda: _handled(workers, key) >= 5, alive=workers)

    outcomes = Counter(o for w in workers for o in w.outcomes(key))
    assert outcomes["paid"] == 1, outcomes
    assert set(outcomes) <= {"paid", "busy", "already_paid"}, outcomes
    assert outcomes["busy"] >= 1, f"no copy arrived while the first was in flight: {outcomes}"
    debits = p.debits("sub-1")
    assert len(debits) == 1, debits
    assert str(debits[0]["order_id"]) == p.period("sub-1")["paid_order"]
    assert p.period("sub-1")["attempt"] == "1"
    assert p.event_types(key) == ["charge.succeeded"]


def test_fifty_subscriptions_each_enqueued_three_times_are_each_paid_once(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    subs = [f"sub-{i:02d}" for i in range(50)]
    for sub_id, card in zip(subs, p.add_cards(len(subs)), strict=True):
        p.add_subscription(sub_id, stored_id=card)
    p.add_fault({"kind": "latency", "endpoint": "any", "latencyMs": 20})
    workers = [p.start_worker("a"), p.start_worker("b")]
    for sub_id in subs:
        p.request(sub_id)
        p.enqueue(sub_id, times=2)
    p.wait_paid(subs, timeout=60, alive=workers)
    p.wait_drained(alive=workers)
    p.wait_for("all 150 messages handled", lambda: _handled(workers) >= 150, alive=workers)

    per_worker = {w.name: len(w.runs()) for w in workers}
    assert all(per_worker.values()), f"both workers took messages: {per_worker}"
    assert p.debits_per_period() == {f"{s} {PERIOD}": 1 for s in subs}
    assert set(p.debits_per_order().values()) == {1}
    by_order = {int(e["order_id"]): e for e in p.ledger()}
    for sub_id, card in zip(subs, range(70_001, 70_051), strict=True):
        period = p.period(sub_id)
        assert period["status"] == "paid"
        assert period["attempt"] == "1"
        entry = by_order[int(period["paid_order"])]
        assert (entry["description"], entry["stored_id"]) == (f"{sub_id} {PERIOD} #1", card)
    assert p.dead_letters() == []
    succeeded = Counter(e["key"] for e in p.events() if e["type"] == "charge.succeeded")
    assert succeeded == {keys.work_member(s, PERIOD): 1 for s in subs}
