"""``billing simulate``: the real pipeline (Redis, actors, sandbox) over virtual time.

Each run starts its own Redis and sandbox, so these tests need no fixture; each checks that
the run left no process behind and put the process's runtime and broker back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner, Result

from schedules import simulate as sim
from worker import broker as broker_module
from worker import runtime
from worker.cli import app, registered_commands
from worker.periods import CatchUp

SUBSCRIPTIONS = [
    {
        "id": "monthly-31st",
        "customer": "c1",
        "stored_id": 5125,
        "amount": "9.99",
        "currency": "AZN",
        "cadence": "monthly",
        "anchor_day": "31",
        "start": "2026-01-31",
    },
    {
        "id": "hard",
        "customer": "c2",
        "stored_id": 5141,
        "amount": "9.99",
        "currency": "AZN",
        "cadence": "monthly",
        "start": "2026-01-31",
    },
    {
        "id": "soft",
        "customer": "c3",
        "stored_id": 5159,
        "amount": "9.99",
        "currency": "AZN",
        "cadence": "monthly",
        "start": "2026-01-31",
    },
]


def simulate(*args: str) -> Result:
    return CliRunner().invoke(app, ["simulate", *args])


def error(result: Result) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def redis_children() -> set[int]:
    """Our redis-server children (a session's shared server may be one: compare sets)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "redis" in p.name() and p.status() != psutil.STATUS_ZOMBIE
    }


@pytest.fixture
def subscriptions_file(tmp_path: Path) -> Path:
    path = tmp_path / "subs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SUBSCRIPTIONS))
    return path


def run_json(path: Path) -> dict[str, Any]:
    before = (runtime._current, broker_module._configured, redis_children())
    result = simulate("--from", "2026-01-31", "--until", "2026-05-01", "--subscriptions", str(path))
    assert result.exit_code == 0, result.output
    assert "monthly-31st" in result.stdout
    assert "Dead letters" in result.stdout
    result = simulate(
        "--from", "2026-01-31", "--until", "2026-05-01", "--subscriptions", str(path), "--json"
    )
    assert result.exit_code == 0, result.output
    assert (runtime._current, broker_module._configured, redis_children()) == before
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_the_pipeline_over_virtual_time_charges_each_period_once(subscriptions_file: Path) -> None:
    report = run_json(subscriptions_file)
    subs = {s["id"]: s for s in report["subscriptions"]}
    assert report["warnings"] == []

    # Jan 31 -> Feb 28 -> Mar 31 -> Apr 30, one debit each in the sandbox's ledger. May 31 is
    # due after --until. Asia/Baku is UTC+4: each is due at 20:00 UTC the day before.
    monthly = subs["monthly-31st"]
    assert monthly["paid_periods"] == ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
    assert [p["ledger_debits"] for p in monthly["periods"]] == [1, 1, 1, 1]
    assert [p["opened_at"] for p in monthly["periods"]] == [
        "2026-01-31T00:00:00Z",  # due before the clock started: opened at the first sweep
        "2026-02-27T20:00:00Z",
        "2026-03-30T20:00:00Z",
        "2026-04-29T20:00:00Z",
    ]
    assert monthly["charged"] == {"AZN": "39.96"}

    # A hard decline: dead-lettered on its first attempt; nothing is charged after it.
    hard = subs["hard"]
    assert [(p["period"], p["status"], p["reason"], p["attempts"]) for p in hard["periods"]] == [
        ("2026-01-31", "dead", "hard_decline", 1)
    ]
    assert hard["status"] == "needs_new_card"
    assert hard["charged"] == {}

    # A soft decline: retried after 1, 3, 5 and 7 days (virtual), then dead-lettered; the
    # subscription is past_due and its later periods are still tried. The last period has
    # had two attempts by May 1 (Apr 29 and Apr 30, 20:00 UTC); its third is on May 3.
    soft = subs["soft"]
    assert [(p["period"], p["status"], p["attempts"], p["declined"]) for p in soft["periods"]] == [
        ("2026-01-31", "dead", 5, 5),
        ("2026-02-28", "dead", 5, 5),
        ("2026-03-31", "dead", 5, 5),
        ("2026-04-30", "open", 2, 2),
    ]
    assert {p["reason"] for p in soft["periods"] if p["status"] == "dead"} == {"dunning_exhausted"}
    assert (soft["retries"], soft["status"], soft["charged"]) == (13, "past_due", {})

    totals = report["totals"]
    assert (totals["paid"], totals["dead"], totals["open"]) == (4, 4, 1)
    assert (totals["dead_letters"], totals["ledger_debits"]) == (4, 4)


def test_a_second_run_is_independent_of_the_first(subscriptions_file: Path) -> None:
    first = run_json(subscriptions_file)
    second = run_json(subscriptions_file)
    for report in (first, second):
        del report["run"]
    assert second == first
    assert second["totals"]["dead_letters"] == 4  # not 8: a new Redis, a new ledger


