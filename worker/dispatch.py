"""Bulk enqueue: many Dramatiq messages in one Redis script call.

``actor.send`` costs one round trip per message, which caps a sweep at a few thousand
messages a second, and even pipelined, Dramatiq's ``dispatch`` script costs a 12-argument
``EVALSHA`` per message to pack, run and parse. On the Redis broker, :func:`send_many`
enqueues up to :data:`CHUNK` messages with one call of :data:`ENQUEUE_LUA`, and emits the same
``before_enqueue``/``after_enqueue`` middleware hooks as ``send``, per message. On any other
broker (the stub broker in unit tests) it falls back to ``send``, one message at a time.

**What ties this to Dramatiq** (and why ``pyproject.toml`` pins ``dramatiq`` to its minor
version): the script writes what the ``enqueue`` command of Dramatiq's
``brokers/redis/dispatch.lua`` writes, with Dramatiq's key layout, instead of calling it:

* ``ZADD {ns}:__heartbeats__ <now> <broker_id>``: the sender's heartbeat (once per call);
* per message, ``HSET {ns}:{queue}.msgs <redis_message_id> <data>`` and
  ``RPUSH {ns}:{queue} <redis_message_id>``, in message order (here one ``HSET`` and one
  ``RPUSH`` per 500 messages: the same end state, and no reader sees a script half done).

Nothing else: the enqueue command touches no acks set and no "declared queues" key (a
queue is declared in the broker object only), and its occasional maintenance pass (requeue
the messages of dead workers, expire dead letters) is left to the workers' own calls, as
``send_many`` always did. Each message is what ``broker.enqueue(actor.message(...))``
builds (a fresh ``redis_message_id`` option, no delay) and is encoded by Dramatiq
(``Message.encode``). ``tests/integration/test_dispatch.py`` has a real ``dramatiq.Worker``
on the ``RedisBroker`` consume every message so enqueued exactly once; re-check that layout
against ``dispatch.lua`` before moving the pin.

A message is only a doorbell (see ``worker.janitor``): if the call fails, the periods it was
ringing for are still in ``bw:work`` and the janitor rings again. A call is atomic: all of its
messages are enqueued, or none.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis
from dramatiq.message import Message

#: Messages per script call: large enough to amortise the round trip and the fsync, small
#: enough to keep Redis responsive to everyone else.
CHUNK = 1000

#: Messages per ``HSET``/``RPUSH`` inside the script: keeps ``unpack`` clear of Lua's stack
#: limit (8,000 slots; Dramatiq itself unpacks at most half of it).
_UNPACK = 500

ENQUEUE_LUA = """
-- KEYS: {ns}:__heartbeats__, {ns}:{queue}, {ns}:{queue}.msgs
-- ARGV: now, broker_id, unpack_size, then id_1, data_1, id_2, data_2, ...
-- What Dramatiq's dispatch.lua "enqueue" writes, for many messages at once.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local step = tonumber(ARGV[3])
local first = 4
while first <= #ARGV do
  local last = math.min(first + 2 * step - 1, #ARGV)
  redis.call('HSET', KEYS[3], unpack(ARGV, first, last))
  local ids = {}
  for i = first, last, 2 do ids[#ids + 1] = ARGV[i] end
  redis.call('RPUSH', KEYS[2], unpack(ids))
  first = last + 1
end
return (#ARGV - 3) / 2
"""


def send_many(actor: dramatiq.Actor[Any, Any], calls: Sequence[tuple[Any, ...]]) -> int:
    """Enqueue ``actor(*args)`` for each ``args`` in ``calls``; returns how many were sent."""
    broker = actor.broker
    if not isinstance(broker, RedisBroker):
        for args in calls:
            actor.send(*args)
        return len(calls)
    for start in range(0, len(calls), CHUNK):
        _enqueue(broker, actor, calls[start : start + CHUNK])
    return len(calls)


def _enqueue(
    broker: RedisBroker, actor: dramatiq.Actor[Any, Any], calls: Sequence[tuple[Any, ...]]
) -> None:
    """One script call for ``calls``: per message what ``broker.enqueue`` does (a message
    with a fresh ``redis_message_id``, the before hook, Dramatiq's encoding), then the after
    hooks once Redis has them all."""
    if not calls:
        return
    queue_name, actor_name = actor.queue_name, actor.actor_name
    emit_before = broker.emit_before
    messages = []
    argv: list[Any] = [current_millis(), broker.broker_id, _UNPACK]
    for args in calls:
        redis_id = str(uuid.uuid4())
        # What ``actor.message(*args)`` builds with the option ``broker.enqueue`` adds, in
        # one step rather than a message and its copy.
        message: Message[Any] = Message(
            queue_name=queue_name,
            actor_name=actor_name,
            args=tuple(args),
            kwargs={},
            options={"redis_message_id": redis_id},
        )
        emit_before("enqueue", message, None)
        argv += (redis_id, message.encode())
        messages.append(message)
    ns = broker.namespace
    script = broker.client.register_script(ENQUEUE_LUA)
    script(
        keys=[f"{ns}:__heartbeats__", f"{ns}:{queue_name}", f"{ns}:{queue_name}.msgs"],
        args=argv,
    )
    for message in messages:
        broker.emit_after("enqueue", message, None)
