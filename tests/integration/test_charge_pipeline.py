"""The charge pipeline in-process: ``Charger.run`` against a real Redis and the in-thread
sandbox gateway, on a fixed clock. Money is read from the sandbox's ledger.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from tests.fixtures.logs import LogCapture
from worker import events, keys
from worker.charges.caps import DAY_MS
from worker.charges.entry import Requested, request_charge
from worker.charges.pipeline import Charger, ChargeSettings, Deps, Outcome
from worker.clock import FixedClock
from worker.deadletters import DeadLetter
from worker.gateway.port import Approval, Lookup, OrderHandle
from worker.gateway.txpg.adapter import TxpgChargeGateway
from worker.gateway.txpg.client import TxpgClient
from worker.money import Money
from worker.sandbox import Endpoint, FaultKind, FaultRule, LedgerEntry, SandboxServer
from worker.sensitive import Secret
from worker.settings import TxpgSettings
from worker.store import audit, connect
from worker.store import deadletters as dlq
from worker.store import halt as halt_store
from worker.store import subscriptions as subs
from worker.store.breaker import Breaker, BreakerSettings
from worker.store.charges import ChargeStore, Claim, Ops, card_ops
from worker.store.slots import Slots
from worker.subscriptions import Subscription

NOW = 1_793_512_800_000  # 2026-11-01 06:00:00 UTC
PERIOD = "2026-11-01"
LEASE = 90_000
THRESHOLD = 3
COOLDOWN = 5_000
SETTINGS = ChargeSettings(
    lease_ms=LEASE,
    dunning_ms=(1000, 1000),
    retry_base_ms=100,
    retry_max_ms=1_000,
    reconcile_base_ms=100,
    reconcile_max_ms=1_000,
    reconcile_limit_ms=10_000,
    halt_recheck_ms=30_000,
)
ENDPOINTS = (Endpoint.CREATE_ORDER, Endpoint.SET_SRC_TOKEN, Endpoint.EXEC_TRAN, Endpoint.GET_ORDER)


class LoopGuard(Exception):
    """Raised by a test gateway that was called far more often than any sane run would."""


class Recording:
    """The charge port around the real TXPG adapter, noting each call the pipeline makes."""

    name = "txpg"

    def __init__(self, inner: TxpgChargeGateway) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.before: dict[str, Callable[[], None]] = {}

    def _note(self, call: str) -> None:
        self.calls.append(call)
        if call in self.before:
            self.before[call]()

    def open_order(
        self, amount: Money, description: str, card_ref: str, ahead: Sequence[str] = ()
    ) -> OrderHandle:
        self._note("open_order")
        return self.inner.open_order(amount, description, card_ref, ahead)

    def attach_card(self, order: OrderHandle, card_ref: str) -> None:
        self._note("attach_card")
        self.inner.attach_card(order, card_ref)

    def execute(self, order: OrderHandle, amount: Money) -> Approval:
        self._note("execute")
        return self.inner.execute(order, amount)

    def lookup(self, order: OrderHandle) -> Lookup:
        self._note("lookup")
        return self.inner.lookup(order)


@dataclass
class World:
    r: redis.Redis
    sandbox: SandboxServer
    clock: FixedClock
    client: TxpgClient
    txpg: TxpgChargeGateway
    gateway: Recording
    breaker: Breaker
    store: ChargeStore
    charger: Charger
    log_capture: LogCapture
    log_start: int
    counters: dict[Endpoint, int] = field(default_factory=dict)

    # -- setting up ------------------------------------------------------------------------

    def subscribe(self, sub_id: str = "sub-1", stored_id: int = 5125, amount: str = "9.99") -> None:
        sub = Subscription.create(
            id=sub_id, customer="cust-1", stored_id=stored_id, amount=amount, currency="AZN"
        )
        subs.create(self.r, sub, self.clock)
        assert request_charge(self.r, sub_id, PERIOD, self.clock).outcome is Requested.OPENED

    def fault(self, kind: FaultKind, endpoint: Endpoint, times: int | None = None) -> FaultRule:
        return self.sandbox.state.faults.add(FaultRule(kind, endpoint, times=times))

    def heal(self) -> None:
        """Remove every fault but the call counters."""
        for rule in self.sandbox.state.faults.rules():
            if rule.id not in self.counters.values():
                self.sandbox.state.faults.remove(rule.id)

    # -- acting ----------------------------------------------------------------------------

    def run(self, sub_id: str = "sub-1") -> Outcome:
        return self.charger.run(sub_id, PERIOD)

    def advance_to(self, when_ms: int) -> None:
        self.clock.advance(when_ms - self.clock.now_ms())

    # -- looking ---------------------------------------------------------------------------

    def calls(self, endpoint: Endpoint) -> int:
        """How many calls to ``endpoint`` reached the sandbox (answered or not)."""
        for rule in self.sandbox.state.faults.rules():
            if rule.id == self.counters[endpoint]:
                return rule.fired
        raise AssertionError(f"no counter for {endpoint}")

    def all_calls(self) -> int:
        return sum(self.calls(e) for e in ENDPOINTS)

    def stream(self) -> list[tuple[str, dict[str, str]]]:
        rows: Any = self.r.xrange(keys.EVENTS)
        return [(str(i), dict(f)) for i, f in rows]

    def events(self, key: str | None = "sub-1|2026-11-01") -> list[dict[str, Any]]:
        parsed = [events.parse(f) for _, f in self.stream()]
        return [e for e in parsed if key is None or e["key"] == key]

    def types(self, key: str | None = "sub-1|2026-11-01") -> list[str]:
        return [e["type"] for e in self.events(key)]

    def debits(self) -> list[LedgerEntry]:
        return [e for e in self.sandbox.state.ledger.entries() if e.direction == "debit"]

    def period(self, sub_id: str = "sub-1") -> dict[str, str]:
        return self.store.period(sub_id, PERIOD)

    def attempt(self, n: int, sub_id: str = "sub-1") -> dict[str, str]:
        return self.store.attempt(sub_id, PERIOD, n)

    def work_at(self, sub_id: str = "sub-1") -> float | None:
        return self.r.zscore(keys.WORK, f"{sub_id}|{PERIOD}")

    def sub_status(self, sub_id: str = "sub-1") -> str:
        return str(self.r.hget(keys.sub(sub_id), "status"))

    def dead_letter(self, sub_id: str = "sub-1") -> DeadLetter:
        dlq_id = self.period(sub_id)["dlq_id"]
        return DeadLetter.from_hash(self.r.hgetall(keys.dead_letter(dlq_id)))  # type: ignore[arg-type]

    def leaks(self) -> list[str]:
        """Every place outside the attempt hashes where an order password shows up."""
        passwords = {o.password for o in self.sandbox.state.orders()}
        found: list[str] = []
        for entry_id, fields in self.stream():
            found += [f"event {entry_id}" for v in fields.values() for p in passwords if p in v]
        for key in self.r.scan_iter("bw:dlq:*"):
            entry: Any = self.r.hgetall(key)
            values = [str(v) for v in entry.values()]
            found += [f"dead letter {key}" for v in values for p in passwords if p in v]
        for line in self.log_capture.lines[self.log_start :]:
            found += [f"log line {line[:120]}" for p in passwords if p in line]
        return found


MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(
    redis_url: str, sandbox: SandboxServer, log_capture: LogCapture
) -> Iterator[MakeWorld]:
    made: list[World] = []

    def make(
        *,
        password: str | None = None,
        settings: ChargeSettings = SETTINGS,
        threshold: int = THRESHOLD,
        concurrency: int = 8,
    ) -> World:
        r = connect(redis_url)
        clock = FixedClock(NOW)
        txpg_settings = TxpgSettings(base_url=sandbox.base_url, deadline=10.0)
        if password is not None:
            txpg_settings = TxpgSettings(
                base_url=sandbox.base_url, deadline=10.0, password=Secret(password)
            )
        client = TxpgClient(txpg_settings)
        txpg = TxpgChargeGateway(client)
        gateway = Recording(txpg)
        breaker = Breaker(
            r,
            "txpg",
            BreakerSettings(threshold=threshold, cooldown_ms=COOLDOWN, max_cooldown_ms=60_000),
        )
        store = ChargeStore(r)
        deps = Deps(
            store=store,
            gateways={"txpg": gateway},
            breakers={"txpg": breaker},
            clock=clock,
            settings=settings,
            owner="test-worker",
            slots={"txpg": Slots(r, "bw:slots:txpg", limit=concurrency, ttl_ms=LEASE)},
        )
        counters = {
            e: sandbox.state.faults.add(FaultRule(FaultKind.LATENCY, e, latency_ms=0)).id
            for e in ENDPOINTS
        }
        world = World(
            r=r,
            sandbox=sandbox,
            clock=clock,
            client=client,
            txpg=txpg,
            gateway=gateway,
            breaker=breaker,
            store=store,
            charger=Charger(deps),
            log_capture=log_capture,
            log_start=len(log_capture.lines),
            counters=counters,
        )
        made.append(world)
        return world

    yield make
    try:
        for world in made:
            assert world.leaks() == []
    finally:
        for world in made:
            world.client.close()
            world.r.close()


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    return make_world()


def data_of(world: World, event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in world.events() if e["type"] == event_type]


# -- approve ----------------------------------------------------------------------------------


def test_an_approved_charge_is_paid_once(world: World) -> None:
    world.subscribe()

    assert world.run() is Outcome.PAID
    assert world.run() is Outcome.ALREADY_PAID
    world.clock.advance(DAY_MS)
    assert world.run() is Outcome.ALREADY_PAID

    [debit] = world.debits()
    assert debit.amount == "9.99"
    assert debit.currency == "AZN"
    assert debit.stored_id == 5125
    period = world.period()
    assert period["status"] == "paid"
    assert period["paid_order"] == str(debit.order_id)
    assert period["lease_until"] == "0"
    attempt = world.attempt(1)
    assert attempt["state"] == "paid"
    assert attempt["order_id"] == str(debit.order_id)
    assert "order_pw" not in attempt
    assert world.work_at() is None
    assert world.types() == ["charge.succeeded"]
    assert data_of(world, "charge.succeeded") == [
        {
            "attempt": 1,
            "gateway": "txpg",
            "order_id": str(debit.order_id),
            "period": PERIOD,
            "subscription_id": "sub-1",
        }
    ]
    assert world.gateway.calls == ["open_order", "attach_card", "execute"]
    assert request_charge(world.r, "sub-1", PERIOD, world.clock).outcome is Requested.ALREADY_PAID


def test_a_duplicate_delivery_during_a_run_is_busy(world: World) -> None:
    world.subscribe()
    inside, go_on = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        assert go_on.wait(10)

    world.gateway.before["open_order"] = hold
    outcomes: list[Outcome] = []
    first = threading.Thread(target=lambda: outcomes.append(world.run()))
    first.start()
    try:
        assert inside.wait(10)
        assert world.run() is Outcome.BUSY
    finally:
        go_on.set()
        first.join(10)
    assert outcomes == [Outcome.PAID]
    assert len(world.debits()) == 1
    assert world.gateway.calls == ["open_order", "attach_card", "execute"]


# -- soft decline, dunning --------------------------------------------------------------------


def test_soft_decline_is_retried_with_a_new_order_when_dunning_says(world: World) -> None:
    world.subscribe(stored_id=5159)

    assert world.run() is Outcome.RETRY_SCHEDULED
    first = world.attempt(1)
    assert first["state"] == "declined"
    assert first["decline_class"] == "soft"
    assert first["result_code"] == "59"
    assert first["result_title"] == "Insufficient funds"
    assert "order_pw" not in first
    assert world.period()["next_at"] == str(NOW + 1000)
    assert world.period()["lease_until"] == "0"
    assert world.work_at() == NOW + 1000
    assert world.sub_status() == "active"

    # before the dunning time, a run (a duplicate message, an eager janitor) only waits
    assert world.run() is Outcome.DEFERRED
    world.clock.advance(999)
    assert world.run() is Outcome.DEFERRED
    assert world.calls(Endpoint.CREATE_ORDER) == 1
    assert world.work_at() == NOW + 1000

    world.sandbox.state.top_up(5159, Money(999, "AZN"))
    world.clock.advance(1)
    assert world.run() is Outcome.PAID

    second = world.attempt(2)
    assert second["state"] == "paid"
    assert second["order_id"] != first["order_id"]
    [debit] = world.debits()
    assert debit.order_id == int(second["order_id"])
    assert world.types() == ["charge.declined", "charge.succeeded"]
    declined, succeeded = world.events()
    assert declined["data"] == {
        "attempt": 1,
        "decline_class": "soft",
        "gateway": "txpg",
        "next_retry_at": NOW + 1000,
        "period": PERIOD,
        "result_code": "59",
        "subscription_id": "sub-1",
    }
    assert succeeded["data"]["attempt"] == 2
    assert declined["time"] == NOW
    assert succeeded["time"] == NOW + 1000


def test_soft_declines_through_the_whole_schedule_are_dead_lettered(world: World) -> None:
    world.subscribe(stored_id=5159)

    assert world.run() is Outcome.RETRY_SCHEDULED
    world.clock.advance(1000)
    assert world.run() is Outcome.RETRY_SCHEDULED
    world.clock.advance(1000)
    assert world.run() is Outcome.DEAD
    world.clock.advance(DAY_MS)
    assert world.run() is Outcome.DEAD

    assert world.calls(Endpoint.EXEC_TRAN) == 3  # 1 + the 2 retries of the schedule
    assert world.debits() == []
    entry = world.dead_letter()
    assert entry.reason == "dunning_exhausted"
    assert [a["result_code"] for a in entry.attempts] == ["59", "59", "59"]
    assert world.period()["status"] == "dead"
    assert world.sub_status() == "past_due"
    assert world.types() == [
        "charge.declined",
        "charge.declined",
        "charge.declined",
        "charge.failed",
        "subscription.past_due",
    ]


# -- hard decline and needs-customer ----------------------------------------------------------


def test_hard_decline_is_dead_lettered_with_its_history(world: World) -> None:
    world.subscribe(stored_id=5141)

    assert world.run() is Outcome.DEAD
    world.clock.advance(10 * DAY_MS)
    assert world.run() is Outcome.DEAD

    assert world.calls(Endpoint.CREATE_ORDER) == 1  # no further attempts
    assert world.calls(Endpoint.EXEC_TRAN) == 1
    assert world.debits() == []
    [order] = world.sandbox.state.orders()
    period = world.period()
    assert period["status"] == "dead"
    assert period["reason"] == "hard_decline"
    assert world.work_at() is None
    entry = world.dead_letter()
    assert entry.id == period["dlq_id"]
    assert entry.id.startswith("sub-1|2026-11-01|1.")
    assert entry.reason == "hard_decline"
    assert entry.amount_minor == 999
    assert entry.currency == "AZN"
    assert "41" in entry.detail
    [attempt] = entry.attempts
    assert attempt["n"] == "1"
    assert attempt["state"] == "declined"
    assert attempt["order_id"] == str(order.id)
    assert attempt["result_code"] == "41"
    assert attempt["result_title"] == "Stolen card"
    assert attempt["decline_class"] == "hard"
    assert attempt["error_code"] == "PmoDecline"
    assert "order_pw" not in attempt
    assert "order_pw" not in world.attempt(1)
    assert world.r.zscore(keys.DLQ, entry.id) == NOW
    assert world.sub_status() == "needs_new_card"
    assert world.types() == ["charge.declined", "charge.failed", "subscription.needs_new_card"]
    [declined] = data_of(world, "charge.declined")
    assert declined["next_retry_at"] is None
    assert declined["result_code"] == "41"
    [failed] = data_of(world, "charge.failed")
    assert failed["reason"] == "hard_decline"
    assert failed["dlq_id"] == entry.id


def test_needs_customer_is_dead_lettered_and_past_due(world: World) -> None:
    world.subscribe(stored_id=5106)

    assert world.run() is Outcome.DEAD

    entry = world.dead_letter()
    assert entry.reason == "needs_customer"
    assert [a["result_code"] for a in entry.attempts] == ["6"]
    assert world.sub_status() == "past_due"
    assert world.types() == ["charge.declined", "charge.failed", "subscription.past_due"]
    assert world.debits() == []
    assert world.run() is Outcome.DEAD
    assert world.calls(Endpoint.EXEC_TRAN) == 1


# -- ambiguous exec-tran ----------------------------------------------------------------------


def test_commit_then_drop_on_exec_is_reconciled_as_paid(world: World) -> None:
    world.subscribe()
    world.fault(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN, times=1)

    assert world.run() is Outcome.PAID

    [debit] = world.debits()
    assert world.calls(Endpoint.EXEC_TRAN) == 1  # asked, never re-sent
    assert world.gateway.calls == ["open_order", "attach_card", "execute", "lookup"]
    assert world.attempt(1)["state"] == "paid"
    assert world.period()["paid_order"] == str(debit.order_id)
    assert world.types() == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    [reconciled] = data_of(world, "charge.reconciled")
    assert reconciled["outcome"] == "paid"
    # the dropped connection counts against the gateway's health; the lookup does not undo it
    assert world.breaker.state().get("failures") == "1"
    assert world.run() is Outcome.ALREADY_PAID


def test_drop_before_exec_re_executes_the_same_order_after_asking(world: World) -> None:
    world.subscribe()
    world.fault(FaultKind.DROP_BEFORE, Endpoint.EXEC_TRAN, times=1)

    # asked, found unexecuted: executed again, but in a later run, after a backoff
    assert world.run() is Outcome.DEFERRED
    assert world.attempt(1)["state"] == "token_set"
    assert (world.work_at() or 0) > world.clock.now_ms()
    world.clock.advance(SETTINGS.retry_max_ms)
    assert world.run() is Outcome.PAID

    [order] = world.sandbox.state.orders()
    [debit] = world.debits()
    assert debit.order_id == order.id
    assert world.calls(Endpoint.CREATE_ORDER) == 1
    assert world.calls(Endpoint.EXEC_TRAN) == 2
    assert world.gateway.calls == ["open_order", "attach_card", "execute", "lookup", "execute"]
    assert world.types() == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    [reconciled] = data_of(world, "charge.reconciled")
    assert reconciled["outcome"] == "not_executed"
    assert reconciled["order_id"] == str(order.id)


@pytest.mark.parametrize("kind", [FaultKind.DROP_BEFORE, FaultKind.HTTP_502])
def test_a_gateway_that_keeps_failing_exec_is_not_hammered_in_a_loop(
    world: World, kind: FaultKind
) -> None:
    """Every exec-tran fails before it is handled (the connection cut, or the proxy's 502
    page) while GET order works: each time the gateway is asked and shows the order
    unexecuted, so a re-send is allowed. But one run must not keep doing that: at the latest
    the breaker's threshold of consecutive availability failures stops it.
    """
    world.subscribe()
    world.fault(kind, Endpoint.EXEC_TRAN, times=20)

    outcome = world.run()

    sent = world.calls(Endpoint.EXEC_TRAN)
    assert sent <= THRESHOLD, f"one run sent exec-tran {sent} times ({outcome})"
    assert outcome is not Outcome.PAID


def test_an_exec_the_gateway_keeps_refusing_is_not_re_sent_in_a_loop(world: World) -> None:
    """exec-tran answered with a rejection (here InvalidAmt) moves nothing; the order is
    asked for, shows unexecuted, and may be executed again, once. A rejection that repeats
    must end the run, not loop on the gateway.
    """
    world.subscribe()

    def rejected_execute(order: OrderHandle, amount: Money) -> Approval:
        world.gateway.calls.append("execute")
        if world.gateway.calls.count("execute") > 10:
            raise LoopGuard("exec-tran sent more than 10 times in one run")
        # a deterministic refusal from the real sandbox: not the order's amount
        return world.txpg.execute(order, Money(amount.minor + 1, amount.currency))

    world.gateway.execute = rejected_execute  # type: ignore[method-assign]

    try:
        outcome: Outcome | None = world.run()
    except LoopGuard:
        outcome = None

    sent = world.calls(Endpoint.EXEC_TRAN)
    assert outcome is not None, f"the run looped: exec-tran sent {sent} times"
    assert sent <= 2
    assert world.debits() == []


def test_a_decline_whose_answer_was_lost_is_reconciled_as_that_decline(world: World) -> None:
    world.subscribe(stored_id=5141)
    world.fault(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN, times=1)

    assert world.run() is Outcome.DEAD

    assert world.calls(Endpoint.EXEC_TRAN) == 1
    assert world.gateway.calls[-1] == "lookup"
    entry = world.dead_letter()
    assert entry.reason == "hard_decline"
    [attempt] = entry.attempts
    assert attempt["result_code"] == "41"
    assert attempt["result_title"] == "Stolen card"
    assert world.sub_status() == "needs_new_card"
    assert world.types() == [
        "charge.unknown",
        "charge.reconciled",
        "charge.declined",
        "charge.failed",
        "subscription.needs_new_card",
    ]
    [reconciled] = data_of(world, "charge.reconciled")
    assert reconciled["outcome"] == "declined"


def test_a_stale_worker_is_fenced_and_moves_no_money(world: World) -> None:
    """Worker A stalls inside create-order past its lease; B takes the period over and pays
    it. A's late write is refused, and its order is left with no card and no transaction.
    """
    world.subscribe()
    taken_over: list[Outcome] = []

    def stall_then_lose_the_lease() -> None:
        if not taken_over:
            taken_over.append(Outcome.BUSY)  # guard: B's own create-order runs straight on
            world.clock.advance(LEASE)
            taken_over[0] = world.run()

    world.gateway.before["open_order"] = stall_then_lose_the_lease

    assert world.run() is Outcome.FENCED
    assert taken_over == [Outcome.PAID]
    [debit] = world.debits()
    assert world.period()["paid_order"] == str(debit.order_id)
    orders = world.sandbox.state.orders()
    assert len(orders) == 2
    [stale] = [o for o in orders if o.id != debit.order_id]
    assert stale.src is None
    assert stale.trans == []
    assert world.types() == ["charge.succeeded"]


# -- gateway unavailable, breaker -------------------------------------------------------------


@pytest.mark.parametrize("kind", [FaultKind.HTTP_502, FaultKind.HTTP_503])
def test_create_order_5xx_is_retried_and_opens_then_closes_the_breaker(
    world: World, kind: FaultKind
) -> None:
    world.subscribe()
    world.fault(kind, Endpoint.CREATE_ORDER)

    for _ in range(THRESHOLD):
        assert world.run() is Outcome.DEFERRED
        # nothing was made: the attempt is stored only once its order exists
        assert world.attempt(1) == {}
        assert world.period()["attempt"] == "0"
        assert world.work_at() is not None
        world.clock.advance(SETTINGS.retry_max_ms)
    assert world.calls(Endpoint.CREATE_ORDER) == THRESHOLD
    assert world.sandbox.state.orders() == []
    state = world.breaker.state()
    assert state["state"] == "open"
    until = int(state["until"])
    assert world.types(key="txpg") == ["gateway.circuit_opened"]

    # open: nothing goes out, the period waits for the breaker
    assert world.run() is Outcome.DEFERRED
    assert world.calls(Endpoint.CREATE_ORDER) == THRESHOLD
    assert world.work_at() == until

    world.heal()
    world.advance_to(until)
    assert world.run() is Outcome.PAID
    assert world.breaker.state()["state"] == "closed"
    assert world.types(key="txpg") == ["gateway.circuit_opened", "gateway.circuit_closed"]
    assert len(world.debits()) == 1
    assert world.attempt(1)["state"] == "paid"  # still attempt 1: not-sent retries add none


def test_a_half_open_probe_that_fails_reopens_without_a_new_alert(world: World) -> None:
    world.subscribe()
    world.fault(FaultKind.HTTP_503, Endpoint.CREATE_ORDER)
    for _ in range(THRESHOLD):
        world.run()
        world.clock.advance(SETTINGS.retry_max_ms)
    first_until = int(world.breaker.state()["until"])
    world.advance_to(first_until)

    assert world.run() is Outcome.DEFERRED  # the probe failed

    state = world.breaker.state()
    assert state["state"] == "open"
    assert int(state["until"]) == first_until + 2 * COOLDOWN
    assert world.types(key="txpg") == ["gateway.circuit_opened"]


def test_set_src_token_5xx_counts_towards_the_breaker(world: World) -> None:
    """A 502 page on set-src-token says the gateway is unwell as much as one on create-order:
    the breaker must see it, so that an outage stops dispatching instead of burning attempts.
    """
    world.subscribe()
    world.fault(FaultKind.HTTP_502, Endpoint.SET_SRC_TOKEN)

    for _ in range(2 * THRESHOLD):  # each a second apart: within the breaker's cooldown
        world.run()
        world.clock.advance(SETTINGS.retry_max_ms)

    assert world.types(key="txpg") == ["gateway.circuit_opened"]
    assert world.calls(Endpoint.SET_SRC_TOKEN) <= THRESHOLD


def test_an_outage_on_set_src_token_does_not_use_up_the_cards_attempt_cap(world: World) -> None:
    """Twelve minutes of 502s on set-src-token, then the gateway is back: the period is paid
    then, not a day later because attempts that never reached the card filled its cap.
    """
    world.subscribe()
    world.fault(FaultKind.HTTP_502, Endpoint.SET_SRC_TOKEN)
    for _ in range(12):
        world.run()
        world.clock.advance(60_000)

    world.heal()
    world.clock.advance(60_000)  # past any breaker cooldown

    assert world.run() is Outcome.PAID
    assert len(world.debits()) == 1


def test_a_set_src_token_hiccup_does_not_use_up_the_dunning_schedule(
    make_world: MakeWorld,
) -> None:
    """Dunning gives a softly declined card ``1 + len(schedule)`` charge attempts, at the
    schedule's delays. An attempt abandoned because set-src-token's answer was lost never
    reached the card: it is not a decline and must not take one of them.
    """
    world = make_world(settings=dataclasses.replace(SETTINGS, dunning_ms=(1000, 2000)))
    world.subscribe(stored_id=5159)
    world.fault(FaultKind.HTTP_502, Endpoint.SET_SRC_TOKEN, times=1)

    for _ in range(3):  # the hiccup, then the first real attempt at the card
        world.run()
        if world.calls(Endpoint.EXEC_TRAN):
            break
        world.clock.advance(SETTINGS.retry_max_ms)
    assert world.calls(Endpoint.EXEC_TRAN) == 1
    [first] = [e for e in world.events() if e["data"].get("result_code") == "59"]
    assert first["data"]["next_retry_at"] == first["time"] + 1000  # the schedule's first delay

    world.advance_to(first["data"]["next_retry_at"])
    assert world.run() is Outcome.RETRY_SCHEDULED  # the second real decline: one more to go
    assert world.calls(Endpoint.EXEC_TRAN) == 2


# -- credentials rejected -----------------------------------------------------------------------


def test_rejected_credentials_halt_charging_and_alert_once(make_world: MakeWorld) -> None:
    world = make_world(password="not-the-merchant-password")
    world.subscribe("sub-1")
    world.subscribe("sub-2", stored_id=5100)

    assert world.run("sub-1") is Outcome.DEFERRED

    assert world.all_calls() == 1
    stopped = halt_store.halted(world.r, "txpg")
    assert stopped is not None
    assert stopped["gateway"] == "txpg"
    assert "InvalidLogin" in stopped["reason"]
    assert stopped["since"] == str(NOW)
    assert world.types(key="txpg") == ["gateway.credentials_rejected"]

    # nobody tries again, however often asked, until an operator resumes
    for _ in range(3):
        assert world.run("sub-1") is Outcome.DEFERRED
        assert world.run("sub-2") is Outcome.DEFERRED
        world.clock.advance(SETTINGS.halt_recheck_ms)
    assert world.all_calls() == 1
    assert world.types(key="txpg") == ["gateway.credentials_rejected"]
    assert world.breaker.state() == {}  # not an availability problem
    assert world.attempt(1, "sub-1") == {}  # refused at create-order: no order, no attempt
    assert world.period("sub-1")["attempt"] == "0"
    assert world.period("sub-2")["attempt"] == "0"
    # nothing is lost: both periods wait in bw:work
    assert world.work_at("sub-1") is not None
    assert world.work_at("sub-2") is not None

    # the operator fixes the credentials and resumes
    fixed = TxpgClient(TxpgSettings(base_url=world.sandbox.base_url, deadline=10.0))
    try:
        world.gateway.inner = TxpgChargeGateway(fixed)
        assert halt_store.resume(world.r, "txpg")
        assert world.run("sub-1") is Outcome.PAID
        assert world.run("sub-2") is Outcome.PAID
    finally:
        fixed.close()
    assert len(world.debits()) == 2
    assert world.attempt(1, "sub-1")["state"] == "paid"  # the same attempt, resumed


def test_credentials_rejected_at_exec_leave_the_order_to_be_executed_later(
    make_world: MakeWorld,
) -> None:
    """The credentials are refused at exec-tran: refused at the door, nothing ran. The
    attempt goes back to token_set (not unknown), charging halts; after the fix the same
    order is executed.
    """
    world = make_world()
    world.subscribe()
    wrong = TxpgClient(
        TxpgSettings(base_url=world.sandbox.base_url, deadline=10.0, password=Secret("wrong1"))
    )
    good = world.gateway.inner
    try:

        def rotate_credentials() -> None:
            world.gateway.inner = TxpgChargeGateway(wrong)

        world.gateway.before["execute"] = rotate_credentials
        assert world.run() is Outcome.DEFERRED

        assert halt_store.halted(world.r, "txpg") is not None
        attempt = world.attempt(1)
        assert attempt["state"] == "token_set"
        assert world.calls(Endpoint.EXEC_TRAN) == 1
        assert world.debits() == []
        assert world.types(key="txpg") == ["gateway.credentials_rejected"]
        assert world.types() == []

        del world.gateway.before["execute"]
        world.gateway.inner = good
        halt_store.resume(world.r, "txpg")
        assert world.run() is Outcome.PAID
    finally:
        wrong.close()
    [debit] = world.debits()
    assert debit.order_id == int(attempt["order_id"])
    assert world.calls(Endpoint.CREATE_ORDER) == 1


# -- subscription not chargeable --------------------------------------------------------------


@pytest.mark.parametrize(("change", "status"), [(subs.pause, "paused"), (subs.cancel, "cancelled")])
def test_a_period_of_a_stopped_subscription_is_skipped_with_its_reason(
    world: World, change: Callable[..., Subscription], status: str
) -> None:
    world.subscribe()
    change(world.r, "sub-1", world.clock)

    assert world.run() is Outcome.SKIPPED
    assert world.run() is Outcome.SKIPPED

    period = world.period()
    assert period["status"] == "skipped"
    assert period["reason"] == f"subscription {status}"
    assert period["closed_at"] == str(NOW)
    assert world.work_at() is None
    assert world.all_calls() == 0
    assert world.types() == ["charge.deferred"]
    [data] = data_of(world, "charge.deferred")
    assert data["final"] == "skipped"
    assert data["reason"] == f"subscription {status}"


def test_a_subscription_paused_during_dunning_skips_the_rest(world: World) -> None:
    world.subscribe(stored_id=5159)
    assert world.run() is Outcome.RETRY_SCHEDULED
    subs.pause(world.r, "sub-1", world.clock)
    world.clock.advance(1000)

    assert world.run() is Outcome.SKIPPED
    assert world.calls(Endpoint.CREATE_ORDER) == 1
    assert world.period()["reason"] == "subscription paused"


def test_a_deleted_subscription_is_skipped(world: World) -> None:
    world.subscribe()
    world.r.delete(keys.sub("sub-1"))
    assert world.run() is Outcome.SKIPPED
    assert world.period()["reason"] == "subscription deleted"


# -- a crash after "exec sent" ----------------------------------------------------------------


def crash_after_exec_sent(world: World, *, executed: bool) -> OrderHandle:
    """A worker's steps done by hand up to ``exec_sent``; then it dies holding the lease
    (having sent exec-tran, or not).
    """
    now = world.clock.now_ms()
    claim = world.store.claim("sub-1", PERIOD, now, LEASE, "doomed-worker")
    assert isinstance(claim, Claim)
    world.store.transition(
        claim,
        now,
        Ops(
            expect="",
            attempt=1,
            set_attempt={"state": "due", "n": 1, "started_at": now, "gateway": "txpg"},
            set_period={"attempt": 1, "next_at": 0},
            card=card_ops("txpg", "5125", f"sub-1|{PERIOD}|1"),
        ),
    )
    handle = world.txpg.open_order(Money(999, "AZN"), f"sub-1 {PERIOD} #1")
    assert handle.secret is not None
    world.store.transition(
        claim,
        now,
        Ops(
            expect="due",
            attempt=1,
            set_attempt={
                "state": "order_created",
                "order_id": handle.id,
                "order_pw": handle.secret.reveal(),
            },
        ),
    )
    world.txpg.attach_card(handle, "5125")
    world.store.transition(
        claim, now, Ops(expect="order_created", attempt=1, set_attempt={"state": "token_set"})
    )
    world.store.transition(
        claim,
        now,
        Ops(expect="token_set", attempt=1, set_attempt={"state": "exec_sent", "exec_sent_at": now}),
    )
    if executed:
        world.txpg.execute(handle, Money(999, "AZN"))
    return handle


@pytest.mark.parametrize("executed", [True, False], ids=["exec-went-through", "exec-never-sent"])
def test_an_attempt_left_in_exec_sent_is_reconciled_not_re_sent(
    world: World, executed: bool
) -> None:
    world.subscribe()
    handle = crash_after_exec_sent(world, executed=executed)
    exec_before = world.calls(Endpoint.EXEC_TRAN)

    assert world.run() is Outcome.BUSY  # the dead worker's lease has not ended yet
    world.clock.advance(LEASE)
    if executed:
        assert world.run() is Outcome.PAID
    else:
        assert world.run() is Outcome.DEFERRED  # found unexecuted: again after a backoff
        world.clock.advance(SETTINGS.retry_max_ms)
        assert world.run() is Outcome.PAID

    [debit] = world.debits()
    assert debit.order_id == int(handle.id)
    assert len(world.sandbox.state.orders()) == 1
    if executed:
        assert world.gateway.calls == ["lookup"]
        assert world.calls(Endpoint.EXEC_TRAN) == exec_before == 1
    else:
        assert world.gateway.calls == ["lookup", "execute"]  # asked first, then the same order
        assert world.calls(Endpoint.EXEC_TRAN) == 1
    assert world.types() == ["charge.unknown", "charge.reconciled", "charge.succeeded"]
    [reconciled] = data_of(world, "charge.reconciled")
    assert reconciled["outcome"] == ("paid" if executed else "not_executed")
    assert "order_pw" not in world.attempt(1)


# -- card-network caps --------------------------------------------------------------------------


def test_the_eleventh_attempt_on_a_card_within_a_day_waits(world: World) -> None:
    for i in range(11):
        world.subscribe(f"sub-{i}")  # eleven subscriptions, one card
    world.subscribe("other-card", stored_id=5100)

    for i in range(10):
        assert world.run(f"sub-{i}") is Outcome.PAID
        world.clock.advance(60_000)
    calls_before = world.all_calls()

    assert world.run("sub-10") is Outcome.DEFERRED

    # the cap counts authorisations: an order is made and the card attached, but no
    # exec-tran reaches the card network
    assert world.all_calls() == calls_before + 2
    assert world.calls(Endpoint.EXEC_TRAN) == 10
    assert world.attempt(1, "sub-10")["state"] == "token_set"
    assert world.period("sub-10")["status"] == "open"
    assert "charge.deferred" in world.types("sub-10|2026-11-01")
    allowed_at = NOW + DAY_MS + 1  # when the first of the ten leaves the 24 hours
    assert world.work_at("sub-10") == allowed_at
    # the cap is the card's: another card is charged meanwhile
    assert world.run("other-card") is Outcome.PAID

    world.advance_to(NOW + DAY_MS - 1)  # the first of the ten is still within the 24 hours
    assert world.run("sub-10") is Outcome.DEFERRED
    world.advance_to(allowed_at)
    assert world.run("sub-10") is Outcome.PAID
    assert len(world.debits()) == 12


# -- an outcome that stays unknown ------------------------------------------------------------


def test_an_outcome_that_stays_unknown_is_dead_lettered_and_keeps_what_reconciles_it(
    make_world: MakeWorld,
) -> None:
    world = make_world(threshold=100)  # this test is about reconciling, not the breaker
    world.subscribe()
    world.fault(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN, times=1)  # the money moves
    world.fault(FaultKind.HTTP_503, Endpoint.GET_ORDER)  # and nobody can ask

    assert world.run() is Outcome.RECONCILING
    assert world.attempt(1)["state"] == "unknown"
    world.clock.advance(SETTINGS.reconcile_limit_ms - 1)
    assert world.run() is Outcome.RECONCILING
    world.clock.advance(1)
    assert world.run() is Outcome.DEAD

    [order] = world.sandbox.state.orders()
    assert len(world.debits()) == 1  # it was paid: a human must find out
    assert world.calls(Endpoint.EXEC_TRAN) == 1  # never re-sent blind
    period = world.period()
    assert period["status"] == "dead"
    assert period["reason"] == "unknown_outcome"
    entry = world.dead_letter()
    assert entry.reason == "unknown_outcome"
    assert "needs a human" in entry.detail
    [summary] = entry.attempts
    assert summary["state"] == "unknown"
    assert summary["order_id"] == str(order.id)
    assert world.sub_status() == "active"  # nothing is known against the card
    # the attempt is not final: its order may be (and here is) paid, so what is needed to ask
    # the gateway stays with it, in the attempt hash only
    attempt = world.attempt(1)
    assert attempt["state"] == "unknown"
    assert attempt["order_pw"] == order.password
    assert [t for t in world.types() if t != "charge.unknown"] == ["charge.failed"]

    # ops replays once the gateway answers again: reconciled as paid, nothing re-sent
    world.heal()
    assert dlq.replay(world.r, entry.id, world.clock, actor="ops").changed
    world.gateway.calls.clear()
    assert world.run() is Outcome.PAID
    assert world.gateway.calls == ["lookup"]
    assert len(world.debits()) == 1
    assert world.calls(Endpoint.EXEC_TRAN) == 1
    assert "order_pw" not in world.attempt(1)


# -- secrets ------------------------------------------------------------------------------------


def test_order_passwords_stay_out_of_events_dead_letters_and_logs(world: World) -> None:
    world.subscribe("paid")
    world.subscribe("soft", stored_id=5159)
    world.subscribe("hard", stored_id=5141)
    world.subscribe("unknown")
    world.fault(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN, times=1)
    assert world.run("paid") is Outcome.PAID  # through reconciliation
    assert world.run("soft") is Outcome.RETRY_SCHEDULED
    assert world.run("hard") is Outcome.DEAD
    world.fault(FaultKind.DROP_BEFORE, Endpoint.EXEC_TRAN, times=1)
    world.fault(FaultKind.HTTP_503, Endpoint.GET_ORDER)
    assert world.run("unknown") is Outcome.RECONCILING
    world.clock.advance(SETTINGS.reconcile_limit_ms + 60_000)
    assert world.run("unknown") is Outcome.DEAD

    passwords = {o.password for o in world.sandbox.state.orders()}
    assert len(passwords) == 4
    assert world.r.xlen(keys.EVENTS) > 5
    assert len(list(world.r.scan_iter("bw:dlq:*"))) == 2
    assert world.log_capture.lines[world.log_start :]  # the scan saw real lines
    assert world.leaks() == []
    # final attempts keep no password either
    for sub_id in ("paid", "soft", "hard"):
        assert "order_pw" not in world.attempt(1, sub_id)


def test_a_saturated_gateway_defers_the_charge_without_calling_it(make_world: MakeWorld) -> None:
    world = make_world(concurrency=1)
    world.subscribe()
    other = Slots(world.r, "bw:slots:txpg", limit=1, ttl_ms=LEASE)
    token = other.acquire(world.clock.now_ms())  # another process is talking to the gateway
    assert token is not None

    assert world.run() is Outcome.DEFERRED
    assert world.all_calls() == 0
    assert world.period()["status"] == "open"
    other.release(token)
    world.clock.advance(2_000)
    assert world.run() is Outcome.PAID
    assert other.in_use(world.clock.now_ms()) == 0  # the run gave its slot back


def test_replaying_a_soft_decline_after_a_top_up_pays_once_and_is_audited(
    make_world: MakeWorld,
) -> None:
    world = make_world(settings=dataclasses.replace(SETTINGS, dunning_ms=()))  # no dunning
    world.subscribe(stored_id=5159)  # 59 until topped up
    assert world.run() is Outcome.DEAD
    [entry_id] = [str(member) for member in world.r.zrange(keys.DLQ, 0, -1)]
    assert world.sub_status() == "past_due"

    world.sandbox.state.top_up(5159, Money(5000, "AZN"))
    rang: list[tuple[str, str]] = []
    result = dlq.replay(
        world.r, entry_id, world.clock, actor="ops-alice", doorbell=lambda s, p: rang.append((s, p))
    )
    assert result.outcome is dlq.ReplayOutcome.REOPENED
    assert rang == [("sub-1", PERIOD)]
    assert world.run() is Outcome.PAID
    assert len(world.debits()) == 1
    assert world.attempt(2)["state"] == "paid"  # a new attempt, with a new order

    again = dlq.replay(world.r, entry_id, world.clock, actor="ops-alice")
    assert again.outcome is not dlq.ReplayOutcome.REOPENED  # already resolved: a no-op
    assert world.run() is Outcome.ALREADY_PAID
    assert len(world.debits()) == 1
    entries = audit.read(world.r)
    assert [(a["action"], a["actor"], a["target"]) for _, a in entries] == [
        ("dlq.replay", "ops-alice", entry_id)
    ]


def test_a_period_skipped_with_an_unexecuted_order_keeps_no_order_password(
    world: World,
) -> None:
    world.subscribe()
    now = world.clock.now_ms()
    claim = world.store.claim("sub-1", PERIOD, now, LEASE, "doomed-worker")
    assert isinstance(claim, Claim)
    handle = world.txpg.open_order(Money(999, "AZN"), f"sub-1 {PERIOD} #1")
    assert handle.secret is not None
    world.store.transition(
        claim,
        now,
        Ops(
            expect="",
            attempt=1,
            set_attempt={
                "state": "order_created",
                "n": 1,
                "order_id": handle.id,
                "order_pw": handle.secret.reveal(),
            },
            set_period={"attempt": 1},
        ),
    )  # ...and the worker died; meanwhile the subscription was paused
    subs.pause(world.r, "sub-1", world.clock)
    world.clock.advance(LEASE)

    assert world.run() is Outcome.SKIPPED
    assert world.period()["status"] == "skipped"
    assert "order_pw" not in world.attempt(1)
    assert world.debits() == []
