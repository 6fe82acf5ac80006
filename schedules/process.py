"""``billing scheduler``: one APScheduler (3.11, memory jobstore) running three jobs.

========================  ==============  =====================================================
job                       every           what
========================  ==============  =====================================================
``sweep``                 2 s             the due sweep (``schedules.sweep``), leader only
``janitor``               1 s             rings for stalled, retrying and unknown charges
``metrics``               15 s            refreshes the scheduler's gauges
``payout_runs``           2 s             starts the runs of payout schedules whose cron fired
                                          (leader only; ``BILLING_PAYOUT_SCHEDULES``), and
                                          finishes runs whose payouts are all final
========================  ==============  =====================================================

Every job has ``misfire_grace_time=None`` (a late run still runs: APScheduler's default of 1 s
silently skips it), ``coalesce=True`` and ``max_instances=1``. Nothing is lost if a run is
late or skipped anyway: what is due lives in Redis, not in APScheduler, and the next run
picks it up.

Settings (environment):

=================================  ============================================================
``BILLING_SWEEP_INTERVAL_MS``      how often the sweep runs (2000)
``BILLING_SWEEP_BATCH``            subscriptions claimed per round trip (1000)
``BILLING_SWEEP_CLAIM_MS``         a claim not recorded by then is swept again (60000)
``BILLING_SWEEP_GRACE_MS``         the janitor rings again for an opened period after this,
                                   in case the sweep's message was lost (30000)
``BILLING_SCHEDULER_LEASE_MS``     the leader lease; a standby takes over after it (10000)
``BILLING_CATCH_UP``               ``all`` (default): bill every missed period; ``latest``:
                                   bill the newest, record the others as skipped
``BILLING_JANITOR_INTERVAL_MS``    how often the janitor runs (1000)
=================================  ============================================================
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from schedules.sweep import Sweeper, SweepSettings
from worker import keys, metrics
from worker.clock import Clock
from worker.errors import ConfigurationError
from worker.janitor import Janitor
from worker.payouts import service as payout_service
from worker.payouts.config import PayoutSchedule
from worker.periods import CatchUp
from worker.store.charges import PAYOUTS
from worker.store.schedule import DueIndex

log = structlog.get_logger("schedules.process")

JOB_DEFAULTS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}


def _int(env: Mapping[str, str], name: str, default: int, low: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < low:
        raise ConfigurationError(f"{name} must be a whole number of at least {low}, got {raw!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    sweep: SweepSettings
    sweep_interval_ms: int = 2_000
    janitor_interval_ms: int = 1_000
    metrics_interval_ms: int = 15_000
    payout_interval_ms: int = 2_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SchedulerSettings:
        env = os.environ if env is None else env
        policy = env.get("BILLING_CATCH_UP", "all").strip() or "all"
        if policy not in {p.value for p in CatchUp}:
            raise ConfigurationError(f"BILLING_CATCH_UP must be all or latest, got {policy!r}")
        lease_ms = _int(env, "BILLING_SCHEDULER_LEASE_MS", 10_000)
        interval = _int(env, "BILLING_SWEEP_INTERVAL_MS", 2_000)
        if lease_ms <= interval:
            raise ConfigurationError(
                f"BILLING_SCHEDULER_LEASE_MS ({lease_ms}) must be longer than "
                f"BILLING_SWEEP_INTERVAL_MS ({interval}), or the leader loses it between sweeps"
            )
        sweep = SweepSettings(
            batch=_int(env, "BILLING_SWEEP_BATCH", 1_000),
            claim_ms=_int(env, "BILLING_SWEEP_CLAIM_MS", 60_000),
            grace_ms=_int(env, "BILLING_SWEEP_GRACE_MS", 30_000),
            lease_ms=lease_ms,
            policy=CatchUp(policy),
        )
        return cls(
            sweep=sweep,
            sweep_interval_ms=interval,
            janitor_interval_ms=_int(env, "BILLING_JANITOR_INTERVAL_MS", 1_000),
        )


class Jobs:
    """The scheduler's jobs, as plain methods (what APScheduler calls, and tests too)."""

    def __init__(
        self,
        r: redis.Redis,
        send: Callable[[list[tuple[str, str]]], None],
        clock: Clock,
        settings: SchedulerSettings,
        *,
        send_payouts: Callable[[list[tuple[str, str]]], None] | None = None,
        payout_schedules: Sequence[PayoutSchedule] = (),
    ) -> None:
        self.r = r
        self.clock = clock
        self.settings = settings
        self.index = DueIndex(r)
        self.sweeper = Sweeper(self.index, send, clock, settings.sweep)
        self.janitor = Janitor(r, send, clock)
        self.send_payouts = send_payouts
        self.payout_janitor = (
            None
            if send_payouts is None
            else Janitor(r, send_payouts, clock, space=PAYOUTS, lock_key=keys.PAYOUT_JANITOR_LOCK)
        )
        self.payout_schedules = tuple(payout_schedules)
        self.leading = False
        self._pass = threading.Lock()  # a sweep pass and stop() never overlap
        self._stopped = False

    def sweep(self) -> None:
        with self._pass:
            if self._stopped:  # stopping: must not take the lease again
                return
            result = self.sweeper.sweep()
        if result.leader != self.leading:
            self.leading = result.leader
            log.info("scheduler_leader" if result.leader else "scheduler_standby")
        metrics.SCHEDULER_LEADER.set(1 if result.leader else 0)
        metrics.SWEPT.inc(result.opened)

    def tick_janitor(self) -> None:
        self.janitor.tick()
        if self.payout_janitor is not None:
            self.payout_janitor.tick()

    def payout_runs(self) -> None:
        """Start the runs of payout schedules that fired (leader only); finish runs whose
        payouts are all final."""
        if self.send_payouts is None or not self.leading:
            return
        send = self.send_payouts

        def ring(ids: list[str]) -> None:
            send([(payout_id, keys.PAYOUT_ITEM) for payout_id in ids])

        for result in payout_service.fire_due(self.r, self.clock, ring, self.payout_schedules):
            log.info("payout_run_fired", run_id=result.state.id, taken=len(result.taken))
        payout_service.refresh_open(self.r, self.clock)

    def refresh_metrics(self) -> None:
        metrics.DUE_NOW.set(self.index.due_count(self.clock.now_ms()))
        metrics.SUBSCRIPTIONS.set(int(self.r.zcard(keys.DUE)))

    def install(self, scheduler: BaseScheduler) -> None:
        s = self.settings
        for job, interval_ms, name in (
            (self.sweep, s.sweep_interval_ms, "sweep"),
            (self.tick_janitor, s.janitor_interval_ms, "janitor"),
            (self.refresh_metrics, s.metrics_interval_ms, "metrics"),
            (self.payout_runs, s.payout_interval_ms, "payout_runs"),
        ):
            scheduler.add_job(
                _guarded(job, name),
                IntervalTrigger(seconds=interval_ms / 1000),
                id=name,
                name=name,
                replace_existing=True,
                **JOB_DEFAULTS,
            )

    def stop(self) -> None:
        """Give the lease up so a standby takes over at once, not after it expires.

        A sweep pass in flight (on APScheduler's thread pool) is asked to end after its
        current batch, then waited for: resigning under it would let it take the lease again
        at its next batch, or strand its claimed batch.
        """
        self.sweeper.stop()
        with self._pass:
            self._stopped = True
            with contextlib.suppress(redis.RedisError):  # it expires by itself
                self.sweeper.resign()


def _guarded(job: Callable[[], None], name: str) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception:  # a Redis blip must not stop the job; it runs again next interval
            log.exception("scheduler_job_failed", job=name)

    run.__name__ = name
    return run
