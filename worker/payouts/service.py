"""Payout runs: what ``billing payouts run``, ``approve`` and the scheduler do.

A run is named (``run_id``) and idempotent: starting it again resumes it. Each start plans
over the payouts still pending (``worker.payouts.runs.plan_run``, within what is left of the
run's limits), takes the planned ones in one script (``worker.store.payouts.take``), and
rings for them. The sending is the fenced state machine's (``worker.payouts.flow``), so a run
killed at any point and started again sends only what is left, and never a payout twice.

A run finishes (``completed``, or ``limit_reached`` when a limit held payouts back) once
every payout it took is final; :func:`refresh` notices it, once, with its event.

An immediate payout is not part of a run: :func:`send_now` stores it as ``sending`` and
drives it in the calling process, whose gateway alone holds its PAN (in memory, never in
Redis). :func:`attempts` and :func:`run_report` are what ``billing payouts show`` and
``report`` read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import redis

from worker import events, keys
from worker.charges.pipeline import Charger, Outcome
from worker.clock import Clock
from worker.errors import InvalidInput
from worker.events import EventType
from worker.gateway.bizon.adapter import BizonPayoutGateway
from worker.gateway.port import ChargeGateway, PanVault
from worker.gateway.txpg.payouts import TxpgPayoutGateway
from worker.money import Money
from worker.payouts.config import PayoutSchedule, fire_times
from worker.payouts.model import PanDestination, Payout, PayoutMode, PayoutStatus
from worker.payouts.report import Report, build_report
from worker.payouts.runs import (
    RunLimits,
    RunPlan,
    RunState,
    RunStatus,
    eligible,
    plan_run,
    validate_run_id,
)
from worker.store import payouts as store
from worker.store.charges import PAYOUTS, ChargeStore

if TYPE_CHECKING:
    from worker.runtime import Runtime

#: Rings for opened payouts: enqueue one message per payout id.
Ring = Callable[[list[str]], None]

#: The janitor rings again for a payout opened but never rung after this (a crash).
GRACE_MS = 30_000

_FINAL = frozenset({PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class RunResult:
    state: RunState
    plan: RunPlan | None  #: None when the run was final (or waiting) and nothing was planned
    taken: tuple[str, ...] = ()  #: payouts taken by this start
    created: bool = False  #: this start created the run
    dry_run: bool = False


def _remaining(limits: RunLimits, taken: Sequence[Payout]) -> RunLimits | None:
    """What is left of ``limits`` after ``taken``; None when a limit is used up."""
    count = None
    if limits.max_count is not None:
        count = limits.max_count - len(taken)
        if count <= 0:
            return None
    totals: dict[str, Money] = {}
    for currency, cap in limits.max_total.items():
        used = sum(p.amount.minor for p in taken if p.currency == currency)
        if cap.minor - used <= 0:
            return None
        totals[currency] = Money(cap.minor - used, currency)
    return RunLimits(count, totals)


def start_run(
    r: redis.Redis,
    clock: Clock,
    ring: Ring,
    *,
    run_id: str,
    schedule: str = "",
    tag: str | None = None,
    limits: RunLimits | None = None,
    approval: bool = False,
    fire_at_ms: int | None = None,
    dry_run: bool = False,
    grace_ms: int = GRACE_MS,
) -> RunResult:
    """Start (or resume) the run ``run_id`` over the pending payouts."""
    validate_run_id(run_id)
    limits = limits or RunLimits()
    now = clock.now_ms()
    existing = store.get_run(r, run_id)
    if existing is not None:
        if existing.final or existing.status is RunStatus.AWAITING_APPROVAL:
            return RunResult(existing, None, dry_run=dry_run)
        tag, limits = existing.tag or None, existing.limits
    pending = list(store.pending(r))
    already = store.run_payouts(r, run_id) if existing is not None else []
    left = _remaining(limits, already)
    if left is None:
        order = eligible(pending, tag)
        plan = RunPlan((), tuple((p, "held: the run's limit is used up") for p in order), "limit")
    else:
        plan = plan_run(pending, tag, left)
    state = existing or RunState.open(
        run_id,
        plan,
        limits=limits,
        now_ms=now,
        fire_at_ms=fire_at_ms,
        schedule=schedule,
        tag=tag,
        approval=approval,
    )
    if dry_run:
        return RunResult(state, plan, dry_run=True)
    created = False
    if existing is None:
        started = (
            None
            if state.status is RunStatus.AWAITING_APPROVAL
            else _event(EventType.PAYOUT_RUN_STARTED, state, now, selected=plan.count)
        )
        created = store.create_run(r, state, started)
        if not created:  # another process created it meanwhile: resume that one instead
            return start_run(r, clock, ring, run_id=run_id, grace_ms=grace_ms)
    queue_only = state.status is RunStatus.AWAITING_APPROVAL
    taken = store.take(r, run_id, plan.selected, now, now + grace_ms, queue_only=queue_only)
    if plan.limit_reached:
        store.mark_run(
            r,
            run_id,
            "limit_reported_at",
            now,
            _event(
                EventType.PAYOUT_RUN_LIMIT_REACHED,
                state,
                now,
                limit=plan.limit_reached,
                held=len(plan.held),
            ),
            {"limit_reached": plan.limit_reached, "held": str(len(plan.held))},
        )
    if taken and not queue_only:
        ring(taken)
    state = refresh(r, clock, run_id) or state
    return RunResult(state, plan, tuple(taken or ()), created)


def approve(r: redis.Redis, clock: Clock, ring: Ring, run_id: str, actor: str) -> RunState:
    """Let a run awaiting approval send what it took."""
    validate_run_id(run_id)
    state = store.get_run(r, run_id)
    if state is None:
        raise InvalidInput(f"no payout run {run_id}")
    now = clock.now_ms()
    state.approve(actor, now)  # validates the actor and the status, changes nothing
    done, opened, seen = store.release_queued(r, run_id, now, now + GRACE_MS, actor)
    if not done:
        raise InvalidInput(f"run {run_id} is {seen}: only a run awaiting approval can be approved")
    if opened:
        ring(opened)
    return refresh(r, clock, run_id) or state


def refresh(r: redis.Redis, clock: Clock, run_id: str) -> RunState | None:
    """Finish the run if every payout it took is final (once, with its event)."""
    state = store.get_run(r, run_id)
    if state is None or state.status is not RunStatus.SENDING:
        return state
    payouts = store.run_payouts(r, run_id)
    if any(p.status not in _FINAL for p in payouts):
        return state
    now = clock.now_ms()
    ended = state.finish(now)
    counts: dict[str, int] = {}
    for payout in payouts:
        counts[payout.status.value] = counts.get(payout.status.value, 0) + 1
    store.mark_run(
        r,
        run_id,
        "finished_at",
        now,
        _event(EventType.PAYOUT_RUN_COMPLETED, ended, now, status=ended.status.value, **counts),
        {"status": ended.status.value, "updated_at": str(now)},
        close=True,
    )
    return store.get_run(r, run_id)


def refresh_open(r: redis.Redis, clock: Clock) -> int:
    """Refresh every open run; returns how many finished."""
    finished = 0
    for run_id in store.open_runs(r):
        state = refresh(r, clock, run_id)
        if state is not None and state.final:
            finished += 1
    return finished


def fire_due(
    r: redis.Redis, clock: Clock, ring: Ring, schedules: Sequence[PayoutSchedule]
) -> list[RunResult]:
    """Start the run of each schedule whose cron fired since it last ran (by the clock).

    A schedule seen for the first time starts counting from now. After a downtime that
    missed several fire times, one run starts, for the latest: the payouts the missed runs
    would have sent are still pending, so it sends them (within its limits).
    """
    now = clock.now_ms()
    results = []
    for schedule in schedules:
        key = keys.payout_schedule(schedule.name)
        last = r.get(key)
        if last is None:
            r.set(key, now, nx=True)
            continue
        fired = fire_times(schedule, int(last), now)
        if not fired:
            continue
        latest = fired[-1]
        results.append(
            start_run(
                r,
                clock,
                ring,
                run_id=schedule.run_id(latest),
                schedule=schedule.name,
                tag=schedule.tag,
                limits=schedule.limits,
                approval=schedule.approval,
                fire_at_ms=latest,
            )
        )
        r.set(key, latest)
    return results


def _event(kind: EventType, state: RunState, now: int, **data: object) -> dict[str, str]:
    return events.build(
        kind, state.id, now, {"run_id": state.id, "schedule": state.schedule, **data}
    )


# --- what the CLI shows -----------------------------------------------------------------------

#: Attempt fields that are never shown (an open order's password).
_SECRET_FIELDS = frozenset({"order_pw"})


def attempts(r: redis.Redis, payout_id: str) -> list[dict[str, str]]:
    """The payout's attempts, oldest first, without any secret (the order password)."""
    found = ChargeStore(r, PAYOUTS).attempts(payout_id, keys.PAYOUT_ITEM)
    return [
        {name: value for name, value in attempt.items() if name not in _SECRET_FIELDS}
        for attempt in found
    ]


