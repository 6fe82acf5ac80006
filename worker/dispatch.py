"""Pipelined enqueue: many Dramatiq messages in one Redis round trip.

``actor.send`` costs one round trip per message, which caps a sweep at a few thousand
messages a second. On the Redis broker, :func:`send_many` runs Dramatiq's own ``enqueue``
command (its ``dispatch`` script, so the queue layout stays Dramatiq's) for every message
through one pipeline, and emits the same ``before_enqueue``/``after_enqueue`` middleware
hooks as ``send``. On any other broker (the stub broker in unit tests) it falls back to
``send``, one message at a time.

A message is only a doorbell (see ``worker.janitor``): if the pipeline fails half way, the
periods it was ringing for are still in ``bw:work`` and the janitor rings again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

#: Messages per pipeline: large enough to amortise the round trip, small enough to keep
#: Redis responsive to everyone else.
CHUNK = 1000


def send_many(actor: dramatiq.Actor[Any, Any], calls: Sequence[tuple[Any, ...]]) -> int:
    """Enqueue ``actor(*args)`` for each ``args`` in ``calls``; returns how many were sent."""
    broker = actor.broker
    if not isinstance(broker, RedisBroker):
        for args in calls:
            actor.send(*args)
        return len(calls)
    for start in range(0, len(calls), CHUNK):
        _pipelined(broker, actor, calls[start : start + CHUNK])
    return len(calls)


def _pipelined(
    broker: RedisBroker, actor: dramatiq.Actor[Any, Any], calls: Sequence[tuple[Any, ...]]
) -> None:
    dispatch = broker.scripts["dispatch"]
    pipe = broker.client.pipeline(transaction=False)
    messages = []
    for args in calls:
        message = actor.message(*args).copy(options={"redis_message_id": str(uuid.uuid4())})
        broker.emit_before("enqueue", message, None)
        dispatch(
            keys=[broker.namespace],
            args=[
                "enqueue",
                current_millis(),
                message.queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                0,  # no maintenance pass from the scheduler's hot path
                broker._max_unpack_size(),  # type: ignore[no-untyped-call]
                message.options["redis_message_id"],
                message.encode(),
            ],
            client=pipe,
        )
        messages.append(message)
    pipe.execute()
    for message in messages:
        broker.emit_after("enqueue", message, None)
