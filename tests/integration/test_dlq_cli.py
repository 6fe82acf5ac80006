"""``billing dlq`` and ``billing events`` end to end: the real CLI app on a real Redis."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator

import pytest
import redis
from typer.testing import CliRunner, Result

from tests.integration.dead_periods import HOUR, T0, seed_dead_period, snapshot
from worker import keys
from worker.cli import app
from worker.clock import SYSTEM
from worker.deadletters import DeadLetterReason
from worker.store import audit, connect
from worker.store import events as stream


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    yield client
    client.close()


Billing = Callable[..., Result]


@pytest.fixture
def billing(redis_url: str) -> Billing:
    """``billing(*args)`` runs the command against the test's Redis, on a wide terminal."""

    def run(*args: str) -> Result:
        env = {"COLUMNS": "200", "BILLING_REDIS_URL": redis_url}
        return CliRunner().invoke(app, list(args), env=env)

    return run


# -- list and show -------------------------------------------------------------------------


def test_list_prints_a_table(r: redis.Redis, billing: Billing) -> None:
    a = seed_dead_period(r, sub_id="sub-a")
    b = seed_dead_period(
        r,
        sub_id="sub-b",
        created_at=T0 + HOUR,
        reason=DeadLetterReason.DUNNING_EXHAUSTED,
        result_code="59",
        amount="12.50",
    )
    result = billing("dlq", "list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index(b.id) < out.index(a.id)  # newest first
    for text in (
        "2026-11-01 06:00",
        "2026-11-01 07:00",
        "9.99 AZN",
        "12.50 AZN",
        "51 Expired card",
        "59 Insufficient funds",
        "hard_decline",
        "dunning_exhausted",
        "2 shown",
    ):
        assert text in out


def test_list_filters(r: redis.Redis, billing: Billing) -> None:
    now = SYSTEM.now_ms()
    old = seed_dead_period(r, sub_id="sub-old", created_at=now - 10 * 24 * HOUR)
    new = seed_dead_period(
        r, sub_id="sub-new", created_at=now - HOUR, reason=DeadLetterReason.NEEDS_CUSTOMER
    )
    done = seed_dead_period(r, sub_id="sub-done", created_at=now - 2 * HOUR)
    assert billing("dlq", "discard", done.id, "--note", "handled").exit_code == 0

    def ids(*options: str) -> list[str]:
        result = billing("dlq", "list", "--json", *options)
        assert result.exit_code == 0, result.output
        return [e["id"] for e in json.loads(result.stdout)]

    assert ids() == [new.id, done.id, old.id]
    assert ids("--since", "7d") == [new.id, done.id]
    assert ids("--since", "90m") == [new.id]
    assert ids("--status", "open") == [new.id, old.id]
    assert ids("--reason", "hard_decline", "--status", "open") == [old.id]
    assert ids("--since", "2000-01-01", "--limit", "1") == [new.id]


def test_list_json_has_every_field(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    [shown] = json.loads(billing("dlq", "list", "--json").stdout)
    assert shown["amount"] == "9.99 AZN"
    assert shown["amount_minor"] == "999"
    assert shown["status"] == "open"
    assert [a["order_id"] for a in shown["attempts"]] == ["4001", "4002"]
    assert shown["id"] == entry.id


def test_list_rejects_a_bad_since(r: redis.Redis, billing: Billing) -> None:
    result = billing("dlq", "list", "--since", "last week")
    assert result.exit_code == 2
    assert "--since 'last week' is invalid" in result.stderr


def test_show_prints_every_attempt(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r, attempts=3)
    result = billing("dlq", "show", entry.id)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in (
        entry.id,
        "2026-11-01 (now dead)",
        "9.99 AZN",
        "hard_decline",
        "4001",
        "4002",
        "4003",
        "2026-11-01 03:00:00",  # attempt 1 started 3 h before the dead letter
        "51 Expired card",
        "Declined by issuer",
        "PmoDecline",
    ):
        assert text in out


def test_show_json_includes_resolution(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    billing("dlq", "replay", entry.id, "--yes", "--actor", "alice")
    view = json.loads(billing("dlq", "show", entry.id, "--json").stdout)
    assert view["status"] == "replayed"
    assert view["replayed_by"] == "alice"
    assert view["period_status"] == "open"
    assert view["amount"] == "9.99 AZN"
    assert [a["n"] for a in view["attempts"]] == ["1", "2"]


def test_show_unknown_id(billing: Billing) -> None:
    result = billing("dlq", "show", "nope")
    assert result.exit_code == 2
    assert "dead letter 'nope' not found" in result.stderr


# -- replay --------------------------------------------------------------------------------


def test_replay_without_yes_changes_nothing(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    before = snapshot(r)
    result = billing("dlq", "replay", entry.id)
    assert result.exit_code == 0, result.output
    assert f"{entry.id}: would reopen sub-1 period 2026-11-01" in result.stdout
    assert "(9.99 AZN)" in result.stdout
    assert "run again with --yes" in result.stdout
    assert snapshot(r) == before


def test_replay_with_yes_reopens(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    result = billing("dlq", "replay", entry.id, "--yes", "--actor", "alice")
    assert result.exit_code == 0, result.output
    assert f"{entry.id}: reopened sub-1 period 2026-11-01: due now" in result.stdout
    assert r.hget(keys.period("sub-1", "2026-11-01"), "status") == "open"
    assert r.zscore(keys.WORK, "sub-1|2026-11-01") is not None
    [(_, record)] = audit.read(r)
    assert (record["action"], record["actor"]) == ("dlq.replay", "alice")


def test_replay_actor_defaults_to_the_os_user(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    assert billing("dlq", "replay", entry.id, "--yes").exit_code == 0
    [(_, record)] = audit.read(r)
    assert record["actor"] == getpass.getuser()


def test_replay_of_a_paid_period_says_so(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    r.hset(keys.period("sub-1", "2026-11-01"), "status", "paid")
    before = snapshot(r)
    result = billing("dlq", "replay", entry.id, "--yes")
    assert result.exit_code == 0, result.output
    assert "sub-1 period 2026-11-01 is already paid: nothing to do" in result.stdout
    assert snapshot(r) == before


def test_replay_refusal_is_an_error(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    r.hset(keys.sub("sub-1"), "status", "cancelled")
    before = snapshot(r)
    result = billing("dlq", "replay", entry.id, "--yes")
    assert result.exit_code == 2
    assert "cannot replay: subscription sub-1 is cancelled" in result.stderr
    assert snapshot(r) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give one dead letter id, or --all"),
        (("x", "--all"), "give one dead letter id, or --all"),
        (("x", "--reason", "hard_decline"), "--reason goes with --all"),
        (("x", "--actor", ""), "actor '' is invalid"),
        (("nope", "--yes"), "dead letter 'nope' not found"),
    ],
)
def test_replay_usage_errors(
    r: redis.Redis, billing: Billing, args: tuple[str, ...], message: str
) -> None:
    seed_dead_period(r)
    before = snapshot(r)
    result = billing("dlq", "replay", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert snapshot(r) == before


def test_replay_all_by_reason(r: redis.Redis, billing: Billing) -> None:
    hard = [seed_dead_period(r, sub_id=f"sub-{n}", created_at=T0 + n) for n in range(4)]
    soft = seed_dead_period(r, sub_id="sub-soft", reason=DeadLetterReason.DUNNING_EXHAUSTED)
    r.hset(keys.period("sub-3", "2026-11-01"), "status", "paid")
    before = snapshot(r)

    plan = billing("dlq", "replay", "--all", "--reason", "hard_decline")

    assert plan.exit_code == 0, plan.output
    assert snapshot(r) == before
    lines = plan.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == [e.id for e in hard]
    assert "would reopen sub-0 period 2026-11-01" in lines[0]
    assert "sub-3 period 2026-11-01 is already paid: nothing to do" in lines[3]
    assert "would reopen 3, nothing to do 1, refused 0" in plan.stdout

    done = billing("dlq", "replay", "--all", "--reason", "hard_decline", "--yes")

    assert done.exit_code == 0, done.output
    assert "replaying" in done.stdout
    assert "4/4" in done.stdout  # the progress bar, rendered once off a terminal
    assert "reopened 3, nothing to do 1, refused 0" in done.stdout
    statuses = [r.hget(keys.dead_letter(e.id), "status") for e in hard]
    assert statuses == ["replayed", "replayed", "replayed", "open"]
    assert r.hget(keys.dead_letter(soft.id), "status") == "open"
    assert r.zrange(keys.WORK, 0, -1) == [
        "sub-0|2026-11-01",
        "sub-1|2026-11-01",
        "sub-2|2026-11-01",
    ]


def test_replay_all_reports_refusals_and_exits_1(r: redis.Redis, billing: Billing) -> None:
    ok = seed_dead_period(r, sub_id="sub-ok", created_at=T0)
    gone = seed_dead_period(r, sub_id="sub-gone", created_at=T0 + 1)
    r.hset(keys.sub("sub-gone"), "status", "cancelled")

    result = billing("dlq", "replay", "--all", "--yes")

    assert result.exit_code == 1
    assert f"{gone.id}: cannot replay: subscription sub-gone is cancelled" in result.stdout
    assert "reopened 1, nothing to do 0, refused 1" in result.stdout
    assert r.hget(keys.dead_letter(ok.id), "status") == "replayed"
    assert r.hget(keys.dead_letter(gone.id), "status") == "open"


def test_replay_all_with_nothing_open(billing: Billing) -> None:
    result = billing("dlq", "replay", "--all", "--yes")
    assert result.exit_code == 0
    assert "no open dead letters match: nothing to do" in result.stdout


# -- discard -------------------------------------------------------------------------------


def test_discard_with_a_note(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    result = billing("dlq", "discard", entry.id, "--note", "refunded by hand", "--actor", "al")
    assert result.exit_code == 0, result.output
    assert f"{entry.id}: discarded: the period stays dead" in result.stdout
    stored = r.hgetall(keys.dead_letter(entry.id))
    assert (stored["status"], stored["note"], stored["discarded_by"]) == (
        "discarded",
        "refunded by hand",
        "al",
    )
    again = billing("dlq", "replay", entry.id, "--yes")
    assert again.exit_code == 0
    assert f"{entry.id}: already discarded by al: nothing to do" in again.stdout


def test_discard_needs_a_note(r: redis.Redis, billing: Billing) -> None:
    entry = seed_dead_period(r)
    before = snapshot(r)
    missing = billing("dlq", "discard", entry.id)
    empty = billing("dlq", "discard", entry.id, "--note", " ")
    assert missing.exit_code == 2
    assert "--note" in missing.output
    assert empty.exit_code == 2
    assert "needs a --note" in empty.stderr
    assert snapshot(r) == before


# -- events --------------------------------------------------------------------------------


def test_events_tail_from_start(r: redis.Redis, billing: Billing) -> None:
    a = seed_dead_period(r, sub_id="sub-a")
    b = seed_dead_period(r, sub_id="sub-b")
    billing("dlq", "replay", a.id, "--yes", "--actor", "alice")
    billing("dlq", "discard", b.id, "--note", "gone", "--actor", "alice")

    result = billing("events", "tail", "--no-follow", "--from-start")

    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert "dlq.replayed" in first
    assert "sub-a|2026-11-01" in first
    assert '"actor":"alice"' in first
    assert "dlq.discarded" in second
    assert "sub-b|2026-11-01" in second


def test_events_tail_json_type_and_count(r: redis.Redis, billing: Billing) -> None:
    from worker.events import EventType, build

    ids = [
        stream.emit(r, build(EventType.CHARGE_DECLINED, f"s{n}|2026-11-01", T0 + n, {"n": n}))
        for n in range(5)
    ]
    stream.emit(r, build(EventType.CHARGE_SUCCEEDED, "s9|2026-11-01", T0 + 9, {}))

    def tail(*options: str) -> list[dict[str, object]]:
        result = billing("events", "tail", "--no-follow", "--json", *options)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]

    newest = tail("--count", "2", "--type", "charge.declined")
    assert [e["stream_id"] for e in newest] == ids[3:]
    assert newest[0]["data"] == {"n": 3}
    assert newest[0]["time"] == T0 + 3
    oldest = tail("--from-start", "--count", "2")
    assert [e["stream_id"] for e in oldest] == ids[:2]
    assert len(tail()) == 6
    assert [e["type"] for e in tail("--type", "charge.succeeded")] == ["charge.succeeded"]
    assert tail("--count", "0") == []


def test_events_tail_follows_until_ctrl_c(
    r: redis.Redis, billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Following resumes right after what was printed, and Ctrl-C ends it cleanly."""
    from worker.events import EventType, build

    def event(n: int) -> dict[str, str]:
        return build(EventType.CHARGE_SUCCEEDED, f"s{n}|2026-11-01", T0 + n, {"n": n})

    ids = [stream.emit(r, event(n)) for n in range(2)]
    followed_from: list[str] = []

    def follow(client: redis.Redis, after: str = "$") -> Iterator[tuple[str, dict[str, object]]]:
        followed_from.append(after)
        ids.append(stream.emit(r, event(2)))  # arrives while following
        yield from stream.read(client, after=after)
        raise KeyboardInterrupt

    monkeypatch.setattr(stream, "follow", follow)
    result = billing("events", "tail", "--count", "1", "--json")

    assert result.exit_code == 0, result.output
    assert followed_from == [ids[1]]
    assert [json.loads(line)["stream_id"] for line in result.stdout.splitlines()] == ids[1:]


def test_events_tail_on_an_empty_stream(billing: Billing) -> None:
    result = billing("events", "tail", "--no-follow", "--from-start")
    assert result.exit_code == 0
    assert result.stdout == ""


# -- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("dlq",),
        ("dlq", "list"),
        ("dlq", "show"),
        ("dlq", "replay"),
        ("dlq", "discard"),
        ("events",),
        ("events", "tail"),
    ],
)
def test_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage: billing " + " ".join(command) in result.stdout
    if len(command) == 2:
        assert "--redis-url" in result.stdout
