"""Dead-letter operations: list, replay, discard. The pipeline writes entries
(``worker.store.charges``); this module is what an operator does with them.

A replay never charges anything itself. It reopens the period (status ``open``, due now, in
``bw:work``), and the period is then charged by the same fenced state machine as any other:
an attempt whose outcome was unknown is reconciled, never re-sent, and a period paid in the
meantime is left alone. Each check and every write of a replay or a discard (entry, period,
subscription, work index, audit entry, event) happen in one Lua script, so two operators, or
an operator and a worker, cannot interleave.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from worker import events, keys
from worker.clock import Clock
from worker.deadletters import DeadLetter, DeadLetterReason, DeadLetterStatus
from worker.errors import BillingError, InvalidInput
from worker.store import audit
from worker.store.charges import CHARGES, PAYOUTS, Space
from worker.store.events import MAXLEN
from worker.subscriptions import SubscriptionStatus

#: Subscription statuses a replay turns back to ``active``: they were set by the failure the
#: operator has now decided to retry.
REACTIVATED_FROM = frozenset({SubscriptionStatus.PAST_DUE, SubscriptionStatus.NEEDS_NEW_CARD})

#: Hash fields written next to :meth:`DeadLetter.to_hash` when an operator resolves an entry.
RESOLUTION_FIELDS = ("replayed_at", "replayed_by", "discarded_at", "discarded_by")

_PAGE = 200
_STALE_RETRIES = 5

_REPLAY = """
-- KEYS: entry, period, sub, work, events, audit
-- ARGV: now, actor, dry_run, sub_status_seen, work_member, maxlen, sub_id, period,
--       refused statuses (comma list), status after,
--       n, <n event field/value items>, <audit field/value items>
local entry = redis.call('HMGET', KEYS[1], 'status', 'subscription_id', 'period',
  'replayed_by', 'discarded_by')
if not entry[1] then return {'missing'} end
if entry[2] ~= ARGV[7] or entry[3] ~= ARGV[8] then return {'stale'} end
if entry[1] ~= 'open' then
  return {'resolved', entry[1], entry[1] == 'replayed' and entry[4] or entry[5] or ''}
end
local period = redis.call('HMGET', KEYS[2], 'status', 'dlq_id')
if not period[1] then return {'refused', 'period_missing'} end
if period[1] == 'paid' then return {'paid'} end
if period[1] ~= 'dead' then return {'refused', 'period_' .. period[1]} end
if period[2] and period[2] ~= '' and period[2] ~= redis.call('HGET', KEYS[1], 'id') then
  return {'refused', 'superseded', period[2]}
end
local sub = redis.call('HGET', KEYS[3], 'status')
if not sub then return {'refused', 'subscription_missing'} end
for refused in string.gmatch(ARGV[9], '[^,]+') do
  if sub == refused then return {'refused', 'subscription_' .. sub} end
end
if sub ~= ARGV[4] then return {'stale'} end
if ARGV[3] == '1' then return {'reopen'} end
local now = ARGV[1]
redis.call('HSET', KEYS[2], 'status', 'open', 'next_at', now, 'lease_until', 0)
redis.call('HDEL', KEYS[2], 'reason', 'dlq_id', 'closed_at')
redis.call('HINCRBY', KEYS[2], 'fence', 1)
redis.call('ZADD', KEYS[4], now, ARGV[5])
redis.call('HSET', KEYS[1], 'status', 'replayed', 'replayed_at', now, 'replayed_by', ARGV[2])
if sub ~= ARGV[10] then
  redis.call('HSET', KEYS[3], 'status', ARGV[10], 'updated_at', now)
