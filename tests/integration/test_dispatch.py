"""``worker.dispatch.send_many`` on a real Redis, read back by Dramatiq itself.

``send_many`` writes Dramatiq's queue layout with a script of its own (see the module), so
these tests hold it to what Dramatiq reads and writes: a real ``dramatiq.Worker`` on a
``RedisBroker`` consumes every message exactly once, and the keys it leaves are the ones
Dramatiq's own ``enqueue`` leaves.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message

from worker import dispatch

QUEUE = "dispatch_test"


class Hooks(dramatiq.Middleware):
    """Counts the enqueue hooks, as a middleware (Prometheus, for one) sees them."""

    def __init__(self) -> None:
        self.before: list[str] = []
        self.after: list[str] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: Any) -> None:
        self.before.append(message.options["redis_message_id"])

    def after_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: Any) -> None:
        self.after.append(message.options["redis_message_id"])


@pytest.fixture
def broker(redis_url: str) -> Iterator[RedisBroker]:
    """A private broker (not the process's global one) on the shared, emptied test Redis."""
    broker = RedisBroker(url=redis_url)  # type: ignore[no-untyped-call]
    yield broker
    broker.client.close()


def test_a_real_worker_consumes_every_message_exactly_once(broker: RedisBroker) -> None:
    hooks = Hooks()
    broker.add_middleware(hooks)
    seen: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def charge(sub_id: str, period: str) -> None:
        with lock:
            seen[(sub_id, period)] += 1

    actor = dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)(charge)
    # three script calls (1,000 + 1,000 + 500), each one unpacking in steps inside the script
    calls = [(f"sub_{n:05d}", "2026-03-01") for n in range(2_500)]
    assert dispatch.send_many(actor, calls) == 2_500
    assert len(set(hooks.before)) == 2_500
    assert hooks.after == hooks.before

    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    worker.start()
    try:
        broker.join(QUEUE, timeout=60_000)
        worker.join()
    finally:
        worker.stop(timeout=10_000)
    assert seen == Counter(calls)  # each one, once
    r = broker.client
    assert r.llen(f"dramatiq:{QUEUE}") == 0
    assert r.hlen(f"dramatiq:{QUEUE}.msgs") == 0  # acked: nothing left behind
    assert r.zcard(f"dramatiq:{QUEUE}.XQ") == 0  # nothing dead-lettered


def _layout(r: redis.Redis) -> dict[str, Any]:
    """Every key with its type and, for the queue, its messages without ids and times."""
    out: dict[str, Any] = {str(key): str(r.type(key)) for key in r.keys("*")}
    ids = [str(i) for i in r.lrange(f"dramatiq:{QUEUE}", 0, -1)]
    stored = {str(k): str(v) for k, v in r.hgetall(f"dramatiq:{QUEUE}.msgs").items()}
    assert sorted(ids) == sorted(stored)  # the list names the hash's messages
    messages = []
    for message_id in ids:
        fields = json.loads(stored[message_id])
        assert fields["options"] == {"redis_message_id": message_id}
        del fields["message_id"], fields["message_timestamp"], fields["options"]
        messages.append(fields)
    out["messages"] = messages
    out["heartbeats"] = [str(m) for m in r.zrange("dramatiq:__heartbeats__", 0, -1)]
    return out


def test_it_writes_what_dramatiqs_own_enqueue_writes(broker: RedisBroker, r: redis.Redis) -> None:
    def charge(sub_id: str, period: str) -> None: ...

    actor = dramatiq.actor(broker=broker, queue_name=QUEUE)(charge)
    calls = [("sub_1", "2026-03-01"), ("sub_2", "2026-03-02")]
    for args in calls:
        actor.send(*args)
    theirs = _layout(r)
    r.flushall()
    dispatch.send_many(actor, calls)
    ours = _layout(r)
    assert ours == theirs
    assert ours["heartbeats"] == [broker.broker_id]
    assert [m["args"] for m in ours["messages"]] == [list(args) for args in calls]
