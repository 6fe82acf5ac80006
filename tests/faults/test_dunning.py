"""Declines, end to end: a soft decline is retried by dunning with a new order and succeeds
once the card has funds; a hard decline and a "needs the customer" decline are
dead-lettered at once, with no second attempt.
"""

from __future__ import annotations

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline
from worker import keys

pytestmark = pytest.mark.slow

SUB = "sub-1"
KEY = keys.work_member(SUB, PERIOD)
INSUFFICIENT_FUNDS_CARD = 5159  # 59 until topped up


def test_soft_decline_then_top_up_is_paid_by_a_dunning_attempt(pipeline: Pipeline) -> None:
    p = pipeline
    p.add_subscription(SUB, stored_id=INSUFFICIENT_FUNDS_CARD)
    proc = p.start_worker(dunning="1s,1s,1s")
    p.request(SUB)
    p.wait_for("the first decline", lambda: "charge.declined" in p.event_types(KEY))
    assert p.status(SUB) == "open"
    p.top_up(INSUFFICIENT_FUNDS_CARD, "10.00")
    p.wait_paid([SUB], timeout=30, alive=[proc])

    events = p.events(KEY)
    types = [e["type"] for e in events]
    assert types[0] == "charge.declined"
    assert types[-1] == "charge.succeeded"
    assert set(types[:-1]) == {"charge.declined"}, types
    declined = events[0]["data"]
    assert (declined["attempt"], declined["decline_class"], declined["result_code"]) == (
        1,
        "soft",
        "59",
    )
    assert declined["next_retry_at"] is not None
    period = p.period(SUB)
    attempts = int(period["attempt"])
    assert attempts == len(types), "one attempt per decline, then the one that was paid"
    assert 2 <= attempts <= 4
    debits = p.debits(SUB)
    assert len(debits) == 1, debits
    assert debits[0]["description"] == f"{SUB} {PERIOD} #{attempts}"
    assert str(debits[0]["order_id"]) == period["paid_order"]
    # every attempt had its own order; the declined ones moved no money
    orders = {p.attempt(SUB, n)["order_id"] for n in range(1, attempts + 1)}
    assert len(orders) == attempts
    assert p.dead_letters() == []
    assert p.subscription_status(SUB) == "active"


@pytest.mark.parametrize(
    ("card", "reason", "sub_status", "result_code"),
    [
        pytest.param(5141, "hard_decline", "needs_new_card", "41", id="hard-stolen-card"),
        pytest.param(5106, "needs_customer", "past_due", "6", id="needs-customer-sca"),
    ],
)
def test_final_declines_are_dead_lettered_at_once(
    pipeline: Pipeline, card: int, reason: str, sub_status: str, result_code: str
) -> None:
    p = pipeline
    p.add_subscription(SUB, stored_id=card)
    proc = p.start_worker(dunning="1s,1s,1s")
    p.request(SUB)
    p.wait_for("the period to be dead-lettered", lambda: p.status(SUB) == "dead", alive=[proc])

    period = p.period(SUB)
    assert period["reason"] == reason
    assert p.dead_letters() == [period["dlq_id"]]
    assert p.subscription_status(SUB) == sub_status
    expected_sub_event = (
        "subscription.needs_new_card" if sub_status == "needs_new_card" else "subscription.past_due"
    )
    assert p.event_types(KEY) == ["charge.declined", "charge.failed", expected_sub_event]
    declined = p.events(KEY)[0]["data"]
    assert (declined["result_code"], declined["next_retry_at"]) == (result_code, None)

    # No second attempt: nothing is scheduled for the period, and a message that comes
    # again finds it final.
    assert p.r.zscore(keys.WORK, KEY) is None
    handled = len(p.wait_outcome(proc, KEY, "dead_lettered"))
    p.enqueue(SUB)
    p.wait_handled(proc, KEY, handled + 1)
    assert set(proc.outcomes(KEY)) <= {"dead_lettered", "busy"}  # busy: a janitor copy
    assert p.period(SUB)["attempt"] == "1"
    assert p.attempt(SUB, 2) == {}
    orders = [o for o in p.orders() if o["description"].startswith(f"{SUB} {PERIOD} #")]
    assert len(orders) == 1
    assert p.debits(SUB) == []
    assert p.ledger() == []