end
local n = tonumber(ARGV[11])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', unpack(ARGV, 12, 11 + n))
redis.call('XADD', KEYS[6], '*', unpack(ARGV, 12 + n, #ARGV))
return {'reopen'}
"""

_DISCARD = """
-- KEYS: entry, events, audit
-- ARGV: now, actor, note, maxlen, n, <n event field/value items>, <audit field/value items>
local entry = redis.call('HMGET', KEYS[1], 'status', 'replayed_by', 'discarded_by')
if not entry[1] then return {'missing'} end
if entry[1] ~= 'open' then
  return {'resolved', entry[1], entry[1] == 'replayed' and entry[2] or entry[3] or ''}
end
redis.call('HSET', KEYS[1], 'status', 'discarded', 'note', ARGV[3],
  'discarded_at', ARGV[1], 'discarded_by', ARGV[2])
local n = tonumber(ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 6, 5 + n))
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 6 + n, #ARGV))
return {'discarded'}
"""


@dataclass(frozen=True, slots=True)
class _Rules:
    """How a replay treats the subject of a dead letter of one kind."""

    space: Space
    refused: tuple[str, ...]  #: subject statuses a replay cannot fix
    reopen: Mapping[str, str]  #: subject status -> its status once the job is open again


_RULES = {
    "charge": _Rules(
        CHARGES,
        ("cancelled", "paused"),
        {status.value: SubscriptionStatus.ACTIVE.value for status in REACTIVATED_FROM},
    ),
    "payout": _Rules(PAYOUTS, ("cancelled",), {"failed": "sending"}),
}


class UnknownDeadLetter(InvalidInput):
    """No dead letter has this id."""


class ReplayOutcome(enum.StrEnum):
    REOPENED = "reopened"  #: the period is open and due now (or would be, in a dry run)
    ALREADY_PAID = "already_paid"  #: the period was paid meanwhile: nothing changed
    ALREADY_RESOLVED = "already_resolved"  #: the entry was replayed or discarded before
    REFUSED = "refused"  #: the period or subscription is in a state a replay cannot fix


@dataclass(frozen=True, slots=True)
class ReplayResult:
    entry: DeadLetter  #: as read before the replay
    outcome: ReplayOutcome
    message: str
    dry_run: bool
    subscription_status_before: str = ""
    subscription_status_after: str = ""

    @property
    def changed(self) -> bool:
        return self.outcome is ReplayOutcome.REOPENED and not self.dry_run


@dataclass(frozen=True, slots=True)
class DiscardResult:
    entry: DeadLetter  #: as read before the discard
    discarded: bool
    message: str


def get(r: redis.Redis, dlq_id: str) -> DeadLetter | None:
    raw: Any = r.hgetall(keys.dead_letter(dlq_id))
    return DeadLetter.from_hash(raw) if raw else None


def resolution(r: redis.Redis, dlq_id: str) -> dict[str, str]:
    """Who replayed or discarded the entry, and when (ms): the fields that are set."""
    values: Any = r.hmget(keys.dead_letter(dlq_id), list(RESOLUTION_FIELDS))
    return {k: str(v) for k, v in zip(RESOLUTION_FIELDS, values, strict=True) if v}


def list_entries(
    r: redis.Redis,
    *,
    reason: DeadLetterReason | None = None,
    since_ms: int | None = None,
    status: DeadLetterStatus | None = None,
    limit: int | None = 100,
    oldest_first: bool = False,
) -> list[DeadLetter]:
    """Entries created at or after ``since_ms`` that match, newest first (``limit=None``:
    all). Filters are applied while paging through the index, so a filtered list is
    complete up to ``limit``.
    """
    low = "-inf" if since_ms is None else since_ms
    out: list[DeadLetter] = []
    offset = 0
    ids: Any
    while limit is None or len(out) < limit:
        if oldest_first:
            ids = r.zrangebyscore(keys.DLQ, low, "+inf", start=offset, num=_PAGE)
        else:
            ids = r.zrevrangebyscore(keys.DLQ, "+inf", low, start=offset, num=_PAGE)
        if not ids:
            break
        offset += len(ids)
        pipe = r.pipeline(transaction=False)
        for dlq_id in ids:
            pipe.hgetall(keys.dead_letter(dlq_id))
        for raw in pipe.execute():
            if not raw:  # indexed but gone: nothing to show
                continue
            entry = DeadLetter.from_hash(raw)
            if (reason is None or entry.reason is reason) and (
                status is None or entry.status is status
            ):
                out.append(entry)
    return out if limit is None else out[:limit]


def count_open(r: redis.Redis) -> int:
    """How many entries wait for an operator. Reads every entry's status: O(entries)."""
    total = 0
    offset = 0
    while True:
        ids: Any = r.zrange(keys.DLQ, offset, offset + _PAGE - 1)
        if not ids:
            return total
        offset += len(ids)
        pipe = r.pipeline(transaction=False)
        for dlq_id in ids:
            pipe.hget(keys.dead_letter(dlq_id), "status")
        total += sum(1 for s in pipe.execute() if s == DeadLetterStatus.OPEN.value)


def replay(
    r: redis.Redis,
    dlq_id: str,
    clock: Clock,
    *,
    actor: str,
    doorbell: Callable[[str, str], None] | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Reopen the entry's period so that the pipeline charges it again.

    ``dry_run`` runs the same checks in the same script and changes nothing: what the CLI
    prints without ``--yes``. ``doorbell(sub_id, period)`` is called after a real reopen to
    wake a worker now; without it the janitor finds the period in ``bw:work``.
    """
    audit.validate_actor(actor)
    script = r.register_script(_REPLAY)
    for _ in range(_STALE_RETRIES):
        entry = _load(r, dlq_id)
        rules = _RULES[entry.kind]
        space = rules.space
        sub_key = space.subject(entry.subscription_id)
        seen = str(r.hget(sub_key, "status") or "")
        after = rules.reopen.get(seen, seen)
        now = clock.now_ms()
        event, record = _replay_fields(entry, actor, now, seen, after)
        reply: Any = script(
            keys=[
                keys.dead_letter(dlq_id),
                space.job(entry.subscription_id, entry.period),
                sub_key,
                space.work,
                keys.EVENTS,
                keys.AUDIT,
            ],
            args=[
                now,
                actor,
                "1" if dry_run else "0",
                seen,
                space.member(entry.subscription_id, entry.period),
                MAXLEN,
                entry.subscription_id,
                entry.period,
                ",".join(rules.refused),
                after,
                *_flat(event, record),
            ],
        )
        kind, *rest = (str(x) for x in reply)
        if kind == "stale":  # the subscription's status moved since it was read: again
            continue
        if kind == "missing":
            raise UnknownDeadLetter(f"dead letter {dlq_id!r} not found")
        result = _replay_result(entry, kind, rest, dry_run, seen, after)
        if result.changed and doorbell is not None and entry.kind == "charge":
            doorbell(entry.subscription_id, entry.period)
        return result
    raise BillingError(f"dead letter {dlq_id!r}: its subscription keeps changing; try again")


def discard(r: redis.Redis, dlq_id: str, clock: Clock, *, actor: str, note: str) -> DiscardResult:
    """Close the entry without charging: the period stays ``dead``. ``note`` says why."""
    audit.validate_actor(actor)
    note = note.strip()
    if not note or len(note) > 500 or not note.isprintable():
        raise InvalidInput("a discard needs a --note: 1-500 printable characters saying why")
    entry = _load(r, dlq_id)
    now = clock.now_ms()
    data = {**_ids(entry), "actor": actor}
    event = events.build(events.EventType.DLQ_DISCARDED, entry.key, now, data)
    detail = {**_ids(entry), **_money(entry), "note": note}
    record = audit.build(
        action="dlq.discard", actor=actor, target=dlq_id, now_ms=now, detail=detail
    )
    reply: Any = r.register_script(_DISCARD)(
        keys=[keys.dead_letter(dlq_id), keys.EVENTS, keys.AUDIT],
        args=[now, actor, note, MAXLEN, *_flat(event, record)],
    )
    kind, *rest = (str(x) for x in reply)
    if kind == "missing":
        raise UnknownDeadLetter(f"dead letter {dlq_id!r} not found")
    if kind == "resolved":
        return DiscardResult(entry, False, _resolved_message(rest))
    return DiscardResult(entry, True, "discarded: the period stays dead")


def _load(r: redis.Redis, dlq_id: str) -> DeadLetter:
    entry = get(r, dlq_id)
    if entry is None:
        raise UnknownDeadLetter(f"dead letter {dlq_id!r} not found")
    return entry


def _ids(entry: DeadLetter) -> dict[str, str]:
    return {
        "dlq_id": entry.id,
        "subscription_id": entry.subscription_id,
        "period": entry.period,
        "reason": entry.reason.value,
    }


def _money(entry: DeadLetter) -> dict[str, str | int]:
    return {"amount_minor": entry.amount_minor, "currency": entry.currency}


def _replay_fields(
    entry: DeadLetter, actor: str, now: int, before: str, after: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The event and the audit entry of a reopen, given the subscription status seen."""
    reactivated = before != after
    data = {**_ids(entry), "actor": actor, "reactivated_from": before if reactivated else None}
    event = events.build(events.EventType.DLQ_REPLAYED, entry.key, now, data)
    detail = {
        **_ids(entry),
        **_money(entry),
        "period_status_before": "dead",
        "subscription_status_before": before,
        "subscription_status_after": after,
        "subscription_reactivated": reactivated,
    }
    record = audit.build(
        action="dlq.replay", actor=actor, target=entry.id, now_ms=now, detail=detail
    )
    return event, record


def _flat(event: dict[str, str], record: dict[str, str]) -> list[str]:
    """ARGV tail: the event's field count, its fields, then the audit entry's fields."""
    head = [x for kv in event.items() for x in kv]
    return [str(len(head)), *head, *(x for kv in record.items() for x in kv)]


def _replay_result(
    entry: DeadLetter, kind: str, rest: list[str], dry_run: bool, before: str, after: str
) -> ReplayResult:
    what = f"{entry.subscription_id} period {entry.period}"
    if kind == "reopen":
        message = f"{'would reopen' if dry_run else 'reopened'} {what}: due now"
        if before != after:
            message += f"; subscription {before} -> {after}"
        return ReplayResult(entry, ReplayOutcome.REOPENED, message, dry_run, before, after)
    if kind == "paid":
        outcome = ReplayOutcome.ALREADY_PAID
        message = f"{what} is already paid: nothing to do (discard the entry with a note)"
    elif kind == "resolved":
        outcome, message = ReplayOutcome.ALREADY_RESOLVED, _resolved_message(rest)
    else:
        other = rest[1] if len(rest) > 1 else ""
        why = _REFUSALS.get(rest[0], rest[0])
        why = why.format(what=what, sub=entry.subscription_id, other=other)
        outcome, message = ReplayOutcome.REFUSED, f"cannot replay: {why}"
    return ReplayResult(entry, outcome, message, dry_run, before, before)


def _resolved_message(rest: list[str]) -> str:
    status, by = [*rest, "", ""][:2]
    who = f" by {by}" if by else ""
    return f"already {status}{who}: nothing to do"


_REFUSALS = {
    "period_missing": "{what} has no stored state",
    "period_open": "{what} is open: it is already being charged",
    "period_skipped": "{what} was skipped by policy",
    "superseded": "{what} was dead-lettered again as {other}: replay that entry",
    "subscription_missing": "subscription {sub} does not exist",
    "subscription_cancelled": "subscription {sub} is cancelled: discard the entry instead",
    # the pipeline would only record the reopened period as skipped
    "subscription_paused": "subscription {sub} is paused: resume it first, then replay",
}
