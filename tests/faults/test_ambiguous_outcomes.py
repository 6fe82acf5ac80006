"""exec-tran whose outcome the worker cannot know: it is reconciled with GET order, never
taken for a decline and never re-sent blind.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline, WorkerProcess
from worker import keys

pytestmark = pytest.mark.slow

SUB = "sub-1"
KEY = keys.work_member(SUB, PERIOD)


def _gateway_calls(proc: WorkerProcess, order_id: str) -> list[tuple[str, str]]:
    """``(op, outcome)`` of every call the worker made about one order, in order."""
    return [
        (str(rec["op"]), str(rec["outcome"]))
        for rec in proc.records()
        if rec.get("event") == "gateway_call_completed" and str(rec.get("order_id")) == order_id
    ]


def _charge_through(p: Pipeline, rule: dict[str, Any]) -> tuple[WorkerProcess, str]:
    """One charge with ``rule`` set on exec-tran (once); returns the worker and the order."""
    p.add_subscription(SUB)
    rule_id = p.add_fault({"endpoint": "exec-tran", "times": 1, **rule})
    proc = p.start_worker()
    p.request(SUB)
    p.wait_paid([SUB], alive=[proc])
    outcomes = p.wait_outcome(proc, KEY, "paid")
    assert outcomes.count("paid") == 1
    assert p.fault_fired(rule_id) == 1
    period = p.period(SUB)
    assert period["attempt"] == "1", "no new attempt (no new order) for an unknown outcome"
    order_id = p.attempt(SUB, 1)["order_id"]
    debits = p.debits(SUB)
    assert len(debits) == 1, debits
    assert str(debits[0]["order_id"]) == period["paid_order"] == order_id
    assert p.dead_letters() == []
    return proc, order_id


def test_commit_then_drop_on_exec_tran_is_reconciled_as_paid(pipeline: Pipeline) -> None:
    p = pipeline
    proc, order_id = _charge_through(p, {"kind": "commit-then-drop"})
    assert p.event_types(KEY) == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    (reconciled,) = [e for e in p.events(KEY) if e["type"] == "charge.reconciled"]
    assert reconciled["data"]["outcome"] == "paid"
    assert reconciled["data"]["order_id"] == order_id
    # exec-tran went out once; the worker then asked, and did not execute again
    calls = _gateway_calls(proc, order_id)
    assert [op for op, _ in calls] == ["set_src_token", "exec_tran", "get_order_detailed"]
    assert calls[1][1] != "ok"  # the dropped connection


@pytest.mark.parametrize("kind", ["drop-before", "http-502", "http-503"])
def test_exec_tran_lost_before_handling_runs_the_same_order_once_get_shows_it_unpaid(
    pipeline: Pipeline, kind: str
) -> None:
    """A dropped connection, or a proxy's 5xx page, after exec-tran was sent: the worker
    cannot tell whether it ran. It asks; the order is unexecuted; it executes that order.
    """
    p = pipeline
    proc, order_id = _charge_through(p, {"kind": kind})
    assert p.event_types(KEY) == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    (reconciled,) = [e for e in p.events(KEY) if e["type"] == "charge.reconciled"]
    assert reconciled["data"]["outcome"] == "not_executed"
    assert reconciled["data"]["order_id"] == order_id
    # the second exec-tran of the order comes only after GET order said "not executed"
    calls = _gateway_calls(proc, order_id)
    assert [op for op, _ in calls] == [
        "set_src_token",
        "exec_tran",
        "get_order_detailed",
        "exec_tran",
    ]
    assert calls[1][1] != "ok"
    assert calls[3][1] == "ok"
    # one order for the period in the sandbox: the one attempt 1 created
    orders = [o for o in p.orders() if o["description"].startswith(f"{SUB} {PERIOD} #")]
    assert [str(o["id"]) for o in orders] == [order_id]
