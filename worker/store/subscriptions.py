"""Subscriptions in Redis: the hash ``bw:sub:{id}`` and the due index ``bw:due`` (see
``worker.keys``).

Every write also sets the subscription's score in ``bw:due`` to *now*: the scheduler's next
sweep looks at it, records what is due, and moves the score to the next due instant. So the
scheduler alone decides when a subscription is due, and a change (a new cadence, a resume, a
new card) is taken into account within one sweep.

Operators (through the CLI) and the charge pipeline change the same subscription
concurrently, so every write is a compare-and-set done by a Lua script:

- :func:`create` writes the hash and the index entry together, or neither;
- :func:`update` replaces the hash only if it is still exactly what was read, and otherwise
  reads again and re-validates (a subscription cancelled meanwhile is then refused);
- :func:`set_status` moves the status only if it is still the one the transition was
  checked against.

Validation happens before the write, through the model (``worker.subscriptions``), so a
rejected input changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis

from worker import keys
from worker.clock import Clock
from worker.errors import BillingError, InvalidInput
from worker.subscriptions import Subscription, SubscriptionStatus, validate_id

#: How often a compare-and-set is retried after losing a race before giving up.
CAS_ATTEMPTS = 8
#: The largest page :func:`list_subscriptions` returns.
MAX_LIMIT = 1000
#: How many subscriptions a status filter reads per round trip.
SCAN_PAGE = 500
#: Fields that state what a subscription is (what :func:`create` compares for idempotency);
#: the rest (status and times) are what happened to it since.
_CONTENT_EXCLUDES = frozenset({"status", "created_at", "updated_at", "cursor", "pauses"})

S = SubscriptionStatus

# KEYS: sub hash, due zset. ARGV: now, id, field/value pairs.
# Returns nil when created, else the existing hash (flattened).
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return false
"""

# KEYS: sub hash, due zset. ARGV: now, id, n, n expected field/value pairs, then the new pairs.
# Replaces the hash (1) only if it holds exactly the expected pairs, else 0.
_REPLACE_IF_UNCHANGED = """
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
local n = tonumber(ARGV[3])
local current = redis.call('HGETALL', KEYS[1])
if #current ~= 2 * n then return 0 end
local expected = {}
for i = 4, 2 * n + 2, 2 do expected[ARGV[i]] = ARGV[i + 1] end
for i = 1, #current, 2 do
  if expected[current[i]] ~= current[i + 1] then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2 * n + 4))
return 1
"""

# KEYS: sub hash, due zset. ARGV: expected status, new status, now (ms), id.
# Returns nil if missing, the current status if it is not the expected one, else the new hash.
# updated_at moves strictly forward, so it works as a version even within one millisecond.
# Pausing opens a span in ``pauses`` (``paused_at-``); leaving ``paused`` closes it.
_SET_STATUS_IF = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return false end
if current ~= ARGV[1] then return current end
local before = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0') or 0
local now = math.max(tonumber(ARGV[3]), before + 1)
local stamp = string.format('%d', now)
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated_at', stamp)
local pauses = redis.call('HGET', KEYS[1], 'pauses') or ''
if ARGV[2] == 'paused' and current ~= 'paused' then
  if pauses ~= '' then pauses = pauses .. ',' end
  redis.call('HSET', KEYS[1], 'pauses', pauses .. stamp .. '-')
