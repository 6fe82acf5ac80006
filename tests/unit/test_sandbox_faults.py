"""Fault rules: which calls they hit, how often, and reading them from JSON."""

from __future__ import annotations

import threading

import pytest

from worker.errors import InvalidInput
from worker.sandbox.faults import (
    Endpoint,
    FaultKind,
    FaultPlan,
    FaultRule,
    load_faults,
    rule_from_json,
)

E, K = Endpoint, FaultKind


def _plan(*rules: FaultRule, seed: int | None = 1) -> FaultPlan:
    return FaultPlan(threading.RLock(), rules, seed)


def test_no_rules_no_fault() -> None:
    plan = _plan()
    assert not plan.active
    decision = plan.decide(E.EXEC_TRAN, 1, 5125)
    assert (decision.delay_ms, decision.action) == (0, None)


def test_a_rule_hits_its_endpoint_only_and_any_hits_all() -> None:
    plan = _plan(FaultRule(K.HTTP_502, E.EXEC_TRAN))
    assert plan.decide(E.GET_ORDER).action is None
    action = plan.decide(E.EXEC_TRAN).action
    assert action is not None
    assert action.kind is K.HTTP_502
    anywhere = _plan(FaultRule(K.HTTP_503))
    assert all(anywhere.decide(endpoint).action for endpoint in E if endpoint is not E.ANY)


def test_times_limits_a_rule_to_the_next_n_matching_calls() -> None:
    plan = _plan(FaultRule(K.DROP_BEFORE, E.EXEC_TRAN, times=2))
    plan.decide(E.CREATE_ORDER)  # does not match: does not count
    hits = [plan.decide(E.EXEC_TRAN).action is not None for _ in range(4)]
    assert hits == [True, True, False, False]
    (rule,) = plan.rules()
    assert (rule.times, rule.fired) == (0, 2)


def test_rules_can_match_one_order_or_one_card() -> None:
    plan = _plan(FaultRule(K.COMMIT_THEN_DROP, order_id=7), FaultRule(K.SLOW_BODY, stored_id=5125))
    assert plan.decide(E.EXEC_TRAN, 8, 5100).action is None
    by_order = plan.decide(E.EXEC_TRAN, 7, 5125).action
    by_card = plan.decide(E.EXEC_TRAN, 8, 5125).action
    assert by_order is not None
    assert by_order.kind is K.COMMIT_THEN_DROP  # the first that fires wins
    assert by_card is not None
    assert by_card.kind is K.SLOW_BODY
    assert plan.wants_stored_id


def test_latency_rules_add_up_and_one_other_rule_applies() -> None:
    plan = _plan(
        FaultRule(K.LATENCY, latency_ms=20),
        FaultRule(K.HTTP_503, times=1),
        FaultRule(K.LATENCY, E.EXEC_TRAN, latency_ms=5),
        FaultRule(K.HTTP_502, times=1),
    )
    first = plan.decide(E.EXEC_TRAN)
    assert first.delay_ms == 25
    assert first.action is not None
    assert first.action.kind is K.HTTP_503
    # the 502 rule was not consumed by the call the 503 took
    second = plan.decide(E.GET_ORDER)
    assert second.delay_ms == 20
    assert second.action is not None
    assert second.action.kind is K.HTTP_502


def test_probability_is_replayable_with_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        plan = _plan(FaultRule(K.HTTP_502, probability=0.3), seed=seed)
        return [plan.decide(E.EXEC_TRAN).action is not None for _ in range(200)]

    assert run(42) == run(42)
    assert run(42) != run(43)
    assert 30 < sum(run(42)) < 90  # about 60 of 200


def test_rules_are_copied_in_and_out_and_can_be_removed() -> None:
    plan = _plan()
    given = FaultRule(K.HTTP_502, times=1)
    added = plan.add(given)
    added.times = 99  # a caller's copy does not change the active rule
    assert plan.rules()[0].times == 1
    assert given.id == 0
    assert plan.remove(added.id)
    assert not plan.remove(added.id)
    assert not plan.active


def test_faults_file_and_json_rules() -> None:
    rules, seed = load_faults(
        b'{"seed": 7, "faults": [{"kind": "latency", "latencyMs": 20}, '
        b'{"kind": "commit-then-drop", "endpoint": "exec-tran", "times": 1, "storedId": 5125}]}'
    )
    assert seed == 7
    assert (rules[0].kind, rules[0].endpoint, rules[0].latency_ms) == (K.LATENCY, E.ANY, 20)
    assert (rules[1].stored_id, rules[1].times) == (5125, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"endpoint": "exec-tran"}, "needs a kind"),
        ({"kind": "explode"}, "explode"),
        ({"kind": "http-502", "endpoint": "refund"}, "refund"),
        ({"kind": "http-502", "probability": 2}, "between 0 and 1"),
        ({"kind": "http-502", "probability": "1"}, "number"),
        ({"kind": "http-502", "times": "1"}, "integer"),
        ({"kind": "http-502", "when": "now"}, "unknown keys"),
        ({"kind": "slow-body", "chunkBytes": 0}, "chunkBytes"),
    ],
)
def test_bad_rules_say_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        rule_from_json(data)
