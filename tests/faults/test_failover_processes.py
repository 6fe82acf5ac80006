"""Failover through real worker processes: ``billing worker`` with
``BILLING_FALLBACK_GATEWAY=bizon``, a real Redis, the TXPG and Bizon sandboxes as child
processes. A TXPG subscription that also holds a Bizon parent order declines softly on TXPG,
then is paid once on Bizon, at once (dunning is a day here, so only the failover can pay it
within the test).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline
from worker import keys
from worker.clock import SYSTEM
from worker.subscriptions import Subscription

pytestmark = pytest.mark.slow

NO_FUNDS = 79_159  #: a TXPG card registered with no funds: 59, a soft decline


def test_a_soft_decline_on_txpg_is_paid_once_on_the_bizon_fallback(pipeline: Pipeline) -> None:
    p = pipeline
    p.start_bizon()
    [parent] = p.bizon_parents(1)
    p.admin.post(
        "cards",
        json={
            "cards": [
                {
                    "storedId": NO_FUNDS,
                    "displayName": "416974******9159",
                    "expiry": "1230",
                    "behaviour": "insufficient_funds",
                    "balance": "0.00",
                    "currency": "AZN",
                }
            ]
        },
    ).raise_for_status()
    sub = Subscription.create(
        id="sub-failover",
        customer="cust-failover",
        stored_id=NO_FUNDS,
        amount="9.99",
        currency="AZN",
        gateway="txpg",
        parent_order=parent,
        now_ms=SYSTEM.now_ms(),
    )
    p.r.hset(keys.sub(sub.id), mapping=dict[Any, Any](sub.to_hash()))

    worker = p.start_worker(dunning="1d,1d", extra={"BILLING_FALLBACK_GATEWAY": "bizon"})
    p.request(sub.id)
    p.wait_for("the period to be paid", lambda: p.status(sub.id) == "paid", alive=[worker])

    first, second = p.attempt(sub.id, 1), p.attempt(sub.id, 2)
    assert (first["gateway"], first["state"]) == ("txpg", "declined")
    assert first["decline_class"] == "soft"
    assert (second["gateway"], second["state"]) == ("bizon", "paid")
    assert p.period(sub.id)["declines"] == "1"
    assert p.debits(sub.id) == [], "no money moved on TXPG"
    [debit] = p.bizon_debits(parent)
    assert debit["amount"] == "9.99"
    assert str(debit["order_id"]) == second["order_id"]
    assert [str(o["id"]) for o in p.bizon_rebills(parent)] == [second["order_id"]]

    by_type = {e["type"]: e["data"] for e in p.events(f"{sub.id}|{PERIOD}")}
    assert by_type["charge.declined"]["gateway"] == "txpg"
    assert by_type["charge.succeeded"]["gateway"] == "bizon"
    assert p.dead_letters() == []
