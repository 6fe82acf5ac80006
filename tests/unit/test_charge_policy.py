"""The pure rules of the charge pipeline: the attempt state table, what follows a decline,
the dunning schedule's syntax, and the card-network attempt caps.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.charges import caps, policy
from worker.charges.caps import CAPS, DAY_MS, KEEP_MS, Cap, next_allowed_at
from worker.charges.policy import DEFAULT_DUNNING_MS, DeadLetter, Retry, after_decline
from worker.charges.states import (
    FINAL_ATTEMPT_STATES,
    FINAL_PERIOD_STATUSES,
    TRANSITIONS,
    AttemptState,
    PeriodStatus,
    allowed,
)
from worker.deadletters import DeadLetterReason
from worker.errors import DeclineClass, InvalidInput
from worker.subscriptions import SubscriptionStatus

A = AttemptState
NOW = 1_793_512_800_000  # 2026-11-01 06:00:00 UTC
HOUR = 3_600_000

# -- the state table -------------------------------------------------------------------------

#: Every transition the pipeline may make, written out by hand from the module's diagram.
EXPECTED_EDGES = {
    (A.DUE, A.ORDER_CREATED),
    (A.DUE, A.DECLINED),
    (A.ORDER_CREATED, A.TOKEN_SET),
    (A.ORDER_CREATED, A.DECLINED),
    (A.TOKEN_SET, A.EXEC_SENT),
    (A.TOKEN_SET, A.DECLINED),
    (A.EXEC_SENT, A.PAID),
    (A.EXEC_SENT, A.DECLINED),
    (A.EXEC_SENT, A.UNKNOWN),
    (A.EXEC_SENT, A.TOKEN_SET),  # refused at the door: nothing ran
    (A.UNKNOWN, A.PAID),
    (A.UNKNOWN, A.DECLINED),
    (A.UNKNOWN, A.TOKEN_SET),  # reconciled as unexecuted: the same order again
}


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(AttemptState)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(AttemptState, AttemptState)))
def test_allowed_is_exactly_the_table(current: AttemptState, new: AttemptState) -> None:
    assert allowed(current, new) is ((current, new) in EXPECTED_EDGES)


def test_final_states_lead_nowhere() -> None:
    assert {A.PAID, A.DECLINED} == FINAL_ATTEMPT_STATES
    for state in FINAL_ATTEMPT_STATES:
        assert TRANSITIONS[state] == frozenset()
    for state in set(AttemptState) - FINAL_ATTEMPT_STATES:
        assert TRANSITIONS[state], f"{state} is not final but has no way out"


def test_paid_is_reached_only_through_exec_sent() -> None:
    """Money moves only by exec-tran, so paid is only entered from a state after it."""
    sources = {s for s, targets in TRANSITIONS.items() if A.PAID in targets}
    assert sources == {A.EXEC_SENT, A.UNKNOWN}


def test_an_order_that_may_have_been_executed_is_never_left_without_reconciling() -> None:
    """From exec_sent or unknown there is no way back to due or order_created (a new order):
    only a definite answer, or "unexecuted", which keeps the same order.
    """
    for state in (A.EXEC_SENT, A.UNKNOWN):
        assert {A.DUE, A.ORDER_CREATED}.isdisjoint(TRANSITIONS[state])


def test_every_state_can_reach_a_final_state() -> None:
    for start in AttemptState:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen & FINAL_ATTEMPT_STATES, start


def test_period_statuses() -> None:
    assert {s.value for s in PeriodStatus} == {"open", "paid", "dead", "skipped"}
    assert set(PeriodStatus) - FINAL_PERIOD_STATUSES == {PeriodStatus.OPEN}


# -- after a decline ------------------------------------------------------------------------

SCHEDULE = (1 * HOUR, 2 * HOUR, 5 * HOUR)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 50])
def test_hard_decline_is_dead_lettered_at_once_and_asks_for_a_new_card(attempt: int) -> None:
    decision = after_decline(DeclineClass.HARD, attempt, NOW, SCHEDULE)
    assert decision == DeadLetter(DeadLetterReason.HARD_DECLINE, SubscriptionStatus.NEEDS_NEW_CARD)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 50])
def test_needs_customer_is_dead_lettered_at_once_and_past_due(attempt: int) -> None:
    decision = after_decline(DeclineClass.NEEDS_CUSTOMER, attempt, NOW, SCHEDULE)
    assert decision == DeadLetter(DeadLetterReason.NEEDS_CUSTOMER, SubscriptionStatus.PAST_DUE)


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1 * HOUR), (2, 2 * HOUR), (3, 5 * HOUR)])
def test_soft_decline_retries_on_the_schedule(attempt: int, delay: int) -> None:
    assert after_decline(DeclineClass.SOFT, attempt, NOW, SCHEDULE) == Retry(NOW + delay)


@pytest.mark.parametrize("attempt", [4, 5, 100])
def test_soft_decline_after_the_schedule_is_exhausted(attempt: int) -> None:
    decision = after_decline(DeclineClass.SOFT, attempt, NOW, SCHEDULE)
    assert decision == DeadLetter(DeadLetterReason.DUNNING_EXHAUSTED, SubscriptionStatus.PAST_DUE)


def test_the_default_schedule_gives_five_attempts_over_sixteen_days() -> None:
    assert DEFAULT_DUNNING_MS == (1 * DAY_MS, 3 * DAY_MS, 5 * DAY_MS, 7 * DAY_MS)
    now, attempts = NOW, 1
    while isinstance(
        decision := after_decline(DeclineClass.SOFT, attempts, now, DEFAULT_DUNNING_MS), Retry
    ):
        assert decision.at_ms > now
        now = decision.at_ms
        attempts += 1
    assert attempts == 5
    assert now == NOW + 16 * DAY_MS
    assert decision.reason is DeadLetterReason.DUNNING_EXHAUSTED


def test_an_empty_schedule_means_no_retries() -> None:
    decision = after_decline(DeclineClass.SOFT, 1, NOW, ())
    assert decision == DeadLetter(DeadLetterReason.DUNNING_EXHAUSTED, SubscriptionStatus.PAST_DUE)


@pytest.mark.parametrize(
    "decline_class", [DeclineClass.UNAVAILABLE, DeclineClass.CREDENTIALS, DeclineClass.UNKNOWN]
)
def test_other_classes_are_never_dead_lettered_as_hard(decline_class: DeclineClass) -> None:
    """The pipeline maps these before asking; the policy itself treats them as soft: it never
    flags a card as needing replacement without a hard decline.
    """
    assert after_decline(decline_class, 1, NOW, SCHEDULE) == Retry(NOW + HOUR)
    exhausted = after_decline(decline_class, 4, NOW, SCHEDULE)
    assert isinstance(exhausted, DeadLetter)
    assert exhausted.subscription_status is not SubscriptionStatus.NEEDS_NEW_CARD


# -- the schedule's syntax ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d,3d,5d,7d", DEFAULT_DUNNING_MS),
        ("2s,2s", (2000, 2000)),
        ("500ms", (500,)),
        ("30m,12h", (30 * 60_000, 12 * HOUR)),
        (" 1d , 3d ", (DAY_MS, 3 * DAY_MS)),
        ("1d,", (DAY_MS,)),
        ("", ()),
        ("   ", ()),
        ("0s", (0,)),
    ],
)
def test_parse_schedule_good(text: str, expected: tuple[int, ...]) -> None:
    assert policy.parse_schedule(text) == expected


@pytest.mark.parametrize(
    "part",
    ["1", "d", "1w", "-1d", "1.5d", "1 d", "1D", "1dd", "d1", "1d3d", "١d", "１d", "1s;2s", "+1s"],
)
def test_parse_schedule_bad(part: str) -> None:
    with pytest.raises(InvalidInput, match="dunning delay") as info:
        policy.parse_schedule(f"1d,{part}")
    assert repr(part.strip()) in str(info.value)


# -- card-network caps ------------------------------------------------------------------------

MINUTE = 60_000
MC = Cap(10, DAY_MS)
VISA = Cap(15, 30 * DAY_MS)


def test_caps_are_the_networks() -> None:
    assert set(CAPS) == {MC, VISA}
    assert KEEP_MS == 30 * DAY_MS


def test_no_history_is_allowed_now() -> None:
    assert next_allowed_at([], NOW) == NOW


def test_nine_attempts_today_allow_a_tenth() -> None:
    times = [NOW - i * MINUTE for i in range(9)]
    assert next_allowed_at(times, NOW) == NOW


def test_ten_attempts_today_wait_for_the_oldest_to_leave_the_day() -> None:
    times = [NOW - i * MINUTE for i in range(10)]
    oldest = NOW - 9 * MINUTE
    allowed_at = next_allowed_at(times, NOW)
    assert allowed_at == oldest + DAY_MS + 1
    assert next_allowed_at(times, allowed_at) == allowed_at


def test_attempts_older_than_the_day_do_not_count_for_the_daily_cap() -> None:
    times = [NOW - DAY_MS - i for i in range(10)]  # all at or before the window's open edge
    assert next_allowed_at(times, NOW) == NOW


def test_fifteen_attempts_in_thirty_days_wait_for_the_oldest() -> None:
    times = [NOW - (i + 1) * 2 * DAY_MS for i in range(14)] + [NOW - HOUR]
    oldest = min(times)
    assert next_allowed_at(times, NOW) == oldest + 30 * DAY_MS + 1


def test_the_later_of_two_caps_wins() -> None:
    # 10 today (daily cap lifts tomorrow) and 15 in 30 days (lifts in 20 days)
    today = [NOW - i * MINUTE for i in range(10)]
    earlier = [NOW - 10 * DAY_MS - i * HOUR for i in range(5)]
    allowed_at = next_allowed_at(today + earlier, NOW)
    assert allowed_at == min(earlier) + 30 * DAY_MS + 1
    assert allowed_at > max(today) + DAY_MS


def test_order_of_history_does_not_matter() -> None:
    times = [NOW - i * MINUTE for i in range(12)]
    assert next_allowed_at(times, NOW) == next_allowed_at(list(reversed(times)), NOW)


def _max_in_any_window(times: list[int], window: int) -> int:
    """The most attempts in any window ``(x - window, x]``: a window ending on an attempt."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered if end - window < t <= end) for end in ordered), default=0)