def test_the_sample_set_shows_the_calendar_rules() -> None:
    options = sim.Options(
        sim.parse_day("2026-01-31", "--from"),
        sim.parse_day("2026-03-15", "--until"),
        CatchUp.LATEST,
    )
    children = redis_children()
    report = sim.run(sim.sample(options.start), options)
    assert report.warnings == ()
    subs = {s.id: s for s in report.subscriptions}
    assert subs["monthly-31st"].paid == ["2026-01-31", "2026-02-28"]
    assert subs["yearly-feb-29"].paid == ["2026-02-28"]
    assert subs["trial-14-days"].paid == ["2026-02-14", "2026-03-14"]
    assert subs["every-10-days"].paid == [
        "2026-01-31",
        "2026-02-10",
        "2026-02-20",
        "2026-03-02",
        "2026-03-12",
    ]
    # 02:30 does not exist in New York on 2026-03-08 (spring forward): due at 03:00 EDT.
    weekly = {p.period: p for p in subs["weekly-new-york"].periods}
    assert sim.instant(weekly["2026-03-08"].opened_at).isoformat() == "2026-03-08T07:00:00+00:00"
    assert sim.instant(weekly["2026-03-01"].opened_at).isoformat() == "2026-03-01T07:30:00+00:00"
    # --catch-up latest: the three missed months are skipped, the newest one is charged.
    catch_up = subs["catch-up-1st"]
    assert [(p.period, p.status, p.reason) for p in catch_up.periods][:4] == [
        ("2025-10-01", "skipped", "missed"),
        ("2025-11-01", "skipped", "missed"),
        ("2025-12-01", "skipped", "missed"),
        ("2026-01-01", "paid", ""),
    ]
    assert report.total("paid") == report.ledger_debits
    assert redis_children() == children


def test_simulate_is_a_command() -> None:
    assert "simulate" in registered_commands()
    result = simulate("--help")
    assert result.exit_code == 0
    for option in ("--from", "--until", "--subscriptions", "--catch-up", "--json"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-1-31", "--until", "2026-03-01"], "--from '2026-1-31' is not a date"),
        (["--from", "2026-01-31", "--until", "2026-02-30"], "--until '2026-02-30' is not a date"),
        (["--from", "2026-03-01", "--until", "2026-03-01"], "must be after --from"),
        (["--from", "2026-01-31", "--until", "2036-02-01"], "spans more than 10 years"),
        (
            ["--from", "2026-01-31", "--until", "2026-03-01", "--catch-up", "some"],
            "--catch-up must be all or latest",
        ),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    result = simulate(*args)
    assert result.exit_code == 2, result.output
    assert error(result).startswith("error: ")
    assert message in error(result)
    assert result.stdout == ""


def test_bad_rows_are_listed_and_nothing_runs(tmp_path: Path) -> None:
    path = tmp_path / "subs.jsonl"
    rows = [
        json.dumps(SUBSCRIPTIONS[0]),
        "{not json",
        json.dumps({**SUBSCRIPTIONS[1], "amount": 9}),
    ]
    path.write_text("\n".join(rows) + "\n")
    result = simulate("--from", "2026-01-31", "--until", "2026-03-01", "--subscriptions", str(path))
    assert result.exit_code == 2, result.output
    text = error(result)
    assert "line 2: not valid JSON" in text
    assert "line 3: amount must be text" in text
    assert "error: 2 of 3 rows" in text
    assert result.stdout == ""

    other = tmp_path / "subs.txt"
    other.write_text("x")
    result = simulate(
        "--from", "2026-01-31", "--until", "2026-03-01", "--subscriptions", str(other)
    )
    assert result.exit_code == 2
    assert "unknown file type" in error(result)


def test_an_error_stops_everything_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    before = (runtime._current, broker_module._configured, redis_children())
    calls = []

    def settle(self: sim.Loop, t: int) -> None:
        calls.append(t)
        if len(calls) == 3:
            raise sim.SimulationError("boom")

    monkeypatch.setattr(sim.Loop, "settle", settle)
    result = simulate("--from", "2026-01-31", "--until", "2026-03-01")
    assert result.exit_code == 2, result.output
    assert error(result) == "error: the simulation stopped: boom"
    assert (runtime._current, broker_module._configured, redis_children()) == before


class StuckRedis:
    """A queue that never drains."""

    def hlen(self, key: str) -> int:
        return 3


def test_charges_that_never_finish_fail_loudly() -> None:
    loop = sim.Loop(StuckRedis(), None, None, "dramatiq:charges.msgs", 0.05)  # type: ignore[arg-type]
    with pytest.raises(
        sim.SimulationError, match=r"3 charge message.* still not handled after 0\.05 s"
    ):
        loop.settle(sim.midnight_ms(sim.parse_day("2026-01-31", "--from")))
