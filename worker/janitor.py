"""The janitor: turns ``bw:work`` into messages.

Every period that is open sits in ``bw:work`` with the time it next needs a look: a dunning
retry, a backoff, or the end of a lease that a dead worker will never renew. Each tick, the
janitor takes what is due (pushing each a grace period ahead, so a lost message is re-sent
after it) and enqueues one charge message per period. It runs in every worker process and in
the scheduler, but a short Redis lock lets only one of them tick at a time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence

import redis
import structlog

from worker import keys, metrics
from worker.clock import Clock
from worker.store.charges import CHARGES, ChargeStore, Space
from worker.subscriptions import GATEWAYS

log = structlog.get_logger("worker.janitor")

Send = Callable[[list[tuple[str, str]]], None]


class Janitor:
    def __init__(
        self,
        r: redis.Redis,
        send: Send,
        clock: Clock,
        *,
        grace_ms: int = 30_000,
        batch: int = 1_000,
        lock_ms: int = 5_000,
        space: Space = CHARGES,
        lock_key: str = keys.JANITOR_LOCK,
        gateways: Sequence[str] = GATEWAYS,
    ) -> None:
        self.store = ChargeStore(r, space)
        self.lock_key = lock_key
        self.r = r
        self.send = send
        self.clock = clock
        self.grace_ms = grace_ms
        self.batch = batch
        self.lock_ms = lock_ms
        self.token = uuid.uuid4().hex
        #: whose circuit breaker state the ``billing_circuit_state`` gauge shows
        self.gateways = tuple(gateways)

    def _lead(self) -> bool:
        """Hold the janitor lock (or take it if free); only its holder ticks."""
        if self.r.set(self.lock_key, self.token, nx=True, px=self.lock_ms):
            return True
        if self.r.get(self.lock_key) == self.token:
            self.r.pexpire(self.lock_key, self.lock_ms)
            return True
        return False

    def tick(self) -> int:
        """Enqueue what is due; returns how many periods were sent."""
        if not self._lead():
            return 0
        sent = 0
        while True:
            due = self.store.due(self.clock.now_ms(), self.grace_ms, self.batch)
            if due:
                self.send(due)
                sent += len(due)
            if len(due) < self.batch:
                break
        if sent:
            log.debug("janitor_enqueued", periods=sent)
        self._gauges()
        return sent

    def _gauges(self) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.zcard(keys.DLQ)
        pipe.zcard(keys.WORK)
        for name in self.gateways:
            pipe.hget(keys.breaker(name), "state")
        dlq, work, *circuits = pipe.execute()
        metrics.DEAD_LETTERS.set(int(dlq))
        metrics.WORK_PENDING.set(int(work))
        for name, circuit in zip(self.gateways, circuits, strict=True):
            state = circuit.decode() if isinstance(circuit, bytes) else circuit
            metrics.CIRCUIT.labels(name).set(metrics.CIRCUIT_VALUES.get(state or "closed", 0))


class JanitorThread(threading.Thread):
    """Runs :meth:`Janitor.tick` of each janitor every ``interval_ms`` until stopped."""

    def __init__(self, janitor: Janitor, interval_ms: int, *more: Janitor) -> None:
        super().__init__(name="billing-janitor", daemon=True)
        self.janitors = (janitor, *more)
        self.interval = interval_ms / 1000
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            for janitor in self.janitors:
                try:
                    janitor.tick()
                except Exception:  # a Redis blip must not kill the janitor
                    log.exception("janitor_tick_failed", space=janitor.store.space.name)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