elseif current == 'paused' and string.sub(pauses, -1) == '-' then
  redis.call('HSET', KEYS[1], 'pauses', pauses .. stamp)
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return redis.call('HGETALL', KEYS[1])
"""


class ConcurrentChange(BillingError):
    """Other writers kept changing the subscription; nothing was written. Try again."""


class TransitionRefused(InvalidInput):
    """The subscription's status does not allow the transition. Nothing was changed.

    ``current`` lets an at-least-once caller tell a duplicate (``current`` is already the
    target) from a real conflict.
    """

    def __init__(self, message: str, *, current: SubscriptionStatus) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True, slots=True)
class Transition:
    """A named status change, legal only from ``sources``."""

    name: str
    sources: frozenset[SubscriptionStatus]
    target: SubscriptionStatus

    def refusal(self, sub_id: str, current: SubscriptionStatus) -> TransitionRefused:
        if current is self.target:
            message = f"{sub_id} is already {current}"
        elif current is S.CANCELLED:
            message = f"cannot {self.name} {sub_id}: it is cancelled, which is final"
        else:
            allowed = " or ".join(sorted(self.sources))
            message = f"cannot {self.name} {sub_id}: it is {current} (only from {allowed})"
        return TransitionRefused(message, current=current)


def _t(name: str, sources: set[SubscriptionStatus], target: SubscriptionStatus) -> Transition:
    return Transition(name, frozenset(sources), target)


PAUSE = _t("pause", {S.ACTIVE, S.PAST_DUE}, S.PAUSED)
RESUME = _t("resume", {S.PAUSED}, S.ACTIVE)
CANCEL = _t("cancel", set(S) - {S.CANCELLED}, S.CANCELLED)
# Used by the charge pipeline:
MARK_PAST_DUE = _t("mark past due", {S.ACTIVE}, S.PAST_DUE)
MARK_NEEDS_NEW_CARD = _t("mark needs new card", {S.ACTIVE, S.PAST_DUE}, S.NEEDS_NEW_CARD)
REACTIVATE = _t("reactivate", {S.PAST_DUE, S.NEEDS_NEW_CARD}, S.ACTIVE)

#: Every legal status change, by name.
TRANSITIONS: Mapping[str, Transition] = {
    t.name: t for t in (PAUSE, RESUME, CANCEL, MARK_PAST_DUE, MARK_NEEDS_NEW_CARD, REACTIVATE)
}


def create(r: redis.Redis, sub: Subscription, clock: Clock) -> Subscription:
    """Store a new subscription, stamped with the clock's time.

    Idempotent by id: the same content again returns the stored subscription (as it is now,
    perhaps paused since); different content under an existing id is refused.
    """
    now = clock.now_ms()
    new = replace(sub, created_at=now, updated_at=now)
    existing = r.register_script(_CREATE)(
        keys=[keys.sub(sub.id), keys.DUE], args=[now, sub.id, *_flatten(new.to_hash())]
    )
    if existing is None:
        return new
    stored = Subscription.from_hash(_pairs(existing), sub.id)
    differing = _content_diff(stored, new)
    if differing:
        raise InvalidInput(
            f"subscription {sub.id} already exists with a different {', '.join(differing)}"
        )
    return stored


def get(r: redis.Redis, sub_id: str) -> Subscription | None:
    """The subscription, or None when there is none with this id."""
    raw = _read(r, validate_id(sub_id, "subscription id"))
    return Subscription.from_hash(raw, sub_id) if raw else None


def require(r: redis.Redis, sub_id: str) -> Subscription:
    """The subscription, or :class:`InvalidInput` saying there is none."""
    sub = get(r, sub_id)
    if sub is None:
        raise InvalidInput(f"no subscription {sub_id}")
    return sub


def list_subscriptions(
    r: redis.Redis,
    *,
    status: SubscriptionStatus | str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[Subscription]:
    """Subscriptions soonest due first (then by id; those never due again last), optionally
    only those in ``status``; ``offset`` counts matching subscriptions. The order follows the
    scheduler, so pages read while it sweeps may shift. A status filter scans the index
    (there is no index by status).
    """
    wanted = _status(status)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"offset {offset!r} must be a whole number of 0 or more")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit {limit!r} must be between 1 and {MAX_LIMIT}")
    if wanted is None:
        ids = _ids(r, offset, offset + limit - 1)
        return [s for s in _load(r, ids) if s is not None]
    out: list[Subscription] = []
    skipped = 0
    for sub in _scan(r):
        if sub.status is not wanted:
            continue
        if skipped < offset:
            skipped += 1
            continue
        out.append(sub)
        if len(out) == limit:
            break
    return out


def count(r: redis.Redis, *, status: SubscriptionStatus | str | None = None) -> int:
    """How many subscriptions there are (in ``status``, if given)."""
    wanted = _status(status)
    if wanted is None:
        return int(r.zcard(keys.DUE))
    return sum(1 for sub in every(r) if sub.status is wanted)


def update(
    r: redis.Redis,
    sub_id: str,
    clock: Clock,
    *,
    amount: str | None = None,
    currency: str | None = None,
    stored_id: object = None,
    description: str | None = None,
    language: str | None = None,
    cadence: Mapping[str, str | None] | None = None,
    metadata: Mapping[str, str | None] | None = None,
    gateway: str | None = None,
    parent_order: str | None = None,
) -> Subscription:
    """Change what is given, re-validated as a whole; returns the subscription as stored.

    ``cadence`` and ``metadata`` merge into what is there (a ``None`` value removes a key).
    A new currency needs a new amount: 9.99 AZN is not 9.99 USD. ``parent_order=""``
    removes the Bizon reference (refused while the gateway is Bizon). A new card reference
    on the subscription's gateway (a new ``stored_id`` on TXPG, a new ``parent_order`` on
    Bizon, or a gateway change) makes a ``needs_new_card`` subscription ``active`` again: the
    card was replaced. Nothing to change writes nothing. Cancelled subscriptions are final
    and refuse updates.
    """
    validate_id(sub_id, "subscription id")
    for _ in range(CAS_ATTEMPTS):
        raw = _read(r, sub_id)
        if not raw:
            raise InvalidInput(f"no subscription {sub_id}")
        current = Subscription.from_hash(raw, sub_id)
        if current.status is S.CANCELLED:
            raise InvalidInput(f"{sub_id} is cancelled, which is final: it cannot be updated")
        if currency not in (None, current.currency) and amount is None:
            raise InvalidInput("changing the currency needs the amount in that currency too")
        new_gateway = current.gateway if gateway is None else gateway
        new_stored: object = current.stored_id if stored_id is None else stored_id
        if new_stored == 0 and new_gateway != "txpg":
            new_stored = None  # no TXPG card: fine on another gateway
        elif new_stored == 0:
            raise InvalidInput(f"{sub_id} has no TXPG card: give a stored_id to charge on txpg")
        rebuilt = Subscription.create(
            id=current.id,
            customer=current.customer,
            stored_id=new_stored,
            amount=current.amount.to_gateway() if amount is None else amount,
            currency=current.currency if currency is None else currency,
            description=current.description if description is None else description,
            language=current.language if language is None else language,
            gateway=new_gateway,
            cadence=_merge(current.cadence, cadence),
            metadata=_merge(current.metadata, metadata),
            parent_order=current.parent_order if parent_order is None else parent_order,
        )
        status = current.status
        if status is S.NEEDS_NEW_CARD and (rebuilt.gateway, rebuilt.card_ref()) != (
            current.gateway,
            current.card_ref(),
        ):
            status = S.ACTIVE
        new = replace(
            rebuilt,
            status=status,
            created_at=current.created_at,
            updated_at=current.updated_at,
            cursor=current.cursor,
            pauses=current.pauses,
        )
        if new == current:
            return current
        new = replace(new, updated_at=max(clock.now_ms(), current.updated_at + 1))
        if _replace_if_unchanged(r, sub_id, raw, new.to_hash(), clock.now_ms()):
            return new
    raise ConcurrentChange(f"{sub_id} kept changing while it was being updated; try again")


def set_status(r: redis.Redis, sub_id: str, transition: Transition, clock: Clock) -> Subscription:
    """Apply ``transition`` if the current status allows it; returns the stored result.

    The status is compared and set in one script; when it changed in between, the
    transition is checked again against the new status.
    """
    validate_id(sub_id, "subscription id")
    script = r.register_script(_SET_STATUS_IF)
    current = require(r, sub_id).status
    for _ in range(CAS_ATTEMPTS):
        if current not in transition.sources:
            raise transition.refusal(sub_id, current)
        result = script(
            keys=[keys.sub(sub_id), keys.DUE],
            args=[current.value, transition.target.value, clock.now_ms(), sub_id],
        )
        if result is None:
            raise InvalidInput(f"no subscription {sub_id}")
        if isinstance(result, str):
            current = SubscriptionStatus(result)
            continue
        return Subscription.from_hash(_pairs(result), sub_id)
    raise ConcurrentChange(f"{sub_id} kept changing status; try again")


def pause(r: redis.Redis, sub_id: str, clock: Clock) -> Subscription:
    return set_status(r, sub_id, PAUSE, clock)


def resume(r: redis.Redis, sub_id: str, clock: Clock) -> Subscription:
    return set_status(r, sub_id, RESUME, clock)


def cancel(r: redis.Redis, sub_id: str, clock: Clock) -> Subscription:
    return set_status(r, sub_id, CANCEL, clock)


def mark_past_due(r: redis.Redis, sub_id: str, clock: Clock) -> Subscription:
    return set_status(r, sub_id, MARK_PAST_DUE, clock)


def mark_needs_new_card(r: redis.Redis, sub_id: str, clock: Clock) -> Subscription:
    return set_status(r, sub_id, MARK_NEEDS_NEW_CARD, clock)


def reactivate(r: redis.Redis, sub_id: str, clock: Clock) -> Subscription:
    return set_status(r, sub_id, REACTIVATE, clock)


def _read(r: redis.Redis, sub_id: str) -> dict[str, str]:
    """The raw hash: what :func:`update` compares against when it writes."""
    return dict(r.hgetall(keys.sub(sub_id)))  # type: ignore[arg-type]


def _replace_if_unchanged(
    r: redis.Redis, sub_id: str, expected: Mapping[str, str], new: Mapping[str, str], now: int
) -> bool:
    """Write ``new`` only if the hash still holds exactly ``expected``."""
    args: list[str | int] = [now, sub_id, str(len(expected)), *_flatten(expected)]
    args += _flatten(new)
    script = r.register_script(_REPLACE_IF_UNCHANGED)
    return bool(script(keys=[keys.sub(sub_id), keys.DUE], args=args))


def _load(r: redis.Redis, ids: list[str]) -> list[Subscription | None]:
    pipe = r.pipeline(transaction=False)
    for sub_id in ids:
        pipe.hgetall(keys.sub(sub_id))
    return [
        Subscription.from_hash(raw, sub_id) if raw else None
        for sub_id, raw in zip(ids, pipe.execute(), strict=True)
    ]


def every(r: redis.Redis, page: int = SCAN_PAGE) -> Iterator[Subscription]:
    """Every subscription, each exactly once, in no particular order, even while the
    scheduler moves them in the due index (ZSCAN returns every member present for the whole
    scan at least once; repeats are dropped).
    """
    seen: set[str] = set()
    batch: list[str] = []
    for member, _ in r.zscan_iter(keys.DUE, count=page):
        sub_id = str(member)
        if sub_id in seen:
            continue
        seen.add(sub_id)
        batch.append(sub_id)
        if len(batch) >= page:
            yield from (s for s in _load(r, batch) if s is not None)
            batch = []
    yield from (s for s in _load(r, batch) if s is not None)


def _scan(r: redis.Redis) -> Iterator[Subscription]:
    """Every subscription, in due order, read a page at a time."""
    start, page = 0, SCAN_PAGE
    while True:
        ids = _ids(r, start, start + page - 1)
        if not ids:
            return
        yield from (s for s in _load(r, ids) if s is not None)
        start += page


def _ids(r: redis.Redis, start: int, stop: int) -> list[str]:
    return list(r.zrange(keys.DUE, start, stop))  # type: ignore[arg-type]


def _status(value: SubscriptionStatus | str | None) -> SubscriptionStatus | None:
    if value is None:
        return None
    try:
        return SubscriptionStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in SubscriptionStatus)
        raise InvalidInput(f"status {value!r} is not one of {allowed}") from None


def _merge(current: Mapping[str, str], changes: Mapping[str, str | None] | None) -> dict[str, Any]:
    merged: dict[str, Any] = dict(current)
    if changes is None:
        return merged
    if not isinstance(changes, Mapping):
        raise InvalidInput("cadence and metadata changes must be a mapping of key to text")
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _content_diff(a: Subscription, b: Subscription) -> list[str]:
    """Names of the fields that say what the subscription is and differ between a and b."""
    ha, hb = a.to_hash(), b.to_hash()
    fields = (ha.keys() | hb.keys()) - _CONTENT_EXCLUDES
    return sorted(k.removesuffix("_minor") for k in fields if ha.get(k) != hb.get(k))


def _flatten(mapping: Mapping[str, str]) -> list[str]:
    return [item for pair in mapping.items() for item in pair]


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))
