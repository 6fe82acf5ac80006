"""The charge store against a real Redis: leases, fences, compare-and-set transitions, card
caps, the work index, and the side effects written in the same atomic step.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from worker import events, keys
from worker.charges.caps import DAY_MS, next_allowed_at
from worker.deadletters import DeadLetter, DeadLetterReason
from worker.store.charges import (
    Capped,
    ChargeStore,
    Claim,
    Conflict,
    Fenced,
    Ops,
    card_ops,
    new_attempt_expect,
)

NOW = 1_793_512_800_000  # 2026-11-01 06:00:00 UTC
LEASE = 90_000
SUB, PERIOD = "sub-1", "2026-11-01"
MEMBER = f"{SUB}|{PERIOD}"


@pytest.fixture
def store(r: redis.Redis) -> ChargeStore:
    return ChargeStore(r)


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Every key with its whole value, by type."""
    out: dict[str, Any] = {}
    for key in sorted(str(k) for k in r.keys("*")):
        kind = r.type(key)
        if kind == "hash":
            out[key] = r.hgetall(key)
        elif kind == "zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = r.xrange(key)
        else:
            out[key] = r.get(key)
    return out


def stream(r: redis.Redis) -> list[tuple[str, dict[str, str]]]:
    rows: Any = r.xrange(keys.EVENTS)
    return [(str(i), dict(f)) for i, f in rows]


def open_period(store: ChargeStore, sub: str = SUB, period: str = PERIOD) -> str:
    return store.open_period(
        sub, period, NOW, amount_minor=999, currency="AZN", card="5125", gateway="txpg"
    )


def claimed(store: ChargeStore, now: int = NOW, sub: str = SUB, period: str = PERIOD) -> Claim:
    claim = store.claim(sub, period, now, LEASE, "test-worker")
    assert isinstance(claim, Claim), claim
    return claim


def start_attempt(store: ChargeStore, claim: Claim, now: int, n: int = 1, **kw: Any) -> Any:
    return store.transition(
        claim,
        now,
        Ops(
            expect=new_attempt_expect(),
            attempt=n,
            set_attempt={"state": "due", "n": n, "started_at": now},
            set_period={"attempt": n, "next_at": 0},
            **kw,
        ),
    )


# -- open_period ------------------------------------------------------------------------------


def test_open_period_is_idempotent_and_freezes_the_terms(
    r: redis.Redis, store: ChargeStore
) -> None:
    assert open_period(store) == "new"
    before = snapshot(r)

    assert (
        store.open_period(
            SUB, PERIOD, NOW + 5_000, amount_minor=1, currency="USD", card="5100", gateway="txpg"
        )
        == "open"
    )

    assert snapshot(r) == before
    period = store.period(SUB, PERIOD)
    assert period == {
        "status": "open",
        "attempt": "0",
        "fence": "0",
        "lease_until": "0",
        "opened_at": str(NOW),
        "amount_minor": "999",
        "currency": "AZN",
        "card": "5125",
        "gateway": "txpg",
    }
    assert r.zscore(keys.WORK, MEMBER) == NOW
    assert r.zscore(keys.periods(SUB), PERIOD) == NOW
    assert store.pending_count() == 1


def test_open_period_reports_a_final_status_and_does_not_reopen(
    r: redis.Redis, store: ChargeStore
) -> None:
    open_period(store)
    claim = claimed(store)
    store.transition(
        claim,
        NOW,
        Ops(expect="", attempt=0, set_period={"status": "paid"}, work_remove=True),
    )
    before = snapshot(r)

    assert open_period(store) == "paid"

    assert snapshot(r) == before
    assert r.zscore(keys.WORK, MEMBER) is None


# -- claim ------------------------------------------------------------------------------------


