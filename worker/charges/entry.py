"""The one way a billing period is asked to be charged: the CLI, the scheduler and ops
replays all come through :func:`request_charge`, which is idempotent per (subscription,
period).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import redis

from worker.clock import Clock
from worker.errors import InvalidInput
from worker.store.charges import ChargeStore
from worker.subscriptions import Subscription, validate_id, validate_period


class Requested(enum.StrEnum):
    OPENED = "opened"  #: the period is open for charging now
    IN_PROGRESS = "in_progress"  #: it was already open: nothing new, the doorbell rang again
    ALREADY_PAID = "already_paid"  #: a no-op: this period was charged before
    DEAD = "dead"  #: it is in the dead letters; replay it from there
    SKIPPED = "skipped"  #: it was closed as skipped by policy


@dataclass(frozen=True, slots=True)
class RequestResult:
    outcome: Requested
    message: str


def request_charge(
    r: redis.Redis,
    sub_id: str,
    period: str,
    clock: Clock,
    send: Callable[[str, str], None] | None = None,
) -> RequestResult:
    """Open ``period`` of ``sub_id`` for charging and ring the doorbell (``send``).

    The amount, currency, card and gateway are frozen from the subscription when the period
    opens: a later change applies to later periods, never to one in flight.
    """
    validate_id(sub_id, "subscription id")
    validate_period(period)
    data = r.hgetall(f"bw:sub:{sub_id}")
    if not data:
        raise InvalidInput(f"no subscription {sub_id!r}")
    sub = Subscription.from_hash(data, sub_id)  # type: ignore[arg-type]
    store = ChargeStore(r)
    existing = store.period(sub_id, period).get("status")
    if existing is None and not sub.chargeable:
        raise InvalidInput(f"subscription {sub_id} is {sub.status.value}: it is not charged")
    status = store.open_period(
        sub_id,
        period,
        clock.now_ms(),
        amount_minor=sub.amount.minor,
        currency=sub.currency,
        card=sub.card_ref(),
        gateway=sub.gateway,
        cards=sub.cards(),
    )
    key = f"{sub_id} {period}"
    if status == "paid":
        return RequestResult(Requested.ALREADY_PAID, f"{key} is already paid: nothing to do")
    if status == "dead":
        return RequestResult(Requested.DEAD, f"{key} is dead-lettered: see `billing dlq`")
    if status == "skipped":
        return RequestResult(Requested.SKIPPED, f"{key} was skipped by policy")
    if send is not None:
        send(sub_id, period)
    if status == "new":
        return RequestResult(Requested.OPENED, f"{key} opened for charging")
    return RequestResult(Requested.IN_PROGRESS, f"{key} is already being charged")
