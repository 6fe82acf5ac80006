"""Charge state in Redis: periods, attempts, leases and fences, all changed by Lua scripts.

Three rules make a charge exactly-once under duplicates and crashes:

* **One lease per period.** :meth:`ChargeStore.claim` gives the period to one worker at a
  time and increments its ``fence``. A second delivery of the same message finds the lease
  held and does nothing; a worker whose lease expired (paused, partitioned, killed) lost it
  to the next claim.
* **Every change is a compare-and-set carrying the fence.** :meth:`ChargeStore.transition`
  applies only if the period's fence is still the caller's and the attempt is still in the
  state the caller saw. A stale worker's late write is refused (``Fenced``).
* **Write ahead.** The caller stores the order id and password before attaching the card, and
  ``exec_sent`` before the execute call. The same script writes the events, the dead letter, the
  subscription's status and the card-cap counter of a change, so none of them can be lost
  or duplicated by a crash between two writes.

Scripts touch keys they compute (attempt, dead letter, subscription, card): fine on one
Redis server, which is what this project runs on; a cluster would need hash tags.

``bw:work`` holds every open period with the time it next needs a look. While a worker holds
the lease, that time is the lease's end: if the worker dies, the janitor resumes the period
then, not in Dramatiq's 15 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from worker import keys
from worker.charges.caps import CAPS, KEEP_MS
from worker.charges.states import AttemptState, PeriodStatus


@dataclass(frozen=True, slots=True)
class Space:
    """Where one kind of job keeps its state: the key scheme the scripts are given.

    A job is named by ``(owner, item)``: ``(subscription, period)`` for a charge,
    ``(payout, "credit")`` for a payout. The scripts never compute these keys themselves.
    """

    name: str
    job: Callable[[str, str], str]  #: the job's hash (a period, or a payout's sending state)
    attempt: Callable[[str, str, int], str]
    subject: Callable[[str], str]  #: what the job belongs to (the subscription, the payout)
    work: str  #: the zset of jobs that need a look, by when

    def member(self, owner: str, item: str) -> str:
        return keys.work_member(owner, item)


CHARGES = Space("charge", keys.period, keys.attempt, keys.sub, keys.WORK)
PAYOUTS = Space("payout", keys.payout_job, keys.payout_attempt, keys.payout, keys.PAYOUT_WORK)


class Fenced(Exception):
    """This worker's lease is gone: another worker owns the period now. Stop quietly."""


class Conflict(Exception):
    """The attempt is not in the state this worker expected (someone moved it)."""


@dataclass(frozen=True, slots=True)
class Capped:
    """The card reached a network cap: the attempt may be made at ``allowed_at``."""

    allowed_at: int


#: A Lua function for every script that opens a period: ``request_charge`` (below) and the
#: scheduler's sweep (``worker.store.schedule``). Opens the period unless it exists, freezing
#: the amount, currency, card and gateway, and ``cards`` (every gateway's card reference, JSON)
#: when given; returns ``new`` or the existing status.
OPEN_PERIOD_LUA = """
local function open_period(pkey, periods_key, work_key, member, now, work_at, f)
  local status = redis.call('HGET', pkey, 'status')
  if status then return status end
  redis.call('HSET', pkey, 'status', 'open', 'attempt', 0, 'fence', 0, 'lease_until', 0,
    'opened_at', now, 'amount_minor', f.amount_minor, 'currency', f.currency,
    'card', f.card, 'gateway', f.gateway)
  if f.cards and f.cards ~= '' then redis.call('HSET', pkey, 'cards', f.cards) end
  redis.call('ZADD', periods_key, 'NX', now, f.period)
  redis.call('ZADD', work_key, 'NX', work_at, member)
  return 'new'
end
"""

_OPEN = (
    OPEN_PERIOD_LUA
    + """
-- KEYS: period, periods, work ; ARGV: member, now, fields json
return open_period(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[2], cjson.decode(ARGV[3]))
"""
)

