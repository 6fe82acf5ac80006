"""Card-network attempt caps, counted per card across all its subscriptions. Pure.

Visa allows at most 15 attempts per card in 30 days, Mastercard 10 in 24 hours. Both are
applied to every card (the brand of a storedId is not known before the attempt), which is
the conservative reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Cap:
    limit: int
    window_ms: int


CAPS: tuple[Cap, ...] = (Cap(10, DAY_MS), Cap(15, 30 * DAY_MS))
#: How long attempt timestamps are kept: the longest window.
KEEP_MS = max(c.window_ms for c in CAPS)


def next_allowed_at(
    attempt_times_ms: Sequence[int], now_ms: int, caps: Sequence[Cap] = CAPS
) -> int:
    """``now_ms`` if another attempt is allowed now, else the first moment it will be."""
    allowed_at = now_ms
    times = sorted(attempt_times_ms)
    for cap in caps:
        recent = [t for t in times if t > now_ms - cap.window_ms]
        if len(recent) >= cap.limit:
            # the oldest attempt that keeps us at the limit must leave the window
            allowed_at = max(allowed_at, recent[len(recent) - cap.limit] + cap.window_ms + 1)
    return allowed_at
