"""Drive one billing period to a final state: paid, dead-lettered, or skipped by policy.

:meth:`Charger.run` is what the Dramatiq actor calls with ``(subscription_id, period)``,
however many times, however concurrently. It takes the period's lease (one worker at a
time), reads where the current attempt stands, and moves it one gateway call at a time,
writing each step ahead of the call it guards:

* no attempt, or the last one declined and its dunning time has come: a new attempt;
* ``due``: create the order, store its id and password (a gateway that asks for it first gets
  a note written ahead on the attempt, which stays ``due`` until the order is known);
* ``order_created``: attach the saved card;
* ``token_set``: store ``exec_sent``, then execute;
* ``exec_sent`` (found after a crash) or ``unknown``: ask the gateway (reconcile). Paid is
  paid; failed ends the attempt; an order still unexecuted is executed again, same order.

Anything that must wait (a dunning delay, a backoff, an open breaker, a card cap, halted
credentials) releases the lease and records in ``bw:work`` when to look again: the janitor
enqueues it then. Nothing waits in a queue alone, so a lost message only delays a charge.
"""

from __future__ import annotations

import enum
import json
import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from worker import events, keys, metrics
from worker.charges import policy
from worker.charges.flow import CHARGE, Flow
from worker.charges.states import AttemptState, PeriodStatus
from worker.clock import Clock
from worker.deadletters import (
    DeadLetter,
    DeadLetterReason,
    attempts_summary,
    dead_letter_id,
)
from worker.errors import (
    CredentialsRejected,
    DeclineClass,
    Declined,
    GatewayError,
    GatewayUnavailable,
    InvalidInput,
    InvalidOrderState,
    OutcomeUnknown,
    RequestRejected,
)
from worker.events import EventType
from worker.gateway.port import ChargeGateway, Lookup, LookupOutcome, OrderHandle, WritesAhead
from worker.money import Money
from worker.sensitive import Secret, scrub
from worker.store import halt as halt_store
from worker.store.breaker import Breaker
from worker.store.charges import ChargeStore, Claim, Conflict, Fenced, Ops, card_ops
from worker.store.slots import Slots

log = structlog.get_logger("worker.charges")

#: Crash points for fault tests: ``BILLING_CRASH_AT=after_order_created`` SIGKILLs the
#: process right after that step is stored. Never set in production.
CRASH_POINTS = ("after_order_created", "after_token_set", "after_exec_sent", "after_result")


class Outcome(enum.StrEnum):
    PAID = "paid"  #: this run moved the money (or confirmed it moved)
    ALREADY_PAID = "already_paid"  #: nothing to do: the period was paid before
    RETRY_SCHEDULED = "retry_scheduled"  #: declined softly; dunning will try again
    DEAD = "dead_lettered"  #: final without a charge; in the dead letters
    SKIPPED = "skipped"  #: final by policy (subscription paused or cancelled)
    DEFERRED = "deferred"  #: waiting: backoff, breaker, card cap, halt, concurrency
    RECONCILING = "reconciling"  #: outcome unknown; will ask the gateway again
    BUSY = "busy"  #: another worker holds the period
    FENCED = "fenced"  #: this worker lost the period to another mid-way
    MISSING = "missing"  #: no such open period


@dataclass(frozen=True, slots=True)
class ChargeSettings:
    lease_ms: int = 90_000  #: longer than a gateway call's deadline, with margin
    dunning_ms: tuple[int, ...] = policy.DEFAULT_DUNNING_MS
    retry_base_ms: int = 1_000  #: first backoff for "not sent" and availability errors
    retry_max_ms: int = 60_000
    reconcile_base_ms: int = 2_000
    reconcile_max_ms: int = 120_000
    reconcile_limit_ms: int = 6 * 3_600_000  #: then "unknown outcome, needs a human"
    halt_recheck_ms: int = 30_000


@dataclass
class Deps:
    store: ChargeStore
    gateways: Mapping[str, ChargeGateway]
    breakers: Mapping[str, Breaker]
    clock: Clock
    #: per gateway: at most this many charges talk to it at once, across all processes
    slots: Mapping[str, Slots] = field(default_factory=dict)
    settings: ChargeSettings = field(default_factory=ChargeSettings)
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    #: what kind of job this is: a charge (the default) or a payout
    flow: Flow = CHARGE
    #: the gateway a period's next attempt moves to after a soft decline on the period's own
    #: gateway (at once, not after the dunning delay) or while its own gateway's breaker is
    #: open; only when the period froze a card reference there (see ``_Run.choose``)
    fallback: str | None = None


