"""A worker SIGKILLed right after each write-ahead step: another worker finishes the charge
from what was stored, and the card is debited exactly once (read from the sandbox ledger).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline, WorkerProcess
from worker import keys
from worker.charges.pipeline import CRASH_POINTS

pytestmark = pytest.mark.slow

SUB = "sub-1"
KEY = keys.work_member(SUB, PERIOD)

#: The attempt's state each crash point leaves in Redis.
LEFT_IN = {
    "after_order_created": "order_created",
    # the card is attached at the gateway, but the next write is exec_sent: the store still
    # says order_created, and the next worker attaches the card again (harmless)
    "after_token_set": "order_created",
    "after_exec_sent": "exec_sent",
    "after_result": "paid",
}


def _crash(p: Pipeline, point: str, **env: Any) -> WorkerProcess:
    """A worker SIGKILLed at ``point`` while charging SUB (see ``Pipeline.crash_charge``),
    leaving the attempt in the state ``LEFT_IN`` says.
    """
    doomed = p.crash_charge(SUB, point, **env)
    assert p.attempt(SUB, 1)["state"] == LEFT_IN[point]
    return doomed


def _orders_of(p: Pipeline, sub_id: str) -> list[int]:
    return [o["id"] for o in p.orders() if o["description"].startswith(f"{sub_id} {PERIOD} #")]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_worker_killed_after_any_step_is_finished_by_another_exactly_once(
    pipeline: Pipeline, point: str
) -> None:
    p = pipeline
    p.add_subscription(SUB)
    _crash(p, point)
    debits_at_crash = len(p.debits(SUB))
    assert debits_at_crash == (1 if point == "after_result" else 0)

    p.rescue(SUB, paid_before=point == "after_result")

    period = p.period(SUB)
    debits = p.debits(SUB)
    assert len(debits) == 1, debits
    assert period["status"] == "paid"
    assert period["attempt"] == "1"  # the stored order was carried on, no new attempt
    order_id = p.attempt(SUB, 1)["order_id"]
    assert str(debits[0]["order_id"]) == period["paid_order"] == order_id
    assert _orders_of(p, SUB) == [int(order_id)]  # no orphan order either
    types = p.event_types(KEY)
    assert types.count("charge.succeeded") == 1
    if point == "after_exec_sent":
        # "maybe sent": asked the gateway first, then executed the same order
        reconciled = [e for e in p.events(KEY) if e["type"] == "charge.reconciled"]
        assert [e["data"]["outcome"] for e in reconciled] == ["not_executed"]
        assert types == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    else:
        assert types == ["charge.succeeded"]


def test_recovery_with_default_settings_finishes_within_two_minutes(
    pipeline: Pipeline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The product's defaults (a 90 s lease, the janitor every second), through the real
    ``billing worker`` command: a charge whose worker died after storing ``exec_sent`` is
    reconciled and paid within two minutes of the crash.
    """
    p = pipeline
    p.add_subscription(SUB)
    defaults: dict[str, Any] = {"lease_ms": None, "janitor_ms": None, "dunning": None}
    _crash(p, "after_exec_sent", **defaults)
    crashed = time.monotonic()
    lease_left_s = (int(p.period(SUB)["lease_until"]) - int(time.time() * 1000)) / 1000
    assert lease_left_s > 60, "the crashed worker ran with the default 90 s lease"

    rescuer = p.start_worker("rescuer", via_billing_cli=True, **defaults)
    assert "BILLING_LEASE_MS" not in rescuer.env
    assert "BILLING_JANITOR_INTERVAL_MS" not in rescuer.env
    p.wait_paid([SUB], timeout=120 - (time.monotonic() - crashed), interval=0.2, alive=[rescuer])
    took = time.monotonic() - crashed

    with capsys.disabled():
        print(f"\n[fault] recovery with default settings took {took:.1f} s after the crash")
    assert took < 120
    debits = p.debits(SUB)
    assert len(debits) == 1
    assert str(debits[0]["order_id"]) == p.period(SUB)["paid_order"]
    assert p.wait_outcome(rescuer, KEY, "paid").count("paid") == 1
