"""Billing periods: anchors never drift, DST and leap years neither skip nor double a period,
and catch-up after any downtime bills each missed period exactly once.
"""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import worker.periods as periods_module
from worker.errors import InvalidInput
from worker.periods import (
    Cadence,
    CadenceKind,
    CatchUp,
    Period,
    Skip,
    SkipReason,
    apply_pauses,
    cancel_at_period_end,
    catch_up,
    due_and_next,
    due_periods,
    local_instant_ms,
    next_due,
    parse_cadence,
    period_at,
    periods_between,
    plan_due,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = 3_600_000
DAY = 24 * HOUR
ZONES = (
    "Asia/Baku",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Apia",  # skipped 2011-12-30 entirely
    "America/Havana",  # DST changes at midnight: some days have no 00:00
    "UTC",
)


def ms(wall: str, zone: str = "UTC") -> int:
    """An instant from an unambiguous, existing wall time in ``zone``."""
    moment = datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(zone))
    return (moment - EPOCH) // timedelta(milliseconds=1)


def wall(instant_ms: int, zone: str) -> datetime:
    return (EPOCH + timedelta(milliseconds=instant_ms)).astimezone(ZoneInfo(zone))


def keys(found: list[Period]) -> list[str]:
    return [period.key for period in found]


def cadence(**fields: str) -> Cadence:
    return parse_cadence(fields)


ALL_TIME = (ms("1960-01-01"), ms("2200-01-01"))


# --- explicit examples ------------------------------------------------------------------------


def test_monthly_anchor_31_clamps_without_drifting() -> None:
    monthly = cadence(cadence="monthly", anchor_day="31", start="2027-01-31")
    found = list(itertools.islice(periods_between(monthly, *ALL_TIME), 15))
    assert keys(found) == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
        "2027-06-30",
        "2027-07-31",
        "2027-08-31",
        "2027-09-30",
        "2027-10-31",
        "2027-11-30",
        "2027-12-31",
        "2028-01-31",
        "2028-02-29",
        "2028-03-31",
    ]
    assert found[0].end == date(2027, 2, 28)
    assert found[1].end == date(2027, 3, 31)


def test_monthly_anchor_defaults_to_the_start_day() -> None:
    monthly = cadence(cadence="monthly", start="2027-01-30", timezone="UTC")
    assert keys(list(itertools.islice(periods_between(monthly, *ALL_TIME), 3))) == [
        "2027-01-30",
        "2027-02-28",
        "2027-03-30",
    ]


def test_a_start_off_the_anchor_begins_at_the_next_anchor_date() -> None:
    monthly = cadence(cadence="monthly", anchor_day="1", start="2027-01-05")
    assert next(periods_between(monthly, *ALL_TIME)).key == "2027-02-01"
    assert monthly.first_start == date(2027, 2, 1)


def test_yearly_feb_29_anchor_over_2024_to_2030() -> None:
    yearly = cadence(cadence="yearly", anchor="02-29", start="2024-01-01")
    found = list(periods_between(yearly, ALL_TIME[0], ms("2031-01-01")))
    assert keys(found) == [
        "2024-02-29",
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
        "2029-02-28",
        "2030-02-28",
    ]
    assert [p.end for p in found[:2]] == [date(2025, 2, 28), date(2026, 2, 28)]


def test_yearly_anchor_already_past_in_the_start_year_begins_next_year() -> None:
    yearly = cadence(cadence="yearly", anchor="03-15", start="2027-06-01")
    assert next_due(yearly, ALL_TIME[0]) == Period(
        "2028-03-15", date(2028, 3, 15), date(2029, 3, 15), ms("2028-03-15", "Asia/Baku")
    )


def test_every_3_months_keeps_anchor_31() -> None:
    quarterly = cadence(cadence="months", interval="3", anchor_day="31", start="2027-01-31")
    assert keys(list(itertools.islice(periods_between(quarterly, *ALL_TIME), 6))) == [
        "2027-01-31",
        "2027-04-30",
        "2027-07-31",
        "2027-10-31",
        "2028-01-31",
        "2028-04-30",
    ]


