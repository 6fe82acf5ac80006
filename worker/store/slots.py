"""A semaphore shared by every worker process: at most ``limit`` charges talk to a gateway
at once.

Dramatiq's ``ConcurrentRateLimiter`` would do, but it is a counter whose expiry is refreshed
on every use: a slot held by a SIGKILLed worker can leak for as long as traffic continues.
Here each slot is a member of a sorted set scored by its own expiry, so a dead holder's slot
frees itself after ``ttl_ms`` whatever the load.
"""

from __future__ import annotations

import uuid

import redis

_ACQUIRE = """
-- KEYS: slots ; ARGV: now, ttl_ms, limit, token
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
return 1
"""


class Slots:
    def __init__(self, r: redis.Redis, key: str, limit: int, ttl_ms: int) -> None:
        self.r = r
        self.key = key
        self.limit = limit
        self.ttl_ms = ttl_ms
        self._acquire = r.register_script(_ACQUIRE)

    def acquire(self, now_ms: int) -> str | None:
        """A slot's token, or None when all ``limit`` slots are taken."""
        token = uuid.uuid4().hex
        taken = self._acquire(keys=[self.key], args=[now_ms, self.ttl_ms, self.limit, token])
        return token if int(taken) else None

    def release(self, token: str) -> None:
        self.r.zrem(self.key, token)

    def in_use(self, now_ms: int) -> int:
        return int(self.r.zcount(self.key, now_ms, "+inf"))
