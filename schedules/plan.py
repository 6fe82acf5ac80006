"""What the sweep does with one due subscription. Pure: no I/O, no clock of its own.

Given a subscription as claimed and *now*, :func:`decide` returns the periods to open for
charging, the periods to record as skipped, the new cursor and when to look again:

* ``active`` / ``past_due``: every period due after the cursor, oldest first, minus those that
  fell due inside a pause (skipped, reason ``paused``), then the catch-up policy: ``all``
  charges each, ``latest`` charges only the newest and skips the rest (reason ``missed``);
* ``paused``: the same rule, so periods falling due during the pause are recorded as skipped
  when they fall due;
* ``needs_new_card``: nothing is recorded, the cursor stays, and the subscription leaves the
  due index until its card changes (an update puts it back; the periods missed meanwhile are
  then handled by the catch-up policy);
* ``cancelled``, no cadence, or past its ``end``: never due again.

At most ``max_periods`` periods are recorded per look (a subscription whose start lies years
back is caught up over several sweeps, one bounded step at a time).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable

from worker import events
from worker.errors import InvalidInput
from worker.events import EventType
from worker.periods import (
    Cadence,
    CatchUp,
    Period,
    Skip,
    apply_pauses,
    catch_up,
    due_and_next,
    parse_cadence,
)
from worker.store.schedule import Decision
from worker.subscriptions import Subscription, SubscriptionStatus

S = SubscriptionStatus
MAX_PERIODS = 100


def decide(
    sub: Subscription,
    updated_at: str,
    now_ms: int,
    policy: CatchUp = CatchUp.ALL,
    *,
    max_periods: int = MAX_PERIODS,
    cadence: Cadence | None = None,
) -> Decision:
    """The decision for ``sub`` at ``now_ms`` (``updated_at`` as read, for the record's CAS)."""
    if sub.status in (S.CANCELLED, S.NEEDS_NEW_CARD) or not sub.cadence:
        return _never(sub, updated_at)
    if cadence is None:
        try:
            cadence = parse_cadence(sub.cadence)
        except InvalidInput:  # stored before cadences were validated: nothing can come due
            return _never(sub, updated_at)
    due, following = due_and_next(cadence, sub.cursor or None, now_ms)
    paused = apply_pauses(due, sub.pauses)
    chosen = catch_up(paused.charge, policy)
    actions: list[tuple[Period, Skip | None]] = [(p, None) for p in chosen.charge]
    if paused.skipped or chosen.skipped:
        actions += [(skip.period, skip) for skip in (*paused.skipped, *chosen.skipped)]
        actions.sort(key=lambda action: action[0].start)  # each period once, oldest first
    truncated = len(actions) > max_periods
    actions = actions[:max_periods]
    cursor = actions[-1][0].key if actions else sub.cursor
    if truncated:
        next_at: float = now_ms  # more is due: look again at once
    else:
        next_at = math.inf if following is None else following.due_at_ms
    return Decision(
        sub.id,
        updated_at,
        sub.cursor,
        cursor,
        next_at,
        open=[_fields(sub, period) for period, skip in actions if skip is None],
        skip=[_skipped(sub, skip, now_ms) for _, skip in actions if skip is not None],
    )


def _never(sub: Subscription, updated_at: str) -> Decision:
    return Decision(sub.id, updated_at, sub.cursor, sub.cursor, math.inf)


@functools.lru_cache(maxsize=4096)
def stored_cadence(text: str) -> Cadence | None:
    """The cadence stored as ``text`` (a subscription hash's ``cadence`` field, compact JSON)
    parsed, or None if it does not parse (:func:`decide` then treats it as never due).

    Cached on the text: :func:`~worker.periods.parse_cadence` is pure and a :class:`Cadence`
    is frozen, and the subscriptions one sweep claims share few cadences (a cadence holds its
    start date, so a population has about one per plan and start day).
    """
    try:
        return parse_cadence(json.loads(text))
    except (ValueError, InvalidInput):  # ValueError: not JSON
        return None


def _fields(sub: Subscription, period: Period) -> dict[str, str]:
    """What a period freezes from its subscription when it opens: ``cards`` (every
    gateway's card reference, for a fallback attempt) only when it holds more than one.
    """
    cards = sub.cards()
    return {
        "period": period.key,
        "amount_minor": str(sub.amount.minor),
        "currency": sub.currency,
        "card": sub.card_ref(),
        "gateway": sub.gateway,
        "cards": json.dumps(cards, sort_keys=True) if len(cards) > 1 else "",
    }


def _skipped(sub: Subscription, skip: Skip, now_ms: int) -> dict[str, object]:
    key = f"{sub.id}|{skip.period.key}"
    event = events.build(
        EventType.PERIOD_SKIPPED,
        key,
        now_ms,
        {"reason": skip.reason.value, "due_at": skip.period.due_at_ms},
    )
    return {**_fields(sub, skip.period), "reason": skip.reason.value, "event": event}


def periods_of(decisions: Iterable[Decision]) -> int:
    return sum(len(d.open) + len(d.skip) for d in decisions)
