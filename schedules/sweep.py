"""The due sweep: claim what is due, record it, ring the doorbells.

One pass, while this process holds the leader lease:

1. **claim** a batch of due subscriptions (``bw:due`` score <= now) in one atomic step; each
   is pushed ``claim_ms`` ahead, so if this process dies before step 2 the subscription comes
   due again when the claim expires;
2. **decide** for each, in Python and without I/O (``schedules.plan``);
3. **record** every decision in one atomic step (periods opened or skipped, cursor, next due
   instant). This is where the schedule advances, and only as far as is recorded;
4. **ring**: enqueue one message per opened period (``worker.dispatch.send_many``: one script
   call per 1,000 messages, from a helper thread; see below). If this process dies before
   that, the periods are in ``bw:work`` and the janitor rings for them after ``grace_ms``;
   a second message for the same period finds its lease taken and does nothing.

Steps 1 and 3 check the lease inside the script, so a scheduler that lost the lease stops
before it writes anything again (:class:`~worker.store.schedule.LeaseLost`).

**Overlap.** Each batch but the last is rung on a helper thread while the sweep records the
next one (the messages are built while the record script runs in Redis). At most one ring is
in flight, and each waits for the one before, so messages go out in batch order. Only
recorded periods are ever rung, so none of the above changes: a crash while a ring waits or
runs is the "before the ring" case. A ring that fails is logged (``sweep_ring_failed``) and
the pass goes on: its periods are in ``bw:work``, so the janitor rings for them. However a
pass ends (done, ``LeaseLost``, a Redis error), it rings what it recorded before it returns.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from schedules.plan import decide, stored_cadence
from worker.clock import Clock
from worker.periods import CatchUp
from worker.store.schedule import Decision, DueIndex, LeaseLost
from worker.subscriptions import Subscription

log = structlog.get_logger("schedules.sweep")

Send = Callable[[list[tuple[str, str]]], None]

#: Crash points for fault tests (``BILLING_CRASH_AT``): SIGKILL the sweeping process there.
CRASH_POINTS = ("sweep_after_claim", "sweep_after_record")


def _crash_if(point: str) -> None:
    if os.environ.get("BILLING_CRASH_AT") == point:
        os.kill(os.getpid(), 9)


@dataclass(frozen=True, slots=True)
class SweepSettings:
    batch: int = 1_000  #: subscriptions claimed per round trip
    claim_ms: int = 60_000  #: a claim not recorded by then comes due again
    grace_ms: int = 30_000  #: the janitor rings for an opened period after this
    lease_ms: int = 10_000  #: the leader lease; renewed at every pass and batch
    policy: CatchUp = CatchUp.ALL


@dataclass(frozen=True, slots=True)
class SweepResult:
    leader: bool  #: False: another scheduler holds the lease; nothing was done
    subscriptions: int = 0  #: claimed and looked at
    opened: int = 0  #: periods rung for (opened now, or still open)
    skipped: int = 0  #: periods recorded as skipped


class Sweeper:
    def __init__(
        self,
        index: DueIndex,
        send: Send,
        clock: Clock,
        settings: SweepSettings | None = None,
        *,
        token: str | None = None,
    ) -> None:
        self.index = index
        self.send = send
        self.clock = clock
        self.settings = settings or SweepSettings()
        self.token = token or uuid.uuid4().hex
        self.stopping = threading.Event()

    def sweep(self) -> SweepResult:
        """One pass over everything due now. Returns what it did."""
        s = self.settings
        if not self.index.lead(self.token, s.lease_ms):
            return SweepResult(leader=False)
        subscriptions = opened = skipped = 0
        # One helper thread (started at the first hand-over): a recorded batch is rung on it
        # while the sweep records the next one, so that building the messages (CPU) runs
        # while this thread waits for the record script (Redis). The last batch is rung here.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-ring") as helper:
            waiting: list[tuple[str, str]] = []  # recorded, not handed over yet
            in_flight: Future[None] | None = None
            try:
                while True:
                    now = self.clock.now_ms()
                    claimed = self.index.claim(self.token, now, s.claim_ms, s.batch)
                    _crash_if("sweep_after_claim")
                    decisions = [
                        decision
                        for sub_id, data in claimed
                        if (decision := self._decide(sub_id, data, now)) is not None
                    ]
                    if waiting:
                        self._wait(in_flight)  # one ring in flight at most, in batch order
                        in_flight, waiting = helper.submit(self._ring, waiting), []
                    ring = self.index.record(self.token, now, now + s.grace_ms, decisions)
                    _crash_if("sweep_after_record")
                    waiting = ring
                    subscriptions += len(claimed)
                    opened += len(ring)
                    skipped += sum(len(d.skip) for d in decisions)
                    more = any(d.next_at <= now for d in decisions)  # a long catch-up goes on
                    if len(claimed) < s.batch and not more:
                        break
                    if self.stopping.is_set():  # a clean stop: end between batches
                        break
                    if not self.index.lead(self.token, s.lease_ms):
                        raise LeaseLost("the scheduler lease expired during a sweep")
            except LeaseLost:
                log.warning("scheduler_lease_lost", token=self.token[:8])
                return SweepResult(False, subscriptions, opened, skipped)
            finally:  # however the pass ends, what it recorded is rung before it returns
                self._wait(in_flight)
                if waiting:
                    self._ring(waiting)
        if subscriptions:
            log.info("swept", subscriptions=subscriptions, opened=opened, skipped=skipped)
        return SweepResult(True, subscriptions, opened, skipped)

    def _ring(self, ring: list[tuple[str, str]]) -> None:
        """Enqueue for recorded periods. A failure is logged, not raised: the periods are in
        ``bw:work``, and the janitor rings for them after ``grace_ms``."""
        try:
            self.send(ring)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"  # redis-py's repr() drops the message
            log.error("sweep_ring_failed", periods=len(ring), error=error)

    @staticmethod
    def _wait(in_flight: Future[None] | None) -> None:
        if in_flight is not None:
            in_flight.result()  # _ring raises nothing

    def _decide(self, sub_id: str, data: dict[str, str], now: int) -> Decision | None:
        """The decision, or None for a hash that cannot be read: it stays claimed and comes
        back when the claim expires, logged each time, without stopping the others."""
        try:
            sub = Subscription.from_hash(data, sub_id)
            text = data.get("cadence")
            cadence = stored_cadence(text) if text else None
            return decide(sub, data["updated_at"], now, self.settings.policy, cadence=cadence)
        except Exception as exc:
            log.error("sweep_unreadable_subscription", subscription=sub_id, error=repr(exc))
            return None

    def stop(self) -> None:
        """Ask a pass in flight to end after the batch it is on (its claims are recorded,
        the rest stays due for the next leader), and no new pass to start."""
        self.stopping.set()

    def resign(self) -> None:
        """Give the lease up (on a clean shutdown), so a standby takes over at once."""
        self.index.resign(self.token)
