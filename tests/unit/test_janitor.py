"""The janitor turns ``bw:work`` into messages: one leader at a time, everything due sent, and
sent again after the grace period while it is still due (a lost message is not lost).
"""

from __future__ import annotations

import pytest
import redis

from worker import keys
from worker.clock import FixedClock
from worker.janitor import Janitor
from worker.store.charges import ChargeStore, Claim, Ops

NOW = 1_793_512_800_000
GRACE = 30_000
PERIOD = "2026-11-01"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


class Outbox:
    """A ``send`` that keeps each batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []

    def __call__(self, pairs: list[tuple[str, str]]) -> None:
        self.batches.append(list(pairs))

    @property
    def sent(self) -> list[tuple[str, str]]:
        return [pair for batch in self.batches for pair in batch]


def open_periods(r: redis.Redis, *subs: str, at: int = NOW) -> ChargeStore:
    store = ChargeStore(r)
    for sub in subs:
        store.open_period(
            sub, PERIOD, at, amount_minor=999, currency="AZN", card="5125", gateway="txpg"
        )
    return store


def test_only_the_lock_holder_ticks(r: redis.Redis, clock: FixedClock) -> None:
    open_periods(r, "sub-1", "sub-2")
    out_a, out_b = Outbox(), Outbox()
    a = Janitor(r, out_a, clock, grace_ms=GRACE)
    b = Janitor(r, out_b, clock, grace_ms=GRACE)

    assert a.tick() == 2
    clock.advance(GRACE)  # due again: only the leader may send it
    assert b.tick() == 0
    assert out_b.batches == []
    assert r.get(keys.JANITOR_LOCK) == a.token
    assert a.tick() == 2
    assert sorted(out_a.sent) == [
        ("sub-1", PERIOD),
        ("sub-1", PERIOD),
        ("sub-2", PERIOD),
        ("sub-2", PERIOD),
    ]


def test_the_leader_keeps_its_lock_fresh(r: redis.Redis, clock: FixedClock) -> None:
    a = Janitor(r, Outbox(), clock, lock_ms=5_000)
    a.tick()
    r.pexpire(keys.JANITOR_LOCK, 10)  # nearly gone
    a.tick()
    assert r.get(keys.JANITOR_LOCK) == a.token
    assert r.pttl(keys.JANITOR_LOCK) > 1_000


def test_another_janitor_takes_over_when_the_lock_is_gone(
    r: redis.Redis, clock: FixedClock
) -> None:
    open_periods(r, "sub-1")
    out_a, out_b = Outbox(), Outbox()
    a = Janitor(r, out_a, clock, grace_ms=GRACE)
    b = Janitor(r, out_b, clock, grace_ms=GRACE)
    assert a.tick() == 1

    r.delete(keys.JANITOR_LOCK)  # the leader died and its lock expired
    clock.advance(GRACE)
    assert b.tick() == 1
    assert a.tick() == 0  # the old leader does not come back while b holds it
    assert out_b.sent == [("sub-1", PERIOD)]
    assert out_a.sent == [("sub-1", PERIOD)]


def test_every_due_period_is_sent_in_batches(r: redis.Redis, clock: FixedClock) -> None:
    subs = [f"sub-{i}" for i in range(5)]
    open_periods(r, *subs)
    open_periods(r, "later", at=NOW + 1_000)
    out = Outbox()

    assert Janitor(r, out, clock, grace_ms=GRACE, batch=2).tick() == 5

    assert [len(b) for b in out.batches] == [2, 2, 1]
    assert sorted(out.sent) == [(s, PERIOD) for s in subs]


def test_a_batch_that_ends_exactly_on_the_limit(r: redis.Redis, clock: FixedClock) -> None:
    open_periods(r, "sub-1", "sub-2", "sub-3", "sub-4")
    out = Outbox()
    assert Janitor(r, out, clock, batch=2).tick() == 4
    assert [len(b) for b in out.batches] == [2, 2]


def test_nothing_due_sends_nothing(r: redis.Redis, clock: FixedClock) -> None:
    open_periods(r, "sub-1", at=NOW + 1)
    out = Outbox()
    assert Janitor(r, out, clock).tick() == 0
    assert out.batches == []


def test_a_lost_message_is_sent_again_after_the_grace_period(
    r: redis.Redis, clock: FixedClock
) -> None:
    open_periods(r, "sub-1")
    out = Outbox()
    janitor = Janitor(r, out, clock, grace_ms=GRACE)

    assert janitor.tick() == 1  # this message is lost: nobody works on the period
    assert janitor.tick() == 0
    clock.advance(GRACE - 1)
    assert janitor.tick() == 0
    clock.advance(1)
    assert janitor.tick() == 1
    assert out.sent == [("sub-1", PERIOD), ("sub-1", PERIOD)]


def test_a_closed_period_is_not_sent_again(r: redis.Redis, clock: FixedClock) -> None:
    store = open_periods(r, "sub-1")
    out = Outbox()
    janitor = Janitor(r, out, clock, grace_ms=GRACE)
    assert janitor.tick() == 1

    claim = store.claim("sub-1", PERIOD, clock.now_ms(), 90_000, "w")
    assert isinstance(claim, Claim)
    store.transition(
        claim,
        clock.now_ms(),
        Ops(expect="", attempt=0, set_period={"status": "paid"}, work_remove=True),
    )
    clock.advance(10 * GRACE)
    assert janitor.tick() == 0
    assert out.sent == [("sub-1", PERIOD)]


def test_a_dead_workers_period_is_sent_when_its_lease_ends(
    r: redis.Redis, clock: FixedClock
) -> None:
    store = open_periods(r, "sub-1")
    out = Outbox()
    janitor = Janitor(r, out, clock, grace_ms=GRACE)
    assert janitor.tick() == 1
    assert isinstance(store.claim("sub-1", PERIOD, clock.now_ms(), 90_000, "w"), Claim)
    # the worker dies holding the lease: nothing until the lease ends, then it is resent
    clock.advance(GRACE)
    assert janitor.tick() == 0
    clock.advance(90_000 - GRACE)
    assert janitor.tick() == 1
    assert out.sent == [("sub-1", PERIOD), ("sub-1", PERIOD)]


def test_the_circuit_gauge_shows_every_gateways_breaker(r: redis.Redis, clock: FixedClock) -> None:
    from worker import metrics

    r.hset(keys.breaker("bizon"), mapping={"state": "open"})
    r.hset(keys.breaker("txpg"), mapping={"state": "half_open"})
    janitor = Janitor(r, Outbox(), clock, gateways=("txpg", "bizon"))
    janitor.tick()
    assert metrics.CIRCUIT.labels("bizon")._value.get() == 2
    assert metrics.CIRCUIT.labels("txpg")._value.get() == 1
    r.delete(keys.breaker("bizon"))
    janitor.tick()
    assert metrics.CIRCUIT.labels("bizon")._value.get() == 0