def test_claim_gives_one_lease(r: redis.Redis, store: ChargeStore) -> None:
    open_period(store)

    first = store.claim(SUB, PERIOD, NOW, LEASE, "worker-a")
    second = store.claim(SUB, PERIOD, NOW + 1, LEASE, "worker-b")

    assert first == Claim(SUB, PERIOD, fence=1, attempt=0, next_at=0, lease_ms=LEASE)
    assert second == "busy"
    period = store.period(SUB, PERIOD)
    assert period["fence"] == "1"
    assert period["lease_until"] == str(NOW + LEASE)
    assert period["lease_owner"] == "worker-a"
    # the janitor looks again when the lease ends, in case its holder died
    assert r.zscore(keys.WORK, MEMBER) == NOW + LEASE


def test_claim_is_busy_until_the_lease_ends(store: ChargeStore) -> None:
    open_period(store)
    claimed(store)
    assert store.claim(SUB, PERIOD, NOW + LEASE - 1, LEASE, "b") == "busy"
    later = store.claim(SUB, PERIOD, NOW + LEASE, LEASE, "b")
    assert isinstance(later, Claim)
    assert later.fence == 2


def test_claim_of_a_missing_or_final_period(store: ChargeStore) -> None:
    assert store.claim(SUB, PERIOD, NOW, LEASE, "a") == "missing"
    open_period(store)
    claim = claimed(store)
    store.transition(
        claim, NOW, Ops(expect="", attempt=0, set_period={"status": "dead"}, work_remove=True)
    )
    assert store.claim(SUB, PERIOD, NOW + 10 * LEASE, LEASE, "a") == "dead"


def test_an_expired_lease_is_fenced_off_by_the_next_claim(
    r: redis.Redis, store: ChargeStore
) -> None:
    open_period(store)
    old = claimed(store)
    assert start_attempt(store, old, NOW) is None

    now = NOW + LEASE + 1  # the first worker paused past its lease
    new = claimed(store, now)
    assert new.fence > old.fence
    assert new.attempt == 1
    before = snapshot(r)

    with pytest.raises(Fenced):
        store.transition(
            old,
            now,
            Ops(
                expect="due",
                attempt=1,
                set_attempt={"state": "order_created", "order_id": "1"},
                set_period={"status": "paid"},
                events=[events.build(events.EventType.CHARGE_SUCCEEDED, MEMBER, now)],
                work_remove=True,
            ),
        )
    assert snapshot(r) == before
    assert store.release(old, now + 5) is False
    assert snapshot(r) == before

    # the new holder's writes still go through
    store.transition(new, now, Ops(expect="due", attempt=1, set_attempt={"state": "order_created"}))
    assert store.attempt(SUB, PERIOD, 1)["state"] == "order_created"


def test_a_lease_that_expired_unclaimed_still_belongs_to_its_holder(store: ChargeStore) -> None:
    """Expiry alone fences nothing: only another claim does (the fence is the arbiter)."""
    open_period(store)
    claim = claimed(store)
    assert start_attempt(store, claim, NOW + 3 * LEASE) is None
    assert store.attempt(SUB, PERIOD, 1)["state"] == "due"


# -- transition -------------------------------------------------------------------------------


def test_a_wrong_expected_state_is_a_conflict_and_changes_nothing(
    r: redis.Redis, store: ChargeStore
) -> None:
    open_period(store)
    claim = claimed(store)
    start_attempt(store, claim, NOW)
    before = snapshot(r)

    with pytest.raises(Conflict, match="due"):
        store.transition(
            claim,
            NOW + 1,
            Ops(
                expect="token_set",
                attempt=1,
                set_attempt={"state": "exec_sent"},
                set_period={"note": "x"},
                events=[events.build(events.EventType.CHARGE_UNKNOWN, MEMBER, NOW)],
            ),
        )
    assert snapshot(r) == before


def test_a_second_new_attempt_with_the_same_number_is_a_conflict(
    r: redis.Redis, store: ChargeStore
) -> None:
    open_period(store)
    claim = claimed(store)
    start_attempt(store, claim, NOW)
    before = snapshot(r)
    with pytest.raises(Conflict):
        start_attempt(store, claim, NOW + 1)
    assert snapshot(r) == before


