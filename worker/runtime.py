"""Build the long-lived objects of a process once, from the environment.

========================================  ======================================================
``BILLING_DUNNING``                       dunning delays, e.g. ``1d,3d,5d,7d`` (the default)
``BILLING_LEASE_MS``                      how long a worker owns a period per step (90000)
``BILLING_RECONCILE_LIMIT_MS``            then an unknown outcome goes to a human (21600000)
``BILLING_RETRY_BASE_MS`` / ``_MAX_MS``   backoff for "not sent" (1000 / 60000)
``BILLING_GATEWAY_CONCURRENCY``           concurrent charges on the gateway, all workers (64)
``BILLING_BREAKER_THRESHOLD``             consecutive failures that open the breaker (5)
``BILLING_BREAKER_COOLDOWN_MS``           how long it stays open at first (5000)
``BILLING_JANITOR_INTERVAL_MS``           how often the janitor looks at ``bw:work`` (1000)
``BILLING_CLOCK_OFFSET_MS``               test clock: shift "now" by this much (tests, demo)
========================================  ======================================================
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

import redis

from worker import keys
from worker.broker import redis_url
from worker.charges.pipeline import Charger, ChargeSettings, Deps
from worker.charges.policy import DEFAULT_DUNNING_MS, parse_schedule
from worker.clock import Clock, from_env
from worker.errors import ConfigurationError
from worker.gateway.bizon.adapter import BizonChargeGateway, BizonPayoutGateway
from worker.gateway.bizon.client import BizonClient
from worker.gateway.bizon.settings import BizonSettings
from worker.gateway.txpg.adapter import TxpgChargeGateway
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.payouts import TxpgPayoutGateway
from worker.payouts.flow import PAYOUT
from worker.settings import TxpgSettings
from worker.store import connect
from worker.store.breaker import Breaker, BreakerSettings
from worker.store.charges import PAYOUTS, ChargeStore
from worker.store.slots import Slots


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes"}


def charge_settings(env: Mapping[str, str]) -> ChargeSettings:
    dunning = env.get("BILLING_DUNNING")
    return ChargeSettings(
        lease_ms=_int(env, "BILLING_LEASE_MS", 90_000),
        dunning_ms=parse_schedule(dunning) if dunning is not None else DEFAULT_DUNNING_MS,
        retry_base_ms=_int(env, "BILLING_RETRY_BASE_MS", 1_000),
        retry_max_ms=_int(env, "BILLING_RETRY_MAX_MS", 60_000),
        reconcile_base_ms=_int(env, "BILLING_RECONCILE_BASE_MS", 2_000),
        reconcile_max_ms=_int(env, "BILLING_RECONCILE_MAX_MS", 120_000),
        reconcile_limit_ms=_int(env, "BILLING_RECONCILE_LIMIT_MS", 6 * 3_600_000),
    )


@dataclass
class Runtime:
    """Everything a worker process shares between its threads."""

    redis: redis.Redis
    charger: Charger
    payouter: Charger  #: the same state machine with the payout flow
    clock: Clock
    env: Mapping[str, str]

    def close(self) -> None:
        for gateway in self.charger.deps.gateways.values():
            if isinstance(gateway, TxpgChargeGateway | BizonChargeGateway):
                gateway.client.close()
        self.redis.close()


def build(env: Mapping[str, str] | None = None, clock: Clock | None = None) -> Runtime:
    env = dict(os.environ) if env is None else env
    clock = from_env(env) if clock is None else clock
    txpg_settings = TxpgSettings.from_env(env)
    settings = charge_settings(env)
    if settings.lease_ms <= txpg_settings.deadline * 1000:
        # A lease that can end during a gateway call would let a second worker take the
        # period over while the first one's exec-tran is still in flight.
        raise ConfigurationError(
            f"BILLING_LEASE_MS ({settings.lease_ms}) must be longer than the gateway deadline "
            f"BILLING_TXPG_DEADLINE ({txpg_settings.deadline:g} s)"
        )
    bizon_settings = BizonSettings.from_env(env)
    if settings.lease_ms <= bizon_settings.deadline * 1000:
        raise ConfigurationError(
            f"BILLING_LEASE_MS ({settings.lease_ms}) must be longer than the gateway deadline "
            f"BILLING_BIZON_DEADLINE ({bizon_settings.deadline:g} s)"
        )
    r = connect(redis_url(dict(env)))
    txpg = TxpgChargeGateway(TxpgClient(txpg_settings))
    bizon_client = BizonClient(bizon_settings)
    bizon = BizonChargeGateway(
        bizon_client,
        auto_charge=_flag(env, "BILLING_BIZON_AUTO_CHARGE"),
        honours_rebill_ids=_flag(env, "BILLING_BIZON_REBILL_MERCHANT_ID"),
    )
    breaker_settings = BreakerSettings(
        threshold=_int(env, "BILLING_BREAKER_THRESHOLD", 5),
        cooldown_ms=_int(env, "BILLING_BREAKER_COOLDOWN_MS", 5_000),
    )

    deps = Deps(
        store=ChargeStore(r),
        gateways={txpg.name: txpg, bizon.name: bizon},
        breakers={name: Breaker(r, name, breaker_settings) for name in (txpg.name, bizon.name)},
        clock=clock,
        settings=settings,
        slots={
            name: Slots(
                r,
                keys.slots(name),
                limit=_int(env, "BILLING_GATEWAY_CONCURRENCY", 64),
                ttl_ms=_int(env, "BILLING_LEASE_MS", 90_000),
            )
            for name in (txpg.name, bizon.name)
        },
        fallback=env.get("BILLING_FALLBACK_GATEWAY", "") or None,
    )
    payout_deps = replace(
        deps,
        store=ChargeStore(r, PAYOUTS),
        gateways={
            txpg.name: TxpgPayoutGateway(txpg.client),
            bizon.name: BizonPayoutGateway(bizon_client),
        },
        flow=PAYOUT,
    )
    return Runtime(
        redis=r, charger=Charger(deps), payouter=Charger(payout_deps), clock=clock, env=env
    )


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """The process's runtime, built on first use (in each forked worker process)."""
    global _current
    with _lock:
        if _current is None:
            _current = build()
        return _current
