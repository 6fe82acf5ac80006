"""Payout schedules from TOML: strict validation naming the schedule and the field, and the
instants a schedule fires in a window (catch-up), across DST changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConfigurationError
from worker.money import Money
from worker.payouts.config import (
    ENV,
    PayoutSchedule,
    fire_times,
    load_schedules,
    parse_schedules,
)
from worker.payouts.runs import RunLimits

EXAMPLE = """
[[schedule]]
name = "sellers-weekdays"
cron = "0 18 * * mon-fri"      # minute hour day month day-of-week (names for weekdays)
timezone = "Asia/Baku"
tag = "sellers"                # optional: only payouts with this tag
max_count = 500                # optional
max_total = { AZN = "10000.00", USD = "2000.00" }   # optional, exact decimals as strings
approval = false               # optional: wait for `billing payouts approve RUN`

[[schedule]]
name = "everyone-monthly"
cron = "30 9 1 * *"
timezone = "UTC"
approval = true
"""


def ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def utc(instant: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=instant)


def schedule(cron: str, timezone: str = "Asia/Baku") -> PayoutSchedule:
    (one,) = parse_schedules(f'[[schedule]]\nname = "s"\ncron = "{cron}"\ntimezone = "{timezone}"')
    return one


def test_the_example_file() -> None:
    sellers, monthly = parse_schedules(EXAMPLE)
    assert sellers == PayoutSchedule(
        name="sellers-weekdays",
        cron="0 18 * * mon-fri",
        timezone="Asia/Baku",
        tag="sellers",
        limits=RunLimits(500, {"AZN": Money(1_000_000, "AZN"), "USD": Money(200_000, "USD")}),
        approval=False,
    )
    assert (monthly.tag, monthly.limits, monthly.approval) == (None, RunLimits(), True)
    assert isinstance(sellers.trigger(), CronTrigger)
    assert sellers.zone() == ZoneInfo("Asia/Baku")
    assert sellers.run_id(ms(datetime(2026, 1, 5, 14, tzinfo=UTC))) == (
        "sellers-weekdays-20260105T1400Z"
    )


def test_load_from_the_environment(tmp_path: Path) -> None:
    assert load_schedules({}) == ()
    assert load_schedules({ENV: ""}) == ()
    path = tmp_path / "payouts.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert [s.name for s in load_schedules({ENV: str(path)})] == [
        "sellers-weekdays",
        "everyone-monthly",
    ]
    with pytest.raises(ConfigurationError, match=f"{ENV}: cannot read"):
        load_schedules({ENV: str(tmp_path / "missing.toml")})
    path.write_bytes(b'[[schedule]]\nname = "\xff"')
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        load_schedules({ENV: str(path)})
    assert parse_schedules("") == ()


BASE = 'name = "s"\ncron = "0 18 * * mon-fri"\ntimezone = "Asia/Baku"\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{BASE}colour = 1", "schedule 's': colour: unknown key (allowed: name, cron"),
        ('cron = "0 18 * * *"\ntimezone = "UTC"', "schedule #1: name: missing"),
        ('name = "s"\ntimezone = "UTC"', "schedule 's': cron: missing"),
        ('name = "s"\ncron = "0 18 * * *"', "schedule 's': timezone: missing"),
        ('name = "a:b"\ncron = "0 18 * * *"\ntimezone = "UTC"', "name: schedule name 'a:b' is"),
        ('name = "manual"\ncron = "0 18 * * *"\ntimezone = "UTC"', "is reserved"),
        ('name = 5\ncron = "0 18 * * *"\ntimezone = "UTC"', "schedule #1: name: schedule name"),
        ('name = "s"\ncron = "0 18 * * *"\ntimezone = "Mars/Base"', "timezone: 'Mars/Base' is not"),
        ('name = "s"\ncron = "0 18 * * *"\ntimezone = "../etc"', "timezone: '../etc' is not an"),
        ('name = "s"\ncron = "0 18 * * 1-5"\ntimezone = "UTC"', "name the days of the week"),
        ('name = "s"\ncron = "0 18 * * */2"\ntimezone = "UTC"', "name the days of the week"),
        ('name = "s"\ncron = "0 18 * *"\ntimezone = "UTC"', "cron: '0 18 * *' needs 5 fields"),
        ('name = "s"\ncron = "61 18 * * *"\ntimezone = "UTC"', "cron: '61 18 * * *' is invalid"),
        ('name = "s"\ncron = "0 0 30 feb *"\ntimezone = "UTC"', "cron: '0 0 30 feb *' never"),
        ('name = "s"\ncron = 5\ntimezone = "UTC"', "cron: give a crontab expression"),
        (f'{BASE}tag = "a b"', "schedule 's': tag: tag 'a b' is invalid"),
        (f"{BASE}max_count = 0", "max_count: 0 is not a whole number of 1 or more"),
        (f"{BASE}max_count = true", "max_count: True is not a whole number"),
        (f"{BASE}max_count = 1.5", "max_count: 1.5 is not a whole number"),
        (f"{BASE}max_total = 5", "max_total: write it as a table of amounts"),
        (f"{BASE}max_total = {{ AZN = 100.5 }}", "max_total.AZN: write the amount as a string"),
        (f"{BASE}max_total = {{ AZN = 100 }}", "a TOML number may not be exact"),
        (f'{BASE}max_total = {{ AZN = "1.001" }}', "max_total.AZN: amount '1.001' has 3"),
        (f'{BASE}max_total = {{ AZN = "0" }}', "max_total.AZN: amount '0' is zero"),
        (f'{BASE}max_total = {{ XYZ = "1" }}', "max_total.XYZ: unsupported currency 'XYZ'"),
        (f'{BASE}approval = "yes"', "approval: 'yes' is not true or false"),
    ],
)
def test_bad_schedules_are_named(body: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_schedules(f"[[schedule]]\n{body}\n", "payouts.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("payouts.toml: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[[schedule]]\n{BASE}\n[[schedule]]\n{BASE}", "schedule 's': name: given to two"),
        (f"[schedule]\n{BASE}", "write each schedule as a [[schedule]] table"),
        ("schedules = []\nother = 1", "unknown keys other, schedules: only [[schedule]]"),
        ("[[schedule]\n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_schedules(text)
    assert message in str(caught.value)


# --- fire instants ----------------------------------------------------------------------------


def test_weekdays_at_18_in_baku() -> None:
    sellers = schedule("0 18 * * mon-fri")
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    fires = fire_times(sellers, ms(monday), ms(monday + timedelta(days=7)))
    assert [utc(f) for f in fires] == [
        datetime(2026, 1, day, 14, tzinfo=UTC) for day in (5, 6, 7, 8, 9)
    ]  # 18:00 in Baku (UTC+4)
    # (after, until]: an instant equal to `after` is not repeated, one equal to `until` is in
    assert fire_times(sellers, fires[0], fires[1]) == (fires[1],)
    assert fire_times(sellers, fires[0], fires[0]) == ()
    assert fire_times(sellers, ms(monday), ms(monday + timedelta(days=7)), limit=2) == fires[:2]


def test_a_local_time_fires_once_across_dst() -> None:
    new_york = schedule("30 1 * * *", "America/New_York")
    fall = fire_times(new_york, ms(datetime(2026, 10, 31, tzinfo=UTC)),
                      ms(datetime(2026, 11, 3, tzinfo=UTC)))  # fmt: skip
    assert [utc(f).strftime("%d %H:%M") for f in fall] == ["31 05:30", "01 05:30", "02 06:30"]
    half_hourly = schedule("*/30 * * * *", "America/New_York")
    night = fire_times(half_hourly, ms(datetime(2026, 11, 1, 4, tzinfo=UTC)),
                       ms(datetime(2026, 11, 1, 8, tzinfo=UTC)))  # fmt: skip
    local = [utc(f).astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") for f in night]
    assert local == ["00:30", "01:00", "01:30", "02:00", "02:30", "03:00"]
    spring = schedule("30 2 * * *", "America/New_York")
    days = fire_times(spring, ms(datetime(2026, 3, 7, tzinfo=UTC)),
                      ms(datetime(2026, 3, 10, tzinfo=UTC)))  # fmt: skip
    assert len(days) == 3  # 02:30 does not exist on March 8: it still fires once that day
    for fires in (fall, night, days):
        assert list(fires) == sorted(set(fires))


def test_bad_windows() -> None:
    with pytest.raises(ValueError, match="after_ms"):
        fire_times(schedule("0 18 * * *"), -1, 0)
    with pytest.raises(ValueError, match="until_ms"):
        fire_times(schedule("0 18 * * *"), 0, 2**60)
    with pytest.raises(ValueError, match="limit"):
        fire_times(schedule("0 18 * * *"), 0, 1, limit=-1)


WINDOW = ms(datetime(2026, 10, 25, tzinfo=UTC))
WEEK = 7 * 24 * 3600 * 1000


@given(
    cron=st.sampled_from(["0 18 * * mon-fri", "*/20 1-3 * * *", "30 1 * * sun", "0 0 1 * *"]),
    zone=st.sampled_from(["Asia/Baku", "America/New_York", "Europe/London", "UTC"]),
    cuts=st.lists(st.integers(0, 2 * WEEK), max_size=4),
)
def test_adjacent_windows_neither_lose_nor_repeat(cron: str, zone: str, cuts: list[int]) -> None:
    sched = schedule(cron, zone)
    whole = fire_times(sched, WINDOW, WINDOW + 2 * WEEK)
    edges = [WINDOW, *sorted(WINDOW + cut for cut in cuts), WINDOW + 2 * WEEK]
    pieces = [f for low, high in pairwise(edges) for f in fire_times(sched, low, high)]
    assert pieces == list(whole)
    assert list(whole) == sorted(set(whole))
    assert all(f % 60_000 == 0 for f in whole)
