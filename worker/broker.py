"""The Dramatiq broker, built from ``BILLING_REDIS_URL``. This is the module the ``dramatiq``
CLI loads (``dramatiq worker.broker``); actor modules register on the broker it sets.

It also adds the janitor middleware, so ``billing worker`` alone resumes stalled charges.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from worker.errors import ConfigurationError


def redis_url(env: Mapping[str, str] | None = None) -> str:
    url = (env if env is not None else os.environ).get("BILLING_REDIS_URL", "")
    if not url:
        raise ConfigurationError(
            "BILLING_REDIS_URL is not set: the worker and the scheduler must share one Redis "
            "(for example redis://127.0.0.1:6379/0); `billing demo` starts a private one"
        )
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"BILLING_REDIS_URL must be a redis:// URL, got {url[:40]!r}")
    return url


class JanitorMiddleware(dramatiq.Middleware):
    """Runs the janitor in each worker process (one ticks at a time, under a Redis lock)."""

    def __init__(self) -> None:
        self.thread: Any = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from worker import actors, keys, logs, runtime
        from worker.janitor import Janitor, JanitorThread
        from worker.store.charges import PAYOUTS

        logs.configure(os.environ.get("BILLING_LOG_LEVEL", "INFO"))
        rt = runtime.current()
        interval = int(rt.env.get("BILLING_JANITOR_INTERVAL_MS", "") or 1000)
        gateways = list(rt.charger.deps.gateways)
        charges = Janitor(rt.redis, actors.send_charges, rt.clock, gateways=gateways)
        payouts = Janitor(
            rt.redis,
            actors.send_payouts,
            rt.clock,
            space=PAYOUTS,
            lock_key=keys.PAYOUT_JANITOR_LOCK,
        )
        self.thread = JanitorThread(charges, interval, payouts)
        self.thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.thread is not None:
            self.thread.stop()


_configured: str | None = None


def setup(url: str) -> RedisBroker:
    """Make the Redis broker at ``url`` Dramatiq's global broker and declare the actors.

    Call it before importing ``worker.actors`` (the CLI and the scheduler do); ``dramatiq
    worker.broker`` calls it on import from ``BILLING_REDIS_URL``.
    """
    global _configured
    current = dramatiq.get_broker() if _configured else None
    if _configured == url and isinstance(current, RedisBroker):
        return current
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    broker.add_middleware(JanitorMiddleware())
    if os.environ.get("BILLING_METRICS_PORT", "0") not in ("", "0"):
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    dramatiq.set_broker(broker)
    _configured = url
    import worker.actors  # declares the actors on this broker, on first import

    # On a later setup (tests, a CLI switching Redis) the actors move to the new broker.
    for actor in (worker.actors.charge, worker.actors.payout):
        actor.broker = broker
        broker.declare_actor(actor)
    return broker


if os.environ.get("BILLING_REDIS_URL"):
    setup(redis_url())
