"""A payout as a job of the fenced state machine (``worker.charges.pipeline``).

The same steps as a charge (open an order, attach the card, ``exec_sent`` ahead, execute,
reconcile the unknown), with what differs for money going out:

* a decline is never retried by itself: the payout is ``failed`` and dead-lettered, with its
  PMO code, title and reason, and an operator replays it;
* the job may start only while the payout is ``sending`` (taken by a run): a payout
  cancelled before anything was sent is closed unsent;
* no card-network caps (they count authorisations of the cardholder's card);
* the payout's own status follows the job: ``paid`` (with its ``order_id`` and
  ``approval_code``) or ``failed`` (with ``failure_code``, ``failure_title`` and
  ``failure_reason``), in the same script.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker import keys
from worker.charges import policy
from worker.charges.flow import Flow, JobOutcome, SubjectChange
from worker.deadletters import DeadLetterReason
from worker.errors import DeclineClass
from worker.events import EventType
from worker.store.charges import PAYOUTS


def _ids(owner: str, item: str) -> dict[str, str]:
    return {"payout_id": owner}


def _gate(subject: Mapping[str, str] | None) -> str | None:
    if subject is None:
        return "payout deleted"
    status = subject.get("status", "")
    return None if status == "sending" else f"payout {status}"


def _after_decline(
    decline_class: DeclineClass, attempt: int, now_ms: int, schedule: tuple[int, ...]
) -> policy.Decision:
    return policy.DeadLetter(DeadLetterReason.DECLINED, None)


def _paid(owner: str, outcome: JobOutcome) -> SubjectChange:
    # a replayed payout that is paid now no longer says why it failed before
    clear = dict.fromkeys(("failure_code", "failure_title", "failure_reason"), "")
    change = {"key": keys.payout(owner), "from": ["sending"], "to": "paid"}
    return {**change, "set": {**clear, **outcome}}, []


def _dead(owner: str, decision: policy.DeadLetter | None, outcome: JobOutcome) -> SubjectChange:
    change = {"key": keys.payout(owner), "from": ["sending"], "to": "failed"}
    return {**change, "set": dict(outcome)}, []


PAYOUT = Flow(
    space=PAYOUTS,
    succeeded=EventType.PAYOUT_SUCCEEDED,
    failed=EventType.PAYOUT_FAILED,
    unknown=EventType.PAYOUT_UNKNOWN,
    reconciled=EventType.PAYOUT_RECONCILED,
    deferred=EventType.PAYOUT_DEFERRED,
    declined=None,
    ids=_ids,
    gate=_gate,
    after_decline=_after_decline,
    on_paid=_paid,
    on_dead=_dead,
    card_caps=False,
)