_CLAIM = """
-- KEYS: period, work ; ARGV: member, now, lease_ms, owner
local p = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'attempt', 'next_at')
if not p[1] then return {'missing'} end
if p[1] ~= 'open' then return {'final', p[1]} end
local now = tonumber(ARGV[2])
local lease_until = tonumber(p[2] or '0')
if lease_until > now then return {'busy', tostring(lease_until)} end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
local until_ms = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_until', until_ms, 'lease_owner', ARGV[4])
redis.call('ZADD', KEYS[2], until_ms, ARGV[1])
return {'ok', tostring(fence), p[3] or '0', p[4] or '0'}
"""

_TRANSITION = """
-- KEYS: period, work, events ; ARGV: member, now, ops json
local ops = cjson.decode(ARGV[3])
local now = tonumber(ARGV[2])
if redis.call('HGET', KEYS[1], 'fence') ~= tostring(ops.fence) then return 'fenced' end
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then return 'fenced' end
local state = redis.call('HGET', ops.attempt_key, 'state') or ''
if state ~= ops.expect then return 'conflict:' .. state end
if ops.card then
  local c = ops.card
  redis.call('ZREMRANGEBYSCORE', c.key, '-inf', now - c.keep_ms)
  local allowed_at = now
  for _, cap in ipairs(c.caps) do
    local limit, window = cap[1], cap[2]
    local recent = redis.call('ZRANGEBYSCORE', c.key, now - window + 1, '+inf', 'WITHSCORES')
    local n = #recent / 2
    if n >= limit then
      local oldest = tonumber(recent[(n - limit) * 2 + 2])
      if oldest + window + 1 > allowed_at then allowed_at = oldest + window + 1 end
    end
  end
  if allowed_at > now then return 'capped:' .. allowed_at end
  redis.call('ZADD', c.key, now, c.member)
  redis.call('PEXPIRE', c.key, c.keep_ms)
end
if ops.set_attempt then
  for k, v in pairs(ops.set_attempt) do redis.call('HSET', ops.attempt_key, k, v) end
end
if ops.drop then
  for _, k in ipairs(ops.drop) do redis.call('HDEL', ops.attempt_key, k) end
end
if ops.set_period then
  for k, v in pairs(ops.set_period) do redis.call('HSET', KEYS[1], k, v) end
end
if ops.work_remove then
  redis.call('ZREM', KEYS[2], ARGV[1])
elseif ops.work_at then
  redis.call('ZADD', KEYS[2], ops.work_at, ARGV[1])
  if ops.release then redis.call('HSET', KEYS[1], 'lease_until', 0) end
elseif ops.lease_ms then
  local until_ms = now + ops.lease_ms
  redis.call('HSET', KEYS[1], 'lease_until', until_ms)
  redis.call('ZADD', KEYS[2], until_ms, ARGV[1])
end
if ops.dlq then
  for k, v in pairs(ops.dlq.fields) do redis.call('HSET', ops.dlq.key, k, v) end
  redis.call('ZADD', ops.dlq.index, now, ops.dlq.id)
end
if ops.sub then
  local current = redis.call('HGET', ops.sub.key, 'status')
  for _, allowed in ipairs(ops.sub.from) do
    if current == allowed then
      redis.call('HSET', ops.sub.key, 'status', ops.sub.to, 'updated_at', now)
      if ops.sub.set then
        for k, v in pairs(ops.sub.set) do
          if v == '' then redis.call('HDEL', ops.sub.key, k)
          else redis.call('HSET', ops.sub.key, k, v) end
        end
      end
      break
    end
  end
end
if ops.events then
  for _, e in ipairs(ops.events) do
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', 1000000, '*',
      'id', e.id, 'type', e.type, 'key', e.key, 'time', e.time, 'data', e.data)
  end
end
return 'ok'
"""

_RELEASE = """
-- KEYS: period, work ; ARGV: member, fence, work_at
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', 0)
if redis.call('HGET', KEYS[1], 'status') == 'open' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
"""

_DUE = """
-- KEYS: work ; ARGV: now, grace_ms, limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local later = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', later, m) end
return due
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """A lease on a period: ``fence`` goes with every change made under it."""

    sub_id: str
    period: str
    fence: int
    attempt: int
    next_at: int
    lease_ms: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    period: dict[str, str]
    attempt: dict[str, str]
    #: each gateway's stop switch that is on (see ``worker.store.halt``)
    halts: dict[str, dict[str, str]]
    subscription: dict[str, str] | None
    breaker: dict[str, str]

    @property
    def breaker_closed(self) -> bool:
        """Plainly closed: no need to ask the breaker's script before calling."""
        return self.breaker.get("state", "closed") == "closed" and not int(
            self.breaker.get("failures") or 0
        )