def test_a_transition_on_a_closed_period_is_fenced(r: redis.Redis, store: ChargeStore) -> None:
    open_period(store)
    claim = claimed(store)
    start_attempt(store, claim, NOW)
    store.transition(
        claim, NOW, Ops(expect="due", attempt=1, set_period={"status": "skipped"}, work_remove=True)
    )
    before = snapshot(r)
    with pytest.raises(Fenced):
        store.transition(claim, NOW, Ops(expect="due", attempt=1, set_attempt={"state": "paid"}))
    assert snapshot(r) == before


def test_a_transition_renews_the_lease_unless_told_otherwise(
    r: redis.Redis, store: ChargeStore
) -> None:
    open_period(store)
    claim = claimed(store)
    start_attempt(store, claim, NOW + 1_000)
    assert store.period(SUB, PERIOD)["lease_until"] == str(NOW + 1_000 + LEASE)
    assert r.zscore(keys.WORK, MEMBER) == NOW + 1_000 + LEASE

    # work_at without release: the lease is kept, the look is scheduled
    store.transition(
        claim, NOW + 2_000, Ops(expect="due", attempt=1, set_attempt={"x": 1}, work_at=NOW + 7)
    )
    assert store.period(SUB, PERIOD)["lease_until"] == str(NOW + 1_000 + LEASE)
    assert r.zscore(keys.WORK, MEMBER) == NOW + 7

    # work_at with release: the lease is given back with it
    store.transition(
        claim,
        NOW + 3_000,
        Ops(expect="due", attempt=1, set_attempt={"x": 2}, work_at=NOW + 9, release=True),
    )
    assert store.period(SUB, PERIOD)["lease_until"] == "0"
    assert r.zscore(keys.WORK, MEMBER) == NOW + 9
    assert isinstance(store.claim(SUB, PERIOD, NOW + 3_001, LEASE, "b"), Claim)


def test_drop_removes_attempt_fields(store: ChargeStore) -> None:
    open_period(store)
    claim = claimed(store)
    start_attempt(store, claim, NOW)
    store.transition(
        claim,
        NOW,
        Ops(expect="due", attempt=1, set_attempt={"state": "order_created", "order_pw": "pw12"}),
    )
    assert store.attempt(SUB, PERIOD, 1)["order_pw"] == "pw12"
    store.transition(
        claim,
        NOW,
        Ops(
            expect="order_created", attempt=1, set_attempt={"state": "declined"}, drop=["order_pw"]
        ),
    )
    assert "order_pw" not in store.attempt(SUB, PERIOD, 1)
    assert store.attempts(SUB, PERIOD) == [store.attempt(SUB, PERIOD, 1)]


def test_events_dead_letter_and_subscription_are_written_with_the_transition(
    r: redis.Redis, store: ChargeStore
) -> None:
    r.hset(keys.sub(SUB), mapping={"id": SUB, "status": "active"})
    open_period(store)
    claim = claimed(store)
    start_attempt(store, claim, NOW)
    entry = DeadLetter(
        id=f"{MEMBER}|1",
        key=MEMBER,
        subscription_id=SUB,
        period=PERIOD,
        amount_minor=999,
        currency="AZN",
        gateway="txpg",
        reason=DeadLetterReason.HARD_DECLINE,
        detail="41 Stolen card",
        attempts=({"n": "1", "state": "declined", "result_code": "41"},),
        created_at=NOW,
    )
    failed = events.build(events.EventType.CHARGE_FAILED, MEMBER, NOW, {"attempt": 1})
    flagged = events.build(events.EventType.SUBSCRIPTION_NEEDS_NEW_CARD, MEMBER, NOW)
    ops = Ops(
        expect="due",
        attempt=1,
        set_attempt={"state": "declined", "result_code": "41"},
        set_period={"status": "dead", "dlq_id": entry.id, "lease_until": 0},
        work_remove=True,
        dlq={
            "key": keys.dead_letter(entry.id),
            "index": keys.DLQ,
            "id": entry.id,
            "fields": entry.to_hash(),
        },
        sub={"key": keys.sub(SUB), "from": ["active", "past_due"], "to": "needs_new_card"},
        events=[failed, flagged],
    )

    # a stale holder's copy of the same change writes none of it
    stale = Claim(SUB, PERIOD, claim.fence - 1, 1, 0, LEASE)
    before = snapshot(r)
    with pytest.raises(Fenced):
        store.transition(stale, NOW + 10, ops)
    assert snapshot(r) == before

    assert store.transition(claim, NOW + 10, ops) is None

    assert store.period(SUB, PERIOD)["status"] == "dead"
    assert store.attempt(SUB, PERIOD, 1)["state"] == "declined"
    assert r.zscore(keys.WORK, MEMBER) is None
    assert r.hgetall(keys.dead_letter(entry.id)) == entry.to_hash()
    assert r.zscore(keys.DLQ, entry.id) == NOW + 10
    assert r.hgetall(keys.sub(SUB)) == {
        "id": SUB,
        "status": "needs_new_card",
        "updated_at": str(NOW + 10),
    }
    assert [fields for _, fields in stream(r)] == [failed, flagged]


