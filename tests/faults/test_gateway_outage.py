"""The gateway answers 503 to everything for 30 s, starting while charges are half-way
through their chains: the breaker opens instead of burning retries, nothing is
dead-lettered for it, and afterwards every charge goes through exactly once.
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline
from worker import keys

pytestmark = pytest.mark.slow

OUTAGE_S = 30.0
CHARGES = 20


def test_a_thirty_second_outage_opens_the_breaker_and_loses_nothing(pipeline: Pipeline) -> None:
    p = pipeline
    subs = [f"sub-{i:02d}" for i in range(CHARGES)]
    for sub_id, card in zip(subs, p.add_cards(CHARGES), strict=True):
        p.add_subscription(sub_id, stored_id=card)
    worker = p.start_worker(
        extra={
            "BILLING_BREAKER_COOLDOWN_MS": "1000",  # then 2, 4, 8, 16 s: a probe at ~31 s
            "BILLING_RETRY_BASE_MS": "500",
            "BILLING_RETRY_MAX_MS": "4000",
            "BILLING_RECONCILE_BASE_MS": "500",
            "BILLING_RECONCILE_MAX_MS": "4000",
        }
    )
    # 200 ms a call: when the outage starts, charges are at every step of their chains.
    p.add_fault({"kind": "latency", "endpoint": "any", "latencyMs": 200})
    for sub_id in subs:
        p.request(sub_id)
    p.wait_for("a few charges paid", lambda: len(p.ledger()) >= 3, alive=[worker])

    outage = p.add_fault({"kind": "http-503", "endpoint": "any"})
    started = time.monotonic()
    p.wait_for(
        "the breaker to open",
        lambda: "gateway.circuit_opened" in p.event_types(),
        timeout=OUTAGE_S / 2,
        alive=[worker],
    )
    # calls that were inside the sandbox when the outage began may still complete
    p.wait_for("the calls in flight to settle", lambda: time.monotonic() - started >= 1.0)
    paid_in_outage = len(p.ledger())
    p.wait_for(
        "the outage to last its 30 s",
        lambda: time.monotonic() - started >= OUTAGE_S,
        timeout=OUTAGE_S + 5,
        interval=0.5,
        alive=[worker],
    )
    assert len(p.ledger()) == paid_in_outage, "money moved through a 503 outage"
    assert paid_in_outage < CHARGES, "the outage began with charges still to go"
    refused = p.fault_fired(outage)
    p.remove_fault(outage)
    assert p.dead_letters() == []

    p.wait_paid(subs, timeout=90, interval=0.2, alive=[worker])
    print(
        f"outage: {refused} calls refused in {OUTAGE_S:.0f} s; all paid "
        f"{time.monotonic() - started - OUTAGE_S:.1f} s after it ended"
    )
    # Without a breaker, 20 charges retrying every 0.5-4 s would have sent ~200 calls.
    assert refused <= 80, f"{refused} calls sent into the outage"
    types = p.event_types()
    assert types.count("gateway.circuit_opened") >= 1
    assert types.count("gateway.circuit_closed") >= 1
    assert types.index("gateway.circuit_opened") < types.index("gateway.circuit_closed")
    assert p.r.hget(keys.breaker("txpg"), "state") == "closed"
    assert p.debits_per_period() == {f"{s} {PERIOD}": 1 for s in subs}
    assert set(p.debits_per_order().values()) == {1}
    for sub_id in subs:
        period = p.period(sub_id)
        assert period["attempt"] == "1", "an outage is not a decline: no new attempt"
        (debit,) = p.debits(sub_id)
        assert str(debit["order_id"]) == period["paid_order"]
    assert p.dead_letters() == []
    assert [t for t in types if t in ("charge.failed", "charge.declined")] == []
