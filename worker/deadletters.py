"""Dead letters: periods that ended without a charge and need a human, kept forever.

Pure: the entry's shape and how it is built from a period's attempts. The store writes it in
the same Lua script that closes the period (``worker.store.charges``); listing, replaying and
discarding live in ``worker.store.deadletters``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.subscriptions import GATEWAYS


class DeadLetterReason(enum.StrEnum):
    HARD_DECLINE = "hard_decline"  #: the card will not work again; the customer needs a new one
    DUNNING_EXHAUSTED = "dunning_exhausted"  #: soft declines through the whole retry schedule
    NEEDS_CUSTOMER = "needs_customer"  #: the cardholder must act (authentication, issuer)
    UNKNOWN_OUTCOME = "unknown_outcome"  #: the gateway never said what happened: a human checks
    REJECTED = "rejected"  #: the gateway refused the request itself (configuration, input)
    DECLINED = "declined"  #: a payout was declined: it is never retried by itself


class DeadLetterStatus(enum.StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


#: Attempt fields copied into a dead letter (never the order password).
ATTEMPT_FIELDS = (
    "n",
    "state",
    "order_id",
    "gateway",
    "started_at",
    "finished_at",
    "result_code",
    "result_title",
    "decline_reason",
    "decline_class",
    "error_code",
    "error",
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    key: str
    subscription_id: str
    period: str
    amount_minor: int
    currency: str
    gateway: str
    reason: DeadLetterReason
    detail: str
    attempts: tuple[Mapping[str, str], ...]
    created_at: int
    status: DeadLetterStatus = DeadLetterStatus.OPEN
    note: str = ""
    #: ``charge``: ``subscription_id``/``period`` name the period; ``payout``: they hold the
    #: payout id and ``credit``
    kind: str = "charge"

    def to_hash(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "id": self.id,
            "key": self.key,
            "subscription_id": self.subscription_id,
            "period": self.period,
            "amount_minor": str(self.amount_minor),
            "currency": self.currency,
            "gateway": self.gateway,
            "reason": self.reason.value,
            "detail": self.detail,
            "attempts": json.dumps([dict(a) for a in self.attempts], sort_keys=True),
            "created_at": str(self.created_at),
            "status": self.status.value,
            "note": self.note,
        }

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> DeadLetter:
        return cls(
            id=data["id"],
            key=data["key"],
            subscription_id=data["subscription_id"],
            period=data["period"],
            amount_minor=int(data["amount_minor"]),
            currency=data["currency"],
            gateway=data.get("gateway", GATEWAYS[0]),  # written before it was stored
            reason=DeadLetterReason(data["reason"]),
            detail=data.get("detail", ""),
            attempts=tuple(json.loads(data.get("attempts") or "[]")),
            created_at=int(data["created_at"]),
            status=DeadLetterStatus(data.get("status", "open")),
            note=data.get("note", ""),
            kind=data.get("kind", "charge"),
        )


def dead_letter_id(subscription_id: str, period: str, attempt: int, fence: int) -> str:
    """Unique per dead-lettering: the period's fence changes with every lease, so a period
    replayed and dead-lettered again gets a new entry, and the old one keeps its history.
    """
    return f"{subscription_id}|{period}|{attempt}.{fence}"


def attempts_summary(attempts: Sequence[Mapping[str, str]]) -> tuple[dict[str, str], ...]:
    return tuple({k: a[k] for k in ATTEMPT_FIELDS if k in a and a[k] != ""} for a in attempts)


def describe(entry: DeadLetter) -> dict[str, Any]:
    """A JSON-able view for the CLI."""
    return {
        **{k: v for k, v in entry.to_hash().items() if k != "attempts"},
        "attempts": [dict(a) for a in entry.attempts],
    }
