"""The scheduler as real processes: ``billing scheduler`` (APScheduler, the leader lease and the
due sweep), ``dramatiq`` workers and the sandbox over HTTP, on one real Redis. The sandbox
ledger is the oracle: every debit's description is ``{sub} {period} #{attempt}``, so
"billed exactly once" is one debit per (subscription, period) there.

Every process runs on the shared test clock (``BILLING_CLOCK_OFFSET_MS``) pinned to 12:00 UTC
of today, and every subscription is daily in UTC at 00:00: periods fall due at midnight, half a
day away from the test's "now" in both directions, so nothing depends on the time of day the
tests run at. "Three days of downtime" is the same clock moved on by three days.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from schedules.sweep import CRASH_POINTS
from tests.fixtures.pipeline import Pipeline, WorkerProcess, exit_status, log_event
from worker import keys
from worker.clock import SYSTEM, OffsetClock
from worker.store import subscriptions as store
from worker.subscriptions import Subscription

pytestmark = pytest.mark.slow

DAY_MS = 86_400_000


# -- the test clock and the data ---------------------------------------------------------------


def noon_offset_ms() -> int:
    """The clock offset that puts "now" at 12:00 UTC of today's (real, UTC) date."""
    now = SYSTEM.now_ms()
    return now // DAY_MS * DAY_MS + DAY_MS // 2 - now


def virtual_date(offset_ms: int) -> date:
    return datetime.fromtimestamp(OffsetClock(offset_ms).now_ms() / 1000, UTC).date()


def midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def subscribe(p: Pipeline, sub_ids: Sequence[str], cards: Sequence[int], offset_ms: int) -> date:
    """Daily subscriptions at 00:00 UTC starting today (the test clock's), one card each
    (the card-network caps count attempts per card). Returns today.
    """
    clock = OffsetClock(offset_ms)  # their "due now" score is on the test clock too
    today = virtual_date(offset_ms)
    cadence = {"cadence": "daily", "start": today.isoformat(), "timezone": "UTC"}
    cadence["charge_time"] = "00:00"
    for sub_id, card in zip(sub_ids, cards, strict=True):
        sub = Subscription.create(
            id=sub_id,
            customer=f"cust_{sub_id}",
            stored_id=card,
            amount="1.00",
            currency="AZN",
            cadence=cadence,
        )
        store.create(p.r, sub, clock)
    return today


def clock_env(offset_ms: int) -> dict[str, str]:
    return {"BILLING_CLOCK_OFFSET_MS": str(offset_ms)}


# -- reading the schedulers' logs ----------------------------------------------------------------


def logged(proc: WorkerProcess, event: str) -> list[dict[str, Any]]:
    return [rec for rec in proc.records() if log_event(rec) == event]


def swept(proc: WorkerProcess, field: str = "subscriptions") -> int:
    """The sum of ``field`` over the scheduler's ``swept`` lines (logged when it looked at
    any subscription)."""
    return sum(int(rec[field]) for rec in logged(proc, "swept"))


def sweep_runs(proc: WorkerProcess) -> int:
    """How many times APScheduler ran the sweep job to the end (leader or not)."""
    return sum(
        1
        for rec in proc.records()
        if str(rec.get("event", "")).startswith('Job "sweep ')
        and str(rec["event"]).endswith("executed successfully")
    )


def stamp(rec: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(rec["timestamp"]).replace("Z", "+00:00"))


# -- the oracle --------------------------------------------------------------------------------


def expected(sub_ids: Iterable[str], periods: Iterable[date]) -> Counter[str]:
    """One debit per (subscription, period), as ``debits_per_period`` counts them."""
    days = list(periods)
    return Counter(f"{sub_id} {day.isoformat()}" for sub_id in sub_ids for day in days)


def total_debits(p: Pipeline) -> int:
    return sum(p.debits_per_period().values())


def wait_settled(
    p: Pipeline, schedulers: Sequence[WorkerProcess], next_due_ms: int, timeout: float = 30
) -> None:
    """Until nothing more can be charged: every scheduler still alive has run its sweep twice
    more, no charge message is queued, ``bw:work`` is empty, and every subscription waits in
    ``bw:due`` for its next period (no claim outstanding, nothing due).
    """
    alive = [s for s in schedulers if s.alive]
    marks = {s.name: sweep_runs(s) for s in alive}

    def settled() -> bool:
        return (
            all(sweep_runs(s) >= marks[s.name] + 2 for s in alive)
            and p.queued_messages() == 0
            and p.r.zcard(keys.WORK) == 0
            and p.r.zcount(keys.DUE, "-inf", f"({next_due_ms}") == 0
        )

    p.wait_for("the pipeline to settle", settled, timeout, interval=0.2, alive=alive)


