"""What every sandbox gateway has, whatever its API: cards, ledger, faults, a clock, one lock.

The TXPG sandbox (:class:`worker.sandbox.engine.SandboxState`) and the Bizon sandbox
(:class:`worker.sandbox.bizon.state.BizonState`) both extend :class:`SandboxCore`, so the
two share the card behaviours (:mod:`.cards`), the audit ledger (:mod:`.ledger`), the fault
plan (:mod:`.faults`) and the admin API (:mod:`.admin`) rather than each keeping a copy.
Each adds its own orders, with their own state machine, under the same re-entrant lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.money import Money
from worker.sandbox.cards import Card, CardRegistry
from worker.sandbox.faults import FaultPlan, FaultRule
from worker.sandbox.ledger import Ledger

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SandboxCore:
    """Cards, ledger, faults and clock behind one lock. Subclasses keep the orders."""

    def __init__(
        self,
        cards: Iterable[Card],
        faults: Iterable[FaultRule] = (),
        *,
        seed: int | None = None,
        clock: Clock | None = None,
        ledger_file: Path | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.cards = CardRegistry(cards, self.lock)
        self.ledger = Ledger(self.lock, ledger_file)
        self.faults = FaultPlan(self.lock, faults, seed)
        self._initial_faults = self.faults.rules()
        self._seed = seed
        self._default_clock: Clock = clock or utc_now
        self.clock: Clock = self._default_clock

    def top_up(self, key: str | int, money: Money) -> Card:
        """Add to a card's balance (by the admin API's card key); see :mod:`.cards`."""
        return self.cards.top_up(str(key), money)

    def set_clock(self, clock: Clock | None) -> None:
        """Use ``clock`` for expiry checks and times; ``None`` goes back to the start clock."""
        with self.lock:
            self.clock = clock or self._default_clock

    def reset(self) -> None:
        """Back to the start: no orders, empty ledger, start cards, start faults and clock.

        Ids keep counting, so no id is ever handed out twice.
        """
        with self.lock:
            self.forget_orders()
            self.ledger.clear()
            self.cards.reset()
            self.faults.clear()
            for rule in self._initial_faults:
                self.faults.add(rule)
            self.faults.seed(self._seed)
            self.clock = self._default_clock

    def forget_orders(self) -> None:
        """Drop every order (called by :meth:`reset`, under the lock)."""
        raise NotImplementedError

    def order_summaries(self) -> list[dict[str, Any]]:
        """One line per order for ``GET /_admin/orders``: no secret, no PAN."""
        raise NotImplementedError

    def close(self) -> None:
        self.ledger.close()