def _backoff(base: int, cap: int, tries: int) -> int:
    """Exponential backoff with full jitter (never below a tenth of the step)."""
    step: int = min(cap, base * (1 << min(tries, 20)))
    jittered = int(random.random() * step)  # noqa: S311 - jitter, not security
    return max(step // 10, jittered)


def _crash_if(point: str) -> None:
    if os.environ.get("BILLING_CRASH_AT") == point:
        os.kill(os.getpid(), 9)


class Charger:
    """Runs the charge pipeline for one period at a time. Thread-safe."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    # -- entry -----------------------------------------------------------------------------

    def run(self, sub_id: str, period: str) -> Outcome:
        d = self.deps
        started = time.monotonic()
        now = d.clock.now_ms()
        claim = d.store.claim(sub_id, period, now, d.settings.lease_ms, d.owner)
        key = d.flow.space.member(sub_id, period)
        if isinstance(claim, str):
            outcome = {
                "paid": Outcome.ALREADY_PAID,
                "dead": Outcome.DEAD,
                "skipped": Outcome.SKIPPED,
                "busy": Outcome.BUSY,
            }.get(claim, Outcome.MISSING)
            log.debug("charge_not_claimed", idempotency_key=key, outcome=outcome.value)
            return outcome
        run = _Run(d, claim)
        metrics.IN_FLIGHT.inc()
        try:
            outcome = run.drive()
        except Fenced:
            outcome = Outcome.FENCED
        except Conflict:
            # Someone changed the attempt under the same fence: impossible unless two runs
            # share a lease. Look again soon rather than guess.
            d.store.release(claim, d.clock.now_ms() + d.settings.retry_base_ms)
            outcome = Outcome.DEFERRED
        except Exception:
            d.store.release(claim, d.clock.now_ms() + d.settings.retry_max_ms)
            log.exception("charge_run_crashed", idempotency_key=key, attempt=run.n)
            metrics.CHARGES.labels("crashed").inc()
            raise
        finally:
            metrics.IN_FLIGHT.dec()
        metrics.CHARGES.labels(outcome.value).inc()
        log.info(
            f"{d.flow.space.name}_attempt_finished",
            idempotency_key=key,
            **d.flow.ids(sub_id, period),
            attempt=run.n,
            order_id=run.order_id,
            outcome=outcome.value,
            detail=run.detail,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return outcome


class _Run:
    """One run under one lease: the mutable state of a single :meth:`Charger.run` call."""

    def __init__(self, deps: Deps, claim: Claim) -> None:
        self.d = deps
        self.claim = claim
        self.flow = deps.flow
        self.key = self.flow.space.member(claim.sub_id, claim.period)
        self.n = claim.attempt
        self.new_fields: dict[str, str | int] = {}
        self.declines = 0
        self.order_id: str | None = None
        #: the current ``due`` attempt is stored (a note was written ahead of its order)
        self.due_stored = False
        #: the gateway the current attempt uses (the period's, or the fallback)
        self.gateway_name = ""
        #: the period's own gateway, and every gateway's card reference it froze
        self.primary = ""
        self.cards: dict[str, str] = {}
        self.detail = ""
        #: set when a call failed in a way that says "the gateway is not healthy"
        self.unavailable = False
        self.any_unavailable = False

    # -- helpers ---------------------------------------------------------------------------

    def now(self) -> int:
        return self.d.clock.now_ms()

    def event(self, event_type: EventType, **data: Any) -> dict[str, str]:
        """An event of this run's attempt: it names the gateway the attempt uses."""
        ids = self.flow.ids(self.claim.sub_id, self.claim.period)
        via = {"gateway": self.gateway_name} if self.gateway_name else {}
        return events.build(event_type, self.key, self.now(), {**ids, **via, **data})

    def wait(self, until_ms: int, detail: str, outcome: Outcome = Outcome.DEFERRED) -> Outcome:
        self.detail = detail
        self.d.store.release(self.claim, until_ms)
        return outcome

    def step(self, expect: str, **kw: Any) -> None:
        """A transition of the current attempt that cannot be capped."""
        self.d.store.transition(self.claim, self.now(), self.ops(expect, **kw))

    def ops(self, expect: str, **kw: Any) -> Ops:
        """The ops of a transition. A ``due`` attempt exists only in memory until its first
        write (usually: its order was created), which also makes it the period's current one.
        """
        ops = Ops(expect=expect, attempt=self.n, **kw)
        if expect == AttemptState.DUE.value and not self.due_stored:
            ops.expect = ""
            ops.set_attempt = {**self.new_fields, **ops.set_attempt}
            ops.set_period = {"attempt": self.n, "next_at": 0, **ops.set_period}
        return ops

    # -- the loop --------------------------------------------------------------------------

    def drive(self) -> Outcome:
        d = self.d
        snap = d.store.snapshot(self.claim.sub_id, self.claim.period, self.n, list(d.gateways))
        attempt = snap.attempt
        name, card = self.choose(snap.period, attempt, snap.breaker, snap.halts)
        stopped = snap.halts.get(name)
        breaker_closed = snap.breaker_closed and name == snap.period.get("gateway", "")
        # The rest of the run sees the attempt's own gateway and card as the period's.
        period = {**snap.period, "gateway": name, "card": card}
        self.gateway_name = name
        gateway, breaker = d.gateways.get(name), d.breakers.get(name)
        if gateway is None or breaker is None:
            return self.wait(self.now() + d.settings.retry_max_ms, f"no gateway {name!r}")
        amount = Money(int(period["amount_minor"]), period["currency"])
        self.declines = int(period.get("declines") or 0)
        unwanted = self.flow.gate(snap.subscription)
        if stopped is not None:
            why = f"halted: {stopped.get('reason', '')}"
            return self.wait(self.now() + d.settings.halt_recheck_ms, why)
        slots = d.slots.get(name)
        token = slots.acquire(self.now()) if slots is not None else ""
        if token is None:
            delay = _backoff(100, 1_000, 3)
            return self.wait(self.now() + delay, "gateway concurrency limit reached")
        try:
            return self.loop(period, attempt, unwanted, gateway, breaker, amount, breaker_closed)
        finally:
            if slots is not None and token:
                slots.release(token)

    def choose(
        self,
        period: Mapping[str, str],
        attempt: Mapping[str, str],
        breaker: Mapping[str, str],
        halts: Mapping[str, Mapping[str, str]],
    ) -> tuple[str, str]:
        """The gateway and card reference of the attempt this run works on.

        An attempt in progress keeps the gateway it started on. A new one uses the period's
        gateway, unless a fallback gateway is configured, the period froze a card reference
        valid there, and either the last attempt, on the period's gateway, was declined
        softly (or abandoned) or the period's gateway's breaker is open or its stop switch on
        (rejected credentials): then the fallback.
        After a soft decline on the fallback, the next attempt is back on the period's own.
        """
        primary = period.get("gateway", "")
        cards: dict[str, str] = json.loads(period.get("cards") or "{}")
        cards.setdefault(primary, period.get("card", ""))
        self.primary, self.cards = primary, cards
        state = attempt.get("state", "")
        if state and state != AttemptState.DECLINED.value:
            used = attempt.get("gateway") or primary
            return used, cards.get(used, "")
        fallback = self.fallback()
        if fallback is not None:
            soft = state == AttemptState.DECLINED.value and (
                (attempt.get("gateway") or primary) == primary
                and attempt.get("decline_class") in (DeclineClass.SOFT.value, "abandoned")
            )
            if soft or breaker.get("state") == "open" or primary in halts:
                return fallback, cards[fallback]
        return primary, cards[primary]

    def fallback(self) -> str | None:
        """The configured fallback gateway, if the period froze a card reference there."""
        fallback = self.d.fallback
        if fallback and fallback != self.primary and self.cards.get(fallback):
            return fallback
        return None

    def loop(
        self,
        period: Mapping[str, str],
        attempt: dict[str, str],
        unwanted: str | None,
        gateway: ChargeGateway,
        breaker: Breaker,
        amount: Money,
        breaker_closed: bool,
    ) -> Outcome:
        allowed, mode = True, "closed"
        checked = breaker_closed  # plainly closed: the breaker's script need not be asked
        self.due_stored = attempt.get("state") == AttemptState.DUE.value
        while True:
            state = AttemptState(attempt["state"]) if attempt.get("state") else None
            self.order_id = attempt.get("order_id") or self.order_id
            nothing_sent = state in _NOTHING_SENT
            if nothing_sent and unwanted is not None and attempt.get("ahead"):
                # A note was written ahead of opening the order, and its answer never came:
                # the gateway may hold an order for this attempt (even a charged one). Closing
                # the period as skipped would lose track of it; a human looks instead.
                return self.dead(
                    attempt,
                    DeadLetterReason.UNKNOWN_OUTCOME,
                    f"{unwanted}, but an order may have been opened for attempt {self.n} "
                    "before its answer was lost: check the gateway",
                    None,
                    set_attempt={},
                )
            if nothing_sent and unwanted is not None:
                return self.skip(unwanted)
            if state is None or state is AttemptState.DECLINED:
                if state is AttemptState.DECLINED and self.claim.next_at > self.now():
                    return self.wait(self.claim.next_at, "dunning: the next attempt is not due")
                self.n += 1
                self.due_stored = False
                self.new_fields = {
                    "n": self.n,
                    "started_at": self.now(),
                    "gateway": period.get("gateway", ""),
                }
                attempt = {"state": AttemptState.DUE.value, "n": str(self.n)}
                continue
            if not checked or self.any_unavailable:
                # once per run, and again after a failure: the breaker may have opened
                allowed, mode = breaker.check(self.now())
                checked = True
            if not allowed:
                return self.wait(int(mode), "circuit open")
            self.unavailable = False
            try:
                result = self.advance(state, attempt, gateway, amount, period)
            except GatewayUnavailable as exc:
                breaker.failure(self.now())
                return self.retry_same(attempt, exc)
            except CredentialsRejected as exc:
                halt_store.halt(self.d.store.r, gateway.name, str(exc), self.now())
                delay = self.d.settings.halt_recheck_ms
                return self.wait(self.now() + delay, "credentials rejected")
            if self.unavailable:
                self.any_unavailable = True
                breaker.failure(self.now())
            elif mode != "closed" and not self.any_unavailable:
                breaker.success(self.now())
                mode = "closed"
            if isinstance(result, Outcome):
                return result
            attempt = result

    def advance(
        self,
        state: AttemptState,
        attempt: dict[str, str],
        gateway: ChargeGateway,
        amount: Money,
        period: Mapping[str, str],
    ) -> dict[str, str] | Outcome:
        """One gateway step. Returns the attempt's new fields, or the run's outcome."""
        handle = OrderHandle(attempt.get("order_id", ""), _secret(attempt.get("order_pw")))
        if state is AttemptState.DUE:
            return self.create_order(attempt, gateway, amount, period["card"])
        if state is AttemptState.ORDER_CREATED:
            return self.attach_card(attempt, gateway, handle, period["card"])
        if state is AttemptState.TOKEN_SET:
            return self.execute(attempt, gateway, handle, amount, period)
        if state is AttemptState.EXEC_SENT:
            return self.unknown(attempt, "found exec_sent: a worker stopped mid-call")
        if state is AttemptState.UNKNOWN:
            return self.reconcile(attempt, gateway, handle)
        raise AssertionError(f"unexpected attempt state {state}")

    # -- steps -----------------------------------------------------------------------------

    def create_order(
        self, attempt: Mapping[str, str], gateway: ChargeGateway, amount: Money, card: str
    ) -> dict[str, str] | Outcome:
        # Unique per attempt: the attempt's idempotency key, as the gateway sees it.
        description = f"{self.claim.sub_id} {self.claim.period} #{self.n}"
        ahead: list[str] = json.loads(attempt.get("ahead") or "[]")
        if isinstance(gateway, WritesAhead):
            # Written before the call, so that a run after a lost answer (or a crash) can
            # hand the gateway what it needs to find an order the call may have made.
            ahead.append(gateway.note_ahead(amount, description, card))
            self.step(
                AttemptState.DUE.value,
                set_attempt={"state": AttemptState.DUE.value, "ahead": json.dumps(ahead)},
            )
            self.due_stored = True
        try:
            handle = gateway.open_order(amount, description, card, tuple(ahead))
        except OutcomeUnknown as exc:
            # An order that may exist but has no card and no transaction moves no money:
            # the next run simply creates another one.
            raise GatewayUnavailable(f"create order: {exc}") from exc
        except Declined as exc:
            return self.declined({"state": AttemptState.DUE.value}, exc)
        except (RequestRejected, InvalidInput) as exc:
            return self.rejected({"state": AttemptState.DUE.value}, exc)
        fields: dict[str, str] = {"state": AttemptState.ORDER_CREATED.value, "order_id": handle.id}
        if handle.secret is not None:
            fields["order_pw"] = handle.secret.reveal()
        self.step(AttemptState.DUE.value, set_attempt=fields)
        self.order_id = handle.id
        _crash_if("after_order_created")
        return {**fields, "n": str(self.n)}

    def attach_card(
        self, attempt: dict[str, str], gateway: ChargeGateway, handle: OrderHandle, card: str
    ) -> dict[str, str] | Outcome:
        try:
            gateway.attach_card(handle, card)
        except OutcomeUnknown as exc:
            # Attaching a card moves no money, and doing it again on the same order is safe:
            # treat it like "not sent" (backoff, and the breaker hears of it).
            raise GatewayUnavailable(f"set source token: {exc}") from exc
        except InvalidOrderState as exc:
            # The order will not take the card (expired, or refuses a repeat): it is left
            # unexecuted forever. The attempt ends and a new one starts, with a new order;
            # this does not count as a decline.
            return self.abandon(attempt, str(exc))
        except Declined as exc:
            return self.declined(attempt, exc)
        except (RequestRejected, InvalidInput) as exc:
            return self.rejected(attempt, exc)
        # No write here: the next write is exec_sent (see execute). A crash now leaves the
        # attempt at order_created, and attaching the card again is harmless.
        _crash_if("after_token_set")
        return {**attempt, "state": AttemptState.TOKEN_SET.value, "stored": "order_created"}

    def execute(
        self,
        attempt: dict[str, str],
        gateway: ChargeGateway,
        handle: OrderHandle,
        amount: Money,
        period: Mapping[str, str],
    ) -> dict[str, str] | Outcome:
        # The card-network caps count authorisation attempts, so they are checked and
        # counted here, in the same atomic step that writes exec_sent.
        reexecs = int(attempt.get("reexecs") or 0)
        stored = attempt.get("stored", AttemptState.TOKEN_SET.value)
        capped = self.d.store.transition(
            self.claim,
            self.now(),
            Ops(
                expect=stored,
                attempt=self.n,
                set_attempt={"state": AttemptState.EXEC_SENT.value, "exec_sent_at": self.now()},
                card=card_ops(period["gateway"], period["card"], f"{self.key}|{self.n}|{reexecs}")
                if self.flow.card_caps
                else None,
            ),
        )
        if capped is not None:
            self.d.store.transition(
                self.claim,
                self.now(),
                Ops(
                    expect=stored,
                    attempt=self.n,
                    set_attempt={"state": AttemptState.TOKEN_SET.value},
                    work_at=capped.allowed_at,
                    release=True,
                    events=[
                        self.event(self.flow.deferred, reason="card_cap", until=capped.allowed_at)
                    ],
                ),
            )
            self.detail = "card at its network attempt cap"
            return Outcome.DEFERRED
        _crash_if("after_exec_sent")
        attempt = {**attempt, "state": AttemptState.EXEC_SENT.value}
        try:
            approval = gateway.execute(handle, amount)
        except (GatewayUnavailable, CredentialsRejected):
            # Refused at the door: nothing ran, so the order is still unexecuted.
            self.step(AttemptState.EXEC_SENT.value, set_attempt={"state": "token_set"})
            raise
        except Declined as exc:
            if exc.decline_class is DeclineClass.UNKNOWN:
                return self.unknown(attempt, f"a decline with no clear outcome: {exc}")
            return self.declined(attempt, exc)
        except OutcomeUnknown as exc:
            self.unavailable = exc.http_status is None or exc.http_status >= 500
            return self.unknown(attempt, str(exc))
        except InvalidOrderState as exc:  # already paid? expired? ask the gateway
            return self.unknown(attempt, str(exc))
        except (RequestRejected, InvalidInput) as exc:
            # The gateway refused the request itself, so nothing ran; repeating it will not
            # help. A human looks at it.
            return self.rejected(attempt, exc)
        except GatewayError as exc:
            return self.unknown(attempt, str(exc))
        return self.paid(attempt, approval.approval_code, approval.reference)

    def paid(
        self,
        attempt: Mapping[str, str],
        approval: str | None,
        reference: str | None,
        *,
        reconciled: bool = False,
    ) -> Outcome:
        order_id = attempt.get("order_id", "")
        evs = []
        if reconciled:
            evs.append(
                self.event(self.flow.reconciled, attempt=self.n, order_id=order_id, outcome="paid")
            )
        evs.append(self.event(self.flow.succeeded, attempt=self.n, order_id=order_id))
        outcome = {"order_id": order_id, "approval_code": approval or ""}
        change, more = self.flow.on_paid(self.claim.sub_id, outcome)
        evs += [self.event(kind) for kind in more]
        self.step(
            attempt["state"],
            set_attempt={
                "state": AttemptState.PAID.value,
                "finished_at": self.now(),
                "approval_code": approval or "",
                "reference": reference or "",
            },
            drop=["order_pw"],
            set_period={
                "status": PeriodStatus.PAID.value,
                "paid_order": order_id,
                "closed_at": self.now(),
                "lease_until": 0,
            },
            work_remove=True,
            sub=change,
            events=evs,
        )
        _crash_if("after_result")
        self.detail = f"order {order_id}"
        return Outcome.PAID

    def unknown(self, attempt: Mapping[str, str], why: str) -> dict[str, str]:
        since = attempt.get("unknown_since") or str(self.now())
        self.step(
            attempt["state"],
            set_attempt={
                "state": AttemptState.UNKNOWN.value,
                "unknown_since": since,
                "error": why[:300],
            },
            events=[
                self.event(self.flow.unknown, attempt=self.n, order_id=attempt.get("order_id", ""))
            ],
        )
        return {**attempt, "state": AttemptState.UNKNOWN.value, "unknown_since": since}

    def reconcile(
        self, attempt: dict[str, str], gateway: ChargeGateway, handle: OrderHandle
    ) -> dict[str, str] | Outcome:
        d = self.d
        found: Lookup | None = None
        try:
            found = gateway.lookup(handle)
        except CredentialsRejected:
            raise
        except (GatewayError, InvalidInput) as exc:
            self.unavailable = isinstance(exc, GatewayUnavailable | OutcomeUnknown)
            self.detail = f"lookup failed: {exc}"
        if found is not None and found.outcome is LookupOutcome.PAID:
            return self.paid(attempt, None, found.reference, reconciled=True)
        if found is not None and found.outcome is LookupOutcome.FAILED:
            decline = Declined(
                f"order {handle.id} ended {found.status}",
                decline_class=found.decline_class or DeclineClass.SOFT,
                code="Reconciled",
                result_code=found.result_code,
                result_title=found.result_title,
            )
            return self.declined(attempt, decline, reconciled=True)
        if found is not None and found.outcome is LookupOutcome.NOT_EXECUTED:
            reexecs = int(attempt.get("reexecs") or 0) + 1
            if reexecs > MAX_REEXECUTIONS:
                return self.dead(
                    attempt,
                    DeadLetterReason.REJECTED,
                    f"order {handle.id} was sent {reexecs - 1} times and never executed",
                    None,
                    set_attempt={"state": AttemptState.DECLINED.value, "finished_at": self.now()},
                )
            # Execute the same order again, but in a later run: a gateway that keeps losing
            # execute call must not be hammered in a loop.
            delay = _backoff(d.settings.retry_base_ms, d.settings.retry_max_ms, reexecs)
            self.step(
                AttemptState.UNKNOWN.value,
                set_attempt={
                    "state": AttemptState.TOKEN_SET.value,
                    "unknown_since": "",
                    "reexecs": reexecs,
                },
                work_at=self.now() + delay,
                release=True,
                events=[
                    self.event(
                        self.flow.reconciled,
                        attempt=self.n,
                        order_id=handle.id,
                        outcome="not_executed",
                    )
                ],
            )
            self.detail = f"order {handle.id} not executed; executing it again in {delay} ms"
            return Outcome.DEFERRED
        since = int(attempt.get("unknown_since") or self.now())
        if self.now() - since >= d.settings.reconcile_limit_ms:
            status = found.status if found else "no answer"
            return self.dead(
                attempt,
                DeadLetterReason.UNKNOWN_OUTCOME,
                f"outcome unknown for {(self.now() - since) // 1000}s "
                f"(gateway says: {status}); needs a human",
                None,
                set_attempt={},
            )
        tries = int(attempt.get("reconcile_tries") or 0) + 1
        self.step(AttemptState.UNKNOWN.value, set_attempt={"reconcile_tries": tries})
        if found is not None:
            self.detail = f"order {handle.id} is {found.status}"
        delay = _backoff(d.settings.reconcile_base_ms, d.settings.reconcile_max_ms, tries)
        return self.wait(self.now() + delay, self.detail, Outcome.RECONCILING)

    def declined(
        self,
        attempt: Mapping[str, str],
        exc: Declined,
        *,
        reconciled: bool = False,
    ) -> Outcome:
        decline_class = exc.decline_class
        if decline_class not in (DeclineClass.HARD, DeclineClass.NEEDS_CUSTOMER):
            decline_class = DeclineClass.SOFT
        fields: dict[str, str | int] = {
            "state": AttemptState.DECLINED.value,
            "finished_at": self.now(),
            "decline_class": decline_class.value,
            "error_code": exc.code or "",
            "result_code": exc.result_code or "",
            "result_title": exc.result_title or "",
            "decline_reason": exc.reason or "",
            "error": str(exc)[:300],
        }
        evs = []
        if reconciled:
            order_id = attempt.get("order_id", "")
            evs.append(
                self.event(
                    self.flow.reconciled,
                    attempt=self.n,
                    order_id=order_id,
                    outcome="declined",
                )
            )
        declines = self.declines + 1
        decision = self.flow.after_decline(
            decline_class, declines, self.now(), self.d.settings.dunning_ms
        )
        if (
            isinstance(decision, policy.Retry)
            and decline_class is DeclineClass.SOFT
            and self.gateway_name == self.primary
            and self.fallback() is not None
        ):
            # The next attempt goes to the fallback (see choose): another acquirer, so it is
            # tried at once, not after the dunning delay. The decline still counts.
            decision = policy.Retry(self.now())
        if isinstance(decision, policy.DeadLetter):
            return self.dead(
                attempt,
                decision.reason,
                str(exc),
                decision,
                set_attempt=fields,
                events=evs,
                exc=exc,
            )
        if self.flow.declined is not None:
            evs.append(
                self.event(
                    self.flow.declined,
                    attempt=self.n,
                    decline_class=decline_class.value,
                    result_code=exc.result_code,
                    next_retry_at=decision.at_ms,
                )
            )
        self.step(
            attempt["state"],
            set_attempt=fields,
            drop=["order_pw"],
            set_period={"next_at": decision.at_ms, "declines": declines},
            work_at=decision.at_ms,
            release=True,
            events=evs,
        )
        self.detail = f"declined {decline_class}: {exc.result_code or exc.code}"
        return Outcome.RETRY_SCHEDULED

    def abandon(self, attempt: Mapping[str, str], why: str) -> Outcome:
        """End an attempt whose order can never be executed; start the next one now."""
        self.step(
            attempt["state"],
            set_attempt={
                "state": AttemptState.DECLINED.value,
                "finished_at": self.now(),
                "decline_class": "abandoned",
                "error": why[:300],
            },
            drop=["order_pw"],
            set_period={"next_at": self.now()},
            work_at=self.now(),
            release=True,
        )
        self.detail = f"attempt abandoned: {why[:120]}"
        return Outcome.DEFERRED

    def rejected(self, attempt: Mapping[str, str], exc: Exception) -> Outcome:
        """The gateway refused the request itself: dead letter, for a human."""
        code = getattr(exc, "code", None) or type(exc).__name__
        return self.dead(
            attempt,
            DeadLetterReason.REJECTED,
            str(exc),
            None,
            set_attempt={
                "state": AttemptState.DECLINED.value,
                "finished_at": self.now(),
                "decline_class": "rejected",
                "error_code": code,
                "error": str(exc)[:300],
            },
        )

    def dead(
        self,
        attempt: Mapping[str, str],
        reason: DeadLetterReason,
        detail: str,
        decision: policy.DeadLetter | None,
        *,
        set_attempt: dict[str, str | int],
        events: list[dict[str, str]] | None = None,
        exc: Declined | None = None,
    ) -> Outcome:
        d = self.d
        period = d.store.period(self.claim.sub_id, self.claim.period)
        history = d.store.attempts(self.claim.sub_id, self.claim.period)
        current = {k: str(v) for k, v in set_attempt.items()}
        if len(history) >= self.n:
            history[self.n - 1] = {**history[self.n - 1], **current}
        else:  # the attempt was still only in memory (its order was never created)
            history.append({**{k: str(v) for k, v in self.new_fields.items()}, **current})
        dlq_id = dead_letter_id(self.claim.sub_id, self.claim.period, self.n, self.claim.fence)
        entry = DeadLetter(
            id=dlq_id,
            key=self.key,
            subscription_id=self.claim.sub_id,
            period=self.claim.period,
            kind=self.flow.space.name,
            amount_minor=int(period["amount_minor"]),
            currency=period["currency"],
            gateway=self.gateway_name or period.get("gateway", ""),
            reason=reason,
            detail=detail[:500],
            attempts=attempts_summary(history),
            created_at=self.now(),
        )
        evs = list(events or [])
        if exc is not None and self.flow.declined is not None:
            evs.append(
                self.event(
                    self.flow.declined,
                    attempt=self.n,
                    decline_class=exc.decline_class.value,
                    result_code=exc.result_code,
                    next_retry_at=None,
                )
            )
        failure: dict[str, Any] = {"attempt": self.n, "reason": reason.value, "dlq_id": dlq_id}
        if exc is not None and self.flow.declined is None:  # the failure event tells the decline
            failure |= {
                "decline_class": exc.decline_class.value,
                "result_code": exc.result_code,
                "result_title": exc.result_title,
            }
        evs.append(self.event(self.flow.failed, **failure))
        last = history[self.n - 1] if len(history) >= self.n else {}
        outcome = {
            "order_id": last.get("order_id", ""),
            "failure_code": scrub(last.get("result_code") or last.get("error_code") or ""),
            "failure_title": scrub(last.get("result_title", "")),
            "failure_reason": scrub(last.get("decline_reason") or detail)[:300],
        }
        sub_ops, more = self.flow.on_dead(self.claim.sub_id, decision, outcome)
        evs += [self.event(kind) for kind in more]
        final_attempt = set_attempt.get("state") == AttemptState.DECLINED.value
        self.step(
            attempt["state"],
            set_attempt=set_attempt,
            drop=["order_pw"] if final_attempt else [],
            set_period={
                "status": PeriodStatus.DEAD.value,
                "reason": reason.value,
                "dlq_id": dlq_id,
                "closed_at": self.now(),
                "lease_until": 0,
            },
            work_remove=True,
            dlq={
                "key": keys.dead_letter(dlq_id),
                "index": keys.DLQ,
                "id": dlq_id,
                "fields": entry.to_hash(),
            },
            sub=sub_ops,
            events=evs,
        )
        self.detail = f"{reason.value}: {detail[:120]}"
        return Outcome.DEAD

    def skip(self, why: str) -> Outcome:
        """No execute call was sent and the subscription may not be charged: close the period
        as skipped, recorded with its reason (never silently dropped). An order that exists
        was never executed, so its password is dropped like on any final attempt.
        """
        stored = self.d.store.attempt(self.claim.sub_id, self.claim.period, self.n)
        self.step(
            stored.get("state", ""),
            drop=["order_pw"] if stored else [],
            set_period={
                "status": PeriodStatus.SKIPPED.value,
                "reason": why,
                "closed_at": self.now(),
                "lease_until": 0,
            },
            work_remove=True,
            events=[self.event(self.flow.deferred, reason=why, final="skipped")],
        )
        self.detail = why
        return Outcome.SKIPPED

    def retry_same(self, attempt: Mapping[str, str], exc: GatewayError) -> Outcome:
        tries = int(attempt.get("retries") or 0) + 1
        state = self.d.store.attempt(self.claim.sub_id, self.claim.period, self.n).get("state", "")
        if state:  # a due attempt is not stored yet: nothing to count it on
            self.step(state, set_attempt={"retries": tries})
        delay = _backoff(self.d.settings.retry_base_ms, self.d.settings.retry_max_ms, tries)
        return self.wait(self.now() + delay, f"not sent ({exc}); retry in {delay} ms")


#: States in which no execute call can have been sent for the current attempt.
_NOTHING_SENT = frozenset(
    {
        None,
        AttemptState.DECLINED,
        AttemptState.DUE,
        AttemptState.ORDER_CREATED,
        AttemptState.TOKEN_SET,
    }
)

#: How many times one order may be executed again after the gateway said it was not.
MAX_REEXECUTIONS = 10


def _secret(value: str | None) -> Secret[str] | None:
    return None if not value else Secret(value)
