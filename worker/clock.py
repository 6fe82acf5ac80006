"""Time, injected. Everything that reads the time takes a :class:`Clock`, so a test (or the
simulator) can run the real code over virtual time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from worker.errors import ConfigurationError


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FixedClock:
    """A clock that moves only when told: for tests."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms

    def set(self, ms: int) -> None:
        """Jump to ``ms`` (the simulator moves time forward only; nothing here checks that)."""
        self._now = ms


class OffsetClock:
    """The system clock shifted by a fixed amount: the test clock shared by processes.

    Set ``BILLING_CLOCK_OFFSET_MS`` (may be negative) on every process of a deployment under
    test (worker, scheduler, CLI) and they all live the same virtual time, still moving at
    real speed. Never set it in production.
    """

    def __init__(self, offset_ms: int) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


SYSTEM = SystemClock()


def from_env(env: Mapping[str, str]) -> Clock:
    """The system clock, or an :class:`OffsetClock` when ``BILLING_CLOCK_OFFSET_MS`` is set."""
    raw = env.get("BILLING_CLOCK_OFFSET_MS", "").strip()
    if not raw:
        return SYSTEM
    try:
        return OffsetClock(int(raw))
    except ValueError:
        raise ConfigurationError(
            f"BILLING_CLOCK_OFFSET_MS must be a whole number of ms, got {raw[:30]!r}"
        ) from None
