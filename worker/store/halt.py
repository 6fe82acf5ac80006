"""The stop switch, one per gateway: set when that gateway rejects the merchant's credentials.

Retrying with rejected credentials can lock the merchant account, so the first worker that
sees ``InvalidLogin`` (or a sibling) stops every charge and payout on that gateway, for
everyone, and alerts once (``gateway.credentials_rejected``). The other gateway goes on. Work
stays in ``bw:work``; an operator fixes the credentials and runs ``billing gateway resume``.
"""

from __future__ import annotations

import json

import redis

from worker import events, keys

_HALT = """
-- KEYS: halt, events ; ARGV: gateway, reason, now, event json
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'gateway', ARGV[1], 'reason', ARGV[2], 'since', ARGV[3])
local e = cjson.decode(ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000000, '*', 'id', e.id, 'type', e.type,
  'key', e.key, 'time', e.time, 'data', e.data)
return 1
"""


def halted(r: redis.Redis, gateway: str) -> dict[str, str] | None:
    """The gateway's stop switch (``gateway``, ``reason``, ``since``), or None if it is off."""
    value = r.hgetall(keys.halt(gateway))
    return dict(value) if value else None  # type: ignore[arg-type]


def halt(r: redis.Redis, gateway: str, reason: str, now_ms: int) -> bool:
    """Stop everything on ``gateway``; True if this call stopped it (and wrote the alert)."""
    event = events.build(
        events.EventType.GATEWAY_CREDENTIALS_REJECTED,
        gateway,
        now_ms,
        {"gateway": gateway, "reason": reason},
    )
    script = r.register_script(_HALT)
    return bool(
        script(
            keys=[keys.halt(gateway), keys.EVENTS],
            args=[gateway, reason, now_ms, json.dumps(event)],
        )
    )


def resume(r: redis.Redis, gateway: str) -> bool:
    """Clear the gateway's stop switch; True if it was set."""
    return bool(r.delete(keys.halt(gateway)))
