"""Payouts and payout runs in Redis (see ``worker.keys``), changed by Lua scripts.

* :func:`add` stores a payout, idempotent by id (the same content again is a no-op; other
  content under the same id is refused). A scheduled payout waits in ``bw:payouts:pending``;
  an immediate one is opened for sending in the same script. Every job is opened on the
  payout's own gateway (:attr:`Payout.gateway`), so a run may mix gateways.
* :func:`take` is how a run takes payouts: each one still ``pending`` becomes ``queued``
  (a run waiting for approval) or ``sending``, joins the run, and, when sending, gets its
  job opened in ``bw:pjob``/``bw:pwork`` (the same Lua function that opens a charge's
  period). One script per batch: a run killed half way took each payout wholly or not at
  all, and a payout taken by a run is never pending again, so a restarted run sends only
  what is left.
* :func:`release_queued` opens the payouts of an approved run.

The sending itself is the charge pipeline's fenced state machine with the payout flow
(``worker.payouts.flow``): the same leases, write-ahead, reconciliation and dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis

from worker import events, keys
from worker.errors import InvalidInput
from worker.events import EventType
from worker.payouts.model import Payout, PayoutStatus
from worker.payouts.runs import RunState
from worker.store.charges import OPEN_PERIOD_LUA
from worker.subscriptions import validate_id

_ADD = (
    OPEN_PERIOD_LUA
    + """
-- KEYS: payout, payouts, pending, job, payouts (again: the job's index), work
-- ARGV: now, id, pending ('1'/'0'), open json ('' or fields), work_at, field/value pairs...
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '1' then redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2]) end
if ARGV[4] ~= '' then
  open_period(KEYS[4], KEYS[5], KEYS[6], ARGV[2] .. '|credit', ARGV[1], ARGV[5],
    cjson.decode(ARGV[4]))
end
return false
"""
)

_TAKE = (
    OPEN_PERIOD_LUA
    + """