def assert_exactly(p: Pipeline, want: Counter[str]) -> None:
    got = p.debits_per_period()
    doubled = {k: n for k, n in got.items() if n > 1}
    assert not doubled, f"charged more than once: {dict(list(doubled.items())[:10])}"
    missing = sorted(set(want) - set(got))
    assert not missing, f"{len(missing)} period(s) never charged, e.g. {missing[:10]}"
    unexpected = sorted(set(got) - set(want))
    assert not unexpected, f"{len(unexpected)} unexpected debit(s), e.g. {unexpected[:10]}"
    assert got == want


# -- 1. two schedulers, 1,000 subscriptions -------------------------------------------------------


def test_two_schedulers_bill_1000_due_subscriptions_exactly_once_across_a_leader_kill(
    pipeline: Pipeline,
) -> None:
    """Two schedulers share the lease: only the leader sweeps. It sweeps 500 due subscriptions
    and is SIGKILLed while their charges are in flight; 500 more come due and the standby,
    leading within the lease, sweeps them. Every (subscription, period) has exactly one debit;
    the two opened 1,000 periods between them, each its own half, never at the same time.
    """
    p = pipeline
    offset = noon_offset_ms()
    env = clock_env(offset)
    subs = [f"sub_{n:04d}" for n in range(1000)]
    cards = p.add_cards(len(subs))
    today = subscribe(p, subs[:500], cards[:500], offset)
    workers = [p.start_worker(threads=8, extra=env) for _ in range(2)]
    schedulers = [p.start_scheduler(extra=env, wait_started=False) for _ in range(2)]
    for s in schedulers:
        p.wait_for(f"{s.name} to start", partial(logged, s, "scheduler_started"), alive=[s])

    def leaders() -> list[WorkerProcess]:
        return [s for s in schedulers if logged(s, "scheduler_leader")]

    (leader,) = p.wait_for("a leader", leaders, alive=schedulers)
    (standby,) = [s for s in schedulers if s is not leader]
    p.wait_for("the leader to sweep the first 500", lambda: swept(leader) >= 500, alive=schedulers)
    assert swept(standby) == 0 and not logged(standby, "scheduler_leader")

    killed_at = datetime.now(UTC)
    assert leader.kill() == -signal.SIGKILL
    subscribe(p, subs[500:], cards[500:], offset)
    p.wait_for(
        "1,000 periods charged",
        lambda: total_debits(p) >= 1000,
        timeout=60,
        interval=0.25,
        alive=[standby, *workers],
    )
    wait_settled(p, schedulers, midnight_ms(today + timedelta(days=1)))

    assert_exactly(p, expected(subs, [today]))
    # the standby swept only after the leader died, and took over within the lease (2 s) and
    # a sweep interval, with slack for this machine
    (took_over,) = logged(standby, "scheduler_leader")
    assert (stamp(took_over) - killed_at).total_seconds() < 10
    assert all(stamp(rec) > killed_at for rec in [took_over, *logged(standby, "swept")])
    assert (swept(leader), swept(standby)) == (500, 500)
    assert swept(leader, "opened") + swept(standby, "opened") == 1000
    assert not logged(standby, "scheduler_lease_lost")
    assert p.r.get(keys.LEADER) is not None  # the standby holds the lease now
    statuses = Counter(p.status(sub, today.isoformat()) for sub in subs)
    assert statuses == Counter({"paid": 1000})
    assert {store.require(p.r, sub).cursor for sub in subs} == {today.isoformat()}


