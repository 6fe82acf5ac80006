"""Payout runs: what ``billing payouts run``, ``approve`` and the scheduler do.

A run is named (``run_id``) and idempotent: starting it again resumes it. Each start plans
over the payouts still pending (``worker.payouts.runs.plan_run``, within what is left of the
run's limits), takes the planned ones in one script (``worker.store.payouts.take``), and
rings for them. The sending is the fenced state machine's (``worker.payouts.flow``), so a run
killed at any point and started again sends only what is left, and never a payout twice.

A run finishes (``completed``, or ``limit_reached`` when a limit held payouts back) once
every payout it took is final; :func:`refresh` notices it, once, with its event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from worker import events, keys
from worker.clock import Clock
from worker.errors import InvalidInput
from worker.events import EventType
from worker.money import Money
from worker.payouts.config import PayoutSchedule, fire_times
from worker.payouts.model import Payout, PayoutStatus
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