def test_weekly_starts_on_the_first_named_weekday() -> None:
    weekly = cadence(cadence="weekly", weekday="mon", start="2027-01-06")  # a Wednesday
    found = list(itertools.islice(periods_between(weekly, *ALL_TIME), 3))
    assert keys(found) == ["2027-01-11", "2027-01-18", "2027-01-25"]
    assert found[0].end == date(2027, 1, 18)


def test_every_10_days() -> None:
    tenth = cadence(cadence="days", interval="10", start="2027-02-25")
    assert keys(list(itertools.islice(periods_between(tenth, *ALL_TIME), 3))) == [
        "2027-02-25",
        "2027-03-07",
        "2027-03-17",
    ]


def test_daily_in_baku_is_due_at_local_midnight() -> None:
    daily = cadence(cadence="daily", start="2027-03-27")  # Baku: UTC+4, no DST since 2016
    found = list(
        periods_between(daily, ms("2027-03-27", "Asia/Baku"), ms("2027-03-30", "Asia/Baku"))
    )
    assert keys(found) == ["2027-03-27", "2027-03-28", "2027-03-29"]
    assert [p.due_at_ms for p in found] == [
        ms("2027-03-26T20:00"),
        ms("2027-03-27T20:00"),
        ms("2027-03-28T20:00"),
    ]


@pytest.mark.parametrize(
    ("zone", "day", "charge_time", "due_utc"),
    [
        # spring forward: the wall time does not exist; due when the clocks jump
        ("America/New_York", "2027-03-14", "02:30", "2027-03-14T07:00"),  # 03:00 EDT
        ("Europe/London", "2027-03-28", "01:30", "2027-03-28T01:00"),  # 02:00 BST
        ("Australia/Lord_Howe", "2027-10-03", "02:15", "2027-10-02T15:30"),  # 02:30 +11
        ("America/Havana", "2027-03-14", "00:00", "2027-03-14T05:00"),  # 01:00 CDT
        # fall back: the wall time happens twice; due at the first
        ("America/New_York", "2027-11-07", "01:30", "2027-11-07T05:30"),  # 01:30 EDT
        ("Europe/London", "2027-10-31", "01:30", "2027-10-31T00:30"),  # 01:30 BST
        ("Australia/Lord_Howe", "2027-04-04", "01:45", "2027-04-03T14:45"),  # 01:45 +11
        # ordinary days around them
        ("America/New_York", "2027-03-13", "02:30", "2027-03-13T07:30"),
        ("America/New_York", "2027-03-15", "02:30", "2027-03-15T06:30"),
    ],
)
def test_daily_due_instants_across_dst(zone: str, day: str, charge_time: str, due_utc: str) -> None:
    daily = cadence(cadence="daily", start="2027-01-01", timezone=zone, charge_time=charge_time)
    period = next_due(daily, ms(day, zone) - 1)
    assert period is not None
    assert period.key == day
    assert period.due_at_ms == ms(due_utc)


def test_a_day_samoa_skipped_is_still_one_period_due_with_the_next() -> None:
    daily = cadence(cadence="daily", start="2011-12-28", timezone="Pacific/Apia")
    found = list(itertools.islice(periods_between(daily, *ALL_TIME), 5))
    assert keys(found) == ["2011-12-28", "2011-12-29", "2011-12-30", "2011-12-31", "2012-01-01"]
    assert found[2].due_at_ms == found[3].due_at_ms == ms("2011-12-31", "Pacific/Apia")
    current = period_at(daily, found[3].due_at_ms)
    assert current is not None
    assert current.key == "2011-12-31"  # the skipped day is never "current"
    jump = found[2].due_at_ms
    assert keys(list(periods_between(daily, jump, jump + 1))) == ["2011-12-30", "2011-12-31"]
    assert next_due(daily, jump - 1) == found[2]


