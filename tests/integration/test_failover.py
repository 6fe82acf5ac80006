"""Failover: ``BILLING_FALLBACK_GATEWAY`` (``Deps.fallback``) in-process, against a real Redis,
the TXPG sandbox (the session's, in a thread) and the Bizon sandbox (in a thread), on a fixed
clock. Money is read from both sandboxes' ledgers.

The rule (docs/gateways.md, "Choosing a gateway, and the fallback"): a new attempt goes to the
fallback after a soft decline (or an abandoned order) on the subscription's own gateway, at
once rather than after the dunning delay, or while that gateway's breaker is open; only when
the period froze a card reference there. Declines count for dunning on either gateway. A hard
or needs-customer decline never fails over, and an attempt in progress keeps its gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from worker import events, keys
from worker.charges.entry import Requested, request_charge
from worker.charges.pipeline import Charger, ChargeSettings, Deps, Outcome
from worker.charges.policy import DAY_MS
from worker.clock import FixedClock
from worker.deadletters import DeadLetter
from worker.gateway.bizon.adapter import BizonChargeGateway
from worker.gateway.bizon.client import BizonClient
from worker.gateway.bizon.models import Authorize, CardDetails, Pan
from worker.gateway.bizon.settings import BizonSettings
from worker.gateway.txpg.adapter import TxpgChargeGateway
from worker.gateway.txpg.client import TxpgClient
from worker.money import Money
from worker.sandbox import Endpoint, FaultKind, FaultRule, LedgerEntry, SandboxServer
from worker.sandbox.bizon import BizonServer
from worker.settings import TxpgSettings
from worker.store import connect
from worker.store import subscriptions as subs
from worker.store.breaker import Breaker, BreakerSettings
from worker.store.charges import ChargeStore
from worker.subscriptions import Subscription

NOW = 1_793_512_800_000  # 2026-11-01 06:00:00 UTC
PERIOD = "2026-11-01"
KEY = f"sub-1|{PERIOD}"
CURRENCY = "USD"
THRESHOLD = 2
COOLDOWN = 5_000
SETTINGS = ChargeSettings(
    dunning_ms=(DAY_MS, DAY_MS),
    retry_base_ms=100,
    retry_max_ms=1_000,
    reconcile_base_ms=100,
    reconcile_max_ms=1_000,
    reconcile_limit_ms=10_000,
)
APPROVE = 5125  #: TXPG sandbox cards (worker/sandbox/cards.json)
SOFT = 5159  #: 59 insufficient funds: a soft decline (its balance is AZN, so any USD debit)
HARD = 5141  #: 41 lost card: a hard decline
NEEDS_CUSTOMER = 5106  #: 6: the cardholder must act
BIZON_APPROVE = "4111111111111111"  #: Bizon sandbox cards (worker/sandbox/bizon/cards.json)
BIZON_SHORT = "4000000000009995"  #: 51 insufficient funds once its balance is spent
BIZON_SHORT_KEY = "400000******9995"  #: its key in the admin API (masked)


@dataclass
class World:
    r: redis.Redis
    txpg_sandbox: SandboxServer
    bizon_sandbox: BizonServer
    bizon_client: BizonClient
    clock: FixedClock
    store: ChargeStore
    charger: Charger
    txpg_breaker: Breaker

    def parent(self, pan: str = BIZON_APPROVE) -> str:
        """A charged customer-present Bizon order: the card reference a rebill uses."""
        order = self.bizon_client.authorize(
            Authorize(
                Money(100, CURRENCY),
                Pan.parse(pan),
                CardDetails(expiration_month=12, expiration_year=2030, cvv=None),
            )
        )
        self.bizon_client.charge(order.id)
        return order.id

    def subscribe(self, stored_id: int, parent_order: str = "", gateway: str = "txpg") -> None:
        sub = Subscription.create(
            id="sub-1",
            customer="cust-1",
            stored_id=stored_id,
            amount="9.99",
            currency=CURRENCY,
            gateway=gateway,
            parent_order=parent_order,
        )
        subs.create(self.r, sub, self.clock)
        assert request_charge(self.r, "sub-1", PERIOD, self.clock).outcome is Requested.OPENED

    def run(self) -> Outcome:
        return self.charger.run("sub-1", PERIOD)

    def attempts(self) -> list[dict[str, str]]:
        return self.store.attempts("sub-1", PERIOD)

    def period(self) -> dict[str, str]:
        return self.store.period("sub-1", PERIOD)

    def work_at(self) -> float | None:
        return self.r.zscore(keys.WORK, KEY)

    def events(self) -> list[dict[str, Any]]:
        rows: Any = self.r.xrange(keys.EVENTS)
        return [e for e in (events.parse(dict(f)) for _, f in rows) if e["key"] == KEY]

    def txpg_debits(self) -> list[LedgerEntry]:
        entries = self.txpg_sandbox.state.ledger.entries()
        return [e for e in entries if e.direction == "debit"]

    def bizon_debits(self) -> list[LedgerEntry]:
        """Rebill debits only: the parent order's own debit is the customer's checkout."""
        entries = self.bizon_sandbox.state.ledger.entries()
        return [e for e in entries if e.order_type == "rebill" and e.direction == "debit"]

    def bizon_rebills(self) -> set[int]:
        entries = self.bizon_sandbox.state.ledger.entries()
        return {e.order_id for e in entries if e.order_type == "rebill"}

    def dead_letter(self) -> DeadLetter:
        raw: Any = self.r.hgetall(keys.dead_letter(self.period()["dlq_id"]))
        return DeadLetter.from_hash(raw)


@pytest.fixture
def bizon_sandbox() -> Iterator[BizonServer]:
    with BizonServer() as server:
        yield server


def make_world(
    redis_url: str, sandbox: SandboxServer, bizon_sandbox: BizonServer, fallback: str | None
) -> tuple[World, list[Any]]:
    r = connect(redis_url)
    clock = FixedClock(NOW)
    txpg_client = TxpgClient(TxpgSettings(base_url=sandbox.base_url, deadline=10.0))
    bizon_client = BizonClient(BizonSettings(base_url=bizon_sandbox.base_url, deadline=10.0))
    txpg, bizon = TxpgChargeGateway(txpg_client), BizonChargeGateway(bizon_client)
    breaker_settings = BreakerSettings(threshold=THRESHOLD, cooldown_ms=COOLDOWN)
    breakers = {name: Breaker(r, name, breaker_settings) for name in ("txpg", "bizon")}
    store = ChargeStore(r)
    deps = Deps(
        store=store,
        gateways={"txpg": txpg, "bizon": bizon},
        breakers=breakers,
        clock=clock,
        settings=SETTINGS,
        owner="test-worker",
        fallback=fallback,
    )
    world = World(
        r, sandbox, bizon_sandbox, bizon_client, clock, store, Charger(deps), breakers["txpg"]
    )
    return world, [txpg_client, bizon_client, r]


@pytest.fixture
def world(redis_url: str, sandbox: SandboxServer, bizon_sandbox: BizonServer) -> Iterator[World]:
    made, closing = make_world(redis_url, sandbox, bizon_sandbox, fallback="bizon")
    yield made
    for thing in closing:
        thing.close()


@pytest.fixture
def no_fallback(
    redis_url: str, sandbox: SandboxServer, bizon_sandbox: BizonServer
) -> Iterator[World]:
    made, closing = make_world(redis_url, sandbox, bizon_sandbox, fallback=None)
    yield made
    for thing in closing:
        thing.close()


def test_the_period_freezes_every_card_reference(world: World) -> None:
    parent = world.parent()
    world.subscribe(SOFT, parent)
    period = world.period()
    assert (period["gateway"], period["card"]) == ("txpg", str(SOFT))
    assert period["cards"] == f'{{"bizon": "{parent}", "txpg": "{SOFT}"}}'


def test_a_soft_decline_fails_over_at_once_and_is_paid_once_on_the_fallback(
    world: World,
) -> None:
    parent = world.parent()
    world.subscribe(SOFT, parent)

    assert world.run() is Outcome.RETRY_SCHEDULED
    assert world.work_at() == NOW, "the fallback is tried now, not after the dunning delay"
    assert world.period()["declines"] == "1", "the decline counts for dunning"
    assert world.run() is Outcome.PAID  # same instant: no dunning wait

    first, second = world.attempts()
    assert (first["gateway"], first["state"]) == ("txpg", "declined")
    assert first["decline_class"] == "soft"
    assert (second["gateway"], second["state"]) == ("bizon", "paid")
    assert world.txpg_debits() == []
    [debit] = world.bizon_debits()
    assert debit.amount == "9.99" and debit.parent_order_id == int(parent)
    assert second["order_id"] == str(debit.order_id)
    assert world.period()["paid_order"] == str(debit.order_id)

    declined, succeeded = world.events()
    assert declined["type"] == "charge.declined"
    assert declined["data"] == {
        "attempt": 1,
        "decline_class": "soft",
        "gateway": "txpg",
        "next_retry_at": NOW,
        "period": PERIOD,
        "result_code": "59",
        "subscription_id": "sub-1",
    }
    assert succeeded["type"] == "charge.succeeded"
    assert (succeeded["data"]["gateway"], succeeded["data"]["attempt"]) == ("bizon", 2)
    assert world.run() is Outcome.ALREADY_PAID
    assert len(world.bizon_debits()) == 1 and world.txpg_debits() == []


def test_after_a_soft_decline_on_the_fallback_dunning_waits_then_the_primary_again(
    world: World,
) -> None:
    world.bizon_sandbox.state.top_up(BIZON_SHORT_KEY, Money(100, CURRENCY))  # the parent only
    world.subscribe(SOFT, world.parent(BIZON_SHORT))

    assert world.run() is Outcome.RETRY_SCHEDULED  # txpg: 59
    assert world.run() is Outcome.RETRY_SCHEDULED  # bizon: 51, at once
    assert world.period()["declines"] == "2"
    assert world.work_at() == NOW + DAY_MS, "the second decline waits its dunning delay"
    assert world.run() is Outcome.DEFERRED  # not due yet
    world.clock.advance(DAY_MS)
    # 5159 holds AZN, so a USD debit still declines: the third attempt is back on TXPG
    # and its decline (the third) exhausts the two-delay schedule.
    assert world.run() is Outcome.DEAD

    gateways = [(a["gateway"], a["decline_class"]) for a in world.attempts()]
    assert gateways == [("txpg", "soft"), ("bizon", "soft"), ("txpg", "soft")]
    entry = world.dead_letter()
    assert (entry.reason.value, entry.gateway) == ("dunning_exhausted", "txpg")
    assert [a["gateway"] for a in entry.attempts] == ["txpg", "bizon", "txpg"]
    declined = [e for e in world.events() if e["type"] == "charge.declined"]
    assert [(e["data"]["gateway"], e["data"]["next_retry_at"]) for e in declined] == [
        ("txpg", NOW),
        ("bizon", NOW + DAY_MS),
        ("txpg", None),
    ]
    [failed] = [e for e in world.events() if e["type"] == "charge.failed"]
    assert failed["data"]["gateway"] == "txpg"
    assert world.txpg_debits() == [] and world.bizon_debits() == []


def test_the_last_soft_decline_on_the_fallback_is_dead_lettered_naming_it(world: World) -> None:
    world.bizon_sandbox.state.top_up(BIZON_SHORT_KEY, Money(100, CURRENCY))
    world.subscribe(SOFT, world.parent(BIZON_SHORT))
    world.charger.deps.settings = ChargeSettings(dunning_ms=(DAY_MS,))

    assert world.run() is Outcome.RETRY_SCHEDULED  # txpg
    assert world.run() is Outcome.DEAD  # bizon: the second decline, past a one-delay schedule
    entry = world.dead_letter()
    assert (entry.reason.value, entry.gateway) == ("dunning_exhausted", "bizon")
    assert [a["gateway"] for a in entry.attempts] == ["txpg", "bizon"]
    failed = [e for e in world.events() if e["type"] == "charge.failed"]
    assert [e["data"]["gateway"] for e in failed] == ["bizon"]
    assert world.r.hget(keys.sub("sub-1"), "status") == "past_due"


@pytest.mark.parametrize(
    ("card", "reason", "status"),
    [(HARD, "hard_decline", "needs_new_card"), (NEEDS_CUSTOMER, "needs_customer", "past_due")],
)
def test_a_hard_or_needs_customer_decline_never_fails_over(
    world: World, card: int, reason: str, status: str
) -> None:
    world.subscribe(card, world.parent())

    assert world.run() is Outcome.DEAD
    [attempt] = world.attempts()
    assert attempt["gateway"] == "txpg"
    entry = world.dead_letter()
    assert (entry.reason.value, entry.gateway) == (reason, "txpg")
    assert [a["gateway"] for a in entry.attempts] == ["txpg"]
    assert world.r.hget(keys.sub("sub-1"), "status") == status
    assert world.bizon_rebills() == set() and world.txpg_debits() == []
    assert {e["data"]["gateway"] for e in world.events()} == {"txpg"}
    assert world.run() is Outcome.DEAD


def test_no_reference_on_the_fallback_means_no_failover(world: World) -> None:
    world.subscribe(SOFT)  # a TXPG card only

    assert world.run() is Outcome.RETRY_SCHEDULED
    assert world.work_at() == NOW + DAY_MS, "plain dunning"
    assert world.run() is Outcome.DEFERRED
    world.clock.advance(DAY_MS)
    assert world.run() is Outcome.RETRY_SCHEDULED
    assert [a["gateway"] for a in world.attempts()] == ["txpg", "txpg"]
    assert world.bizon_rebills() == set()


def test_without_a_configured_fallback_a_second_reference_is_not_used(
    no_fallback: World,
) -> None:
    world = no_fallback
    world.subscribe(SOFT, world.parent())

    assert world.run() is Outcome.RETRY_SCHEDULED
    assert world.work_at() == NOW + DAY_MS
    world.clock.advance(DAY_MS)
    assert world.run() is Outcome.RETRY_SCHEDULED
    assert [a["gateway"] for a in world.attempts()] == ["txpg", "txpg"]
    assert world.bizon_rebills() == set()


def test_an_outage_on_the_primary_moves_the_next_attempt_to_the_fallback(world: World) -> None:
    world.subscribe(APPROVE, world.parent())
    world.txpg_sandbox.state.faults.add(FaultRule(FaultKind.HTTP_503, Endpoint.ANY))

    for _ in range(THRESHOLD):  # Order_REC refused at the door: nothing stored, breaker counts
        assert world.run() is Outcome.DEFERRED
        world.clock.advance(1_000)
    assert world.txpg_breaker.state()["state"] == "open"
    assert world.attempts() == []

    assert world.run() is Outcome.PAID
    [attempt] = world.attempts()
    assert (attempt["n"], attempt["gateway"], attempt["state"]) == ("1", "bizon", "paid")
    assert world.txpg_debits() == []
    assert len(world.bizon_debits()) == 1
    [succeeded] = [e for e in world.events() if e["type"] == "charge.succeeded"]
    assert succeeded["data"]["gateway"] == "bizon"


def test_an_attempt_in_progress_keeps_its_gateway_through_an_outage(world: World) -> None:
    world.subscribe(APPROVE, world.parent())
    # the order is created on TXPG, then attaching the card fails until the breaker opens
    world.txpg_sandbox.state.faults.add(
        FaultRule(FaultKind.HTTP_503, Endpoint.SET_SRC_TOKEN, times=THRESHOLD)
    )
    for _ in range(THRESHOLD):
        assert world.run() is Outcome.DEFERRED
        world.clock.advance(1_000)
    assert world.txpg_breaker.state()["state"] == "open"
    [attempt] = world.attempts()
    assert (attempt["gateway"], attempt["state"]) == ("txpg", "order_created")

    assert world.run() is Outcome.DEFERRED  # circuit open: it waits, it does not switch
    assert world.bizon_rebills() == set()
    world.clock.advance(COOLDOWN)
    assert world.run() is Outcome.PAID

    [attempt] = world.attempts()
    assert (attempt["gateway"], attempt["state"]) == ("txpg", "paid")
    assert len(world.txpg_debits()) == 1
    assert world.bizon_rebills() == set()


def test_a_bizon_subscription_fails_over_to_txpg_the_same_way(
    redis_url: str, sandbox: SandboxServer, bizon_sandbox: BizonServer
) -> None:
    world, closing = make_world(redis_url, sandbox, bizon_sandbox, fallback="txpg")
    try:
        world.bizon_sandbox.state.top_up(BIZON_SHORT_KEY, Money(100, CURRENCY))
        world.subscribe(APPROVE, world.parent(BIZON_SHORT), gateway="bizon")
        assert world.run() is Outcome.RETRY_SCHEDULED
        assert world.run() is Outcome.PAID
        assert [a["gateway"] for a in world.attempts()] == ["bizon", "txpg"]
        assert len(world.txpg_debits()) == 1 and world.bizon_debits() == []
    finally:
        for thing in closing:
            thing.close()


# -- the stop switch is per gateway ---------------------------------------------------------


def test_rejected_credentials_on_one_gateway_leave_the_other_charging(
    no_fallback: World,
) -> None:
    """Bizon's stop switch is on (its credentials were rejected): a TXPG subscription is
    charged as usual, and a Bizon one waits, with nothing sent, until it is resumed.
    """
    from worker.store import halt as halt_store

    world = no_fallback
    assert halt_store.halt(world.r, "bizon", "InvalidLogin: credentials rejected", NOW)
    assert not halt_store.halt(world.r, "bizon", "again", NOW)  # alerts once
    world.subscribe(APPROVE)
    assert world.run() is Outcome.PAID
    assert len(world.txpg_debits()) == 1

    sub = Subscription.create(
        id="sub-2", customer="c2", amount="9.99", currency=CURRENCY,
        gateway="bizon", parent_order=world.parent(),
    )  # fmt: skip
    subs.create(world.r, sub, world.clock)
    request_charge(world.r, "sub-2", PERIOD, world.clock)
    assert world.charger.run("sub-2", PERIOD) is Outcome.DEFERRED
    assert world.bizon_rebills() == set()  # nothing was sent
    assert world.store.attempts("sub-2", PERIOD) == []
    assert halt_store.resume(world.r, "bizon")
    assert not halt_store.resume(world.r, "bizon")
    world.clock.advance(SETTINGS.halt_recheck_ms)
    assert world.charger.run("sub-2", PERIOD) is Outcome.PAID
    assert len(world.bizon_debits()) == 1


def test_a_stopped_primary_sends_a_new_attempt_to_the_fallback(world: World) -> None:
    from worker.store import halt as halt_store

    halt_store.halt(world.r, "txpg", "InvalidLogin: credentials rejected", NOW)
    world.subscribe(APPROVE, world.parent())
    assert world.run() is Outcome.PAID
    assert [a["gateway"] for a in world.attempts()] == ["bizon"]
    assert world.txpg_debits() == [] and len(world.bizon_debits()) == 1


def test_gateway_status_and_resume_name_each_gateway(redis_url: str, r: redis.Redis) -> None:
    from typer.testing import CliRunner

    from worker.cli import app
    from worker.store import halt as halt_store

    env = {"BILLING_REDIS_URL": redis_url, "COLUMNS": "200"}
    halt_store.halt(r, "bizon", "InvalidLogin: credentials rejected", NOW)
    status = CliRunner().invoke(app, ["gateway", "status"], env=env)
    assert status.exit_code == 0, status.output
    lines = {line.split()[1]: line for line in status.output.splitlines() if "│" in line[:3]}
    assert "stopped: InvalidLogin" in lines["bizon"] and "on" in lines["txpg"].split()

    wrong = CliRunner().invoke(app, ["gateway", "resume", "--gateway", "nope"], env=env)
    assert wrong.exit_code == 2 and "must be one of txpg, bizon" in wrong.output
    assert halt_store.halted(r, "bizon") is not None  # a refused command changes nothing
    done = CliRunner().invoke(app, ["gateway", "resume", "--gateway", "bizon"], env=env)
    assert done.exit_code == 0 and "charging resumed on bizon" in done.output
    assert halt_store.halted(r, "bizon") is None
    again = CliRunner().invoke(app, ["gateway", "resume"], env=env)
    assert "nothing to do" in again.output
