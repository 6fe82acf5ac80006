"""What happens after a decline: dunning, dead letters, the subscription's new status.

Pure. The dunning schedule is a list of delays after attempt 1, 2, 3...: the default
``1d, 3d, 5d, 7d`` gives five attempts in all. Schedules in seconds are allowed (demo, tests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from worker.deadletters import DeadLetterReason
from worker.errors import DeclineClass, InvalidInput
from worker.subscriptions import SubscriptionStatus

DAY_MS = 86_400_000
DEFAULT_DUNNING_MS: tuple[int, ...] = (1 * DAY_MS, 3 * DAY_MS, 5 * DAY_MS, 7 * DAY_MS)

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS}
_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d)", re.ASCII)


def parse_schedule(text: str) -> tuple[int, ...]:
    """``"1d,3d,5d,7d"`` or ``"2s,2s"`` -> delays in ms. Empty means no retries."""
    delays: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _DURATION.fullmatch(part)
        if match is None:
            raise InvalidInput(f"dunning delay {part!r} is invalid: use e.g. 1d, 12h, 30m, 5s")
        delays.append(int(match.group(1)) * _UNITS[match.group(2)])
    return tuple(delays)


@dataclass(frozen=True, slots=True)
class Retry:
    """Dunning: a new attempt, with a new order, at ``at_ms``."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Stop: dead-letter the period; the subscription moves to ``subscription_status``."""

    reason: DeadLetterReason
    subscription_status: SubscriptionStatus | None


Decision = Retry | DeadLetter


def after_decline(
    decline_class: DeclineClass, attempt: int, now_ms: int, schedule: Sequence[int]
) -> Decision:
    """The next step after attempt number ``attempt`` (1-based) was declined."""
    if decline_class is DeclineClass.HARD:
        return DeadLetter(DeadLetterReason.HARD_DECLINE, SubscriptionStatus.NEEDS_NEW_CARD)
    if decline_class is DeclineClass.NEEDS_CUSTOMER:
        return DeadLetter(DeadLetterReason.NEEDS_CUSTOMER, SubscriptionStatus.PAST_DUE)
    if attempt <= len(schedule):
        return Retry(now_ms + schedule[attempt - 1])
    return DeadLetter(DeadLetterReason.DUNNING_EXHAUSTED, SubscriptionStatus.PAST_DUE)