-- KEYS: run, run_payouts, pending, work ; ARGV: now, work_at, run_id, to, items json
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'sending' and status ~= 'awaiting_approval' then return false end
local taken = {}
for _, f in ipairs(cjson.decode(ARGV[5])) do
  local pkey = 'bw:payout:' .. f.period
  if redis.call('HGET', pkey, 'status') == 'pending' then
    redis.call('HSET', pkey, 'status', ARGV[4], 'run_id', ARGV[3], 'updated_at', ARGV[1])
    redis.call('ZREM', KEYS[3], f.period)
    local order = redis.call('HINCRBY', KEYS[1], 'taken', 1)
    redis.call('ZADD', KEYS[2], order, f.period)
    if ARGV[4] == 'sending' then
      open_period('bw:pjob:' .. f.period, KEYS[2], KEYS[4], f.period .. '|credit', ARGV[1],
        ARGV[2], f)
    end
    taken[#taken + 1] = f.period
  end
end
return taken
"""
)

_RELEASE_QUEUED = (
    OPEN_PERIOD_LUA
    + """
-- KEYS: run, run_payouts, work, events ; ARGV: now, work_at, actor, items json, event json
if redis.call('HGET', KEYS[1], 'status') ~= 'awaiting_approval' then
  return {'not_waiting', redis.call('HGET', KEYS[1], 'status') or ''}
end
redis.call('HSET', KEYS[1], 'status', 'sending', 'approved_by', ARGV[3], 'approved_at', ARGV[1])
local opened = {}
for _, f in ipairs(cjson.decode(ARGV[4])) do
  local pkey = 'bw:payout:' .. f.period
  if redis.call('HGET', pkey, 'status') == 'queued' then
    redis.call('HSET', pkey, 'status', 'sending', 'updated_at', ARGV[1])
    open_period('bw:pjob:' .. f.period, KEYS[2], KEYS[3], f.period .. '|credit', ARGV[1],
      ARGV[2], f)
    opened[#opened + 1] = f.period
  end
end
local e = cjson.decode(ARGV[5])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000000, '*',
  'id', e.id, 'type', e.type, 'key', e.key, 'time', e.time, 'data', e.data)
return {'opened', unpack(opened)}
"""
)

_CANCEL = """
-- KEYS: payout, pending ; ARGV: now, id
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'pending' and status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'updated_at', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 'cancelled'
"""

# KEYS: run, events, runs, open runs ; ARGV: id, created_at, final ('1'/'0'), event json or '',
# field/value pairs (set when the run is absent)
_CREATE_RUN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[3] == '0' then redis.call('SADD', KEYS[4], ARGV[1]) end
if ARGV[4] ~= '' then
  local e = cjson.decode(ARGV[4])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000000, '*',
    'id', e.id, 'type', e.type, 'key', e.key, 'time', e.time, 'data', e.data)
end
return 1
"""

# KEYS: run, events, open runs ; ARGV: marker field, now, close ('1'/'0'), event json,
# field/value pairs. Applies the pairs and sets the marker, once (unless the marker is set),
# with its event; ``close`` also takes the run out of the open runs.
_MARK_RUN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if #ARGV >= 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
if ARGV[3] == '1' then redis.call('SREM', KEYS[3], string.sub(KEYS[1], 8)) end
local e = cjson.decode(ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000000, '*',
  'id', e.id, 'type', e.type, 'key', e.key, 'time', e.time, 'data', e.data)
return 1
"""


def _job_fields(payout: Payout) -> dict[str, str]:
    """What the job freezes, as a charge period does (``period`` names the payout): its
    destination as ``card`` and its own gateway, so that one run may mix gateways."""
    return {
        "period": payout.id,
        "amount_minor": str(payout.amount.minor),
        "currency": payout.currency,
        "card": payout.destination.ref(),
        "gateway": payout.gateway,
    }


def add(r: redis.Redis, payout: Payout, *, grace_ms: int = 30_000) -> tuple[Payout, bool]:
    """Store ``payout``; returns it as stored and whether it is new.

    A scheduled payout waits for a run; an immediate one is opened for sending at once, on
    its own gateway, by the process that accepted it (it alone holds a PAN): the janitor
    looks at it only after ``grace_ms``, in case that process died.
    """
    immediate = payout.status is PayoutStatus.SENDING
    fields = _job_fields(payout) if immediate else None
    flat = [item for pair in payout.to_hash().items() for item in pair]
    existing = r.register_script(_ADD)(
        keys=[
            keys.payout(payout.id),
            keys.PAYOUTS,
            keys.PAYOUTS_PENDING,
            keys.payout_job(payout.id),
            keys.PAYOUTS,
            keys.PAYOUT_WORK,
        ],
        args=[
            payout.created_at,
            payout.id,
            "1" if payout.status is PayoutStatus.PENDING else "0",
            json.dumps(fields) if fields else "",
            payout.created_at + grace_ms,
            *flat,
        ],
    )
    if existing is None:
        return payout, True
    stored = Payout.from_hash(dict(zip(existing[::2], existing[1::2], strict=True)), payout.id)
    differing = [name for name in CONTENT if _content(stored, name) != _content(payout, name)]
    if differing:
        raise InvalidInput(
            f"payout {payout.id} already exists with a different {', '.join(differing)}"
        )
    return stored, False


#: What says what a payout is (not its status, times or run): another payout under the same
#: id must not differ in any of these.
CONTENT = ("amount", "gateway", "destination", "description", "tag", "mode")


def _content(payout: Payout, name: str) -> str:
    if name == "destination":
        return payout.destination.masked()
    return str(getattr(payout, name))


def get(r: redis.Redis, payout_id: str) -> Payout | None:
    validate_id(payout_id, "payout id")
    data: dict[str, str] = r.hgetall(keys.payout(payout_id))  # type: ignore[assignment]
    return Payout.from_hash(data, payout_id) if data else None


def load(r: redis.Redis, ids: Sequence[str]) -> list[Payout]:
    pipe = r.pipeline(transaction=False)
    for payout_id in ids:
        pipe.hgetall(keys.payout(payout_id))
    return [
        Payout.from_hash(data, payout_id)
        for payout_id, data in zip(ids, pipe.execute(), strict=True)
        if data
    ]


def pending(r: redis.Redis, page: int = 1000) -> Iterator[Payout]:
    """Payouts waiting for a run, oldest first."""
    start = 0
    while True:
        ids = list(r.zrange(keys.PAYOUTS_PENDING, start, start + page - 1))
        if not ids:
            return
        yield from load(r, [str(i) for i in ids])
        start += page


def every(r: redis.Redis, page: int = 1000) -> Iterator[Payout]:
    start = 0
    while True:
        ids = list(r.zrange(keys.PAYOUTS, start, start + page - 1))
        if not ids:
            return
        yield from load(r, [str(i) for i in ids])
        start += page


def cancel(r: redis.Redis, payout_id: str, now_ms: int) -> str:
    """Cancel a payout not sent yet; returns ``cancelled`` or the status that refused it."""
    validate_id(payout_id, "payout id")
    result = r.register_script(_CANCEL)(
        keys=[keys.payout(payout_id), keys.PAYOUTS_PENDING], args=[now_ms, payout_id]
    )
    if result is None:
        raise InvalidInput(f"no payout {payout_id}")
    return str(result)


# -- runs ------------------------------------------------------------------------------------


def create_run(r: redis.Redis, state: RunState, event: Mapping[str, str] | None) -> bool:
    """Create the run unless it exists (a run is idempotent by id); True when created."""
    flat = [item for pair in state.to_hash().items() for item in pair]
    created = r.register_script(_CREATE_RUN)(
        keys=[keys.run(state.id), keys.EVENTS, keys.RUNS, keys.RUNS_OPEN],
        args=[
            state.id,
            state.created_at,
            "1" if state.final else "0",
            json.dumps(dict(event)) if event else "",
            *flat,
        ],
    )
    return bool(created)


def get_run(r: redis.Redis, run_id: str) -> RunState | None:
    data: dict[str, str] = r.hgetall(keys.run(run_id))  # type: ignore[assignment]
    return RunState.from_hash(data, run_id) if data else None


def open_runs(r: redis.Redis) -> list[str]:
    return sorted(str(m) for m in r.smembers(keys.RUNS_OPEN))


def run_payouts(r: redis.Redis, run_id: str) -> list[Payout]:
    ids = [str(i) for i in r.zrange(keys.run_payouts(run_id), 0, -1)]
    return load(r, ids)


def take(
    r: redis.Redis,
    run_id: str,
    payouts: Sequence[Payout],
    now_ms: int,
    work_at_ms: int,
    *,
    queue_only: bool,
) -> list[str] | None:
    """Take ``payouts`` into the run (those still pending), each opened on its own gateway;
    None when the run is closed."""
    if not payouts:
        return []
    items = json.dumps([_job_fields(p) for p in payouts])
    taken = r.register_script(_TAKE)(
        keys=[keys.run(run_id), keys.run_payouts(run_id), keys.PAYOUTS_PENDING, keys.PAYOUT_WORK],
        args=[now_ms, work_at_ms, run_id, "queued" if queue_only else "sending", items],
    )
    return None if taken is None else [str(t) for t in taken]


def release_queued(
    r: redis.Redis, run_id: str, now_ms: int, work_at_ms: int, actor: str
) -> tuple[bool, list[str], str]:
    """Approve a run: open its queued payouts, each on its own gateway. Returns (done,
    opened ids, status seen)."""
    queued = [p for p in run_payouts(r, run_id) if p.status is PayoutStatus.QUEUED]
    event = events.build(
        EventType.PAYOUT_RUN_STARTED, run_id, now_ms, {"run_id": run_id, "approved_by": actor}
    )
    reply: Any = r.register_script(_RELEASE_QUEUED)(
        keys=[keys.run(run_id), keys.run_payouts(run_id), keys.PAYOUT_WORK, keys.EVENTS],
        args=[
            now_ms,
            work_at_ms,
            actor,
            json.dumps([_job_fields(p) for p in queued]),
            json.dumps(event),
        ],
    )
    kind, *rest = (str(x) for x in reply)
    if kind == "not_waiting":
        return False, [], rest[0] if rest else ""
    return True, rest, "awaiting_approval"


def mark_run(
    r: redis.Redis,
    run_id: str,
    marker: str,
    now_ms: int,
    event: Mapping[str, str],
    changes: Mapping[str, str] | None = None,
    *,
    close: bool = False,
) -> bool:
    """Once per ``marker``: set it to now, apply ``changes``, write ``event``."""
    flat = [item for pair in (changes or {}).items() for item in pair]
    done = r.register_script(_MARK_RUN)(
        keys=[keys.run(run_id), keys.EVENTS, keys.RUNS_OPEN],
        args=[marker, now_ms, "1" if close else "0", json.dumps(dict(event)), *flat],
    )
    return bool(done)
