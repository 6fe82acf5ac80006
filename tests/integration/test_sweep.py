"""The due sweep against a real Redis: claims, records, rings, leases and catch-up."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
import redis
import structlog

from schedules.sweep import Sweeper, SweepSettings
from worker import events, keys
from worker.clock import FixedClock
from worker.periods import CatchUp
from worker.store import subscriptions as store
from worker.store.charges import ChargeStore
from worker.store.schedule import Decision, DueIndex, LeaseLost
from worker.subscriptions import Subscription

T0 = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)  # 16:00 in Baku
DAY = 86_400_000


class Bell:
    def __init__(self) -> None:
        self.rung: list[tuple[str, str]] = []

    def __call__(self, pairs: list[tuple[str, str]]) -> None:
        self.rung.extend(pairs)


def daily(sub_id: str, start: str = "2026-03-01", **cadence: str) -> Subscription:
    return Subscription.create(
        id=sub_id,
        customer="cust_1",
        stored_id=5125,
        amount="9.99",
        currency="AZN",
        cadence={"cadence": "daily", "start": start, **cadence},
    )


def sweeper(r: redis.Redis, clock: FixedClock, bell: Bell, **settings: object) -> Sweeper:
    return Sweeper(DueIndex(r), bell, clock, SweepSettings(**settings))  # type: ignore[arg-type]


def test_a_due_period_is_opened_rung_once_and_the_schedule_advances(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    sw = sweeper(r, clock, bell)
    result = sw.sweep()
    assert (result.leader, result.subscriptions, result.opened) == (True, 1, 1)
    assert bell.rung == [("sub_1", "2026-03-01")]
    period = ChargeStore(r).period("sub_1", "2026-03-01")
    assert (period["status"], period["amount_minor"], period["card"]) == ("open", "999", "5125")
    assert store.require(r, "sub_1").cursor == "2026-03-01"
    # next due: 2026-03-02 00:00 in Baku (UTC+4) = 03-01 20:00 UTC
    next_at = datetime(2026, 3, 1, 20, 0, tzinfo=UTC).timestamp() * 1000
    assert r.zscore(keys.DUE, "sub_1") == next_at
    # nothing due until then: the sweep claims nothing and rings nothing
    clock.advance(1000)
    assert sw.sweep().subscriptions == 0
    assert bell.rung == [("sub_1", "2026-03-01")]


def test_downtime_bills_each_missed_period_once(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    sweeper(r, clock, bell).sweep()
    clock.advance(3 * DAY)  # the scheduler was down for three days
    r.delete(keys.LEADER)  # the old process's lease ran out (in Redis time)
    sw = sweeper(r, clock, bell)  # a new process, a new token
    assert sw.sweep().opened == 3
    assert sw.sweep().opened == 0
    assert [p for _, p in bell.rung] == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]


def test_the_latest_policy_charges_the_newest_and_records_the_rest(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    clock.advance(3 * DAY)
    result = sweeper(r, clock, bell, policy=CatchUp.LATEST).sweep()
    assert (result.opened, result.skipped) == (1, 3)
    assert bell.rung == [("sub_1", "2026-03-04")]
    charges = ChargeStore(r)
    for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
        period = charges.period("sub_1", day)
        assert (period["status"], period["reason"]) == ("skipped", "missed")
    entries: list[tuple[str, dict[str, str]]] = r.xrange(keys.EVENTS)  # type: ignore[assignment]
    skipped = [events.parse(fields) for _, fields in entries]
    assert [(e["type"], e["key"]) for e in skipped] == [
        ("period.skipped", f"sub_1|2026-03-0{n}") for n in (1, 2, 3)
    ]


def test_periods_due_while_paused_are_recorded_as_skipped(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    sw = sweeper(r, clock, bell)
    sw.sweep()
    store.pause(r, "sub_1", clock)
    clock.advance(2 * DAY)
    store.resume(r, "sub_1", clock)  # resumed before the scheduler looked: still skipped
    sw.sweep()
    clock.advance(DAY)
    sw.sweep()
    assert bell.rung == [("sub_1", "2026-03-01"), ("sub_1", "2026-03-04")]
    for day in ("2026-03-02", "2026-03-03"):
        assert ChargeStore(r).period("sub_1", day)["reason"] == "paused"


def test_a_cancelled_subscription_leaves_the_schedule(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    store.cancel(r, "sub_1", clock)
    sweeper(r, clock, bell).sweep()
    assert bell.rung == []
    assert r.zscore(keys.DUE, "sub_1") == math.inf


def test_a_change_between_claim_and_record_is_looked_at_again(r: redis.Redis) -> None:
    clock = FixedClock(T0)
    store.create(r, daily("sub_1"), clock)
    index = DueIndex(r)
    assert index.lead("me", 10_000)
    claimed = index.claim("me", T0, 60_000, 10)
    store.cancel(r, "sub_1", clock)  # an operator cancels meanwhile
    from schedules.plan import decide

    sub_id, data = claimed[0]
    decision = decide(Subscription.from_hash(data, sub_id), data["updated_at"], T0)
    assert index.record("me", T0, T0, [decision]) == []
    assert ChargeStore(r).period("sub_1", "2026-03-01") == {}
    assert r.zscore(keys.DUE, "sub_1") == T0  # to be looked at again, as it is now


def test_a_lost_lease_stops_the_sweep_before_it_writes(r: redis.Redis) -> None:
    clock = FixedClock(T0)
    store.create(r, daily("sub_1"), clock)
    index = DueIndex(r)
    assert index.lead("old", 10_000)
    claimed = index.claim("old", T0, 60_000, 10)
    r.set(keys.LEADER, "new")  # the lease expired and another scheduler took it
    from schedules.plan import decide

    sub_id, data = claimed[0]
    with pytest.raises(LeaseLost):
        index.record("old", T0, T0, [decide(Subscription.from_hash(data, sub_id), "x", T0)])
    with pytest.raises(LeaseLost):
        index.claim("old", T0, 60_000, 10)
    assert ChargeStore(r).period("sub_1", "2026-03-01") == {}
    assert not index.lead("old", 10_000)


def test_a_standby_does_nothing_while_the_leader_lives(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    leader, standby = sweeper(r, clock, bell), sweeper(r, clock, bell)
    assert leader.sweep().leader
    assert not standby.sweep().leader
    leader.resign()
    clock.advance(DAY)
    assert standby.sweep().opened == 1
    assert [p for _, p in bell.rung] == ["2026-03-01", "2026-03-02"]


def test_an_expired_claim_is_swept_again(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    index = DueIndex(r)
    assert index.lead("dead", 10_000)
    index.claim("dead", T0, 60_000, 10)  # then the process died (its lease is deleted below)
    sw = sweeper(r, clock, bell)
    r.delete(keys.LEADER)
    assert sw.sweep().subscriptions == 0  # claimed: not due until the claim expires
    clock.advance(60_000)
    assert sw.sweep().opened == 1
    assert bell.rung == [("sub_1", "2026-03-01")]


def test_a_long_catch_up_is_done_in_bounded_steps(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1", start="2025-09-01"), clock)  # 182 periods due
    result = sweeper(r, clock, bell).sweep()
    keys_rung = [p for _, p in bell.rung]
    assert result.opened == len(keys_rung) == len(set(keys_rung)) == 182
    assert keys_rung == sorted(keys_rung)


def test_an_unreadable_subscription_does_not_stop_the_others(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), Bell()
    store.create(r, daily("sub_1"), clock)
    store.create(r, daily("sub_2"), clock)
    r.hset(keys.sub("sub_1"), "amount_minor", "not a number")
    result = sweeper(r, clock, bell).sweep()
    assert bell.rung == [("sub_2", "2026-03-01")]
    assert result.subscriptions == 2
    assert r.zscore(keys.DUE, "sub_1") == T0 + 60_000  # still claimed: back in a minute


# -- ringing a batch while the next one is swept -------------------------------------------------


class FirstRingWaits(Bell):
    """Holds the first ring until the sweep records the next batch (or 10 s pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.next_recording = threading.Event()
        self.overlapped: bool | None = None

    def __call__(self, pairs: list[tuple[str, str]]) -> None:
        if self.overlapped is None:
            self.overlapped = self.next_recording.wait(10)
        super().__call__(pairs)


class SignalingIndex(DueIndex):
    """Sets ``recording`` when the second record starts."""

    def __init__(self, r: redis.Redis, recording: threading.Event) -> None:
        super().__init__(r)
        self.records = 0
        self.recording = recording

    def record(
        self, token: str, now_ms: int, work_at_ms: int, decisions: Sequence[Decision]
    ) -> list[tuple[str, str]]:
        self.records += 1
        if self.records == 2:
            self.recording.set()
        return super().record(token, now_ms, work_at_ms, decisions)


def test_a_batch_is_rung_while_the_next_is_recorded_and_in_order(r: redis.Redis) -> None:
    clock, bell = FixedClock(T0), FirstRingWaits()
    for n in range(1, 6):
        store.create(r, daily(f"sub_{n}"), clock)
    index = SignalingIndex(r, bell.next_recording)
    result = Sweeper(index, bell, clock, SweepSettings(batch=2)).sweep()
    assert bell.overlapped  # batch 1 was still ringing when batch 2's record started
    assert (result.subscriptions, result.opened) == (5, 5)
    assert bell.rung == [(f"sub_{n}", "2026-03-01") for n in range(1, 6)]  # batch order


def test_a_failed_ring_is_logged_and_the_pass_goes_on(r: redis.Redis) -> None:
    clock = FixedClock(T0)
    rung: list[list[tuple[str, str]]] = []

    def send(pairs: list[tuple[str, str]]) -> None:
        if not rung:
            rung.append([])
            raise redis.ConnectionError("the queue's Redis went away")
        rung.append(pairs)

    for n in range(1, 6):
        store.create(r, daily(f"sub_{n}"), clock)
    with structlog.testing.capture_logs() as logs:
        result = Sweeper(DueIndex(r), send, clock, SweepSettings(batch=2)).sweep()
    assert (result.leader, result.subscriptions, result.opened) == (True, 5, 5)
    assert rung[1:] == [[(f"sub_{n}", "2026-03-01") for n in ns] for ns in ((3, 4), (5,))]
    failed = [entry for entry in logs if entry["event"] == "sweep_ring_failed"]
    assert len(failed) == 1
    assert failed[0]["periods"] == 2
    assert failed[0]["error"] == "ConnectionError: the queue's Redis went away"
    # the periods it was ringing for are open and in bw:work: the janitor rings for them
    for sub_id in ("sub_1", "sub_2"):
        assert ChargeStore(r).period(sub_id, "2026-03-01")["status"] == "open"
        assert r.zscore(keys.WORK, f"{sub_id}|2026-03-01") == T0 + 30_000


class LeaseTakenAfterFirstBatch(DueIndex):
    def __init__(self, r: redis.Redis) -> None:
        super().__init__(r)
        self.leads = 0

    def lead(self, token: str, ttl_ms: int) -> bool:
        self.leads += 1
        if self.leads == 2:  # the check after batch 1: another scheduler took over
            self.r.set(keys.LEADER, "other")
        return super().lead(token, ttl_ms)


def test_a_lost_lease_stops_the_pass_after_the_ring_in_flight(r: redis.Redis) -> None:
    clock = FixedClock(T0)
    rung: list[tuple[str, str]] = []

    def slow_send(pairs: list[tuple[str, str]]) -> None:
        time.sleep(0.3)
        rung.extend(pairs)

    for n in range(1, 4):
        store.create(r, daily(f"sub_{n}"), clock)
    result = Sweeper(LeaseTakenAfterFirstBatch(r), slow_send, clock, SweepSettings(batch=1)).sweep()
    assert (result.leader, result.subscriptions, result.opened) == (False, 1, 1)
    assert rung == [("sub_1", "2026-03-01")]  # rung before sweep() returned
    assert ChargeStore(r).period("sub_2", "2026-03-01") == {}


def test_a_stop_ends_the_pass_between_batches_and_strands_no_claim(r: redis.Redis) -> None:
    clock = FixedClock(T0)
    for n in range(10):
        store.create(r, daily(f"sub_{n}"), clock)
    rung: list[tuple[str, str]] = []

    def send(pairs: list[tuple[str, str]]) -> None:
        rung.extend(pairs)
        sw.stop()  # a SIGTERM arrives while the first batch is rung

    sw = Sweeper(DueIndex(r), send, clock, SweepSettings(batch=2))
    result = sw.sweep()
    assert result.leader
    assert result.subscriptions < 10  # it ended early ...
    assert len(rung) == result.opened == result.subscriptions  # ... ringing all it recorded
    left = r.zrangebyscore(keys.DUE, "-inf", T0)
    assert len(left) == 10 - result.subscriptions  # the rest is due, not held by a claim
