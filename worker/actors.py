"""Dramatiq actors: thin glue from a message to the pipeline.

Messages carry ids only: ``(subscription_id, period)``. No amount, card or secret ever goes
through the queue. Retries are the pipeline's own (``bw:work`` and the janitor), so Dramatiq's
retries are off: its defaults (20 retries over weeks) are wrong for money.
"""

from __future__ import annotations

import dramatiq

from worker import keys, runtime
from worker.dispatch import send_many

CHARGES_QUEUE = "charges"
PAYOUTS_QUEUE = "payouts"


@dramatiq.actor(queue_name=CHARGES_QUEUE, max_retries=0, time_limit=300_000)
def charge(subscription_id: str, period: str) -> None:
    """Drive one billing period towards paid, dead-lettered or skipped (idempotent)."""
    runtime.current().charger.run(subscription_id, period)


def send_charges(pairs: list[tuple[str, str]]) -> None:
    """Enqueue one message per (subscription, period), pipelined."""
    send_many(charge, pairs)


def ring(sub_id: str, period: str) -> None:
    """The doorbell for one period (what ``request_charge`` calls)."""
    charge.send(sub_id, period)


@dramatiq.actor(queue_name=PAYOUTS_QUEUE, max_retries=0, time_limit=300_000)
def payout(payout_id: str, item: str = keys.PAYOUT_ITEM) -> None:
    """Drive one payout towards paid or failed (idempotent): the charge state machine with
    the payout flow."""
    runtime.current().payouter.run(payout_id, item)


def send_payouts(pairs: list[tuple[str, str]]) -> None:
    """Enqueue one message per (payout, item), pipelined (what the payout janitor sends)."""
    send_many(payout, pairs)


def ring_payouts(payout_ids: list[str]) -> None:
    send_many(payout, [(payout_id, keys.PAYOUT_ITEM) for payout_id in payout_ids])
