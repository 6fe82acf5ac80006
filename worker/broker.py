"""The Dramatiq broker, built from ``BILLING_REDIS_URL``. This is the module the ``dramatiq``
CLI loads (``dramatiq worker.broker``); actor modules register on the broker it sets.

Actors arrive with the charge pipeline; until then a worker started on this module connects,
declares nothing and consumes nothing.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from worker.errors import ConfigurationError


def redis_url(env: dict[str, str] | None = None) -> str:
    url = (env if env is not None else dict(os.environ)).get("BILLING_REDIS_URL", "")
    if not url:
        raise ConfigurationError(
            "BILLING_REDIS_URL is not set: the worker and the scheduler must share one Redis "
            "(for example redis://127.0.0.1:6379/0); `billing demo` starts a private one"
        )
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"BILLING_REDIS_URL must be a redis:// URL, got {url[:40]!r}")
    return url


def build_broker(url: str) -> RedisBroker:
    return RedisBroker(url=url)  # type: ignore[no-untyped-call]


if os.environ.get("BILLING_REDIS_URL"):
    dramatiq.set_broker(build_broker(redis_url()))