def test_cron_first_of_month_at_nine_in_baku() -> None:
    cron = cadence(cadence="cron", expr="0 9 1 * *", start="2027-01-01")
    found = list(periods_between(cron, ALL_TIME[0], ms("2027-04-01")))
    assert keys(found) == ["2027-01-01", "2027-02-01", "2027-03-01"]
    assert [p.end for p in found] == [date(2027, 2, 1), date(2027, 3, 1), date(2027, 4, 1)]
    assert [p.due_at_ms for p in found] == [
        ms("2027-01-01T05:00"),
        ms("2027-02-01T05:00"),
        ms("2027-03-01T05:00"),
    ]


def test_cron_follows_the_dst_rule_not_apscheduler_in_the_zone() -> None:
    # In the zone, APScheduler 3 fires at 03:30 on the spring-forward day and twice on the
    # fall-back day; on the floating calendar there is one period a day, by our rule.
    cron = cadence(cadence="cron", expr="30 1 * * *", start="2027-03-13", timezone="Europe/London")
    spring = list(periods_between(cron, ms("2027-03-27"), ms("2027-03-30")))
    assert [wall(p.due_at_ms, "Europe/London").strftime("%d %H:%M") for p in spring] == [
        "27 01:30",
        "28 02:00",
        "29 01:30",
    ]
    autumn = list(periods_between(cron, ms("2027-10-30"), ms("2027-11-02")))
    assert keys(autumn) == ["2027-10-30", "2027-10-31", "2027-11-01"]
    assert autumn[1].due_at_ms == ms("2027-10-31T00:30")


def test_cron_weekdays_by_name_and_last_day_of_month() -> None:
    weekdays = cadence(cadence="cron", expr="0 9 * * mon-fri", start="2027-01-01", timezone="UTC")
    found = list(periods_between(weekdays, ALL_TIME[0], ms("2027-01-08")))
    assert keys(found) == ["2027-01-01", "2027-01-04", "2027-01-05", "2027-01-06", "2027-01-07"]
    assert found[0].end == date(2027, 1, 4)
    month_end = cadence(cadence="cron", expr="0 0 last * *", start="2028-01-01", timezone="UTC")
    assert keys(list(itertools.islice(periods_between(month_end, *ALL_TIME), 2))) == [
        "2028-01-31",
        "2028-02-29",
    ]


def test_sparse_cron_finds_the_current_period_years_back() -> None:
    leap_days = cadence(cadence="cron", expr="0 12 29 2 *", start="2001-01-01", timezone="UTC")
    current = period_at(leap_days, ms("2031-06-01"))
    assert current == Period(
        "2028-02-29", date(2028, 2, 29), date(2032, 2, 29), ms("2028-02-29T12")
    )


def test_trial_moves_the_first_charged_period_to_trial_end() -> None:
    trial = cadence(cadence="monthly", start="2027-01-01", trial_end="2027-01-15")
    assert keys(list(itertools.islice(periods_between(trial, *ALL_TIME), 2))) == [
        "2027-01-15",
        "2027-02-15",
    ]
    anchored = cadence(
        cadence="monthly", anchor_day="1", start="2027-01-01", trial_end="2027-01-15"
    )
    assert keys(list(itertools.islice(periods_between(anchored, *ALL_TIME), 1))) == ["2027-02-01"]
    assert period_at(trial, ms("2027-01-10", "Asia/Baku")) is None  # in the trial: no period


def test_end_stops_new_periods_and_the_last_keeps_its_natural_end() -> None:
    ending = cadence(cadence="monthly", anchor_day="1", start="2027-01-01", end="2027-03-15")
    found = list(periods_between(ending, *ALL_TIME))
    assert keys(found) == ["2027-01-01", "2027-02-01", "2027-03-01"]
    assert found[-1].end == date(2027, 4, 1)
    assert period_at(ending, ms("2027-03-31T12", "Asia/Baku")) == found[-1]
    assert period_at(ending, ms("2027-04-01", "Asia/Baku")) is None
    assert next_due(ending, ms("2027-03-02")) is None
    on_a_start = cadence(cadence="monthly", anchor_day="1", start="2027-01-01", end="2027-03-01")
    assert keys(list(periods_between(on_a_start, *ALL_TIME))) == ["2027-01-01", "2027-02-01"]


