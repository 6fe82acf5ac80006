"""``billing subscriptions`` against a real Redis: each command says what happened, and a
refused command prints ``error: ...``, exits 2 and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from typer.testing import CliRunner, Result

from tests.integration.test_subscriptions_store import dump
from worker.cli import app, registered_commands
from worker.store import connect
from worker.store import subscriptions as store
from worker.subscriptions import SubscriptionStatus

COMMANDS = ["create", "show", "list", "update", "pause", "resume", "cancel"]
CREATE = [
    "create",
    "--id",
    "sub_1",
    "--customer",
    "cust_1",
    "--stored-id",
    "5125",
    "--amount",
    "9.99",
    "--currency",
    "AZN",
]


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    try:
        yield client
    finally:
        client.close()


def run(redis_url: str | None, *args: str) -> Result:
    """``billing subscriptions ARGS`` with the URL in the environment, as users set it."""
    return CliRunner().invoke(app, ["subscriptions", *args], env={"BILLING_REDIS_URL": redis_url})


def error(result: Result) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert error(result).startswith("error: "), result.stderr
    assert message in error(result)
    assert result.stdout == ""


# help


def test_the_group_is_registered() -> None:
    assert "subscriptions" in registered_commands()
    result = CliRunner().invoke(app, ["subscriptions", "--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str) -> None:
    result = CliRunner().invoke(app, ["subscriptions", command, "--help"])
    assert result.exit_code == 0
    assert f"billing subscriptions {command}" in result.output
    assert "--redis-url" in result.output


# create


def test_create_says_what_it_created(redis_url: str, r: redis.Redis) -> None:
    result = run(
        redis_url, *CREATE, "--description", "Gym [bold]", "--cadence", "cadence=daily",
        "--cadence", "start=2026-01-01",
        "--metadata", "plan=gold", "--language", "en",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "created sub_1: 9.99 AZN from card 5125\n"
    sub = store.require(r, "sub_1")
    assert (str(sub.amount), sub.stored_id, sub.description) == ("9.99 AZN", 5125, "Gym [bold]")
    assert (dict(sub.cadence), dict(sub.metadata), sub.language) == (
        {"cadence": "daily", "start": "2026-01-01"},
        {"plan": "gold"},
        "en",
    )


def test_create_twice_is_a_no_op_and_a_conflict_is_refused(redis_url: str, r: redis.Redis) -> None:
    assert run(redis_url, *CREATE).exit_code == 0
    before = dump(r)
    again = run(redis_url, *CREATE)
    assert again.exit_code == 0
    assert again.stdout == "sub_1 already exists with these values; nothing changed\n"
    conflict = run(redis_url, *CREATE[:-4], "--amount", "10.00", "--currency", "AZN")
    refused(conflict, "subscription sub_1 already exists with a different amount")
    assert dump(r) == before


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--stored-id", "1e3", "stored_id '1e3' is invalid"),
        ("--stored-id", "0", "stored_id 0 is invalid"),
        ("--stored-id", "١٢", "stored_id '١٢' is invalid"),
        ("--amount", "0", "amount '0' is zero"),
        ("--amount", "9.999", "has 3 decimals; AZN has 2"),
        ("--amount", "-1", "is not a plain decimal number"),
        ("--currency", "XYZ", "unsupported currency 'XYZ'"),
        ("--id", "a b", "subscription id 'a b' is invalid"),
        ("--language", "fr", "language 'fr' is not one of az, en, ru"),
        ("--description", "bell\x07", "description contains control characters"),
        ("--cadence", "monthly", "--cadence 'monthly' must look like key=value"),
        ("--metadata", "=x", "--metadata '=x' must look like key=value"),
    ],
)
def test_create_refuses_bad_input_and_stores_nothing(
    redis_url: str, r: redis.Redis, option: str, value: str, message: str
) -> None:
    args = list(CREATE)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    refused(run(redis_url, *args), message)
    assert r.keys("*") == []


def test_a_repeated_key_is_refused(redis_url: str, r: redis.Redis) -> None:
    result = run(redis_url, *CREATE, "--cadence", "cadence=daily", "--cadence", "cadence=weekly")
    refused(result, "--cadence cadence is given twice")
    assert r.keys("*") == []


def test_a_missing_option_is_a_usage_error(redis_url: str) -> None:
    result = run(redis_url, *CREATE[:-2])
    assert result.exit_code == 2
    assert "--currency" in result.output


def test_no_redis_configured_is_a_clear_error() -> None:
    refused(run(None, "list"), "BILLING_REDIS_URL is not set")


def test_an_unreachable_redis_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        app, ["subscriptions", "list", "--redis-url", "redis://127.0.0.1:1/0"]
    )
    refused(result, "cannot reach Redis at redis://127.0.0.1:1/0")


def test_the_redis_url_option_works_without_the_environment(redis_url: str) -> None:
    result = CliRunner().invoke(
        app,
        ["subscriptions", *CREATE, "--redis-url", redis_url],
        env={"BILLING_REDIS_URL": None},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("created sub_1")


# show / list


def test_show_prints_exact_amounts_and_json(redis_url: str) -> None:
    run(redis_url, *CREATE, "--cadence", "cadence=daily", "--cadence", "start=2026-01-01")
    text = run(redis_url, "show", "sub_1")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert "amount:       9.99 AZN" in lines
    assert "status:       active" in lines
    assert "cadence:      cadence=daily start=2026-01-01" in lines
    shown = json.loads(run(redis_url, "show", "sub_1", "--json").stdout)
    assert shown["amount"] == "9.99"
    assert shown["currency"] == "AZN"
    assert shown["stored_id"] == 5125
    assert shown["cadence"] == {"cadence": "daily", "start": "2026-01-01"}


@pytest.mark.parametrize(
    ("sub_id", "message"),
    [("nope", "no subscription nope"), ("a:b", "subscription id 'a:b' is invalid")],
)
def test_show_refuses_what_is_not_there(redis_url: str, sub_id: str, message: str) -> None:
    refused(run(redis_url, "show", sub_id), message)


def test_list_shows_a_table_filters_and_pages(redis_url: str) -> None:
    for n in (1, 2, 3):
        args = [*CREATE[:2], f"sub_{n}", *CREATE[3:]]
        assert run(redis_url, *args).exit_code == 0
    run(redis_url, "pause", "sub_2")
    table = run(redis_url, "list")
    assert table.exit_code == 0
    for n in (1, 2, 3):
        assert f"sub_{n}" in table.stdout
    assert "9.99 AZN" in table.stdout
    paused = json.loads(run(redis_url, "list", "--status", "paused", "--json").stdout)
    assert [s["id"] for s in paused] == ["sub_2"]
    everything = json.loads(run(redis_url, "list", "--json").stdout)
    assert sorted(s["id"] for s in everything) == ["sub_1", "sub_2", "sub_3"]
    page = json.loads(run(redis_url, "list", "--limit", "1", "--offset", "1", "--json").stdout)
    assert page == everything[1:2]
    assert run(redis_url, "list", "--status", "cancelled").stdout == (
        "no subscriptions with status cancelled\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "bogus"], "status 'bogus' is not one of active, paused"),
        (["--limit", "0"], "limit 0 must be between 1 and 1000"),
        (["--offset", "-1"], "offset -1"),
    ],
)
def test_list_refuses_bad_options(redis_url: str, args: list[str], message: str) -> None:
    refused(run(redis_url, "list", *args), message)


# update


def test_update_says_what_changed(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE, "--cadence", "cadence=daily", "--cadence", "start=2026-01-01",
        "--cadence", "trial_end=2026-01-31")  # fmt: skip
    result = run(
        redis_url, "update", "sub_1", "--amount", "12.50", "--cadence", "trial_end=",
        "--metadata", "plan=gold",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "updated sub_1: amount 9.99 AZN -> 12.50 AZN; "
        "cadence cadence=daily start=2026-01-01 trial_end=2026-01-31 -> "
        "cadence=daily start=2026-01-01; "
        "metadata (none) -> plan=gold\n"
    )
    sub = store.require(r, "sub_1")
    assert (str(sub.amount), dict(sub.cadence)) == (
        "12.50 AZN",
        {"cadence": "daily", "start": "2026-01-01"},
    )


def test_a_new_card_reactivates_a_needs_new_card_subscription(
    redis_url: str, r: redis.Redis
) -> None:
    run(redis_url, *CREATE)
    r.hset("bw:sub:sub_1", "status", SubscriptionStatus.NEEDS_NEW_CARD.value)
    result = run(redis_url, "update", "sub_1", "--stored-id", "77")
    assert result.exit_code == 0, result.output
    assert result.stdout == "updated sub_1: card 5125 -> 77; status needs_new_card -> active\n"


def test_update_with_the_same_values_says_so(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE)
    before = dump(r)
    result = run(redis_url, "update", "sub_1", "--amount", "9.99")
    assert result.stdout == "sub_1 unchanged: it already has these values\n"
    assert dump(r) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to update"),
        (["--amount", "0.001"], "has 3 decimals; AZN has 2"),
        (["--currency", "USD"], "changing the currency needs the amount"),
        (["--stored-id", "-1"], "stored_id '-1' is invalid"),
        (["--description", "x" * 256], "description is longer than 255"),
        (["--metadata", "no-equals"], "--metadata 'no-equals' must look like key=value"),
    ],
)
def test_update_refuses_bad_input_and_changes_nothing(
    redis_url: str, r: redis.Redis, args: list[str], message: str
) -> None:
    run(redis_url, *CREATE)
    before = dump(r)
    refused(run(redis_url, "update", "sub_1", *args), message)
    assert dump(r) == before


def test_update_of_a_missing_or_cancelled_subscription_is_refused(
    redis_url: str, r: redis.Redis
) -> None:
    refused(run(redis_url, "update", "nope", "--amount", "1"), "no subscription nope")
    run(redis_url, *CREATE)
    run(redis_url, "cancel", "sub_1")
    before = dump(r)
    refused(run(redis_url, "update", "sub_1", "--amount", "1"), "sub_1 is cancelled")
    assert dump(r) == before


# pause / resume / cancel


def test_pause_resume_cancel_say_what_happened(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE)
    steps = [
        ("pause", 0, "paused sub_1"),
        ("pause", 2, "sub_1 is already paused"),
        ("resume", 0, "resumed sub_1"),
        ("resume", 2, "sub_1 is already active"),
        ("cancel", 0, "cancelled sub_1"),
        ("cancel", 2, "sub_1 is already cancelled"),
        ("resume", 2, "cannot resume sub_1: it is cancelled, which is final"),
        ("pause", 2, "cannot pause sub_1: it is cancelled, which is final"),
    ]
    for command, code, message in steps:
        before = dump(r)
        result = run(redis_url, command, "sub_1")
        if code == 0:
            assert (result.exit_code, result.stdout) == (0, message + "\n")
        else:
            refused(result, message)
            assert dump(r) == before
    assert store.require(r, "sub_1").status is SubscriptionStatus.CANCELLED


@pytest.mark.parametrize("command", ["pause", "resume", "cancel"])
def test_status_commands_on_a_missing_subscription(redis_url: str, command: str) -> None:
    refused(run(redis_url, command, "ghost"), "no subscription ghost")


# schedule options (create / update) and cancel --at-period-end


SCHEDULE_CASES = [
    (["--every", "monthly", "--anchor-day", "31", "--start", "2026-01-31", "--charge-time",
      "09:30", "--zone", "Europe/London", "--trial-end", "2026-03-01", "--end", "2027-01-01"],
     {"cadence": "monthly", "anchor_day": "31", "start": "2026-01-31", "charge_time": "09:30",
      "timezone": "Europe/London", "trial_end": "2026-03-01", "end": "2027-01-01"}),
    (["--every", "months", "--interval", "3", "--start", "2026-01-01"],
     {"cadence": "months", "interval": "3", "start": "2026-01-01"}),
    (["--every", "yearly", "--anchor", "02-29", "--start", "2026-01-01"],
     {"cadence": "yearly", "anchor": "02-29", "start": "2026-01-01"}),
    (["--every", "weekly", "--weekday", "fri", "--start", "2026-01-01"],
     {"cadence": "weekly", "weekday": "fri", "start": "2026-01-01"}),
    (["--every", "days", "--interval", "10", "--start", "2026-01-01"],
     {"cadence": "days", "interval": "10", "start": "2026-01-01"}),
    (["--cron", "0 9 1 * *", "--start", "2026-01-01"],
     {"cadence": "cron", "expr": "0 9 1 * *", "start": "2026-01-01"}),
    (["--every", "daily", "--cadence", "charge_time=08:00", "--start", "2026-01-01"],
     {"cadence": "daily", "charge_time": "08:00", "start": "2026-01-01"}),
]  # fmt: skip


@pytest.mark.parametrize(("options", "cadence"), SCHEDULE_CASES)
def test_create_with_schedule_options_fills_the_cadence(
    redis_url: str, r: redis.Redis, options: list[str], cadence: dict[str, str]
) -> None:
    result = run(redis_url, *CREATE, *options)
    assert result.exit_code == 0, result.output
    assert dict(store.require(r, "sub_1").cadence) == cadence


def test_start_defaults_to_today_in_the_schedule_zone(redis_url: str, r: redis.Redis) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    zones = {"sub_k": "Pacific/Kiritimati", "sub_p": "Pacific/Pago_Pago", "sub_b": None}
    for sub_id, zone in zones.items():
        name = zone or "Asia/Baku"
        days = {dt.datetime.now(ZoneInfo(name)).date().isoformat()}  # UTC+14, UTC-11, UTC+4
        extra = ["--zone", zone] if zone else []
        result = run(redis_url, "create", "--id", sub_id, *CREATE[3:], "--every", "daily", *extra)
        assert result.exit_code == 0, result.output
        days.add(dt.datetime.now(ZoneInfo(name)).date().isoformat())  # midnight passed meanwhile
        assert store.require(r, sub_id).cadence["start"] in days
    help_text = " ".join(
        CliRunner().invoke(app, ["subscriptions", "create", "--help"]).stdout.split()
    )
    assert "(default: today in --zone)" in help_text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--every", "fortnightly"], "cadence 'fortnightly' is not one of monthly, months"),
        (["--every", "monthly", "--anchor-day", "32"], "cadence anchor_day '32' is invalid"),
        (["--every", "daily", "--zone", "Mars/Olympus"],
         "cadence timezone 'Mars/Olympus' is not an IANA time zone name"),
        (["--every", "daily", "--start", "2026-02-30"], "cadence start '2026-02-30' is not a"),
        (["--cron", "0 9 1 * *", "--charge-time", "09:00"],
         "cadence field 'charge_time' is not used by a cron cadence"),
        (["--cron", "0 9 * * 1"], "name the days of the week (mon-sun), not numbers"),
        (["--every", "months"], "cadence interval is missing"),
        (["--every", "weekly", "--anchor-day", "3"], "'anchor_day' is not used by a weekly"),
        (["--every", "daily", "--charge-time", "24:00"], "cadence charge_time '24:00' is invalid"),
        (["--every", "daily", "--start", "2026-01-01", "--end", "2025-01-01"],
         "cadence end 2025-01-01 is before start 2026-01-01"),
        (["--zone", "UTC"], "a schedule needs --every (monthly, months, yearly"),
        (["--every", "daily", "--start", "2026-01-01", "--cadence", "start=2026-01-02"],
         "cadence start is given twice: by --start and by --cadence start="),
        (["--cadence", "cadence=daily", "--cadence", "bogus=1"],
         "cadence field 'bogus' is not used by a daily cadence"),
    ],
)  # fmt: skip
def test_create_refuses_a_bad_schedule_and_stores_nothing(
    redis_url: str, r: redis.Redis, options: list[str], message: str
) -> None:
    refused(run(redis_url, *CREATE, *options), message)
    assert r.keys("*") == []


def test_update_changes_the_schedule_with_options(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE, "--every", "daily", "--start", "2026-01-01")
    weekly = run(redis_url, "update", "sub_1", "--every", "weekly", "--weekday", "mon",
                 "--charge-time", "10:00")  # fmt: skip
    assert weekly.exit_code == 0, weekly.output
    assert weekly.stdout == (
        "updated sub_1: cadence cadence=daily start=2026-01-01 -> "
        "cadence=weekly charge_time=10:00 start=2026-01-01 weekday=mon\n"
    )
    monthly = run(redis_url, "update", "sub_1", "--every", "monthly", "--weekday", "",
                  "--anchor-day", "15", "--zone", "UTC")  # fmt: skip
    assert monthly.exit_code == 0, monthly.output
    assert dict(store.require(r, "sub_1").cadence) == {
        "cadence": "monthly", "anchor_day": "15", "charge_time": "10:00",
        "start": "2026-01-01", "timezone": "UTC",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--every", "monthly"], "cadence field 'weekday' is not used by a monthly cadence"),
        (["--zone", "Nowhere/Else"], "cadence timezone 'Nowhere/Else' is not an IANA"),
        (["--start", "2026-13-01"], "cadence start '2026-13-01' is not a calendar date"),
        (["--every", ""], "a schedule needs --every"),
        (["--start", ""], "cadence start is missing"),
        (["--end", "2025-12-31"], "cadence end 2025-12-31 is before start 2026-01-01"),
    ],
)
def test_update_refuses_a_bad_schedule_and_changes_nothing(
    redis_url: str, r: redis.Redis, options: list[str], message: str
) -> None:
    run(redis_url, *CREATE, "--every", "weekly", "--weekday", "mon", "--start", "2026-01-01")
    before = dump(r)
    refused(run(redis_url, "update", "sub_1", *options), message)
    assert dump(r) == before


def test_update_needs_every_to_add_a_schedule(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE)
    before = dump(r)
    refused(run(redis_url, "update", "sub_1", "--charge-time", "10:00"), "needs --every")
    assert dump(r) == before
    added = run(redis_url, "update", "sub_1", "--every", "daily", "--start", "2026-01-01")
    assert added.exit_code == 0, added.output
    assert dict(store.require(r, "sub_1").cadence) == {"cadence": "daily", "start": "2026-01-01"}


def _expected_end(cadence: dict[str, str]) -> tuple[str, str]:
    """What cancel --at-period-end stores, and the current period, as of now."""
    from worker.clock import SYSTEM
    from worker.periods import cancel_at_period_end, parse_cadence, period_at

    parsed, now = parse_cadence(cadence), SYSTEM.now_ms()
    current = period_at(parsed, now)
    return cancel_at_period_end(parsed, now).isoformat(), current.key if current else ""


def test_cancel_at_period_end_sets_the_end_and_keeps_the_status(
    redis_url: str, r: redis.Redis
) -> None:
    cadence = {"cadence": "monthly", "anchor_day": "1", "start": "2020-01-01", "timezone": "UTC"}
    run(redis_url, *CREATE, "--every", "monthly", "--anchor-day", "1", "--start", "2020-01-01",
        "--zone", "UTC")  # fmt: skip
    before = _expected_end(cadence)
    result = run(redis_url, "cancel", "sub_1", "--at-period-end")
    after = _expected_end(cadence)
    assert result.exit_code == 0, result.output
    sub = store.require(r, "sub_1")
    assert sub.status is SubscriptionStatus.ACTIVE
    assert (sub.cadence["end"], sub.cadence["end"][8:]) in {
        (before[0], "01"), (after[0], "01")
    }  # the first day of the month after this one  # fmt: skip
    end, current = before if sub.cadence["end"] == before[0] else after
    assert result.stdout == (
        f"sub_1 ends on {end}: its current period {current} is the last one charged; "
        "it stays active until then\n"
    )
    assert {k: v for k, v in sub.cadence.items() if k != "end"} == cadence
    unchanged = dump(r)
    again = run(redis_url, "cancel", "sub_1", "--at-period-end")
    assert (again.exit_code, again.stdout) == (0, f"sub_1 already ends on {end}: nothing changed\n")
    assert dump(r) == unchanged


def test_cancel_at_period_end_before_the_first_period(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE, "--every", "daily", "--start", "2099-01-01")
    result = run(redis_url, "cancel", "sub_1", "--at-period-end")
    assert result.stdout == (
        "sub_1 ends on 2099-01-01, before its first period: nothing will be charged\n"
    )
    assert store.require(r, "sub_1").cadence["end"] == "2099-01-01"


def test_cancel_at_period_end_is_refused_without_a_schedule_or_when_cancelled(
    redis_url: str, r: redis.Redis
) -> None:
    run(redis_url, *CREATE)
    before = dump(r)
    refused(run(redis_url, "cancel", "sub_1", "--at-period-end"), "sub_1 has no schedule")
    assert dump(r) == before
    refused(run(redis_url, "cancel", "ghost", "--at-period-end"), "no subscription ghost")
    assert run(redis_url, "cancel", "sub_1").stdout == "cancelled sub_1\n"
    cancelled = dump(r)
    refused(run(redis_url, "cancel", "sub_1", "--at-period-end"), "sub_1 is already cancelled")
    assert dump(r) == cancelled
    help_text = CliRunner().invoke(app, ["subscriptions", "cancel", "--help"]).stdout
    assert "--at-period-end" in help_text


# gateways: --gateway txpg|bizon, --parent-order

BIZON = [
    "create", "--id", "sub_b", "--customer", "cust_1", "--gateway", "bizon",
    "--parent-order", "23014805000000001", "--amount", "9.99", "--currency", "AZN",
]  # fmt: skip


def test_create_a_bizon_subscription_without_a_stored_id(redis_url: str, r: redis.Redis) -> None:
    result = run(redis_url, *BIZON)
    assert result.exit_code == 0, result.output
    assert result.stdout == "created sub_b: 9.99 AZN from bizon parent order 23014805000000001\n"
    sub = store.require(r, "sub_b")
    assert (sub.gateway, sub.parent_order, sub.stored_id) == ("bizon", "23014805000000001", 0)
    assert sub.cards() == {"bizon": "23014805000000001"}
    again = run(redis_url, *BIZON)
    assert again.stdout == "sub_b already exists with these values; nothing changed\n"


def test_create_a_txpg_subscription_holding_a_bizon_card_for_the_fallback(
    redis_url: str, r: redis.Redis
) -> None:
    result = run(redis_url, *CREATE, "--parent-order", "777")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "created sub_1: 9.99 AZN from card 5125 (and bizon parent order 777 for a fallback)\n"
    )
    sub = store.require(r, "sub_1")
    assert (sub.gateway, sub.cards()) == ("txpg", {"txpg": "5125", "bizon": "777"})
    before = dump(r)
    refused(run(redis_url, *CREATE, "--parent-order", "778"), "different parent_order")
    assert dump(r) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gateway", "bizon", "--stored-id", "5125"], "--gateway bizon needs --parent-order"),
        (["--gateway", "txpg", "--parent-order", "777"], "--gateway txpg needs --stored-id"),
        (["--parent-order", "777"], "--gateway txpg needs --stored-id"),
        (["--stored-id", "5125", "--gateway", "paypal"], "--gateway 'paypal' is not one of"),
        (["--gateway", "bizon", "--parent-order", "12ab"], "parent_order '12ab' is invalid"),
        (["--gateway", "bizon", "--parent-order", "1", "--stored-id", "x"], "stored_id 'x'"),
    ],
)
def test_create_refuses_a_card_that_does_not_fit_the_gateway(
    redis_url: str, r: redis.Redis, args: list[str], message: str
) -> None:
    base = ["create", "--id", "sub_1", "--customer", "c", "--amount", "1", "--currency", "AZN"]
    refused(run(redis_url, *base, *args), message)
    assert r.keys("*") == []


def test_show_and_list_name_the_gateway_and_every_card(redis_url: str) -> None:
    assert run(redis_url, *BIZON).exit_code == 0
    assert run(redis_url, *CREATE, "--parent-order", "777").exit_code == 0
    lines = run(redis_url, "show", "sub_b").stdout.splitlines()
    assert "gateway:      bizon" in lines
    assert "stored id:    (none)" in lines
    assert "parent order: 23014805000000001" in lines
    shown = json.loads(run(redis_url, "show", "sub_1", "--json").stdout)
    assert (shown["gateway"], shown["stored_id"], shown["parent_order"]) == ("txpg", 5125, "777")
    assert shown["cards"] == {"txpg": "5125", "bizon": "777"}
    table = run(redis_url, "list").stdout
    assert "bizon 23014805000000001" in table  # the gateway's own card first
    assert "txpg 5125, bizon 777" in table
    listed = {s["id"]: s["cards"] for s in json.loads(run(redis_url, "list", "--json").stdout)}
    assert listed == {"sub_b": {"bizon": "23014805000000001"}, "sub_1": shown["cards"]}


def test_update_a_new_parent_order_reactivates_a_needs_new_card_bizon_subscription(
    redis_url: str, r: redis.Redis
) -> None:
    run(redis_url, *BIZON)
    r.hset("bw:sub:sub_b", "status", SubscriptionStatus.NEEDS_NEW_CARD.value)
    result = run(redis_url, "update", "sub_b", "--parent-order", "23014805000000002")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "updated sub_b: parent order 23014805000000001 -> 23014805000000002; "
        "status needs_new_card -> active\n"
    )


def test_update_a_fallback_card_does_not_reactivate(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE)
    r.hset("bw:sub:sub_1", "status", SubscriptionStatus.NEEDS_NEW_CARD.value)
    result = run(redis_url, "update", "sub_1", "--parent-order", "777")
    assert result.exit_code == 0, result.output
    assert result.stdout == "updated sub_1: parent order (none) -> 777\n"
    assert store.require(r, "sub_1").status is SubscriptionStatus.NEEDS_NEW_CARD
    removed = run(redis_url, "update", "sub_1", "--parent-order", "")
    assert removed.stdout == "updated sub_1: parent order 777 -> (none)\n"


def test_update_moves_a_subscription_between_gateways(redis_url: str, r: redis.Redis) -> None:
    run(redis_url, *CREATE)
    result = run(redis_url, "update", "sub_1", "--gateway", "bizon", "--parent-order", "777")
    assert result.exit_code == 0, result.output
    assert result.stdout == "updated sub_1: gateway txpg -> bizon; parent order (none) -> 777\n"
    sub = store.require(r, "sub_1")
    assert (sub.gateway, sub.card_ref(), sub.cards()) == (
        "bizon",
        "777",
        {"txpg": "5125", "bizon": "777"},
    )
    back = run(redis_url, "update", "sub_1", "--gateway", "txpg")
    assert back.stdout == "updated sub_1: gateway bizon -> txpg\n"


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (CREATE, ["--gateway", "bizon"], "a bizon subscription needs parent_order"),
        (CREATE, ["--gateway", "paypal"], "--gateway 'paypal' is not one of txpg, bizon"),
        (CREATE, ["--parent-order", "x1"], "parent_order 'x1' is invalid"),
        (BIZON, ["--parent-order", ""], "a bizon subscription needs parent_order"),
        (BIZON, ["--gateway", "txpg"], "sub_b has no TXPG card: give a stored_id"),
    ],
)
def test_update_refuses_a_card_that_does_not_fit_and_changes_nothing(
    redis_url: str, r: redis.Redis, setup: list[str], args: list[str], message: str
) -> None:
    run(redis_url, *setup)
    sub_id = setup[setup.index("--id") + 1]
    before = dump(r)
    refused(run(redis_url, "update", sub_id, *args), message)
    assert dump(r) == before


def test_help_names_the_gateway_options() -> None:
    for command in ("create", "update"):
        result = CliRunner().invoke(app, ["subscriptions", command, "--help"])
        text = " ".join(result.output.split())
        assert "--gateway" in text and "--parent-order" in text and "--stored-id" in text
        assert "txpg|bizon" in text