# -- 2. three days of downtime --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "stop"),
    [("all", signal.SIGTERM), ("all", signal.SIGKILL), ("latest", signal.SIGTERM)],
    ids=["all-sigterm", "all-sigkill", "latest-sigterm"],
)
def test_three_days_of_downtime_are_caught_up_exactly_once(
    pipeline: Pipeline, policy: str, stop: signal.Signals
) -> None:
    """The scheduler bills today, stops (cleanly: it gives the lease up; or SIGKILLed: the
    lease runs out), and the next one starts three days later. ``all`` bills each missed day
    once; ``latest`` bills the newest and records the two before it as skipped (``missed``).
    """
    p = pipeline
    offset = noon_offset_ms()
    subs = [f"sub_{n:02d}" for n in range(10)]
    today = subscribe(p, subs, p.add_cards(len(subs)), offset)

    worker = p.start_worker(threads=8, extra=clock_env(offset))
    first = p.start_scheduler(extra=clock_env(offset))
    p.wait_for("today billed", lambda: total_debits(p) >= len(subs), alive=[first, worker])
    wait_settled(p, [first], midnight_ms(today + timedelta(days=1)))
    assert_exactly(p, expected(subs, [today]))

    if stop == signal.SIGTERM:
        first.popen.send_signal(signal.SIGTERM)
        assert first.wait_exit(15) == 0
        assert logged(first, "scheduler_stopped")
        assert p.r.get(keys.LEADER) is None, "a clean stop gives the lease up"
    else:
        assert first.kill() == -signal.SIGKILL
        p.wait_for("the dead leader's lease to expire", lambda: p.r.get(keys.LEADER) is None)
    worker.kill()

    later = offset + 3 * DAY_MS
    missed = [today + timedelta(days=n) for n in (1, 2, 3)]
    assert virtual_date(later) == missed[-1]
    worker = p.start_worker(threads=8, extra=clock_env(later))
    second = p.start_scheduler(catch_up=policy, extra=clock_env(later))
    charged = missed if policy == "all" else missed[-1:]
    skipped = [] if policy == "all" else missed[:-1]
    want = expected(subs, [today, *charged])
    p.wait_for(
        "the missed periods billed",
        lambda: total_debits(p) >= sum(want.values()),
        alive=[second, worker],
    )
    wait_settled(p, [second], midnight_ms(missed[-1] + timedelta(days=1)))

    assert_exactly(p, want)
    assert swept(second) == len(subs)  # one look at each caught it up
    assert swept(second, "opened") == len(subs) * len(charged)
    assert swept(second, "skipped") == len(subs) * len(skipped)
    for sub in subs:
        assert store.require(p.r, sub).cursor == missed[-1].isoformat()
        for day in charged:
            assert p.status(sub, day.isoformat()) == "paid"
        for day in skipped:
            period = p.period(sub, day.isoformat())
            assert (period["status"], period["reason"]) == ("skipped", "missed")
            assert not p.r.exists(keys.attempt(sub, day.isoformat(), 1))
            (event,) = p.events(keys.work_member(sub, day.isoformat()))
            assert event["type"] == "period.skipped"
            assert event["data"] == {"reason": "missed", "due_at": midnight_ms(day)}


