"""The charge state machine, as data.

A billing period (the idempotency key ``{subscription}|{period}``) is charged by attempts
1, 2, 3...; each attempt is one gateway order.

Attempt states::

    due ──► order_created ──► token_set ──► exec_sent ──► paid
                 │                ▲  │          │
                 │                │  │          ├──► declined            (a definite "no")
                 ▼                │  ▼          └──► unknown ──► paid | declined
              declined            └── (not sent: back to token_set;        │
          (token refused)              reconciled unexecuted: same order) ◄┘

``exec_sent`` is written *before* the execute call is sent. Finding an attempt in ``exec_sent``
(after a crash) means "maybe sent": it is reconciled, never re-sent blind. A new order (a new
attempt) is made only after the previous one is ``declined``: never while an order may still
be paid.

Period statuses: ``open`` (work remains), ``paid``, ``dead`` (dead-lettered) and
``skipped`` (by an explicit, recorded policy).
"""

from __future__ import annotations

import enum


class AttemptState(enum.StrEnum):
    DUE = "due"  #: no order yet
    ORDER_CREATED = "order_created"  #: order id and password stored
    TOKEN_SET = "token_set"  # noqa: S105 - a state name; #: the card is attached to the order
    EXEC_SENT = "exec_sent"  #: the execute call may have been sent: reconcile before anything else
    UNKNOWN = "unknown"  #: the outcome is unknown; reconciling with GET order
    PAID = "paid"  #: final: money moved once
    DECLINED = "declined"  #: final for this attempt: the order will never be paid


class PeriodStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    DEAD = "dead"
    SKIPPED = "skipped"


FINAL_ATTEMPT_STATES = frozenset({AttemptState.PAID, AttemptState.DECLINED})
FINAL_PERIOD_STATUSES = frozenset({PeriodStatus.PAID, PeriodStatus.DEAD, PeriodStatus.SKIPPED})

#: Every allowed transition. The store refuses anything else (and any stale fence).
TRANSITIONS: dict[AttemptState, frozenset[AttemptState]] = {
    AttemptState.DUE: frozenset({AttemptState.ORDER_CREATED, AttemptState.DECLINED}),
    AttemptState.ORDER_CREATED: frozenset({AttemptState.TOKEN_SET, AttemptState.DECLINED}),
    AttemptState.TOKEN_SET: frozenset({AttemptState.EXEC_SENT, AttemptState.DECLINED}),
    AttemptState.EXEC_SENT: frozenset(
        {AttemptState.PAID, AttemptState.DECLINED, AttemptState.UNKNOWN, AttemptState.TOKEN_SET}
    ),
    AttemptState.UNKNOWN: frozenset(
        {AttemptState.PAID, AttemptState.DECLINED, AttemptState.TOKEN_SET}
    ),
    AttemptState.PAID: frozenset(),
    AttemptState.DECLINED: frozenset(),
}


def allowed(current: AttemptState, new: AttemptState) -> bool:
    return new in TRANSITIONS[current]
