"""The seam between the charge pipeline and a payment gateway.

The pipeline speaks only this vocabulary: open an order for a charge, attach the saved card,
execute it, look it up. Each gateway adapter maps its own API onto these four calls and its
errors onto ``worker.errors`` (``RequestNotSent``, ``OutcomeUnknown``, ``Declined`` with a
``DeclineClass``, ``CredentialsRejected``, ``RequestRejected``). Nothing here names a gateway.

``open_order`` receives the card reference (a gateway that creates the order *on* a saved card
needs it there; one that attaches the card later ignores it) and a description that is unique
per attempt (``"{owner} {item} #{n}"``): the attempt's idempotency key.

A gateway whose "open order" call may create an order it cannot name again when the answer is
lost (no idempotency key on the request) also offers :class:`WritesAhead`: before each
``open_order`` the pipeline asks it for a note (for instance the time the request is about to
be sent), stores the note on the attempt *before* the call, and passes every note stored so
far to ``open_order`` as ``ahead``. The adapter uses the earlier notes to search for an order a
lost answer created before it creates another one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from worker.errors import DeclineClass, InvalidInput
from worker.money import Money
from worker.sensitive import Secret


@dataclass(frozen=True, slots=True)
class OrderHandle:
    """A gateway order as the pipeline stores it: an id and, if the gateway has one, a
    secret that later calls need (kept in Redis until the attempt is final, never logged).
    """

    id: str
    secret: Secret[str] | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    approval_code: str | None
    reference: str | None  #: the processor's id for the transaction
    result_code: str | None


class LookupOutcome(enum.StrEnum):
    PAID = "paid"  #: the order's money moved
    FAILED = "failed"  #: the order ended without moving money and never will
    NOT_EXECUTED = "not_executed"  #: no transaction yet: executing the same order is safe
    UNRESOLVED = "unresolved"  #: anything else: keep asking, then a human


@dataclass(frozen=True, slots=True)
class Lookup:
    outcome: LookupOutcome
    status: str  #: the gateway's own status text
    decline_class: DeclineClass | None = None
    result_code: str | None = None
    result_title: str | None = None
    #: the gateway's own id for what moved the money, when the handle is not it
    reference: str | None = None


class ChargeGateway(Protocol):
    """What a gateway must offer the recurring-charge pipeline."""

    name: str

    def open_order(
        self, amount: Money, description: str, card_ref: str, ahead: Sequence[str] = ()
    ) -> OrderHandle: ...

    def attach_card(self, order: OrderHandle, card_ref: str) -> None: ...

    def execute(self, order: OrderHandle, amount: Money) -> Approval: ...

    def lookup(self, order: OrderHandle) -> Lookup: ...


@runtime_checkable
class WritesAhead(Protocol):
    """A gateway that wants a note written on the attempt before each ``open_order``."""

    def note_ahead(self, amount: Money, description: str, card_ref: str) -> str:
        """The note to store before the call (no I/O; the adapter's own clock)."""
        ...


# -- immediate payouts to a card number ------------------------------------------------------

#: A payout destination naming a card number held in the accepting process's memory.
PAN_PREFIX = "pan:"

#: Where the PANs of immediate payouts are kept, by card reference (``pan:<key>``): a
#: mapping, or a function that answers ``None`` for a reference it does not hold.
PanVault = Mapping[str, Secret[str]] | Callable[[str], Secret[str] | None]


class PanNotInMemory(InvalidInput):
    """The card number of an immediate payout is gone (the process restarted). Nothing was
    sent; the payout must be submitted again.
    """


def pan_lookup(pans: PanVault | None) -> Callable[[str], Secret[str] | None]:
    """``pans`` as a function from a card reference to its PAN (``None``: not held)."""
    if pans is None:
        return lambda _ref: None
    if isinstance(pans, Mapping):
        return pans.get
    return pans