def test_subscription_status_moves_only_from_the_allowed_statuses(
    r: redis.Redis, store: ChargeStore
) -> None:
    r.hset(keys.sub(SUB), mapping={"id": SUB, "status": "cancelled"})
    open_period(store)
    claim = claimed(store)
    start_attempt(
        store,
        claim,
        NOW,
        sub={"key": keys.sub(SUB), "from": ["active", "past_due"], "to": "past_due"},
    )
    assert r.hgetall(keys.sub(SUB)) == {"id": SUB, "status": "cancelled"}


# -- card caps --------------------------------------------------------------------------------


def _card(member: str) -> dict[str, Any]:
    return card_ops("txpg", "5125", member)


def test_attempts_are_counted_per_card(r: redis.Redis, store: ChargeStore) -> None:
    open_period(store)
    claim = claimed(store)
    assert start_attempt(store, claim, NOW, card=_card(f"{MEMBER}|1")) is None
    key = keys.card("txpg", "5125")
    assert r.zrange(key, 0, -1, withscores=True) == [(f"{MEMBER}|1", NOW)]
    assert 0 < r.pttl(key) <= 30 * DAY_MS


def test_a_card_at_its_daily_cap_is_capped_and_nothing_changes(
    r: redis.Redis, store: ChargeStore
) -> None:
    key = keys.card("txpg", "5125")
    times = [NOW - 60_000 * (i + 1) for i in range(10)]
    r.zadd(key, {f"other-{i}|2026-11-01|1": t for i, t in enumerate(times)})
    open_period(store)
    claim = claimed(store)
    before = snapshot(r)

    result = start_attempt(
        store,
        claim,
        NOW,
        card=_card(f"{MEMBER}|1"),
        events=[events.build(events.EventType.CHARGE_SUCCEEDED, MEMBER, NOW)],
    )

    assert isinstance(result, Capped)
    assert result == Capped(next_allowed_at(times, NOW))
    assert result.allowed_at == min(times) + DAY_MS + 1
    assert snapshot(r) == before

    # at that moment the cap has room again
    later = result.allowed_at
    claim = claimed(store, later)
    assert start_attempt(store, claim, later, card=_card(f"{MEMBER}|1")) is None
    assert r.zcard(key) == 11


def test_the_thirty_day_cap_counts_across_the_month(r: redis.Redis, store: ChargeStore) -> None:
    key = keys.card("txpg", "5125")
    times = [NOW - DAY_MS * (2 * i + 1) for i in range(15)]  # every other day, 29 days back
    r.zadd(key, {f"other-{i}|2026-10-01|1": t for i, t in enumerate(times)})
    open_period(store)
    claim = claimed(store)
    result = start_attempt(store, claim, NOW, card=_card(f"{MEMBER}|1"))
    assert result == Capped(next_allowed_at(times, NOW))
    assert result == Capped(min(times) + 30 * DAY_MS + 1)


