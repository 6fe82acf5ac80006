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
        redis_url, *CREATE, "--description", "Gym [bold]", "--cadence", "interval=month",
        "--metadata", "plan=gold", "--language", "en",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "created sub_1: 9.99 AZN from card 5125\n"
    sub = store.require(r, "sub_1")
    assert (str(sub.amount), sub.stored_id, sub.description) == ("9.99 AZN", 5125, "Gym [bold]")
    assert (dict(sub.cadence), dict(sub.metadata), sub.language) == (
        {"interval": "month"},
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
    result = run(redis_url, *CREATE, "--cadence", "interval=month", "--cadence", "interval=week")
    refused(result, "--cadence interval is given twice")
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
    run(redis_url, *CREATE, "--cadence", "interval=month")
    text = run(redis_url, "show", "sub_1")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert "amount:      9.99 AZN" in lines
    assert "status:      active" in lines
    assert "cadence:     interval=month" in lines
    shown = json.loads(run(redis_url, "show", "sub_1", "--json").stdout)
    assert shown["amount"] == "9.99"
    assert shown["currency"] == "AZN"
    assert shown["stored_id"] == 5125
    assert shown["cadence"] == {"interval": "month"}


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
    page = json.loads(run(redis_url, "list", "--limit", "1", "--offset", "1", "--json").stdout)
    assert [s["id"] for s in page] == ["sub_2"]
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
    run(redis_url, *CREATE, "--cadence", "interval=month", "--cadence", "anchor=2024-01-31")
    result = run(
        redis_url, "update", "sub_1", "--amount", "12.50", "--cadence", "anchor=",
        "--metadata", "plan=gold",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "updated sub_1: amount 9.99 AZN -> 12.50 AZN; "
        "cadence anchor=2024-01-31 interval=month -> interval=month; "
        "metadata (none) -> plan=gold\n"
    )
    sub = store.require(r, "sub_1")
    assert (str(sub.amount), dict(sub.cadence)) == ("12.50 AZN", {"interval": "month"})


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
