"""The sweep's pure decisions: whatever the times the scheduler looks at a subscription,
every due period is recorded exactly once (opened or skipped), in order."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedules.plan import decide, stored_cadence
from worker.periods import CatchUp, due_periods, parse_cadence
from worker.subscriptions import Subscription, SubscriptionStatus

T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
DAY = 86_400_000

cadences = st.sampled_from(
    [
        {"cadence": "daily", "start": "2026-01-01", "timezone": "America/New_York"},
        {"cadence": "monthly", "start": "2026-01-31", "timezone": "Asia/Baku"},
        {"cadence": "weekly", "start": "2026-01-03", "weekday": "sun", "timezone": "Europe/London"},
        {"cadence": "days", "interval": "3", "start": "2026-01-02", "charge_time": "02:30"},
        {"cadence": "cron", "expr": "0 9 * * mon-fri", "start": "2026-01-01"},
        {"cadence": "yearly", "anchor": "02-29", "start": "2024-02-29", "timezone": "UTC"},
    ]
)


def sub_with(cadence: dict[str, str], **changes: object) -> Subscription:
    sub = Subscription.create(
        id="sub_1", customer="c", stored_id=5125, amount="9.99", currency="AZN", cadence=cadence
    )
    return replace(sub, **changes)  # type: ignore[arg-type]


def run(sub: Subscription, times: list[int], policy: CatchUp) -> tuple[list[str], list[str]]:
    """Look at ``sub`` at each time, applying each decision's cursor; returns (open, skip)."""
    opened: list[str] = []
    skipped: list[str] = []
    for now in times:
        decision = decide(sub, str(sub.updated_at), now, policy, max_periods=7)
        opened += [f["period"] for f in decision.open]
        skipped += [str(f["period"]) for f in decision.skip]
        sub = replace(sub, cursor=decision.cursor_after)
        assert decision.next_at > now or decision.next_at == now  # never in the past
    return opened, skipped


looks = st.lists(st.integers(0, 400 * DAY), min_size=1, max_size=12).map(
    lambda offsets: sorted(T0 + o for o in offsets)
)


@given(cadences, looks)
def test_every_due_period_is_opened_once_in_order(
    cadence: dict[str, str], times: list[int]
) -> None:
    sub = sub_with(cadence)
    # look again at the last time until nothing is left (a long catch-up takes steps of 7)
    opened, skipped = run(sub, times + [times[-1]] * 80, CatchUp.ALL)
    expected = [p.key for p in due_periods(parse_cadence(cadence), None, times[-1])]
    assert opened == expected
    assert skipped == []


@given(cadences, looks)
def test_latest_policy_records_every_period_once(cadence: dict[str, str], times: list[int]) -> None:
    opened, skipped = run(sub_with(cadence), times + [times[-1]] * 80, CatchUp.LATEST)
    expected = [p.key for p in due_periods(parse_cadence(cadence), None, times[-1])]
    assert sorted(opened + skipped) == expected
    assert not set(opened) & set(skipped)


@given(cadences, looks, st.integers(0, 400 * DAY), st.integers(0, 60 * DAY))
def test_periods_due_in_a_pause_are_skipped_and_no_others(
    cadence: dict[str, str], times: list[int], pause_at: int, pause_for: int
) -> None:
    span = (T0 + pause_at, T0 + pause_at + pause_for)
    sub = sub_with(cadence, pauses=(span,))
    opened, skipped = run(sub, times + [times[-1]] * 80, CatchUp.ALL)
    due = due_periods(parse_cadence(cadence), None, times[-1])
    assert skipped == [p.key for p in due if span[0] <= p.due_at_ms < span[1]]
    assert opened == [p.key for p in due if not span[0] <= p.due_at_ms < span[1]]


@given(cadences, st.sampled_from([SubscriptionStatus.CANCELLED, SubscriptionStatus.NEEDS_NEW_CARD]))
def test_cancelled_and_card_less_subscriptions_are_parked(
    cadence: dict[str, str], status: SubscriptionStatus
) -> None:
    decision = decide(sub_with(cadence, status=status), "1", T0 + 500 * DAY)
    assert (list(decision.open), list(decision.skip), decision.next_at) == ([], [], math.inf)
    assert decision.cursor_after == decision.cursor_before


def test_no_cadence_means_never_due() -> None:
    decision = decide(sub_with({}), "1", T0)
    assert (list(decision.open), decision.next_at) == ([], math.inf)


def test_an_ended_subscription_is_never_due_again() -> None:
    cadence = {"cadence": "daily", "start": "2026-01-01", "end": "2026-01-03", "timezone": "UTC"}
    decision = decide(sub_with(cadence), "1", T0 + 10 * DAY)
    assert [f["period"] for f in decision.open] == ["2026-01-01", "2026-01-02"]
    assert decision.next_at == math.inf


def test_stored_cadences_are_parsed_once_per_text() -> None:
    sub = sub_with({"cadence": "daily", "start": "2026-01-01", "timezone": "UTC"})
    text = sub.to_hash()["cadence"]
    assert isinstance(text, str)
    parsed = stored_cadence(text)
    assert parsed == parse_cadence(sub.cadence)
    assert stored_cadence(text) is parsed  # cached on the text
    now = T0 + 3 * DAY
    assert decide(sub, "1", now, cadence=parsed) == decide(sub, "1", now)


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"cadence":"hourly","start":"2026-01-01"}', '{"cadence":"daily"}']
)
def test_a_stored_cadence_that_does_not_parse_is_none(text: str) -> None:
    assert stored_cadence(text) is None
