"""What makes a kind of job a charge or a payout, for the one fenced state machine.

``worker.charges.pipeline`` drives any job named ``(owner, item)`` through the same steps:
open an order, attach the card, write ``exec_sent`` ahead, execute, reconcile what is
unknown, dead-letter what must stop. A :class:`Flow` supplies only what differs between
kinds: where the state lives (a :class:`~worker.store.charges.Space`), the event names, the
ids put on events, whether the subject (a subscription, a payout) still wants the job, what
a decline leads to, what the subject becomes when the job ends, and whether card-network
caps apply. Nothing here names a gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.charges import policy
from worker.errors import DeclineClass
from worker.events import EventType
from worker.store.charges import CHARGES, Space
from worker.subscriptions import CHARGEABLE, SubscriptionStatus

#: The subject change a finished job makes, with its events: ``{"key", "from", "to"}`` and
#: optionally ``"set"``: fields stored with the new status ("" deletes one).
SubjectChange = tuple[dict[str, Any] | None, list[EventType]]
#: What a finished job ended with, for a subject that records it: ``order_id`` and
#: ``approval_code`` when paid; ``order_id`` and ``failure_code``, ``failure_title``,
#: ``failure_reason`` (scrubbed) when dead-lettered.
JobOutcome = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Flow:
    space: Space
    succeeded: EventType
    failed: EventType
    unknown: EventType
    reconciled: EventType
    deferred: EventType
    #: emitted for a decline that is retried or dead-lettered; None: the failure event says it
    declined: EventType | None
    #: the ids an event and a log line carry, from ``(owner, item)``
    ids: Callable[[str, str], dict[str, str]]
    #: why the subject no longer wants this job (it may not start), or None to go on
    gate: Callable[[Mapping[str, str] | None], str | None]
    #: what a decline leads to: another attempt later, or a dead letter
    after_decline: Callable[[DeclineClass, int, int, tuple[int, ...]], policy.Decision]
    #: the subject change and events when the job is paid / dead-lettered
    on_paid: Callable[[str, JobOutcome], SubjectChange]
    on_dead: Callable[[str, policy.DeadLetter | None, JobOutcome], SubjectChange]
    card_caps: bool


# -- charges -----------------------------------------------------------------------------------


def _charge_ids(owner: str, item: str) -> dict[str, str]:
    return {"subscription_id": owner, "period": item}


def _charge_gate(subject: Mapping[str, str] | None) -> str | None:
    if subject is None:
        return "subscription deleted"
    status = subject.get("status", "")
    return None if status in CHARGEABLE else f"subscription {status}"


def _charge_dead(
    owner: str, decision: policy.DeadLetter | None, outcome: JobOutcome
) -> SubjectChange:
    status = decision.subscription_status if decision is not None else None
    if status is None:
        return None, []
    event = (
        EventType.SUBSCRIPTION_NEEDS_NEW_CARD
        if status is SubscriptionStatus.NEEDS_NEW_CARD
        else EventType.SUBSCRIPTION_PAST_DUE
    )
    change = {"key": CHARGES.subject(owner), "from": ["active", "past_due"], "to": status.value}
    return change, [event]


CHARGE = Flow(
    space=CHARGES,
    succeeded=EventType.CHARGE_SUCCEEDED,
    failed=EventType.CHARGE_FAILED,
    unknown=EventType.CHARGE_UNKNOWN,
    reconciled=EventType.CHARGE_RECONCILED,
    deferred=EventType.CHARGE_DEFERRED,
    declined=EventType.CHARGE_DECLINED,
    ids=_charge_ids,
    gate=_charge_gate,
    after_decline=policy.after_decline,
    on_paid=lambda owner, outcome: (None, []),
    on_dead=_charge_dead,
    card_caps=True,
)
