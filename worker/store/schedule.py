"""The scheduler's Redis side: the leader lease and the due index ``bw:due`` (see
``worker.keys``). Every script checks the caller still holds the lease, in the same atomic
step as its writes, so a scheduler that lost the lease (paused, partitioned) cannot act again.

* :meth:`DueIndex.claim` takes up to ``limit`` subscriptions due by *now*, pushes each one
  ``claim_ms`` ahead (the claim: if the sweeper dies before recording, the subscription comes
  due again when the claim expires) and returns their hashes, in one round trip.
* :meth:`DueIndex.record` writes what the sweep decided for each claimed subscription, all
  or nothing per subscription: the periods it opens (each also in ``bw:work``, so the janitor
  rings for it if the sweep's message is lost), the periods it records as skipped (with a
  ``period.skipped`` event), the new cursor, and the next due instant. A subscription changed
  since the claim (``updated_at`` or ``cursor`` moved) is not recorded but put back at *now*,
  to be looked at again with what it is now.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from worker import keys
from worker.store.charges import OPEN_PERIOD_LUA


class LeaseLost(Exception):
    """Another scheduler holds the lease now: this one must stop sweeping."""


_LEAD = """
-- KEYS: leader ; ARGV: token, ttl_ms. Take the lease if free, renew it if ours.
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_CLAIM = """
-- KEYS: leader, due ; ARGV: token, now, claim_ms, limit
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
local out = {}
local until_ms = tonumber(ARGV[2]) + tonumber(ARGV[3])
for _, id in ipairs(ids) do
  local data = redis.call('HGETALL', 'bw:sub:' .. id)
  if #data == 0 then
    redis.call('ZREM', KEYS[2], id)
  else
    redis.call('ZADD', KEYS[2], until_ms, id)
    out[#out + 1] = id
    out[#out + 1] = cjson.encode(data)  -- one string to parse, not one per field
  end
end
return out
"""

_RECORD = (
    OPEN_PERIOD_LUA
    + """
-- KEYS: leader, due, work, events ; ARGV: token, now, work_at, items json
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local now = ARGV[2]
local items = cjson.decode(ARGV[4])
local ring = {}
for _, it in ipairs(items) do
  local skey = 'bw:sub:' .. it.id
  local s = redis.call('HMGET', skey, 'updated_at', 'cursor')
  if s[1] ~= it.updated_at or (s[2] or '') ~= it.cursor_before then
    if s[1] then redis.call('ZADD', KEYS[2], now, it.id) end
  else
    local periods_key = 'bw:periods:' .. it.id
    for _, f in ipairs(it.open) do
      local member = it.id .. '|' .. f.period
      local status = open_period('bw:period:' .. it.id .. ':' .. f.period, periods_key,
        KEYS[3], member, now, ARGV[3], f)
      if status == 'new' or status == 'open' then ring[#ring + 1] = member end
    end
    for _, k in ipairs(it.skip) do
      local pkey = 'bw:period:' .. it.id .. ':' .. k.period
      if redis.call('EXISTS', pkey) == 0 then
        redis.call('HSET', pkey, 'status', 'skipped', 'reason', k.reason, 'attempt', 0,
          'fence', 0, 'lease_until', 0, 'opened_at', now, 'closed_at', now,
          'amount_minor', k.amount_minor, 'currency', k.currency, 'card', k.card,
          'gateway', k.gateway)
        redis.call('ZADD', periods_key, 'NX', now, k.period)
        local e = k.event
        redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000000, '*',
          'id', e.id, 'type', e.type, 'key', e.key, 'time', e.time, 'data', e.data)
      end
    end
    if it.cursor_after ~= it.cursor_before then
      redis.call('HSET', skey, 'cursor', it.cursor_after)
    end
    redis.call('ZADD', KEYS[2], it.next_at, it.id)
  end
end
return ring
"""
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write for one claimed subscription (built by ``schedules.plan``)."""

    sub_id: str
    updated_at: str  #: as claimed: the record is refused if it moved
    cursor_before: str
    cursor_after: str
    next_at: float  #: ms; ``math.inf`` when nothing will come due
    open: Sequence[dict[str, Any]] = field(default_factory=tuple)  #: period fields to open
    skip: Sequence[dict[str, Any]] = field(default_factory=tuple)  #: skipped period fields

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.sub_id,
            "updated_at": self.updated_at,
            "cursor_before": self.cursor_before,
            "cursor_after": self.cursor_after,
            # cjson turns large integers into floats: pass the score as text
            "next_at": "+inf" if math.isinf(self.next_at) else str(int(self.next_at)),
            "open": list(self.open),
            "skip": list(self.skip),
        }


class DueIndex:
    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self._lead = r.register_script(_LEAD)
        self._resign = r.register_script(_RESIGN)
        self._claim = r.register_script(_CLAIM)
        self._record = r.register_script(_RECORD)

    # -- the lease -----------------------------------------------------------------------

    def lead(self, token: str, ttl_ms: int) -> bool:
        """Take the lease if it is free, renew it if it is ours; True while we hold it."""
        return bool(self._lead(keys=[keys.LEADER], args=[token, ttl_ms]))

    def resign(self, token: str) -> None:
        self._resign(keys=[keys.LEADER], args=[token])

    def leader(self) -> str | None:
        value = self.r.get(keys.LEADER)
        return None if value is None else str(value)

    # -- the sweep -----------------------------------------------------------------------

    def claim(
        self, token: str, now_ms: int, claim_ms: int, limit: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Claim up to ``limit`` due subscriptions; raises :class:`LeaseLost`."""
        flat = self._claim(keys=[keys.LEADER, keys.DUE], args=[token, now_ms, claim_ms, limit])
        if flat is None:
            raise LeaseLost("the scheduler lease is held by another process")
        out = []
        for sub_id, data in zip(flat[::2], flat[1::2], strict=True):
            pairs = json.loads(data)
            out.append((str(sub_id), dict(zip(pairs[::2], pairs[1::2], strict=True))))
        return out

    def record(
        self, token: str, now_ms: int, work_at_ms: int, decisions: Sequence[Decision]
    ) -> list[tuple[str, str]]:
        """Write the decisions; returns the (subscription, period) pairs to ring for."""
        if not decisions:
            return []
        items = json.dumps([d.to_json() for d in decisions], separators=(",", ":"))
        ring = self._record(
            keys=[keys.LEADER, keys.DUE, keys.WORK, keys.EVENTS],
            args=[token, now_ms, work_at_ms, items],
        )
        if ring is None:
            raise LeaseLost("the scheduler lease is held by another process")
        return [keys.parse_work_member(str(member)) for member in ring]

    def due_count(self, now_ms: int) -> int:
        return int(self.r.zcount(keys.DUE, "-inf", now_ms))