def test_period_at_runs_from_due_instant_to_due_instant() -> None:
    nine = cadence(cadence="monthly", anchor_day="1", start="2027-01-01", charge_time="09:00")
    assert period_at(nine, ms("2027-01-01T08:59", "Asia/Baku")) is None
    january = period_at(nine, ms("2027-01-01T09:00", "Asia/Baku"))
    assert january is not None
    assert january.key == "2027-01-01"
    before_nine = period_at(nine, ms("2027-02-01T08:59:59.999", "Asia/Baku"))
    assert before_nine == january
    february = period_at(nine, ms("2027-02-01T09:00", "Asia/Baku"))
    assert february is not None
    assert february.key == "2027-02-01"


def test_next_due_is_strictly_after() -> None:
    monthly = cadence(cadence="monthly", anchor_day="1", start="2027-01-01")
    first = next_due(monthly, ALL_TIME[0])
    assert first is not None
    assert first.key == "2027-01-01"
    second = next_due(monthly, first.due_at_ms)
    assert second is not None
    assert second.key == "2027-02-01"
    assert next_due(monthly, first.due_at_ms - 1) == first


def test_cancel_at_period_end() -> None:
    monthly = cadence(cadence="monthly", anchor_day="1", start="2027-01-01")
    assert cancel_at_period_end(monthly, ms("2027-03-15", "Asia/Baku")) == date(2027, 4, 1)
    assert cancel_at_period_end(monthly, ms("2026-12-15", "Asia/Baku")) == date(2027, 1, 1)
    # cancelled at the instant March falls due: March is due now, so it is charged and kept
    assert cancel_at_period_end(monthly, ms("2027-03-01", "Asia/Baku")) == date(2027, 4, 1)
    ended = cadence(cadence="monthly", anchor_day="1", start="2027-01-01", end="2027-02-10")
    assert cancel_at_period_end(ended, ms("2030-01-01")) == date(2027, 2, 10)


def test_due_periods_resumes_after_the_last_billed_key() -> None:
    monthly = cadence(cadence="monthly", anchor_day="31", start="2027-01-31", timezone="UTC")
    now = ms("2027-06-15")
    assert keys(due_periods(monthly, None, now)) == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
    ]
    assert keys(due_periods(monthly, "2027-03-31", now)) == ["2027-04-30", "2027-05-31"]
    assert keys(due_periods(monthly, "2027-04-15", now)) == ["2027-04-30", "2027-05-31"]
    assert due_periods(monthly, "2027-05-31", now) == []
    assert keys(due_periods(monthly, "2027-05-31", ms("2027-06-30"))) == ["2027-06-30"]
    with pytest.raises(InvalidInput, match="period"):
        due_periods(monthly, "2027-13-01", now)


def test_next_due_does_not_scan_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monthly = cadence(cadence="monthly", anchor_day="31", start="1970-01-31")
    calls = 0
    real = periods_module.local_instant_ms

    def counting(day: date, at: time, zone: ZoneInfo) -> int:
        nonlocal calls
        calls += 1
        return real(day, at, zone)

    monkeypatch.setattr(periods_module, "local_instant_ms", counting)
    found = next_due(monthly, ms("2099-12-15"))
    assert found is not None
    assert found.key == "2099-12-31"
    assert calls <= 4


# --- catch-up and pauses ----------------------------------------------------------------------


MONTHLY = parse_cadence({"cadence": "monthly", "anchor_day": "1", "start": "2027-01-01"})
FIVE = list(periods_between(MONTHLY, ALL_TIME[0], ms("2027-05-15")))


def test_catch_up_all_and_latest() -> None:
    assert catch_up(FIVE, "all").charge == tuple(FIVE)
    assert catch_up(FIVE, "all").skipped == ()
    latest = catch_up(reversed(FIVE), CatchUp.LATEST)
    assert latest.charge == (FIVE[-1],)
    assert latest.skipped == tuple(Skip(p, SkipReason.MISSED) for p in FIVE[:-1])
    assert catch_up([], "latest").charge == ()
    with pytest.raises(InvalidInput, match="policy"):
        catch_up(FIVE, "some")