small_caps = st.lists(
    st.builds(Cap, st.integers(1, 5), st.integers(1, 1_000)), min_size=1, max_size=3
)


@settings(max_examples=200, deadline=None)
@given(
    cap_list=small_caps,
    gaps=st.lists(st.integers(0, 400), min_size=1, max_size=40),
)
def test_greedy_attempts_never_exceed_any_cap(cap_list: list[Cap], gaps: list[int]) -> None:
    """A caller that asks, waits until it is allowed, and attempts then: never more than a
    cap's limit inside any of its windows.
    """
    history: list[int] = []
    now = 0
    for gap in gaps:
        now += gap
        at = next_allowed_at(history, now, cap_list)
        assert at >= now
        assert next_allowed_at(history, at, cap_list) == at  # allowed when it said so
        history.append(at)
        now = at
    for cap in cap_list:
        assert _max_in_any_window(history, cap.window_ms) <= cap.limit


@settings(max_examples=200, deadline=None)
@given(
    cap_list=small_caps,
    history=st.lists(st.integers(0, 3_000), max_size=30),
    now=st.integers(0, 3_000),
)
def test_an_allowed_attempt_keeps_every_window_within_its_limit(
    cap_list: list[Cap], history: list[int], now: int
) -> None:
    """Wherever the history came from: an attempt at the time said keeps every window that
    contains it within the limit (it never adds the one too many).
    """
    history = [t for t in history if t <= now]
    at = next_allowed_at(history, now, cap_list)
    assert at >= now
    for cap in cap_list:
        recent = [t for t in history if at - cap.window_ms < t <= at]
        assert len(recent) + 1 <= cap.limit


@settings(max_examples=200, deadline=None)
@given(
    cap_list=small_caps,
    history=st.lists(st.integers(0, 3_000), max_size=30),
    now=st.integers(0, 3_000),
)
def test_waiting_is_never_longer_than_needed_plus_one_ms(
    cap_list: list[Cap], history: list[int], now: int
) -> None:
    """The time said is the first allowed one, give or take the rounding at the window's edge:
    two milliseconds earlier an attempt would have broken a cap.
    """
    history = [t for t in history if t <= now]
    at = next_allowed_at(history, now, cap_list)
    if at > now:
        earlier = at - 2
        assert any(
            sum(1 for t in history if earlier - c.window_ms < t <= earlier) >= c.limit
            for c in cap_list
        )


def test_module_constants_agree() -> None:
    assert caps.DAY_MS == policy.DAY_MS == 86_400_000