@dataclass(slots=True)
class Ops:
    """One atomic change under a lease. Build it with the helpers, then ``transition``."""

    expect: str
    attempt: int
    set_attempt: dict[str, str | int] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    set_period: dict[str, str | int] = field(default_factory=dict)
    events: list[Mapping[str, str]] = field(default_factory=list)
    work_at: int | None = None
    work_remove: bool = False
    release: bool = False
    dlq: dict[str, Any] | None = None
    sub: dict[str, Any] | None = None
    card: dict[str, Any] | None = None


class ChargeStore:
    """The charge state of every period. Thread-safe (redis-py clients are)."""

    def __init__(self, r: redis.Redis, space: Space = CHARGES) -> None:
        self.r = r
        self.space = space
        self._open = r.register_script(_OPEN)
        self._claim = r.register_script(_CLAIM)
        self._transition = r.register_script(_TRANSITION)
        self._release = r.register_script(_RELEASE)
        self._due = r.register_script(_DUE)

    # -- periods -------------------------------------------------------------------------

    def open_period(
        self,
        sub_id: str,
        period: str,
        now_ms: int,
        *,
        amount_minor: int,
        currency: str,
        card: str,
        gateway: str,
        cards: Mapping[str, str] | None = None,
    ) -> str:
        """Open the period for charging (idempotent). Returns ``new`` or its current status.
        ``cards``: every gateway's card reference, frozen too, for a fallback attempt.
        """
        fields: dict[str, str | int] = {
            "amount_minor": amount_minor,
            "currency": currency,
            "card": card,
            "gateway": gateway,
            "period": period,
        }
        if cards and len(cards) > 1:  # one card is ``card`` already
            fields["cards"] = json.dumps(dict(cards), sort_keys=True)
        result = self._open(
            keys=[keys.period(sub_id, period), keys.periods(sub_id), keys.WORK],
            args=[keys.work_member(sub_id, period), now_ms, json.dumps(fields)],
        )
        return str(result)

    def period(self, sub_id: str, period: str) -> dict[str, str]:
        return dict(self.r.hgetall(self.space.job(sub_id, period)))  # type: ignore[arg-type]

    def attempt(self, sub_id: str, period: str, n: int) -> dict[str, str]:
        if n <= 0:
            return {}
        return dict(self.r.hgetall(self.space.attempt(sub_id, period, n)))  # type: ignore[arg-type]

    def snapshot(self, sub_id: str, period: str, n: int, gateways: Sequence[str]) -> Snapshot:
        """What a run needs to start, in one round trip (every gateway's breaker and stop
        switch is read, since which one applies is in the period and the attempt).
        """
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.space.job(sub_id, period))
        pipe.hgetall(self.space.attempt(sub_id, period, n))
        pipe.hgetall(self.space.subject(sub_id))
        for name in gateways:
            pipe.hgetall(keys.breaker(name))
            pipe.hgetall(keys.halt(name))
        period_data, attempt_data, sub, *per_gateway = pipe.execute()
        by_name = dict(zip(gateways, per_gateway[::2], strict=True))
        halts = {
            name: dict(halt) for name, halt in zip(gateways, per_gateway[1::2], strict=True) if halt
        }
        breaker = dict(by_name.get(period_data.get("gateway", ""), {}))
        return Snapshot(
            period=dict(period_data),
            attempt=dict(attempt_data) if n > 0 else {},
            halts=halts,
            subscription=dict(sub) or None,
            breaker=breaker,
        )

    def attempts(self, sub_id: str, period: str) -> list[dict[str, str]]:
        n = int(self.r.hget(self.space.job(sub_id, period), "attempt") or 0)
        pipe = self.r.pipeline(transaction=False)
        for i in range(1, n + 1):
            pipe.hgetall(self.space.attempt(sub_id, period, i))
        return [dict(a) for a in pipe.execute()]

    # -- leases --------------------------------------------------------------------------

    def claim(
        self, sub_id: str, period: str, now_ms: int, lease_ms: int, owner: str
    ) -> Claim | str:
        """The lease, or why not: ``missing``, ``busy``, or the final status."""
        result = self._claim(
            keys=[self.space.job(sub_id, period), self.space.work],
            args=[self.space.member(sub_id, period), now_ms, lease_ms, owner],
        )
        if result[0] == "ok":
            return Claim(sub_id, period, int(result[1]), int(result[2]), int(result[3]), lease_ms)
        if result[0] == "final":
            return str(result[1])
        return str(result[0])

    def release(self, claim: Claim, work_at_ms: int) -> bool:
        """Give the lease back; the period needs a look again at ``work_at_ms``."""
        done = self._release(
            keys=[self.space.job(claim.sub_id, claim.period), self.space.work],
            args=[self.space.member(claim.sub_id, claim.period), claim.fence, work_at_ms],
        )
        return bool(done)

    def transition(self, claim: Claim, now_ms: int, ops: Ops) -> Capped | None:
        """Apply ``ops`` atomically if the fence and the expected state still hold.

        Raises :class:`Fenced` or :class:`Conflict`; returns :class:`Capped` when the card is
        at a network cap (then nothing was changed). Unless the ops say otherwise, the lease
        is renewed.
        """
        payload: dict[str, Any] = {
            "fence": str(claim.fence),
            "expect": ops.expect,
            "attempt_key": self.space.attempt(claim.sub_id, claim.period, ops.attempt),
        }
        if ops.set_attempt:
            payload["set_attempt"] = {k: str(v) for k, v in ops.set_attempt.items()}
        if ops.drop:
            payload["drop"] = ops.drop
        if ops.set_period:
            payload["set_period"] = {k: str(v) for k, v in ops.set_period.items()}
        if ops.events:
            payload["events"] = [dict(e) for e in ops.events]
        if ops.work_remove:
            payload["work_remove"] = True
        elif ops.work_at is not None:
            payload["work_at"] = ops.work_at
            payload["release"] = ops.release
        else:
            payload["lease_ms"] = claim.lease_ms
        for name in ("dlq", "sub", "card"):
            value = getattr(ops, name)
            if value is not None:
                payload[name] = value
        result = str(
            self._transition(
                keys=[self.space.job(claim.sub_id, claim.period), self.space.work, keys.EVENTS],
                args=[self.space.member(claim.sub_id, claim.period), now_ms, json.dumps(payload)],
            )
        )
        if result == "ok":
            return None
        if result == "fenced":
            raise Fenced(f"{claim.sub_id}|{claim.period}: lease lost (fence {claim.fence})")
        if result.startswith("capped:"):
            return Capped(int(result.split(":", 1)[1]))
        raise Conflict(f"{claim.sub_id}|{claim.period} attempt {ops.attempt}: {result}")

    # -- the janitor's view --------------------------------------------------------------

    def due(self, now_ms: int, grace_ms: int, limit: int) -> list[tuple[str, str]]:
        """Periods that need a look now; each is pushed ``grace_ms`` ahead so that it is
        handed out once per grace period even if its message is lost.
        """
        members = self._due(keys=[self.space.work], args=[now_ms, grace_ms, limit])
        return [keys.parse_work_member(str(m)) for m in members]

    def pending_count(self) -> int:
        return int(self.r.zcard(self.space.work))


def card_ops(gateway: str, card_ref: str, member: str) -> dict[str, Any]:
    """The card-cap part of the ops that creates an attempt."""
    return {
        "key": keys.card(gateway, card_ref),
        "member": member,
        "keep_ms": KEEP_MS,
        "caps": [[c.limit, c.window_ms] for c in CAPS],
    }


def new_attempt_expect() -> str:
    """A new attempt's hash must not exist yet: its state reads as the empty string."""
    return ""


def is_final(status: str) -> bool:
    return status in {s.value for s in (PeriodStatus.PAID, PeriodStatus.DEAD, PeriodStatus.SKIPPED)}


def state_of(attempt: Mapping[str, str]) -> AttemptState | None:
    value = attempt.get("state")
    return AttemptState(value) if value else None


def attempt_history(attempts: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Attempts without their order passwords, for dead letters and the CLI."""
    return [{k: v for k, v in a.items() if k != "order_pw"} for a in attempts]
