"""Run planning: a stable order, a tag filter, and limits that stop a run (never skip ahead);
deterministic run ids; the run's state and its stored form.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import InvalidInput
from worker.money import Money, parse_amount
from worker.payouts.model import Payout, PayoutMode, PayoutStatus, TokenDestination
from worker.payouts.runs import (
    RunLimits,
    RunPlan,
    RunState,
    RunStatus,
    eligible,
    left_to_send,
    manual_run_id,
    plan_run,
    remaining_limits,
    run_done,
    run_id,
    validate_run_id,
    validate_schedule_name,
)

RID = "26AB0DACE700EF1180EB005056954BCC"


def payout(
    pid: str,
    minor: int,
    currency: str = "AZN",
    *,
    at: int = 0,
    tag: str = "",
    status: PayoutStatus = PayoutStatus.PENDING,
    mode: PayoutMode = PayoutMode.SCHEDULED,
) -> Payout:
    return Payout(
        id=pid,
        amount=Money(minor, currency),
        destination=TokenDestination(RID),
        tag=tag,
        status=status,
        mode=mode,
        created_at=at,
        updated_at=at,
    )


def azn(text: str) -> Money:
    return parse_amount(text, "AZN")


def ids(payouts: Sequence[Payout]) -> list[str]:
    return [p.id for p in payouts]


# --- planning ---------------------------------------------------------------------------------


def test_order_is_creation_time_then_id_and_the_tag_filters() -> None:
    pending = [
        payout("b", 100, at=2, tag="sellers"),
        payout("a", 100, at=2),
        payout("c", 100, at=1, tag="sellers"),
        payout("z", 100, at=0, status=PayoutStatus.QUEUED),
        payout("y", 100, at=0, mode=PayoutMode.IMMEDIATE),
    ]
    plan = plan_run(pending, None, RunLimits())
    assert ids(plan.selected) == ["c", "a", "b"]
    assert (plan.held, plan.limit_reached) == ((), None)
    assert ids(plan_run(pending, "sellers", RunLimits()).selected) == ["c", "b"]
    assert ids(plan_run(pending, "other", RunLimits()).selected) == []


def test_the_count_limit_stops_the_run() -> None:
    pending = [payout(f"p{n}", 100, at=n) for n in range(5)]
    plan = plan_run(pending, None, RunLimits(max_count=3))
    assert ids(plan.selected) == ["p0", "p1", "p2"]
    assert [(p.id, why) for p, why in plan.held] == [
        ("p3", "would exceed max_count 3: 3 payouts already selected"),
        ("p4", "held: the run stopped at payout p3 (max_count 3)"),
    ]
    assert plan.limit_reached == "max_count 3"


def test_the_total_limit_stops_before_a_larger_payout_and_does_not_skip_to_smaller_ones() -> None:
    pending = [
        payout("p1", 600_00, at=1),
        payout("p2", 500_00, at=2),  # would make 1100.00 > 1000.00
        payout("p3", 1_00, at=3),  # would fit, but the run stopped
        payout("u1", 9_000_00, "USD", at=4),  # no USD limit, but the run stopped
    ]
    plan = plan_run(pending, None, RunLimits(max_total={"AZN": azn("1000.00")}))
    assert ids(plan.selected) == ["p1"]
    assert ids([p for p, _ in plan.held]) == ["p2", "p3", "u1"]
    assert plan.held[0][1] == (
        "would exceed max_total 1000.00 AZN: 600.00 AZN selected + 500.00 AZN"
    )
    assert plan.limit_reached == "max_total 1000.00 AZN"
    assert plan.totals() == {"AZN": Money(600_00, "AZN")}


def test_a_total_may_be_reached_exactly_and_other_currencies_are_not_limited() -> None:
    pending = [payout("p1", 600_00, at=1), payout("u", 10**12, "USD", at=2)]
    pending.append(payout("p2", 400_00, at=3))
    plan = plan_run(pending, None, RunLimits(max_total={"AZN": azn("1000")}))
    assert ids(plan.selected) == ["p1", "u", "p2"]
    assert plan.limit_reached is None
    assert plan.totals() == {"AZN": Money(1000_00, "AZN"), "USD": Money(10**12, "USD")}


def test_a_first_payout_above_the_limit_holds_everything() -> None:
    plan = plan_run([payout("big", 2000_00), payout("small", 1)], None, RunLimits(None, {}))
    assert plan.count == 2
    plan = plan_run([payout("big", 2000_00)], None, RunLimits(max_total={"AZN": azn("1000")}))
    assert (plan.selected, len(plan.held), plan.count) == ((), 1, 0)


def test_the_same_payout_twice_is_a_bug() -> None:
    with pytest.raises(ValueError, match="payout p is given twice"):
        plan_run([payout("p", 1), payout("p", 1)], None, RunLimits())


@pytest.mark.parametrize(
    ("count", "total"),
    [(0, {}), (-1, {}), (True, {}), (None, {"AZN": Money(1, "USD")}), (None, {"AZN": 1})],
)
def test_bad_limits(count: object, total: object) -> None:
    with pytest.raises(InvalidInput):
        RunLimits(count, total)  # type: ignore[arg-type]


currencies = st.sampled_from(["AZN", "USD"])
payout_lists = st.lists(
    st.tuples(
        st.integers(1, 10_000),  # minor
        currencies,
        st.integers(0, 20),  # created_at: ties are broken by id
        st.sampled_from(["", "a", "b"]),  # tag
        st.sampled_from([PayoutStatus.PENDING, PayoutStatus.PENDING, PayoutStatus.QUEUED]),
    ),
    max_size=30,
).map(
    lambda rows: [
        payout(f"p{n:02d}", minor, cur, at=at, tag=tag, status=status)
        for n, (minor, cur, at, tag, status) in enumerate(rows)
    ]
)
limit_values = st.builds(
    RunLimits,
    st.one_of(st.none(), st.integers(1, 30)),
    st.dictionaries(currencies, st.integers(1, 60_000), max_size=2).map(
        lambda caps: {cur: Money(minor, cur) for cur, minor in caps.items()}
    ),
)


@given(payout_lists, st.sampled_from([None, "a", "b"]), limit_values)
def test_a_plan_is_a_prefix_within_the_limits(
    pending: list[Payout], tag: str | None, limits: RunLimits
) -> None:
    plan: RunPlan = plan_run(list(reversed(pending)), tag, limits)
    order = eligible(pending, tag)
    selected, held = list(plan.selected), [p for p, _ in plan.held]
    assert selected + held == order  # a prefix, and the rest held in order
    if limits.max_count is not None:
        assert len(selected) <= limits.max_count
    totals = plan.totals()
    for currency, cap in limits.max_total.items():
        assert totals.get(currency, Money(0, currency)).minor <= cap.minor
    if plan.limit_reached is None:
        assert held == []
    else:  # the first held payout really would break a limit
        first = held[0]
        by_count = limits.max_count is not None and len(selected) + 1 > limits.max_count
        first_cap = limits.max_total.get(first.currency)
        so_far = totals.get(first.currency, Money(0, first.currency)).minor
        by_total = first_cap is not None and so_far + first.amount.minor > first_cap.minor
        assert by_count or by_total
        assert plan.limit_reached in plan.held[0][1]


# --- run ids ----------------------------------------------------------------------------------


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def test_run_ids_are_deterministic_per_fire_instant() -> None:
    fire = ms(2026, 1, 5, 14, 0)
    assert run_id("sellers-weekdays", fire) == "sellers-weekdays-20260105T1400Z"
    assert run_id("sellers-weekdays", fire) == run_id("sellers-weekdays", fire)
    assert run_id("sellers-weekdays", fire + 60_000) != run_id("sellers-weekdays", fire)
    assert validate_run_id(run_id("x" * 48, fire)) == "x" * 48 + "-20260105T1400Z"
    with pytest.raises(ValueError, match="not on a whole minute"):
        run_id("daily", fire + 1)
    with pytest.raises(ValueError, match="is not an instant"):
        run_id("daily", -60_000)


@pytest.mark.parametrize("name", ["", "a:b", "a|b", "-a", "x" * 49, "manual", "manual-1", "ä"])
def test_schedule_names_are_key_safe_and_not_manual(name: str) -> None:
    with pytest.raises(InvalidInput, match="schedule name"):
        validate_schedule_name(name)


def test_manual_run_ids() -> None:
    at = ms(2026, 1, 5, 14, 3, 12) + 45
    assert manual_run_id(at) == "manual-20260105T140312.045Z"
    assert manual_run_id(at, "june-sellers") == "manual-june-sellers"
    for label in ("a:b", "a|b", "x" * 58):
        with pytest.raises(InvalidInput):
            manual_run_id(at, label)
    for run in ("a:b", "", "a|b"):
        with pytest.raises(InvalidInput, match="run id"):
            validate_run_id(run)


# --- run state --------------------------------------------------------------------------------

LIMITS = RunLimits(max_count=2, max_total={"AZN": Money(100_00, "AZN")})


def test_a_run_waits_for_approval_then_sends_and_finishes() -> None:
    plan = plan_run([payout(f"p{n}", 10_00, at=n) for n in range(3)], None, LIMITS)
    state = RunState.open(
        "daily-20260105T1400Z",
        plan,
        limits=LIMITS,
        now_ms=5,
        fire_at_ms=3,
        schedule="daily",
        approval=True,
    )
    assert state.status is RunStatus.AWAITING_APPROVAL
    assert (state.selected, state.held, state.limit_reached) == (2, 1, "max_count 2")
    assert state.totals == {"AZN": Money(20_00, "AZN")}
    with pytest.raises(InvalidInput, match="only a sending run can finish"):
        state.finish(6)
    approved = state.approve("ops-anna", 7)
    assert (approved.status, approved.approved_by, approved.approved_at) == (
        RunStatus.SENDING,
        "ops-anna",
        7,
    )
    with pytest.raises(InvalidInput, match="only a run awaiting approval"):
        approved.approve("ops-anna", 8)
    done = approved.finish(9)
    assert (done.status, done.finished_at, done.final) == (RunStatus.LIMIT_REACHED, 9, True)


def test_runs_without_approval_or_without_payouts() -> None:
    plan = plan_run([payout("p", 1)], None, RunLimits())
    state = RunState.open("manual-x", plan, limits=RunLimits(), now_ms=1)
    assert (state.status, state.fire_at) == (RunStatus.SENDING, 1)
    assert state.finish(2).status is RunStatus.COMPLETED
    empty = RunState.open("manual-y", plan_run([], None, LIMITS), limits=LIMITS, now_ms=1,
                          approval=True)  # fmt: skip
    assert (empty.status, empty.finished_at) == (RunStatus.COMPLETED, 1)
    stopped = plan_run([payout("big", 10**6)], None, LIMITS)
    assert RunState.open("r", stopped, limits=LIMITS, now_ms=1).status is RunStatus.LIMIT_REACHED
    waiting = RunState.open("r", plan, limits=LIMITS, now_ms=1, approval=True)
    cancelled = waiting.cancel("ops-anna", 2)
    assert (cancelled.status, cancelled.cancelled_by, cancelled.approved_by) == (
        RunStatus.CANCELLED,
        "ops-anna",
        "",
    )
    with pytest.raises(InvalidInput, match="actor"):
        waiting.approve("a\nb", 3)


@given(
    status=st.sampled_from(list(RunStatus)),
    limits=limit_values,
    totals=st.dictionaries(currencies, st.integers(0, 10**12)),
    numbers=st.tuples(*(st.integers(0, 2**45) for _ in range(8))),
    texts=st.tuples(*(st.sampled_from(["", "sellers", "ops-anna"]) for _ in range(4))),
    approval=st.booleans(),
)
def test_run_state_round_trip(
    status: RunStatus,
    limits: RunLimits,
    totals: dict[str, int],
    numbers: tuple[int, ...],
    texts: tuple[str, ...],
    approval: bool,
) -> None:
    state = RunState(
        id="daily-20260105T1400Z",
        status=status,
        schedule=texts[0],
        tag=texts[1],
        fire_at=numbers[0],
        created_at=numbers[1],
        updated_at=numbers[2],
        limits=limits,
        approval=approval,
        selected=numbers[3],
        totals={cur: Money(minor, cur) for cur, minor in totals.items()},
        held=numbers[4],
        limit_reached=texts[2] and "max_count 3",
        approved_by=texts[3],
        approved_at=numbers[5],
        cancelled_by=texts[3],
        finished_at=numbers[6],
    )
    stored = state.to_hash()
    assert all(isinstance(value, str) and value for value in stored.values())
    assert RunState.from_hash(stored, state.id) == state


def test_a_restarted_run_sends_only_what_is_left() -> None:
    run = "daily-20260105T1400Z"
    taken = [payout(f"p{n}", 100, at=n).with_status(PayoutStatus.QUEUED, 1, run_id=run)
             for n in range(4)]  # fmt: skip
    taken[3] = taken[3].with_status(PayoutStatus.SENDING, 2)  # killed after this one
    taken[0] = taken[0].with_status(PayoutStatus.SENDING, 2).with_status(PayoutStatus.PAID, 3)
    other = payout("x", 100).with_status(PayoutStatus.QUEUED, 1, run_id="other")
    assert ids(left_to_send(run, [other, *reversed(taken)])) == ["p1", "p2"]
    assert not run_done(run, [*taken, other])
    ended = [taken[0], *(p.with_status(PayoutStatus.CANCELLED, 4) for p in taken[1:3])]
    assert run_done(run, [*ended, other])
    assert not run_done(run, [*ended, taken[3]])


def test_what_is_left_of_the_limits_after_a_restart() -> None:
    taken = [payout("p1", 60_00), payout("p2", 30_00), payout("u", 5_00, "USD")]
    assert remaining_limits(LIMITS, taken[:1]) == RunLimits(1, {"AZN": Money(40_00, "AZN")})
    assert remaining_limits(LIMITS, taken[:2]) is None  # the count is used up
    assert remaining_limits(RunLimits(None, {"AZN": Money(90_00, "AZN")}), taken) is None
    assert remaining_limits(RunLimits(), taken) == RunLimits()


@given(payout_lists, limit_values, st.integers(0, 30))
def test_a_restart_within_what_is_left_never_exceeds_the_run_limits(
    pending: list[Payout], limits: RunLimits, cut: int
) -> None:
    first = plan_run(pending, None, limits)
    taken = list(first.selected[:cut])  # killed after taking these
    rest = [p for p in pending if p not in taken]
    left = remaining_limits(limits, taken)
    more = [] if left is None else list(plan_run(rest, None, left).selected)
    both = taken + more
    assert both == list(first.selected)  # the same payouts, nothing more
