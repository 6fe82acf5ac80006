"""A circuit breaker per gateway, shared by every worker process through Redis.

Closed: calls go through; consecutive availability failures are counted. At ``threshold``
it opens for ``cooldown_ms`` (doubling on each re-open, up to ``max_cooldown_ms``): no
worker calls the gateway, work is put back in ``bw:work`` for when it may close. Then it is
half-open: one probe at a time goes through; a success closes it, a failure re-opens it.
Opening and closing write ``gateway.circuit_opened`` / ``gateway.circuit_closed`` events in
the same script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from worker import events, keys

_CHECK = """
-- KEYS: breaker ; ARGV: now, probe_ms
local b = redis.call('HMGET', KEYS[1], 'state', 'until', 'probe_until', 'failures')
local state, now = b[1] or 'closed', tonumber(ARGV[1])
if state == 'open' then
  if now < tonumber(b[2]) then return {0, b[2]} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[2]))
  return {1, 'probe'}
end
if state == 'half_open' then
  if now < tonumber(b[3] or '0') then return {0, b[3]} end
  redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
  return {1, 'probe'}
end
if tonumber(b[4] or '0') > 0 then return {1, 'degraded'} end
return {1, 'closed'}
"""

_FAILURE = """
-- KEYS: breaker, events ; ARGV: now, threshold, cooldown_ms, max_cooldown_ms, event json
local now = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local cooldown = tonumber(redis.call('HGET', KEYS[1], 'cooldown') or ARGV[3])
if state == 'half_open' then
  cooldown = math.min(cooldown * 2, tonumber(ARGV[4]))
elseif state == 'closed' and failures >= tonumber(ARGV[2]) then
  cooldown = tonumber(ARGV[3])
else
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + cooldown, 'cooldown', cooldown)
if state == 'closed' then
  local e = cjson.decode(ARGV[5])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000000, '*', 'id', e.id, 'type', e.type,
    'key', e.key, 'time', e.time, 'data', e.data)
end
return now + cooldown
"""

_SUCCESS = """
-- KEYS: breaker, events ; ARGV: event json
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
redis.call('HDEL', KEYS[1], 'cooldown', 'until', 'probe_until')
if state ~= 'closed' then
  local e = cjson.decode(ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000000, '*', 'id', e.id, 'type', e.type,
    'key', e.key, 'time', e.time, 'data', e.data)
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    threshold: int = 5  #: consecutive availability failures that open it
    cooldown_ms: int = 5_000
    max_cooldown_ms: int = 60_000
    probe_ms: int = 10_000  #: how long one half-open probe may take before another is let in


class Breaker:
    def __init__(
        self, r: redis.Redis, gateway: str, settings: BreakerSettings | None = None
    ) -> None:
        self.r = r
        self.gateway = gateway
        self.settings = settings or BreakerSettings()
        self.key = keys.breaker(gateway)
        self._check = r.register_script(_CHECK)
        self._failure = r.register_script(_FAILURE)
        self._success = r.register_script(_SUCCESS)

    def check(self, now_ms: int) -> tuple[bool, str]:
        """``(True, mode)`` when a call may go out (mode ``closed``, ``degraded`` or
        ``probe``), ``(False, until_ms)`` while it is open.
        """
        allowed, detail = self._check(keys=[self.key], args=[now_ms, self.settings.probe_ms])
        return bool(int(allowed)), str(detail)

    def failure(self, now_ms: int) -> int | None:
        """Count an availability failure; returns when it may close if it opened now."""
        event = events.build(
            events.EventType.GATEWAY_CIRCUIT_OPENED, self.gateway, now_ms, {"gateway": self.gateway}
        )
        s = self.settings
        result = self._failure(
            keys=[self.key, keys.EVENTS],
            args=[now_ms, s.threshold, s.cooldown_ms, s.max_cooldown_ms, _json(event)],
        )
        return int(result) or None

    def success(self, now_ms: int) -> bool:
        """Record a success; True if that closed the breaker."""
        event = events.build(
            events.EventType.GATEWAY_CIRCUIT_CLOSED, self.gateway, now_ms, {"gateway": self.gateway}
        )
        return bool(self._success(keys=[self.key, keys.EVENTS], args=[_json(event)]))

    def state(self) -> dict[str, str]:
        return dict(self.r.hgetall(self.key))  # type: ignore[arg-type]


def _json(fields: dict[str, str]) -> str:
    return json.dumps(fields)