def test_attempts_older_than_thirty_days_are_forgotten(r: redis.Redis, store: ChargeStore) -> None:
    key = keys.card("txpg", "5125")
    r.zadd(key, {f"old-{i}": NOW - 31 * DAY_MS + i for i in range(20)})
    open_period(store)
    claim = claimed(store)
    assert start_attempt(store, claim, NOW, card=_card(f"{MEMBER}|1")) is None
    assert r.zrange(key, 0, -1) == [f"{MEMBER}|1"]


# -- release ----------------------------------------------------------------------------------


def test_release_gives_the_lease_back(r: redis.Redis, store: ChargeStore) -> None:
    open_period(store)
    claim = claimed(store)
    assert store.release(claim, NOW + 5_000) is True
    assert store.period(SUB, PERIOD)["lease_until"] == "0"
    assert r.zscore(keys.WORK, MEMBER) == NOW + 5_000
    again = store.claim(SUB, PERIOD, NOW + 1, LEASE, "b")
    assert isinstance(again, Claim)
    assert again.fence == claim.fence + 1


def test_release_of_a_closed_period_does_not_put_it_back_to_work(
    r: redis.Redis, store: ChargeStore
) -> None:
    open_period(store)
    claim = claimed(store)
    store.transition(
        claim, NOW, Ops(expect="", attempt=0, set_period={"status": "paid"}, work_remove=True)
    )
    assert store.release(claim, NOW + 5_000) is True
    assert r.zscore(keys.WORK, MEMBER) is None


# -- due ----------------------------------------------------------------------------------------


def test_due_hands_out_each_period_once_per_grace_period(
    r: redis.Redis, store: ChargeStore
) -> None:
    grace = 30_000
    open_period(store, "sub-1")
    open_period(store, "sub-2")
    store.open_period(
        "sub-3", PERIOD, NOW + 45_000, amount_minor=1, currency="AZN", card="1", gateway="txpg"
    )

    assert sorted(store.due(NOW, grace, 100)) == [("sub-1", PERIOD), ("sub-2", PERIOD)]
    assert store.due(NOW, grace, 100) == []
    assert store.due(NOW + grace - 1, grace, 100) == []
    assert sorted(store.due(NOW + grace, grace, 100)) == [("sub-1", PERIOD), ("sub-2", PERIOD)]
    assert r.zscore(keys.WORK, "sub-1|2026-11-01") == NOW + 2 * grace
    # the not-yet-due one comes when its time comes
    assert store.due(NOW + 45_000, grace, 100) == [("sub-3", PERIOD)]


def test_due_respects_the_limit_and_leaves_the_rest_due(store: ChargeStore) -> None:
    for i in range(5):
        open_period(store, f"sub-{i}")
    first = store.due(NOW, 30_000, 2)
    second = store.due(NOW, 30_000, 2)
    third = store.due(NOW, 30_000, 2)
    assert len(first) == len(second) == 2
    assert len(third) == 1
    assert len({*first, *second, *third}) == 5
    assert store.due(NOW, 30_000, 2) == []


def test_due_skips_closed_periods(store: ChargeStore) -> None:
    open_period(store)
    claim = claimed(store)
    store.transition(
        claim, NOW, Ops(expect="", attempt=0, set_period={"status": "paid"}, work_remove=True)
    )
    assert store.due(NOW + DAY_MS, 30_000, 100) == []


def test_a_held_lease_is_due_when_it_ends(store: ChargeStore) -> None:
    open_period(store)
    claimed(store)
    assert store.due(NOW + LEASE - 1, 30_000, 10) == []
    assert store.due(NOW + LEASE, 30_000, 10) == [(SUB, PERIOD)]


def test_event_payload_round_trips(r: redis.Redis, store: ChargeStore) -> None:
    open_period(store)
    claim = claimed(store)
    event = events.build(
        events.EventType.CHARGE_DECLINED, MEMBER, NOW, {"attempt": 1, "result_code": "59"}
    )
    start_attempt(store, claim, NOW, events=[event])
    [(_, fields)] = stream(r)
    parsed = events.parse(fields)
    assert parsed["type"] == "charge.declined"
    assert parsed["data"] == {"attempt": 1, "result_code": "59"}
    assert json.loads(fields["data"]) == {"attempt": 1, "result_code": "59"}
