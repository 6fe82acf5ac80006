"""Dead-letter operations against a real Redis: replay reopens, everything else is a no-op
that says why and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from tests.integration.dead_periods import HOUR, T0, seed_dead_period, snapshot
from worker import keys
from worker.clock import FixedClock
from worker.deadletters import DeadLetterReason, DeadLetterStatus
from worker.errors import InvalidInput
from worker.store import audit
from worker.store import deadletters as dlq
from worker.store import events as stream
from worker.store.deadletters import ReplayOutcome
from worker.subscriptions import SubscriptionStatus

NOW = T0 + 24 * HOUR


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def test_replay_reopens_a_dead_period(r: redis.Redis, clock: FixedClock) -> None:
    entry = seed_dead_period(r)
    rung: list[tuple[str, str]] = []

    result = dlq.replay(r, entry.id, clock, actor="alice", doorbell=lambda *a: rung.append(a))

    assert result.outcome is ReplayOutcome.REOPENED
    assert result.changed
    assert result.message == (
        "reopened sub-1 period 2026-11-01: due now; subscription needs_new_card -> active"
    )
    assert rung == [("sub-1", "2026-11-01")]
    period = r.hgetall(keys.period("sub-1", "2026-11-01"))
    assert period["status"] == "open"
    assert period["next_at"] == str(NOW)
    assert period["lease_until"] == "0"
    assert period["fence"] == "3"  # bumped: whoever held fence 2 can no longer write
    assert {"reason", "dlq_id", "closed_at"}.isdisjoint(period)
    assert period["attempt"] == "2"  # attempts are the state machine's to number
    assert r.zscore(keys.WORK, "sub-1|2026-11-01") == NOW
    stored = r.hgetall(keys.dead_letter(entry.id))
    assert stored["status"] == "replayed"
    assert (stored["replayed_at"], stored["replayed_by"]) == (str(NOW), "alice")
    assert dlq.resolution(r, entry.id) == {"replayed_at": str(NOW), "replayed_by": "alice"}
    assert r.hmget(keys.sub("sub-1"), ["status", "updated_at"]) == ["active", str(NOW)]


def test_replay_writes_exact_audit_and_event(r: redis.Redis, clock: FixedClock) -> None:
    entry = seed_dead_period(r)
    dlq.replay(r, entry.id, clock, actor="alice")

    [(_, event)] = stream.read(r)
    assert set(event) == {"id", "type", "key", "time", "data"}
    assert len(event["id"]) == 32
    assert (event["type"], event["key"], event["time"]) == (
        "dlq.replayed",
        "sub-1|2026-11-01",
        NOW,
    )
    assert event["data"] == {
        "actor": "alice",
        "dlq_id": "sub-1|2026-11-01|2.1",
        "period": "2026-11-01",
        "reactivated_from": "needs_new_card",
        "reason": "hard_decline",
        "subscription_id": "sub-1",
    }
    [(_, record)] = audit.read(r)
    assert set(record) == {"id", "action", "actor", "target", "time", "detail"}
    assert (record["action"], record["actor"], record["target"], record["time"]) == (
        "dlq.replay",
        "alice",
        "sub-1|2026-11-01|2.1",
        NOW,
    )
    assert record["detail"] == {
        "amount_minor": 999,
        "currency": "AZN",
        "dlq_id": "sub-1|2026-11-01|2.1",
        "period": "2026-11-01",
        "period_status_before": "dead",
        "reason": "hard_decline",
        "subscription_id": "sub-1",
        "subscription_reactivated": True,
        "subscription_status_after": "active",
        "subscription_status_before": "needs_new_card",
    }


def test_replay_of_a_paid_period_changes_nothing(r: redis.Redis, clock: FixedClock) -> None:
    entry = seed_dead_period(r)
    r.hset(keys.period("sub-1", "2026-11-01"), mapping={"status": "paid", "paid_order": "4009"})
    before = snapshot(r)
    rung: list[tuple[str, str]] = []

    result = dlq.replay(r, entry.id, clock, actor="alice", doorbell=lambda *a: rung.append(a))

    assert result.outcome is ReplayOutcome.ALREADY_PAID
    assert not result.changed
    assert "sub-1 period 2026-11-01 is already paid: nothing to do" in result.message
    assert snapshot(r) == before
    assert rung == []


def test_replay_twice_is_a_no_op_the_second_time(r: redis.Redis, clock: FixedClock) -> None:
    entry = seed_dead_period(r)
    dlq.replay(r, entry.id, clock, actor="alice")
    before = snapshot(r)
    clock.advance(1000)

    again = dlq.replay(r, entry.id, clock, actor="bob")

    assert again.outcome is ReplayOutcome.ALREADY_RESOLVED
    assert again.message == "already replayed by alice: nothing to do"
    assert snapshot(r) == before


def test_dry_run_says_what_would_happen_and_changes_nothing(
    r: redis.Redis, clock: FixedClock
) -> None:
    entry = seed_dead_period(r)
    before = snapshot(r)

    result = dlq.replay(r, entry.id, clock, actor="alice", dry_run=True)

    assert result.outcome is ReplayOutcome.REOPENED
    assert not result.changed
    assert result.message.startswith("would reopen sub-1 period 2026-11-01")
    assert snapshot(r) == before


@pytest.mark.parametrize(
    ("status", "after"),
    [
        (SubscriptionStatus.PAST_DUE, "active"),
        (SubscriptionStatus.ACTIVE, "active"),
    ],
)
def test_replay_reactivates_only_failure_statuses(
    r: redis.Redis, clock: FixedClock, status: SubscriptionStatus, after: str
) -> None:
    entry = seed_dead_period(r, sub_status=status, reason=DeadLetterReason.DUNNING_EXHAUSTED)
    result = dlq.replay(r, entry.id, clock, actor="alice")
    assert result.outcome is ReplayOutcome.REOPENED
    assert r.hget(keys.sub("sub-1"), "status") == after
    [(_, record)] = audit.read(r)
    assert record["detail"]["subscription_reactivated"] is (status != after)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"sub": {"status": "cancelled"}}, "subscription sub-1 is cancelled"),
        ({"sub": {"status": "paused"}}, "subscription sub-1 is paused: resume it first"),
        ({"period": {"status": "open"}}, "is open: it is already being charged"),
        ({"period": {"status": "skipped"}}, "was skipped by policy"),
        ({"period": {"dlq_id": "sub-1|2026-11-01|5"}}, "dead-lettered again as sub-1|2026"),
    ],
)
def test_replay_refuses_states_it_cannot_fix(
    r: redis.Redis, clock: FixedClock, change: dict[str, dict[str, str]], why: str
) -> None:
    entry = seed_dead_period(r)
    for what, fields in change.items():
        key = keys.sub("sub-1") if what == "sub" else keys.period("sub-1", "2026-11-01")
        r.hset(key, mapping=dict[Any, Any](fields))
    before = snapshot(r)

    result = dlq.replay(r, entry.id, clock, actor="alice")

    assert result.outcome is ReplayOutcome.REFUSED
    assert why in result.message
    assert snapshot(r) == before


def test_replay_rechecks_a_subscription_that_moved(r: redis.Redis) -> None:
    """The script refuses to apply what was built for a stale subscription status; the
    replay reads again, and the audit entry tells the status that was really replaced.
    """
    entry = seed_dead_period(r)

    class MovingClock(FixedClock):
        def now_ms(self) -> int:  # runs between reading the status and the script
            if r.hget(keys.sub("sub-1"), "status") == "needs_new_card":
                r.hset(keys.sub("sub-1"), "status", "past_due")
            return super().now_ms()

    result = dlq.replay(r, entry.id, MovingClock(NOW), actor="alice")

    assert result.subscription_status_before == "past_due"
    [(_, record)] = audit.read(r)
    assert record["detail"]["subscription_status_before"] == "past_due"
    assert r.hget(keys.sub("sub-1"), "status") == "active"


def test_unknown_ids_are_reported(r: redis.Redis, clock: FixedClock) -> None:
    assert dlq.get(r, "nope") is None
    with pytest.raises(dlq.UnknownDeadLetter, match="'nope' not found"):
        dlq.replay(r, "nope", clock, actor="alice")
    with pytest.raises(dlq.UnknownDeadLetter):
        dlq.discard(r, "nope", clock, actor="alice", note="n/a")
    assert snapshot(r) == {}


@pytest.mark.parametrize("note", ["", "   ", "line\nbreak", "x" * 501])
def test_discard_requires_a_note(r: redis.Redis, clock: FixedClock, note: str) -> None:
    entry = seed_dead_period(r)
    before = snapshot(r)
    with pytest.raises(InvalidInput, match="needs a --note"):
        dlq.discard(r, entry.id, clock, actor="alice", note=note)
    assert snapshot(r) == before


def test_discard_closes_the_entry_and_replay_is_then_refused(
    r: redis.Redis, clock: FixedClock
) -> None:
    entry = seed_dead_period(r)

    result = dlq.discard(r, entry.id, clock, actor="alice", note=" customer left ")

    assert result.discarded
    assert result.message == "discarded: the period stays dead"
    stored = r.hgetall(keys.dead_letter(entry.id))
    assert stored["status"] == "discarded"
    assert (stored["note"], stored["discarded_at"], stored["discarded_by"]) == (
        "customer left",
        str(NOW),
        "alice",
    )
    assert r.hget(keys.period("sub-1", "2026-11-01"), "status") == "dead"
    [(_, event)] = stream.read(r)
    assert (event["type"], event["key"], event["time"]) == ("dlq.discarded", entry.key, NOW)
    assert event["data"] == {
        "actor": "alice",
        "dlq_id": entry.id,
        "period": "2026-11-01",
        "reason": "hard_decline",
        "subscription_id": "sub-1",
    }
    [(_, record)] = audit.read(r)
    assert (record["action"], record["actor"], record["target"]) == (
        "dlq.discard",
        "alice",
        entry.id,
    )
    assert record["detail"] == {
        "amount_minor": 999,
        "currency": "AZN",
        "dlq_id": entry.id,
        "note": "customer left",
        "period": "2026-11-01",
        "reason": "hard_decline",
        "subscription_id": "sub-1",
    }
    before = snapshot(r)

    replayed = dlq.replay(r, entry.id, clock, actor="bob")
    discarded = dlq.discard(r, entry.id, clock, actor="bob", note="again")

    assert replayed.outcome is ReplayOutcome.ALREADY_RESOLVED
    assert "already discarded by alice" in replayed.message
    assert not discarded.discarded
    assert snapshot(r) == before


def test_list_filters_and_orders_newest_first(r: redis.Redis, clock: FixedClock) -> None:
    a = seed_dead_period(r, sub_id="sub-a", created_at=T0)
    b = seed_dead_period(
        r,
        sub_id="sub-b",
        created_at=T0 + HOUR,
        reason=DeadLetterReason.DUNNING_EXHAUSTED,
        result_code="59",
    )
    c = seed_dead_period(r, sub_id="sub-c", created_at=T0 + 2 * HOUR)
    dlq.discard(r, c.id, clock, actor="alice", note="duplicate")

    def ids(**filters: object) -> list[str]:
        return [e.id for e in dlq.list_entries(r, **filters)]  # type: ignore[arg-type]

    assert ids() == [c.id, b.id, a.id]
    assert ids(oldest_first=True) == [a.id, b.id, c.id]
    assert ids(reason=DeadLetterReason.HARD_DECLINE) == [c.id, a.id]
    assert ids(since_ms=T0 + HOUR) == [c.id, b.id]
    assert ids(status=DeadLetterStatus.OPEN) == [b.id, a.id]
    assert ids(status=DeadLetterStatus.DISCARDED) == [c.id]
    assert ids(status=DeadLetterStatus.OPEN, reason=DeadLetterReason.HARD_DECLINE) == [a.id]
    assert ids(limit=2) == [c.id, b.id]
    assert ids(since_ms=T0 + 3 * HOUR) == []
    assert dlq.count_open(r) == 2
    entry = dlq.get(r, b.id)
    assert entry == b


def test_list_pages_through_many_entries(r: redis.Redis) -> None:
    for n in range(450):
        seed_dead_period(r, sub_id=f"s{n}", created_at=T0 + n)
    entries = dlq.list_entries(r, limit=None, reason=DeadLetterReason.HARD_DECLINE)
    assert len(entries) == 450
    assert entries[0].subscription_id == "s449"
    assert entries[-1].subscription_id == "s0"
    assert dlq.count_open(r) == 450


def test_actor_must_be_printable(r: redis.Redis, clock: FixedClock) -> None:
    entry = seed_dead_period(r)
    with pytest.raises(InvalidInput, match="actor"):
        dlq.replay(r, entry.id, clock, actor="")
    with pytest.raises(InvalidInput, match="actor"):
        dlq.discard(r, entry.id, clock, actor="a\nb", note="x")


def test_attempts_survive_in_the_entry(r: redis.Redis) -> None:
    entry = seed_dead_period(r, attempts=3)
    stored = dlq.get(r, entry.id)
    assert stored is not None
    assert [a["order_id"] for a in stored.attempts] == ["4001", "4002", "4003"]
    assert json.loads(r.hget(keys.dead_letter(entry.id), "attempts"))[0]["result_code"] == "51"  # type: ignore[arg-type]
