"""The gateway concurrency slots, shared through Redis by every worker process."""

from __future__ import annotations

import redis

from worker.store.slots import Slots

NOW = 1_800_000_000_000


def test_no_more_than_the_limit_at_once(r: redis.Redis) -> None:
    slots = Slots(r, "bw:slots:test", limit=3, ttl_ms=10_000)
    tokens = [slots.acquire(NOW) for _ in range(3)]
    assert all(tokens)
    assert slots.acquire(NOW) is None
    assert slots.in_use(NOW) == 3
    slots.release(tokens[0] or "")
    assert slots.acquire(NOW) is not None


def test_a_dead_holders_slot_frees_itself_under_load(r: redis.Redis) -> None:
    slots = Slots(r, "bw:slots:test", limit=1, ttl_ms=10_000)
    assert slots.acquire(NOW) is not None  # held by a worker that then dies: never released
    for ms in (1, 5_000, 9_999):  # other workers keep trying: the dead slot does not renew
        assert slots.acquire(NOW + ms) is None
    assert slots.acquire(NOW + 10_001) is not None
    assert slots.in_use(NOW + 10_001) == 1
