"""Test helpers: a dead-lettered period written exactly as ``worker.keys`` lays it out, so the
dead-letter tests do not depend on the charge pipeline; and a snapshot of every key, to show
that an operation changed nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from worker import keys
from worker.deadletters import (
    DeadLetter,
    DeadLetterReason,
    attempts_summary,
    dead_letter_id,
)
from worker.subscriptions import Subscription, SubscriptionStatus

T0 = 1_793_512_800_000  # 2026-11-01 06:00:00 UTC
HOUR = 3_600_000

_TITLES = {"51": "Expired card", "59": "Insufficient funds", "6": ""}


def seed_dead_period(
    r: redis.Redis,
    *,
    sub_id: str = "sub-1",
    period: str = "2026-11-01",
    attempts: int = 2,
    reason: DeadLetterReason = DeadLetterReason.HARD_DECLINE,
    result_code: str = "51",
    sub_status: SubscriptionStatus = SubscriptionStatus.NEEDS_NEW_CARD,
    created_at: int = T0,
    amount: str = "9.99",
) -> DeadLetter:
    """Subscription, attempts, a ``dead`` period and its open dead letter, as the pipeline
    leaves them: the period is out of ``bw:work`` and points at the entry.
    """
    sub = Subscription.create(
        id=sub_id, customer="cust-1", stored_id=5125, amount=amount, currency="AZN"
    ).with_status(sub_status, created_at - 10 * HOUR)
    _hset(r, keys.sub(sub_id), sub.to_hash())
    r.zadd(keys.DUE, {sub_id: created_at - 10 * HOUR})
    history = []
    for n in range(1, attempts + 1):
        started = created_at - (attempts - n + 1) * HOUR
        attempt = {
            "n": str(n),
            "state": "declined",
            "order_id": str(4000 + n),
            "gateway": "txpg",
            "started_at": str(started),
            "finished_at": str(started + 900),
            "result_code": result_code,
            "result_title": _TITLES.get(result_code, ""),
            "decline_reason": "Declined by issuer",
            "decline_class": "hard",
            "error_code": "PmoDecline",
        }
        _hset(r, keys.attempt(sub_id, period, n), attempt)
        history.append(attempt)
    entry = DeadLetter(
        id=dead_letter_id(sub_id, period, attempts, 1),
        key=keys.work_member(sub_id, period),
        subscription_id=sub_id,
        period=period,
        amount_minor=sub.amount.minor,
        currency="AZN",
        gateway="txpg",
        reason=reason,
        detail=f"PMO {result_code}",
        attempts=attempts_summary(history),
        created_at=created_at,
    )
    _hset(
        r,
        keys.period(sub_id, period),
        {
            "status": "dead",
            "attempt": attempts,
            "fence": attempts,
            "lease_until": created_at + 60_000,
            "lease_owner": "worker-1",
            "next_at": 0,
            "amount_minor": sub.amount.minor,
            "currency": "AZN",
            "card": "5125",
            "gateway": "txpg",
            "opened_at": created_at - 2 * HOUR,
            "closed_at": created_at,
            "reason": reason.value,
            "dlq_id": entry.id,
        },
    )
    r.zadd(keys.periods(sub_id), {period: created_at - 2 * HOUR})
    _hset(r, keys.dead_letter(entry.id), entry.to_hash())
    r.zadd(keys.DLQ, {entry.id: created_at})
    return entry


def _hset(r: redis.Redis, key: str, fields: Mapping[str, object]) -> None:
    mapping: dict[Any, Any] = dict(fields)  # redis-py's key type is invariant
    r.hset(key, mapping=mapping)


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Every key with its whole value, by type."""
    out: dict[str, Any] = {}
    for key in sorted(str(k) for k in r.keys("*")):
        kind = r.type(key)
        if kind == "hash":
            out[key] = r.hgetall(key)
        elif kind == "zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = r.xrange(key)
        elif kind == "set":
            out[key] = sorted(r.smembers(key))
        elif kind == "list":
            out[key] = r.lrange(key, 0, -1)
        else:
            out[key] = r.get(key)
    return out
