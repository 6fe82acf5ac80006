"""Dramatiq actors: thin glue from a message to the pipeline.

Messages carry ids only: ``(subscription_id, period)``. No amount, card or secret ever goes
through the queue. Retries are the pipeline's own (``bw:work`` and the janitor), so Dramatiq's
retries are off: its defaults (20 retries over weeks) are wrong for money.
"""

from __future__ import annotations

import dramatiq

from worker import runtime
from worker.dispatch import send_many

CHARGES_QUEUE = "charges"


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
