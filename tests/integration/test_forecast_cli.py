"""``billing forecast`` against a real Redis: the charges due in the window of chargeable
subscriptions, exact totals, every page of subscriptions read, and nothing written.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

import pytest
import redis
from typer.testing import CliRunner, Result

from worker.cli import app, registered_commands
from worker.clock import SYSTEM
from worker.store import subscriptions as store
from worker.subscriptions import Subscription


def run(redis_url: str | None, *args: str) -> Result:
    return CliRunner().invoke(app, ["forecast", *args], env={"BILLING_REDIS_URL": redis_url})


def add(
    r: redis.Redis, sub_id: str, amount: str = "9.99", currency: str = "AZN", **cadence: str
) -> Subscription:
    sub = Subscription.create(
        id=sub_id, customer="cust_1", stored_id=5125, amount=amount, currency=currency,
        cadence=cadence,
    )  # fmt: skip
    return store.create(r, sub, SYSTEM)


def everything(r: redis.Redis) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(cast("list[str]", r.keys("*"))):
        kind = r.type(key)
        out[key] = r.hgetall(key) if kind == "hash" else (kind, r.dump(key))
    return out


def refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.split())
    assert text.startswith("error: "), result.stderr
    assert message in text
    assert result.stdout == ""


def test_help() -> None:
    assert "forecast" in registered_commands()
    result = CliRunner().invoke(app, ["forecast", "--help"])
    assert result.exit_code == 0
    for text in ("billing forecast", "--days", "--from", "--json", "--redis-url"):
        assert text in result.output


def test_json_lists_each_charge_and_exact_totals(redis_url: str, r: redis.Redis) -> None:
    add(r, "a_daily", "0.10", cadence="daily", start="2026-01-01", timezone="UTC",
        charge_time="09:30")  # fmt: skip
    add(r, "b_daily", "0.20", cadence="daily", start="2026-01-01", timezone="UTC")
    add(r, "c_monthly", "1.005", "KWD", cadence="monthly", anchor_day="31", start="2025-12-31",
        timezone="Asia/Baku")  # fmt: skip
    add(r, "d_none")  # charged only when asked: not in a forecast
    before = everything(r)
    result = run(redis_url, "--from", "2026-01-30", "--days", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["from"], out["until"]) == ("2026-01-30T00:00:00+00:00", "2026-02-02T00:00:00+00:00")
    assert [(c["due_at"], c["subscription"], c["period"], c["amount"]) for c in out["charges"]] == [
        ("2026-01-30T00:00:00+00:00", "b_daily", "2026-01-30", "0.20"),
        ("2026-01-30T09:30:00+00:00", "a_daily", "2026-01-30", "0.10"),
        ("2026-01-30T20:00:00+00:00", "c_monthly", "2026-01-31", "1.005"),  # Baku midnight
        ("2026-01-31T00:00:00+00:00", "b_daily", "2026-01-31", "0.20"),
        ("2026-01-31T09:30:00+00:00", "a_daily", "2026-01-31", "0.10"),
        ("2026-02-01T00:00:00+00:00", "b_daily", "2026-02-01", "0.20"),
        ("2026-02-01T09:30:00+00:00", "a_daily", "2026-02-01", "0.10"),
    ]
    monthly = out["charges"][2]
    assert (monthly["due_local"], monthly["timezone"]) == (
        "2026-01-31T00:00:00+04:00",
        "Asia/Baku",
    )
    assert (monthly["amount_minor"], monthly["currency"]) == (1005, "KWD")
    assert out["per_day"] == [
        {"day": "2026-01-30", "currency": "AZN", "count": 2, "total": "0.30", "total_minor": 30},
        {"day": "2026-01-30", "currency": "KWD", "count": 1, "total": "1.005",
         "total_minor": 1005},
        {"day": "2026-01-31", "currency": "AZN", "count": 2, "total": "0.30", "total_minor": 30},
        {"day": "2026-02-01", "currency": "AZN", "count": 2, "total": "0.30", "total_minor": 30},
    ]  # fmt: skip
    assert out["totals"] == [
        {"currency": "AZN", "count": 6, "total": "0.90", "total_minor": 90},
        {"currency": "KWD", "count": 1, "total": "1.005", "total_minor": 1005},
    ]
    assert (out["considered"], out["skipped"], out["warnings"]) == (3, 1, [])
    assert everything(r) == before  # a forecast writes nothing


def test_the_text_output_has_the_charges_and_the_totals(redis_url: str, r: redis.Redis) -> None:
    add(r, "sub_1", "12.34", cadence="weekly", weekday="mon", start="2026-01-01",
        timezone="Asia/Baku", charge_time="10:00")  # fmt: skip
    result = run(redis_url, "--from", "2026-01-01", "--days", "14")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Charges due from 2026-01-01 00:00 to 2026-01-15 00:00 UTC" in text
    for cell in ("2026-01-05 06:00", "2026-01-12 06:00", "sub_1", "2026-01-12", "12.34"):
        assert cell in text
    assert text.count("10:00 +0400") == 2  # local: Baku
    assert "Totals per day (UTC)" in text
    assert "24.68" in text  # the grand total
    assert "2 charges of 1 subscriptions" in text


def test_only_chargeable_subscriptions_and_the_end_date_count(
    redis_url: str, r: redis.Redis
) -> None:
    daily = {"cadence": "daily", "start": "2026-01-01", "timezone": "UTC"}
    for sub_id in ("active", "paused", "cancelled", "past_due", "card"):
        add(r, sub_id, **daily)
    add(r, "ended", cadence="daily", start="2026-01-01", end="2026-01-02", timezone="UTC")
    store.pause(r, "paused", SYSTEM)
    store.cancel(r, "cancelled", SYSTEM)
    store.mark_past_due(r, "past_due", SYSTEM)
    store.mark_needs_new_card(r, "card", SYSTEM)
    out = json.loads(run(redis_url, "--from", "2026-01-01", "--days", "2", "--json").stdout)
    assert [(c["subscription"], c["period"]) for c in out["charges"]] == [
        ("active", "2026-01-01"),
        ("ended", "2026-01-01"),
        ("past_due", "2026-01-01"),
        ("active", "2026-01-02"),
        ("past_due", "2026-01-02"),
    ]


def test_every_page_of_subscriptions_is_read(redis_url: str, r: redis.Redis) -> None:
    for n in range(2345):
        add(r, f"s{n:04}", "0.01", cadence="daily", start="2026-01-01", timezone="UTC")
    out = json.loads(run(redis_url, "--from", "2026-03-01", "--days", "1", "--json").stdout)
    assert len(out["charges"]) == 2345
    assert len({c["subscription"] for c in out["charges"]}) == 2345
    assert out["totals"] == [
        {"currency": "AZN", "count": 2345, "total": "23.45", "total_minor": 2345}
    ]


def test_an_unreadable_cadence_is_a_warning(redis_url: str, r: redis.Redis) -> None:
    add(r, "good", cadence="daily", start="2026-01-01", timezone="UTC")
    good = Subscription.create(
        id="bad", customer="c", stored_id=1, amount="1", currency="AZN",
        cadence={"cadence": "daily", "start": "2026-01-01"},
    )  # fmt: skip
    store.create(
        r, replace(good, cadence={"cadence": "fortnightly", "start": "2026-01-01"}), SYSTEM
    )
    result = run(redis_url, "--from", "2026-01-01", "--days", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [c["subscription"] for c in out["charges"]] == ["good"]
    assert [w["subscription"] for w in out["warnings"]] == ["bad"]
    assert "warning: bad is left out: cadence 'fortnightly' is not one of" in " ".join(
        result.stderr.split()
    )


def test_without_from_the_window_starts_now(redis_url: str, r: redis.Redis) -> None:
    add(r, "sub_1", cadence="daily", start="2020-01-01", timezone="UTC")
    before = SYSTEM.now_ms()
    out = json.loads(run(redis_url, "--days", "2", "--json").stdout)
    after = SYSTEM.now_ms()
    assert before <= out["from_ms"] <= after
    assert out["until_ms"] - out["from_ms"] == 2 * 86_400_000
    assert len(out["charges"]) == 2  # two UTC midnights in any 48 hours
    assert all(out["from_ms"] <= c["due_at_ms"] < out["until_ms"] for c in out["charges"])


def test_nothing_due_says_so(redis_url: str) -> None:
    result = run(redis_url, "--from", "2026-01-01")
    assert result.exit_code == 0, result.output
    assert " ".join(result.stdout.split()) == (
        "no charges due from 2026-01-01 00:00 to 2026-01-31 00:00 UTC"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days 0 is out of range: give 1-366"),
        (["--days", "367"], "--days 367 is out of range"),
        (["--from", "2026-02-30"], "--from '2026-02-30' is invalid: use a date, YYYY-MM-DD"),
        (["--from", "20260201"], "--from '20260201' is invalid"),
    ],
)
def test_bad_options_are_refused(redis_url: str, args: list[str], message: str) -> None:
    refused(run(redis_url, *args), message)


def test_no_redis_is_a_clear_error() -> None:
    refused(run(None), "BILLING_REDIS_URL is not set")
