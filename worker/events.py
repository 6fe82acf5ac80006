"""Typed outcome events, published on the Redis stream ``bw:events``. Pure: builds entries.

Each event has a unique ``id`` and the ``key`` it concerns (``{subscription}|{period}`` for
charges), so consumers can dedupe. Events of a state change are written by the same Lua
script as the change itself (``worker.store.charges``): a transition and its event are never
separated by a crash.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any


class EventType(enum.StrEnum):
    CHARGE_SUCCEEDED = "charge.succeeded"  #: the period is paid
    CHARGE_DECLINED = "charge.declined"  #: an attempt was declined; ``next_retry_at`` if any
    CHARGE_FAILED = "charge.failed"  #: the period was dead-lettered
    CHARGE_UNKNOWN = "charge.unknown"  #: an attempt's outcome is unknown; reconciling
    CHARGE_RECONCILED = "charge.reconciled"  #: the gateway told what happened to it
    CHARGE_DEFERRED = "charge.deferred"  #: not attempted now (card cap, breaker, halt)
    PERIOD_SKIPPED = "period.skipped"  #: the scheduler recorded a period as skipped (paused,
    #: or missed under the ``latest`` catch-up policy); it will never be charged
    SUBSCRIPTION_PAST_DUE = "subscription.past_due"
    SUBSCRIPTION_NEEDS_NEW_CARD = "subscription.needs_new_card"
    GATEWAY_CIRCUIT_OPENED = "gateway.circuit_opened"
    GATEWAY_CIRCUIT_CLOSED = "gateway.circuit_closed"
    GATEWAY_CREDENTIALS_REJECTED = "gateway.credentials_rejected"
    PAYOUT_SUCCEEDED = "payout.succeeded"  #: the money reached the destination card
    PAYOUT_FAILED = "payout.failed"  #: declined or refused; in the dead letters
    PAYOUT_UNKNOWN = "payout.unknown"  #: the outcome is unknown; reconciling with GET order
    PAYOUT_RECONCILED = "payout.reconciled"  #: the gateway told what happened to it
    PAYOUT_DEFERRED = "payout.deferred"  #: not sent now (breaker, halt), or closed unsent
    PAYOUT_RUN_STARTED = "payout_run.started"
    PAYOUT_RUN_COMPLETED = "payout_run.completed"  #: every payout the run took is final
    PAYOUT_RUN_LIMIT_REACHED = "payout_run.limit_reached"  #: it stopped before a limit
    DLQ_REPLAYED = "dlq.replayed"
    DLQ_DISCARDED = "dlq.discarded"


def build(
    event_type: EventType, key: str, now_ms: int, data: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The stream entry's fields. ``data`` must hold no secret (callers pass ids and codes)."""
    return {
        "id": uuid.uuid4().hex,
        "type": event_type.value,
        "key": key,
        "time": str(now_ms),
        "data": json.dumps(dict(data or {}), sort_keys=True, separators=(",", ":")),
    }


def parse(fields: Mapping[str, str]) -> dict[str, Any]:
    """A stream entry back as a dict, ``data`` decoded."""
    return {**fields, "time": int(fields["time"]), "data": json.loads(fields.get("data", "{}"))}
