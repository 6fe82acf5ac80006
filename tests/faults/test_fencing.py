"""A worker frozen mid-charge (SIGSTOP) loses its lease; another worker finishes the charge;
when the frozen one wakes up, its writes carry a stale fence and are refused.
"""

from __future__ import annotations

import pytest

from tests.fixtures.pipeline import DEFAULT_LEASE_MS, PERIOD, Pipeline, claimed
from worker import keys

pytestmark = pytest.mark.slow

SUB = "sub-1"
KEY = keys.work_member(SUB, PERIOD)


@pytest.mark.parametrize(
    ("late_result", "deadline_s"),
    [
        # Its deadline passed while it was frozen: it tries to write "unknown". (A worker
        # cannot wake up to a late *approval* with valid settings: the lease must outlast
        # the gateway deadline, which the runtime enforces; the store tests show that any
        # stale write, "paid" included, is refused by the fence.)
        pytest.param("deadline", None, id="late-timeout"),
    ],
)
def test_a_paused_worker_is_fenced_out_and_its_late_result_is_refused(
    pipeline: Pipeline, late_result: str, deadline_s: str | None
) -> None:
    p = pipeline
    p.add_subscription(SUB)
    # The sandbox holds the first exec-tran for 2 s, then commits it and answers.
    slow = p.add_fault({"kind": "latency", "endpoint": "exec-tran", "times": 1, "latencyMs": 2_000})
    timeouts = {}
    if deadline_s is not None:
        timeouts = {"BILLING_TXPG_DEADLINE": deadline_s, "BILLING_TXPG_READ_TIMEOUT": deadline_s}
    stale = p.start_worker("stale", extra=timeouts)
    p.request(SUB)
    p.wait_for("exec-tran to reach the sandbox", lambda: p.fault_fired(slow) == 1, interval=0.02)
    stale.pause()  # frozen while its exec-tran is in flight
    attempt = p.attempt(SUB, 1)
    assert attempt["state"] == "exec_sent"
    assert p.period(SUB)["fence"] == "1"

    fresh = p.start_worker("fresh")
    p.wait_paid([SUB], timeout=30, alive=[fresh])
    assert claimed(p.wait_outcome(fresh, KEY, "paid")) == ["paid"]
    paid = p.period(SUB)
    assert paid["fence"] == "2", "the fresh worker took a new lease"
    assert int(paid["lease_owner"].rsplit(":", 1)[1]) in fresh.children()
    # ...and only once the frozen worker's lease had run out
    assert int(paid["closed_at"]) - int(attempt["exec_sent_at"]) >= DEFAULT_LEASE_MS
    # it asked the gateway rather than executing again: the frozen call had committed
    assert p.event_types(KEY) == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    reconciled = p.events(KEY)[1]
    assert reconciled["data"]["outcome"] == "paid"
    events_before = p.events(KEY)
    attempt_before = p.attempt(SUB, 1)

    stale.resume()
    p.wait_for(
        "the stale worker to finish its run",
        lambda: claimed(stale.outcomes(KEY)),
        alive=[stale],
    )
    # its result came late, and its write of it carried fence 1: refused
    assert claimed(stale.outcomes(KEY)) == ["fenced"]
    (exec_call,) = [
        rec for rec in stale.records() if rec.get("op") == "exec_tran" and "outcome" in rec
    ]
    assert exec_call["outcome"] == late_result
    assert p.period(SUB) == paid
    assert p.attempt(SUB, 1) == attempt_before
    assert p.events(KEY) == events_before
    debits = p.debits(SUB)
    assert len(debits) == 1, debits
    assert str(debits[0]["order_id"]) == paid["paid_order"] == attempt["order_id"]