# -- 3. a scheduler killed between claim and ring -------------------------------------------------


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_scheduler_killed_mid_sweep_loses_and_doubles_nothing(
    pipeline: Pipeline, point: str
) -> None:
    """``sweep_after_claim``: the subscriptions were claimed (pushed ``claim_ms`` ahead) and
    nothing was recorded; the next scheduler sweeps them once the claim expires.
    ``sweep_after_record``: the periods were opened (each in ``bw:work``) but no message was
    sent; the janitor rings for them after ``grace_ms``. Either way: one debit each.
    """
    p = pipeline
    offset = noon_offset_ms()
    env = clock_env(offset)
    subs = [f"sub_{n:02d}" for n in range(20)]
    today = subscribe(p, subs, p.add_cards(len(subs)), offset)
    period = today.isoformat()
    tomorrow_ms = midnight_ms(today + timedelta(days=1))

    doomed = p.start_scheduler(
        "crashing", crash_at=point, claim_ms=2000, grace_ms=1000, wait_started=False, extra=env
    )
    # its first sweep runs at once; the dead process stays a zombie until polled
    p.wait_for("the scheduler to kill itself", lambda: exit_status(doomed.pid) is not None)
    status = exit_status(doomed.pid)
    assert status is not None
    assert os.WIFSIGNALED(status), f"wait status {status:#x}"
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert doomed.wait_exit(10) == -signal.SIGKILL
    assert not logged(doomed, "swept")

    scores = {sub: p.r.zscore(keys.DUE, sub) for sub in subs}
    claimed_until: float | None = None
    assert p.queued_messages() == 0, "nothing was rung"
    assert total_debits(p) == 0
    if point == "sweep_after_claim":
        # claimed, all in one step, until the same instant; nothing recorded
        (claimed_until,) = set(scores.values())
        assert claimed_until is not None and claimed_until < tomorrow_ms
        assert all(not p.period(sub, period) for sub in subs)
        assert p.r.zcard(keys.WORK) == 0
        assert {store.require(p.r, sub).cursor for sub in subs} == {""}
    else:
        # recorded: opened, in bw:work, the schedule advanced to tomorrow; never rung
        assert set(scores.values()) == {tomorrow_ms}
        assert {p.status(sub, period) for sub in subs} == {"open"}
        assert p.r.zcard(keys.WORK) == len(subs)
        assert {store.require(p.r, sub).cursor for sub in subs} == {period}

    worker = p.start_worker(threads=8, extra=env)
    rescuer = p.start_scheduler("rescuer", claim_ms=2000, extra=env)
    p.wait_for(
        "every period charged",
        lambda: total_debits(p) >= len(subs),
        alive=[worker, rescuer],
    )
    wait_settled(p, [rescuer], tomorrow_ms)

    assert_exactly(p, expected(subs, [today]))
    assert {p.status(sub, period) for sub in subs} == {"paid"}
    key_outcomes = Counter(
        str(rec.get("idempotency_key")) for rec in worker.runs() if rec.get("outcome") == "paid"
    )
    assert key_outcomes == Counter(keys.work_member(sub, period) for sub in subs)
    if point == "sweep_after_claim":
        # the rescuer opened them, and not before the dead one's claim ran out
        assert swept(rescuer) == swept(rescuer, "opened") == len(subs)
        opened_at = {int(p.period(sub, period)["opened_at"]) for sub in subs}
        assert claimed_until is not None and min(opened_at) >= claimed_until
    else:
        # nothing left for the rescuer's sweep: the janitor rang for the opened periods
        assert swept(rescuer) == 0


# -- 4. a clean stop in the middle of a sweep -----------------------------------------------------


@pytest.mark.parametrize("when", ["first", "later"])
def test_a_leader_stopped_mid_sweep_gives_the_lease_up(pipeline: Pipeline, when: str) -> None:
    """SIGTERM while the leader's sweep is half way through a long backlog (batches of 2):
    its first sweep (run as it starts) or a later one. It finishes the pass in flight (no
    claimed batch is stranded), exits with 0 and leaves the lease free, so a successor leads
    at once, not when the lease (10 s here) would have expired.
    """
    p = pipeline
    offset = noon_offset_ms()
    env = clock_env(offset) | {"BILLING_SWEEP_BATCH": "2"}
    subs = [f"sub_{n:04d}" for n in range(600)]
    if when == "first":
        today = subscribe(p, subs, [5125] * len(subs), offset)  # no worker: nothing is charged
        leader = p.start_scheduler("leader", lease_ms=10_000, extra=env, wait_started=False)
    else:
        leader = p.start_scheduler("leader", lease_ms=10_000, extra=env)
        p.wait_for("it to lead", lambda: logged(leader, "scheduler_leader"), alive=[leader])
        today = subscribe(p, subs, [5125] * len(subs), offset)
    p.wait_for("the sweep to be under way", lambda: p.r.zcard(keys.WORK) >= 50, alive=[leader])
    leader.popen.send_signal(signal.SIGTERM)
    assert p.r.zcard(keys.WORK) < len(subs), "the sweep was over before the stop"
    assert leader.wait_exit(15) == 0, leader.tail()
    assert logged(leader, "scheduler_stopped")
    assert p.r.get(keys.LEADER) is None, "it kept the lease"

    successor = p.start_scheduler("successor", lease_ms=10_000, extra=env)
    p.wait_for(
        "every subscription swept",
        lambda: p.r.zcount(keys.DUE, "-inf", f"({midnight_ms(today + timedelta(days=1))}") == 0,
        timeout=15,
        alive=[successor],
    )
    assert p.r.zcard(keys.WORK) == len(subs)
    assert {p.status(sub, today.isoformat()) for sub in subs} == {"open"}
