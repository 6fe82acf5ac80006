"""The forecast lists what falls due in [from, until) for chargeable subscriptions with a
schedule, and its totals are exact sums of minor units, per currency and per UTC day.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedules.forecast import Forecast, Total, forecast, utc
from worker.errors import InvalidInput
from worker.money import Money
from worker.subscriptions import Subscription, SubscriptionStatus

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = 86_400_000


def ms(wall: str, zone: str = "UTC") -> int:
    moment = datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(zone))
    return (moment - EPOCH) // timedelta(milliseconds=1)


def sub(
    sub_id: str = "sub_1",
    amount: str = "9.99",
    currency: str = "AZN",
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    **cadence: str,
) -> Subscription:
    made = Subscription.create(
        id=sub_id, customer="cust_1", stored_id=5125, amount=amount, currency=currency,
        cadence=cadence,
    )  # fmt: skip
    return replace(made, status=status)


def test_monthly_periods_due_in_the_window_with_utc_and_local_times() -> None:
    monthly = sub(cadence="monthly", anchor_day="31", start="2026-01-31", charge_time="09:00")
    result = forecast([monthly], ms("2026-01-01"), ms("2026-05-01"))
    assert [c.period for c in result.charges] == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30",
    ]  # fmt: skip
    first = result.charges[0]
    assert first.due_at_ms == ms("2026-01-31 09:00", "Asia/Baku")
    assert first.due_at == datetime(2026, 1, 31, 5, 0, tzinfo=UTC)
    assert first.due_local.isoformat() == "2026-01-31T09:00:00+04:00"
    assert (first.timezone, first.subscription, first.amount) == (
        "Asia/Baku",
        "sub_1",
        Money(999, "AZN"),
    )
    assert result.totals == (Total("AZN", 4, Money(3996, "AZN")),)
    assert (result.considered, result.skipped, result.warnings) == (1, 0, ())


def test_the_window_is_half_open() -> None:
    daily = sub(cadence="daily", start="2026-03-01", timezone="UTC", charge_time="10:00")
    due = ms("2026-03-05 10:00")
    assert [c.period for c in forecast([daily], due, due + DAY).charges] == ["2026-03-05"]
    assert [c.period for c in forecast([daily], due + 1, due + DAY + 1).charges] == ["2026-03-06"]
    assert forecast([daily], due, due).charges == ()


def test_the_end_date_stops_the_forecast() -> None:
    weekly = sub(cadence="weekly", weekday="mon", start="2026-03-02", end="2026-03-16",
                 timezone="UTC")  # fmt: skip
    result = forecast([weekly], ms("2026-03-01"), ms("2026-04-01"))
    assert [c.period for c in result.charges] == ["2026-03-02", "2026-03-09"]


def test_a_dst_gap_is_due_when_the_clocks_jump() -> None:
    spring = sub(cadence="daily", start="2026-03-08", end="2026-03-09", timezone="America/New_York",
                 charge_time="02:30")  # fmt: skip
    (charge,) = forecast([spring], ms("2026-03-01"), ms("2026-04-01")).charges
    assert charge.due_local.isoformat() == "2026-03-08T03:00:00-04:00"


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        (SubscriptionStatus.ACTIVE, True),
        (SubscriptionStatus.PAST_DUE, True),
        (SubscriptionStatus.PAUSED, False),
        (SubscriptionStatus.NEEDS_NEW_CARD, False),
        (SubscriptionStatus.CANCELLED, False),
    ],
)
def test_only_chargeable_subscriptions_count(status: SubscriptionStatus, counted: bool) -> None:
    daily = sub(status=status, cadence="daily", start="2026-01-01")
    result = forecast([daily], ms("2026-02-01"), ms("2026-02-03"))
    assert len(result.charges) == (2 if counted else 0)
    assert (result.considered, result.skipped) == ((1, 0) if counted else (0, 1))


def test_a_subscription_without_a_schedule_is_skipped() -> None:
    result = forecast([sub()], ms("2026-01-01"), ms("2027-01-01"))
    assert (result.charges, result.considered, result.skipped) == ((), 0, 1)


def test_an_unreadable_cadence_is_a_warning_not_a_crash() -> None:
    good = sub("a_good", cadence="daily", start="2026-01-01")
    bad = replace(sub("b_bad"), cadence={"cadence": "fortnightly", "start": "2026-01-01"})
    result = forecast([bad, good], ms("2026-02-01"), ms("2026-02-02"))
    assert [c.subscription for c in result.charges] == ["a_good"]
    assert [w.subscription for w in result.warnings] == ["b_bad"]
    assert "cadence 'fortnightly' is not one of" in result.warnings[0].reason


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInput, match="ends before it starts"):
        forecast([], 10, 9)


def test_totals_per_day_and_currency_are_exact() -> None:
    subs = [
        sub("a", "0.10", "AZN", cadence="daily", start="2026-01-01", timezone="UTC"),
        sub("b", "0.20", "AZN", cadence="daily", start="2026-01-01", timezone="UTC"),
        sub("c", "0.001", "KWD", cadence="days", interval="2", start="2026-01-01",
            timezone="UTC"),
        sub("d", "7", "JPY", cadence="daily", start="2026-01-01", timezone="Asia/Tokyo"),
    ]  # fmt: skip
    result = forecast(subs, ms("2026-01-01"), ms("2026-01-04"))
    day = {(t.day, t.currency): (t.count, t.amount) for t in result.per_day}
    assert day[(date(2026, 1, 1), "AZN")] == (2, Money(30, "AZN"))  # 0.1 + 0.2 is 0.30
    assert day[(date(2026, 1, 3), "KWD")] == (1, Money(1, "KWD"))  # every 2 days
    assert (date(2026, 1, 2), "KWD") not in day
    # Tokyo midnight is 15:00 UTC the day before: the first Tokyo charge in the window is
    # 2026-01-02 local, on 2026-01-01 UTC.
    assert day[(date(2026, 1, 1), "JPY")] == (1, Money(7, "JPY"))
    assert {t.currency: (t.count, t.amount) for t in result.totals} == {
        "AZN": (6, Money(90, "AZN")),
        "JPY": (3, Money(21, "JPY")),
        "KWD": (2, Money(2, "KWD")),
    }
    assert [t.currency for t in result.totals] == ["AZN", "JPY", "KWD"]
    assert [(t.day, t.currency) for t in result.per_day] == sorted(day)


# properties

_CADENCES = st.one_of(
    st.fixed_dictionaries({"cadence": st.just("daily")}),
    st.fixed_dictionaries({"cadence": st.just("days"), "interval": st.integers(1, 9).map(str)}),
    st.fixed_dictionaries(
        {"cadence": st.just("weekly"), "weekday": st.sampled_from(["mon", "wed", "sun"])}
    ),
    st.fixed_dictionaries(
        {"cadence": st.just("monthly"), "anchor_day": st.integers(1, 31).map(str)}
    ),
)
_SUBS = st.lists(
    st.tuples(
        _CADENCES,
        st.sampled_from(["UTC", "Asia/Baku", "America/New_York", "Pacific/Apia"]),
        st.sampled_from(["AZN", "USD", "KWD", "JPY"]),
        st.integers(1, 10**12),
        st.sampled_from(list(SubscriptionStatus)),
        st.dates(date(2025, 1, 1), date(2026, 12, 31)),
    ),
    max_size=8,
)


def _build(
    n: int, spec: tuple[dict[str, str], str, str, int, SubscriptionStatus, date]
) -> Subscription:
    cadence, zone, currency, minor, status, start = spec
    amount = Money(minor, currency).to_gateway()
    return sub(f"s{n}", amount, currency, status, **cadence, timezone=zone,
               start=start.isoformat())  # fmt: skip


@given(_SUBS, st.integers(ms("2025-01-01"), ms("2027-01-01")), st.integers(0, 90 * DAY))
def test_totals_are_the_exact_sums_of_minor_units(
    specs: list[tuple[dict[str, str], str, str, int, SubscriptionStatus, date]],
    from_ms: int,
    span: int,
) -> None:
    subs = [_build(n, spec) for n, spec in enumerate(specs)]
    result: Forecast = forecast(subs, from_ms, from_ms + span)
    charges = result.charges
    assert all(from_ms <= c.due_at_ms < from_ms + span for c in charges)
    assert [c.due_at_ms for c in charges] == sorted(c.due_at_ms for c in charges)
    chargeable = {s.id for s in subs if s.status.value in ("active", "past_due")}
    assert {c.subscription for c in charges} <= chargeable
    currencies = {c.amount.currency for c in charges}
    expected = {
        cur: sum(c.amount.minor for c in charges if c.amount.currency == cur) for cur in currencies
    }
    assert {t.currency: t.amount.minor for t in result.totals} == expected
    assert {t.currency: t.count for t in result.totals} == {
        cur: sum(1 for c in charges if c.amount.currency == cur) for cur in currencies
    }
    for total in result.totals:
        per_day = [t for t in result.per_day if t.currency == total.currency]
        assert sum(t.amount.minor for t in per_day) == total.amount.minor
        assert sum(t.count for t in per_day) == total.count
        assert all(type(t.amount.minor) is int for t in per_day)
    for t in result.per_day:
        assert t.amount.minor == sum(
            c.amount.minor for c in charges if c.day == t.day and c.amount.currency == t.currency
        )
        assert t.day == utc(min(c.due_at_ms for c in charges if c.day == t.day)).date()