def last_attempts(r: redis.Redis, payout_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each payout's last attempt (without secrets), for those that have one."""
    out: dict[str, dict[str, str]] = {}
    for payout_id in payout_ids:
        found = attempts(r, payout_id)
        if found:
            out[payout_id] = found[-1]
    return out


def run_report(r: redis.Redis, run_id: str) -> Report:
    """What the run did: its payouts with each one's last attempt (order, approval, PMO)."""
    validate_run_id(run_id)
    state = store.get_run(r, run_id)
    if state is None:
        raise InvalidInput(f"no payout run {run_id}")
    payouts = store.run_payouts(r, run_id)
    return build_report(state, payouts, last_attempts(r, [p.id for p in payouts]))


# --- immediate payouts ------------------------------------------------------------------------

#: How long :func:`send_now` drives a payout itself before leaving it to the workers.
SEND_TIMEOUT_S = 30.0
#: Wake this much before the backoff a run asked for ends, so that this process (which holds
#: the PAN) claims the payout again before the janitor rings a worker (which does not).
_EARLY_MS = 50
_MIN_PAUSE_S = 0.05
#: Outcomes after which running again changes nothing.
_SETTLED = frozenset(
    {Outcome.PAID, Outcome.ALREADY_PAID, Outcome.DEAD, Outcome.SKIPPED, Outcome.MISSING}
)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What :func:`send_now` did for an immediate payout."""

    payout: Payout  #: as stored now (a PAN destination is masked)
    created: bool  #: this call stored it (False: the same payout was submitted before)
    outcome: Outcome | None  #: the last run's outcome; None when it was not run
    attempt: Mapping[str, str]  #: its last attempt, without secrets; empty if none

    @property
    def final(self) -> bool:
        """Paid or failed (or cancelled): nothing is left to do for it."""
        return self.payout.status in _FINAL

    @property
    def order_id(self) -> str:
        return self.payout.order_id or self.attempt.get("order_id", "")

    @property
    def approval_code(self) -> str:
        return self.payout.approval_code or self.attempt.get("approval_code", "")


def _with_pans(gateway: ChargeGateway, pans: PanVault | None) -> ChargeGateway:
    """``gateway`` again, over the same client, holding ``pans`` (a payout gateway)."""
    if isinstance(gateway, TxpgPayoutGateway):
        return TxpgPayoutGateway(
            gateway.client, pans=pans, title=gateway.title, language=gateway.language
        )
    if isinstance(gateway, BizonPayoutGateway):
        return BizonPayoutGateway(gateway.client, pans=pans)
    return gateway


def payout_charger(rt: Runtime, pans: PanVault | None = None) -> Charger:
    """The runtime's payout state machine, with each payout gateway (TXPG's and Bizon's)
    holding ``pans`` (card references to PANs, in memory only)."""
    deps = rt.payouter.deps
    gateways = {name: _with_pans(gateway, pans) for name, gateway in deps.gateways.items()}
    return Charger(replace(deps, gateways=gateways))


def send_now(
    rt: Runtime,
    payout: Payout,
    *,
    timeout_s: float = SEND_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> SendResult:
    """Store an immediate payout as ``sending`` and drive it here, at once, to paid or failed.

    ``payout`` comes from :meth:`Payout.create` with ``mode="immediate"``; it is sent on its
    own gateway (:attr:`Payout.gateway`, TXPG or Bizon). A :class:`PanDestination` is put in
    this process's gateway vault, in memory, under its masked reference: Redis, events and
    logs only ever see ``pan:416974******1778``.

    The payout is run again after each backoff the state machine asks for, for up to
    ``timeout_s`` seconds. An outcome still unknown then is left to the workers, which
    reconcile it without the PAN (TXPG by its order id, Bizon by ``merchant_order_id``). (A
    payout that must start over without its PAN, after a restart, fails before anything is
    sent: "the card number ... is no longer in memory"; ``PanNotInMemory`` on either gateway.)

    Idempotent by id: the same payout submitted again is not stored twice; if it is still
    sending it is driven again, otherwise its stored outcome is returned.
    """
    if payout.mode is not PayoutMode.IMMEDIATE:
        raise InvalidInput(f"payout {payout.id} is {payout.mode.value}: it waits for a run")
    if payout.status is not PayoutStatus.PENDING:
        raise InvalidInput(f"payout {payout.id} is {payout.status.value}: give a new payout")
    destination = payout.destination
    if not destination.sendable:
        raise InvalidInput(f"payout {payout.id}: a masked card number cannot be sent")
    pans = {destination.ref(): destination.pan} if isinstance(destination, PanDestination) else {}
    charger = payout_charger(rt, pans)
    if payout.gateway not in charger.deps.gateways:
        known = ", ".join(sorted(charger.deps.gateways)) or "none"
        raise InvalidInput(
            f"payout {payout.id}: gateway {payout.gateway} is not configured (configured: {known})"
        )
    r = rt.redis
    now = rt.clock.now_ms()
    if not payout.created_at:
        payout = replace(payout, created_at=now, updated_at=now)
    stored, created = store.add(r, payout.with_status(PayoutStatus.SENDING, now))
    outcome: Outcome | None = None
    deadline = time.monotonic() + timeout_s
    while stored.status is PayoutStatus.SENDING:
        outcome = charger.run(payout.id, keys.PAYOUT_ITEM)
        if outcome in _SETTLED:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sleep(min(left, _pause_s(r, payout.id, rt.clock.now_ms(), outcome)))
        stored = store.get(r, payout.id) or stored
    final = store.get(r, payout.id) or stored
    found = attempts(r, payout.id)
    return SendResult(final, created, outcome, found[-1] if found else {})


def _pause_s(r: redis.Redis, payout_id: str, now_ms: int, outcome: Outcome) -> float:
    """How long to wait before running again: the backoff the run asked for (when the
    payout needs a look next, in ``bw:pwork``), or the lease of whoever holds it."""
    if outcome is Outcome.BUSY:
        until = int(r.hget(keys.payout_job(payout_id), "lease_until") or 0)
    else:
        score = r.zscore(keys.PAYOUT_WORK, keys.work_member(payout_id, keys.PAYOUT_ITEM))
        until = int(score) if score is not None else now_ms
    return max(_MIN_PAUSE_S, (until - now_ms - _EARLY_MS) / 1000)