def test_pauses_skip_periods_due_inside_them() -> None:
    march, april = FIVE[2].due_at_ms, FIVE[3].due_at_ms
    plan = apply_pauses(FIVE, [(march, april)])  # resumed exactly when April fell due
    assert keys(list(plan.charge)) == ["2027-01-01", "2027-02-01", "2027-04-01", "2027-05-01"]
    assert plan.skipped == (Skip(FIVE[2], SkipReason.PAUSED),)
    still_paused = apply_pauses(FIVE, [(march - 1, None)])
    assert [s.period.key for s in still_paused.skipped] == [
        "2027-03-01",
        "2027-04-01",
        "2027-05-01",
    ]
    with pytest.raises(InvalidInput, match="resumed_at"):
        apply_pauses(FIVE, [(april, march)])


def test_plan_due_applies_pauses_then_policy() -> None:
    march = FIVE[2].due_at_ms
    plan = plan_due(
        MONTHLY, "2027-01-01", ms("2027-05-15"), pauses=[(march, march + 1)], policy="latest"
    )
    assert plan.charge == (FIVE[4],)
    assert [(s.period.key, s.reason) for s in plan.skipped] == [
        ("2027-02-01", SkipReason.MISSED),
        ("2027-03-01", SkipReason.PAUSED),
        ("2027-04-01", SkipReason.MISSED),
    ]


