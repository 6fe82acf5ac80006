"""The charge pipeline's crash and ambiguity tests, on Bizon: real ``billing worker``
processes, a real Redis, and the Bizon sandbox as a child process over HTTP, whose ledger is
the oracle. A Bizon charge is ``POST /orders/{parent}/rebill`` (a new, authorized order on
the parent's card) then ``PUT /orders/{id}/charge`` (the debit); "charged exactly once" is
one rebill order of the subscription's parent and one debit on it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline, WorkerProcess, claimed
from worker import keys
from worker.charges.pipeline import CRASH_POINTS

pytestmark = pytest.mark.slow

SUB = "sub-1"
KEY = keys.work_member(SUB, PERIOD)
AMOUNT = "9.99"

#: Short backoffs (the defaults are a second, doubling): a retried rebill search, a charge
#: executed again after "not executed", run a few hundred milliseconds later.
FAST_RETRY = {"BILLING_RETRY_BASE_MS": "100", "BILLING_RETRY_MAX_MS": "1000"}

#: The attempt's state each crash point leaves in Redis. Bizon's attach_card calls nothing
#: and writes nothing (the rebill is made on the parent's card), so a crash right after it
#: leaves ``order_created``, as on TXPG: the next worker goes straight on to the charge.
LEFT_IN = {
    "after_order_created": "order_created",
    "after_token_set": "order_created",
    "after_exec_sent": "exec_sent",
    "after_result": "paid",
}

#: The sandbox status of the rebill order at the crash: authorized until the charge ran.
ORDER_AT_CRASH = {
    "after_order_created": "authorized",
    "after_token_set": "authorized",
    "after_exec_sent": "authorized",
    "after_result": "charged",
}


def _subscribe(p: Pipeline) -> str:
    """The Bizon sandbox, one parent order on a fresh card and a subscription rebilling it;
    returns the parent's id. Call before starting workers (they then get Bizon's address).
    """
    p.start_bizon()
    (parent,) = p.bizon_parents(1)
    p.add_bizon_subscription(SUB, parent, amount=AMOUNT)
    return parent


def _bizon_calls(proc: WorkerProcess) -> list[tuple[str, str]]:
    """``(op, outcome)`` of every Bizon call the worker made, in order."""
    return [
        (str(rec["op"]), str(rec["outcome"]))
        for rec in proc.records()
        if rec.get("event") == "gateway_call_completed" and rec.get("gateway") == "bizon"
    ]


def _assert_paid_once(p: Pipeline, parent: str) -> str:
    """One rebill order of ``parent`` in the sandbox, charged, with one debit of the amount;
    the period paid by it on attempt 1; nothing dead-lettered. Returns the order's id.
    """
    (order,) = p.bizon_rebills(parent)  # no orphan rebill: the search found any lost one
    order_id = str(order["id"])
    assert order["status"] == "charged"
    debits = p.bizon_debits(parent)
    assert len(debits) == 1, debits
    assert str(debits[0]["order_id"]) == order_id
    assert (debits[0]["amount"], debits[0]["currency"]) == (AMOUNT, "AZN")
    period = p.period(SUB)
    assert (period["status"], period["gateway"], period["card"]) == ("paid", "bizon", parent)
    assert period["attempt"] == "1", "no new attempt (no new rebill)"
    attempt = p.attempt(SUB, 1)
    assert (attempt["gateway"], attempt["order_id"]) == ("bizon", order_id)
    assert period["paid_order"] == order_id
    assert "order_pw" not in attempt
    assert p.dead_letters() == []
    # nothing of this period went to TXPG
    assert not p.debits(SUB)
    (succeeded,) = [e for e in p.events(KEY) if e["type"] == "charge.succeeded"]
    assert succeeded["data"]["order_id"] == order_id
    return order_id


def _reconciled(p: Pipeline) -> list[tuple[str, str]]:
    return [
        (str(e["data"]["outcome"]), str(e["data"]["order_id"]))
        for e in p.events(KEY)
        if e["type"] == "charge.reconciled"
    ]


# -- crashes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_worker_killed_after_any_step_is_finished_by_another_with_one_rebill_one_debit(
    pipeline: Pipeline, point: str
) -> None:
    p = pipeline
    parent = _subscribe(p)
    p.crash_charge(SUB, point)

    # what the dead worker left: the rebill it made is stored as the attempt's order
    attempt = p.attempt(SUB, 1)
    assert attempt["state"] == LEFT_IN[point]
    (order,) = p.bizon_rebills(parent)
    assert str(order["id"]) == attempt["order_id"]
    assert order["status"] == ORDER_AT_CRASH[point]
    assert len(p.bizon_debits(parent)) == (1 if point == "after_result" else 0)

    rescuer = p.rescue(SUB, paid_before=point == "after_result", extra=FAST_RETRY)

    order_id = _assert_paid_once(p, parent)
    assert order_id == attempt["order_id"]
    ops = [op for op, _ in _bizon_calls(rescuer)]
    assert "rebill" not in ops, "the rescuer carried the stored order on"
    types = p.event_types(KEY)
    if point == "after_exec_sent":
        # "maybe sent": asked the gateway first (authorized: not executed), then charged
        # the same order
        assert types == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
        assert _reconciled(p) == [("not_executed", order_id)]
        assert ops == ["get_order", "charge"]
    else:
        assert types == ["charge.succeeded"]
        assert ops == ([] if point == "after_result" else ["charge"])


# -- a lost rebill answer ----------------------------------------------------------------------


def test_a_lost_rebill_answer_is_found_by_the_search_and_charged_once(
    pipeline: Pipeline,
) -> None:
    """The rebill ran (the sandbox holds its order) but its answer never came: the next run
    searches the listing around the time written ahead, finds that order, and charges it.
    """
    p = pipeline
    parent = _subscribe(p)
    lost = p.add_bizon_fault({"kind": "commit-then-drop", "endpoint": "rebill", "times": 1})
    proc = p.start_worker(extra=FAST_RETRY)
    p.request(SUB)
    p.wait_paid([SUB], alive=[proc])
    outcomes = p.wait_outcome(proc, KEY, "paid")

    assert p.bizon_fault_fired(lost) == 1
    order_id = _assert_paid_once(p, parent)
    assert claimed(outcomes) == ["deferred", "paid"]  # the lost answer: back off, then search
    calls = _bizon_calls(proc)
    assert [op for op, _ in calls] == ["rebill", "get_order", "list_orders", "charge"]
    assert calls[0][1] != "ok"  # the dropped connection
    assert all(outcome == "ok" for _, outcome in calls[1:])
    attempt = p.attempt(SUB, 1)
    assert len(attempt["ahead"]) > 2 and attempt["ahead"].count("sent_at") == 2  # a note each
    assert attempt["retries"] == "1"
    assert p.event_types(KEY) == ["charge.succeeded"]  # no order was in doubt
    assert p.period(SUB)["paid_order"] == order_id


def test_a_lost_rebill_answer_then_a_failing_search_never_rebills(pipeline: Pipeline) -> None:
    """The search itself answers 503 three times: each run backs off and searches again; it
    never sends a second rebill before a search came back, and the one order is charged once.
    """
    p = pipeline
    parent = _subscribe(p)
    lost = p.add_bizon_fault({"kind": "commit-then-drop", "endpoint": "rebill", "times": 1})
    down = p.add_bizon_fault({"kind": "http-503", "endpoint": "list-orders", "times": 3})
    proc = p.start_worker(extra=FAST_RETRY)
    p.request(SUB)
    p.wait_paid([SUB], alive=[proc])
    outcomes = p.wait_outcome(proc, KEY, "paid")

    assert (p.bizon_fault_fired(lost), p.bizon_fault_fired(down)) == (1, 3)
    order_id = _assert_paid_once(p, parent)
    assert claimed(outcomes) == ["deferred"] * 4 + ["paid"]
    calls = _bizon_calls(proc)
    assert [op for op, _ in calls] == [
        "rebill",
        "get_order",  # the parent (its BIN and masked PAN narrow the search)
        *["list_orders"] * 4,
        "charge",
    ]
    assert [outcome == "ok" for op, outcome in calls if op == "list_orders"] == [
        False,
        False,
        False,
        True,
    ]
    attempt = p.attempt(SUB, 1)
    assert attempt["ahead"].count("sent_at") == 5  # one note ahead of each run's try
    assert attempt["retries"] == "4"
    assert p.event_types(KEY) == ["charge.succeeded"]
    assert p.period(SUB)["paid_order"] == order_id


# -- a lost charge answer ----------------------------------------------------------------------


def _charge_through(p: Pipeline, rule: dict[str, Any]) -> tuple[WorkerProcess, str, str]:
    """One Bizon charge with ``rule`` set on ``PUT /orders/{id}/charge`` (once); returns the
    worker, the parent and the paid order.
    """
    parent = _subscribe(p)
    rule_id = p.add_bizon_fault({"endpoint": "charge", "times": 1, **rule})
    proc = p.start_worker(extra=FAST_RETRY)
    p.request(SUB)
    p.wait_paid([SUB], alive=[proc])
    outcomes = p.wait_outcome(proc, KEY, "paid")
    assert outcomes.count("paid") == 1
    assert p.bizon_fault_fired(rule_id) == 1
    return proc, parent, _assert_paid_once(p, parent)


def test_a_lost_charge_answer_is_reconciled_as_paid_with_one_debit(pipeline: Pipeline) -> None:
    p = pipeline
    proc, _, order_id = _charge_through(p, {"kind": "commit-then-drop"})
    assert p.event_types(KEY) == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    assert _reconciled(p) == [("paid", order_id)]
    # the charge went out once; the worker then asked, and did not charge again
    calls = _bizon_calls(proc)
    assert [op for op, _ in calls] == ["rebill", "charge", "get_order"]
    assert calls[1][1] != "ok"  # the dropped connection
    assert p.attempt(SUB, 1).get("reexecs", "0") == "0"


def test_a_charge_dropped_before_handling_charges_the_same_order_once_later(
    pipeline: Pipeline,
) -> None:
    """The connection closes before the sandbox handled the charge: the worker cannot tell
    whether it ran. It asks; the order is still authorized; it charges that same order.
    """
    p = pipeline
    proc, _, order_id = _charge_through(p, {"kind": "drop-before"})
    assert p.event_types(KEY) == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    assert _reconciled(p) == [("not_executed", order_id)]
    calls = _bizon_calls(proc)
    assert [op for op, _ in calls] == ["rebill", "charge", "get_order", "charge"]
    assert calls[1][1] != "ok"
    assert calls[3][1] == "ok"
    assert p.attempt(SUB, 1)["reexecs"] == "1"