# --- invalid input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"cadence": "fortnightly"}, "cadence 'fortnightly'"),
        ({}, "cadence None"),
        ({"cadence": "monthly", "anchor_day": "0"}, "anchor_day"),
        ({"cadence": "monthly", "anchor_day": "32"}, "anchor_day"),
        ({"cadence": "monthly", "anchor_day": "-1"}, "anchor_day"),
        ({"cadence": "monthly", "anchor_day": "٣"}, "anchor_day"),
        ({"cadence": "months", "interval": "0"}, "interval"),
        ({"cadence": "months"}, "interval"),
        ({"cadence": "days", "interval": "0"}, "interval"),
        ({"cadence": "days", "interval": "1.5"}, "interval"),
        ({"cadence": "yearly", "anchor": "02-30"}, "anchor"),
        ({"cadence": "yearly", "anchor": "13-01"}, "anchor"),
        ({"cadence": "yearly", "anchor": "2-1"}, "anchor"),
        ({"cadence": "weekly", "weekday": "funday"}, "weekday"),
        ({"cadence": "daily", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cadence": "daily", "timezone": "../../etc/passwd"}, "timezone"),
        ({"cadence": "daily", "timezone": ""}, "timezone"),
        ({"cadence": "daily", "charge_time": "24:00"}, "charge_time"),
        ({"cadence": "daily", "charge_time": "9:00"}, "charge_time"),
        ({"cadence": "daily", "start": "2027-02-30"}, "start"),
        ({"cadence": "daily", "start": "20270101"}, "start"),
        ({"cadence": "daily", "start": "0001-01-01"}, "start .* out of range"),
        ({"cadence": "daily", "end": "9999-12-31"}, "end .* out of range"),
        ({"cadence": "daily", "end": "2026-12-31"}, "end"),
        ({"cadence": "daily", "trial_end": "2026-12-31"}, "trial_end"),
        ({"cadence": "daily", "anchor_day": "1"}, "'anchor_day' is not used"),
        ({"cadence": "monthly", "anchorday": "1"}, "'anchorday' is not used"),
        ({"cadence": "cron", "expr": "0 9 1 * *", "charge_time": "09:00"}, "charge_time"),
        ({"cadence": "cron"}, "expr"),
        ({"cadence": "cron", "expr": "0 9 1 *"}, "expr"),
        ({"cadence": "cron", "expr": "0 9 32 * *"}, "expr"),
        ({"cadence": "cron", "expr": "0 9 1 foo *"}, "expr"),
        ({"cadence": "cron", "expr": "*/30 9 * * *"}, "expr"),
        ({"cadence": "cron", "expr": "0 9,17 * * *"}, "expr"),
        ({"cadence": "cron", "expr": "0 9 * * 1"}, "expr"),
        ({"cadence": "cron", "expr": "0 9 31 2 *"}, "never"),
    ],
)
def test_invalid_cadences_name_the_field(fields: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        parse_cadence({"start": "2027-01-01", **fields})


def test_start_is_required() -> None:
    with pytest.raises(InvalidInput, match="start"):
        parse_cadence({"cadence": "daily"})


def test_defaults() -> None:
    parsed = cadence(cadence="monthly", start="2027-01-31")
    assert parsed.kind is CadenceKind.MONTHLY
    assert parsed.zone == ZoneInfo("Asia/Baku")
    assert parsed.charge_time == time(0, 0)
    assert (parsed.trial_end, parsed.end) == (None, None)
    cron = cadence(cadence="cron", expr="45 7 * * *", start="2027-01-31")
    assert cron.charge_time == time(7, 45)


# --- properties -------------------------------------------------------------------------------
#
# Each example is a random cadence and an instant relative to its start (up to 45 years on),
# and looks at a window that holds a few dozen periods, so 100 examples stay fast.

CRON_DAYS = ("* * *", "1 * *", "*/10 * *", "15 */2 *", "* * sat,sun", "29 2 *", "last * *")


@st.composite
def cadences(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(st.sampled_from(list(CadenceKind)))
    start = draw(st.dates(date(1970, 1, 1), date(2095, 12, 31)))
    hour, minute = draw(st.integers(0, 3) | st.integers(0, 23)), draw(st.integers(0, 59))
    fields = {"cadence": kind.value, "timezone": draw(st.sampled_from(ZONES))}
    fields["start"] = start.isoformat()
    if kind is CadenceKind.CRON:
        fields["expr"] = f"{minute} {hour} {draw(st.sampled_from(CRON_DAYS))}"
    else:
        fields["charge_time"] = f"{hour:02}:{minute:02}"
    if kind in (CadenceKind.MONTHLY, CadenceKind.MONTHS):
        fields["anchor_day"] = str(draw(st.sampled_from((28, 29, 30, 31)) | st.integers(1, 31)))
    if kind in (CadenceKind.MONTHS, CadenceKind.DAYS):
        fields["interval"] = str(draw(st.integers(1, 40)))
    if kind is CadenceKind.YEARLY:
        month = draw(st.integers(1, 12))
        day = draw(st.integers(1, calendar.monthrange(2000, month)[1]))  # 2000: leap
        fields["anchor"] = draw(st.sampled_from(("02-29", f"{month:02}-{day:02}")))
    if kind is CadenceKind.WEEKLY:
        fields["weekday"] = draw(st.sampled_from(("mon", "tue", "wed", "thu", "fri", "sat", "sun")))
    if draw(st.booleans()):
        fields["trial_end"] = (start + timedelta(days=draw(st.integers(0, 90)))).isoformat()
    return fields


Offsets = st.integers(-60 * DAY, 45 * 365 * DAY)
SAMOA = {"cadence": "daily", "timezone": "Pacific/Apia", "start": "2011-12-01"}
LEAP_NIGHT = {
    "cadence": "months",
    "interval": "1",
    "anchor_day": "29",
    "start": "2028-01-29",
    "timezone": "Europe/London",
}


def _instant(fields: dict[str, str], offset: int) -> int:
    return ms(fields["start"]) + offset


def _window(fields: dict[str, str]) -> int:
    """A span that holds a few dozen periods."""
    days = {"daily": 60, "weekly": 400, "days": 1500, "cron": 800}
    return days.get(fields["cadence"], 5000) * DAY


def _step_ok(parsed: Cadence, fields: dict[str, str], period: Period) -> bool:
    """The start is a step of the cadence counted from its first period: anchors never drift."""
    first = parsed.first_start
    kind = parsed.kind
    if kind is CadenceKind.CRON:
        return True
    if kind in (CadenceKind.DAILY, CadenceKind.DAYS, CadenceKind.WEEKLY):
        step = {CadenceKind.DAILY: 1, CadenceKind.WEEKLY: 7}.get(kind) or int(fields["interval"])
        return (period.start - first).days % step == 0
    step = 12 if kind is CadenceKind.YEARLY else int(fields.get("interval", "1"))
    months = (period.start.year - first.year) * 12 + period.start.month - first.month
    anchor = int(fields["anchor"][3:]) if kind is CadenceKind.YEARLY else int(fields["anchor_day"])
    last_day = calendar.monthrange(period.start.year, period.start.month)[1]
    return months % step == 0 and period.start.day == min(anchor, last_day)


def _skipped_day(period: Period, zone: str) -> bool:
    """True when the zone never showed the period's start date on its wall clock."""
    before, after = wall(period.due_at_ms - 1, zone).date(), wall(period.due_at_ms, zone).date()
    return before < period.start < after


@given(cadences(), Offsets)
@example(SAMOA, 20 * DAY)
@example(LEAP_NIGHT, -DAY)
def test_periods_are_contiguous_increasing_and_on_the_grid(
    fields: dict[str, str], offset: int
) -> None:
    parsed = parse_cadence(fields)
    t = _instant(fields, offset)
    found = list(periods_between(parsed, t, t + _window(fields)))
    zone = fields["timezone"]
    for period in found:
        assert period.key == period.start.isoformat()
        assert period.start < period.end
        assert period.start >= parsed.first_start
        assert _step_ok(parsed, fields, period)
        local = wall(period.due_at_ms, zone)
        assert local.date() == period.start or _skipped_day(period, zone)
        assert local.time() >= parsed.charge_time or local.date() > period.start
    for earlier, later in itertools.pairwise(found):
        assert earlier.end == later.start  # contiguous: no gap, no overlap
        assert earlier.key < later.key
        assert earlier.due_at_ms < later.due_at_ms or (
            earlier.due_at_ms == later.due_at_ms and _skipped_day(earlier, zone)
        )


@given(cadences(), Offsets, st.integers(0, 1000), st.integers(0, 1000))
def test_windows_split_without_losing_or_doubling(
    fields: dict[str, str], offset: int, cut: int, length: int
) -> None:
    """Adjacent windows (two schedulers, a restart) add up to the whole, period for period."""
    parsed = parse_cadence(fields)
    a = _instant(fields, offset)
    c = a + _window(fields) * length // 1000
    b = a + (c - a) * cut // 1000
    whole = list(periods_between(parsed, a, c))
    assert whole == list(periods_between(parsed, a, b)) + list(periods_between(parsed, b, c))


@given(cadences(), Offsets)
@example(SAMOA, ms("2011-12-30T10:00") - ms("2011-12-01"))
def test_period_at_and_next_due_agree(fields: dict[str, str], offset: int) -> None:
    parsed = parse_cadence(fields)
    t = _instant(fields, offset)
    current, upcoming = period_at(parsed, t), next_due(parsed, t)
    assert upcoming is not None
    assert upcoming.due_at_ms > t
    if current is None:
        assert upcoming.start == parsed.first_start
        return
    assert current.due_at_ms <= t
    assert upcoming.start == current.end
    assert list(periods_between(parsed, current.due_at_ms, upcoming.due_at_ms))[-1] == current


@given(cadences(), Offsets, st.lists(st.integers(0, 1000), min_size=1, max_size=6))
def test_catch_up_after_downtime_bills_each_period_exactly_once(
    fields: dict[str, str], offset: int, downtimes: list[int]
) -> None:
    """A worker that wakes after arbitrary downtimes bills every period due, each once."""
    parsed = parse_cadence(fields)
    since = _instant(fields, offset)
    last = period_at(parsed, since)
    first_billed = [] if last is None else [last.key]
    billed = list(first_billed)
    now = since
    for downtime in downtimes:
        now += _window(fields) * downtime // 1000
        billed += keys(due_periods(parsed, billed[-1] if billed else None, now))
    expected = first_billed + keys(list(periods_between(parsed, since + 1, now + 1)))
    if last is None:
        expected = keys(list(periods_between(parsed, ms("1960-01-01"), now + 1)))
    assert billed == expected
    assert len(billed) == len(set(billed))


@given(cadences(), Offsets)
def test_cancel_at_period_end_keeps_what_is_due_and_nothing_after(
    fields: dict[str, str], offset: int
) -> None:
    parsed = parse_cadence(fields)
    t = _instant(fields, offset)
    ended = parse_cadence({**fields, "end": cancel_at_period_end(parsed, t).isoformat()})
    since = t - _window(fields)
    assert list(periods_between(ended, since, t + 1)) == list(periods_between(parsed, since, t + 1))
    assert next_due(ended, t) is None


@given(cadences(), Offsets, st.integers(0, 1000), st.sampled_from(("all", "latest")))
def test_plans_account_for_every_due_period(
    fields: dict[str, str], offset: int, pause: int, policy: str
) -> None:
    parsed = parse_cadence(fields)
    t = _instant(fields, offset)
    now = t + _window(fields)
    current = period_at(parsed, t)
    last = None if current is None else current.key
    due = due_periods(parsed, last, now)
    paused = (t, t + _window(fields) * pause // 1000)
    plan = plan_due(parsed, last, now, pauses=[paused], policy=policy)
    recorded = sorted(keys(list(plan.charge)) + [s.period.key for s in plan.skipped])
    assert recorded == keys(due)
    assert all(not paused[0] <= p.due_at_ms < paused[1] for p in plan.charge)
    assert all(
        paused[0] <= s.period.due_at_ms < paused[1] for s in plan.skipped if s.reason == "paused"
    )
    if policy == "latest":
        assert len(plan.charge) <= 1


@given(cadences(), Offsets, st.integers(-1000, 1000), st.integers(0, 1000) | st.none())
@example(SAMOA, ms("2011-12-29T10:00") - ms("2011-12-01"), 400, None)
def test_due_and_next_is_due_periods_and_next_due(
    fields: dict[str, str], offset: int, cursor_at: int, end_at: int | None
) -> None:
    """The sweep's one walk answers what the two functions answer, cursor behind or ahead
    of now, with or without an end."""
    t = _instant(fields, offset)
    if end_at is not None:
        end = wall(t + _window(fields) * end_at // 1000, "UTC").date()
        fields = {**fields, "end": max(end, date.fromisoformat(fields["start"])).isoformat()}
    parsed = parse_cadence(fields)
    cursor = period_at(parsed, t + _window(fields) * cursor_at // 2000)
    last = None if cursor is None else cursor.key
    assert due_and_next(parsed, last, t) == (due_periods(parsed, last, t), next_due(parsed, t))


#: Days on which the zones above change their offset, so the DST paths are hit every run.
TRANSITION_DAYS = [
    date(2027, 3, 14),  # New York, Havana: spring forward
    date(2027, 11, 7),  # New York, Havana: fall back
    date(2027, 3, 28),  # London: spring forward
    date(2027, 10, 31),  # London: fall back
    date(2027, 10, 3),  # Lord Howe: +30 minutes
    date(2027, 4, 4),  # Lord Howe: -30 minutes
    date(2015, 3, 29),  # Baku's last spring forward
    date(2014, 10, 26),  # Baku: fall back
    date(2011, 12, 30),  # Samoa: the day that never was
    date(2010, 9, 26),  # Samoa: DST begins
]
Days = st.sampled_from(TRANSITION_DAYS) | st.dates(date(1970, 1, 1), date(2100, 12, 31))
Times = st.builds(time, st.integers(0, 3) | st.integers(0, 23), st.integers(0, 59))


@given(st.sampled_from(ZONES), Days, Times)
@example("America/New_York", date(2027, 3, 14), time(2, 30))
@example("Pacific/Apia", date(2011, 12, 30), time(12, 0))
def test_local_instant_rule(zone: str, day: date, at: time) -> None:
    """An existing wall time is that instant (the first, if twice); a missing one, the jump."""
    tz = ZoneInfo(zone)
    instant = local_instant_ms(day, at, tz)
    asked = datetime.combine(day, at)
    first = asked.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == asked:
        assert instant == (first - EPOCH) // timedelta(milliseconds=1)
    else:
        seen_before = wall(instant - 1000, zone).replace(tzinfo=None)
        seen_after = wall(instant, zone).replace(tzinfo=None)
        assert seen_before < asked < seen_after
