"""The subscriptions store against a real Redis: idempotent create, legal and illegal status
changes, compare-and-set under concurrent writers, and refused input that changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis

from worker import keys
from worker.clock import FixedClock
from worker.errors import InvalidInput
from worker.store import connect
from worker.store import subscriptions as store
from worker.subscriptions import Subscription, SubscriptionStatus

S = SubscriptionStatus
T0 = 1_700_000_000_000


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A client as the store gets it in production (``connect``: replies are ``str``), on
    the emptied shared server.
    """
    client = connect(redis_url)
    try:
        yield client
    finally:
        client.close()


def new_sub(sub_id: str = "sub_1", **changes: Any) -> Subscription:
    fields: dict[str, Any] = {
        "id": sub_id,
        "customer": "cust_1",
        "stored_id": 5125,
        "amount": "9.99",
        "currency": "AZN",
        "description": "Gym",
        "cadence": {"cadence": "monthly", "start": "2026-01-31"},
        **changes,
    }
    return Subscription.create(**fields)


def dump(r: redis.Redis) -> dict[str, Any]:
    """Every key with its type and full value: 'nothing changed' means this is equal."""
    out: dict[str, Any] = {}
    for key in sorted(cast("list[str]", r.keys("*"))):
        kind = r.type(key)
        if kind == "hash":
            out[key] = (kind, r.hgetall(key))
        elif kind == "zset":
            out[key] = (kind, r.zrange(key, 0, -1, withscores=True))
        elif kind == "string":
            out[key] = (kind, r.get(key))
        else:
            raise AssertionError(f"dump does not know {kind!r} ({key})")
    return out


def put_status(r: redis.Redis, sub_id: str, status: SubscriptionStatus) -> None:
    """Set up a status directly (the transitions under test are not used to get there)."""
    r.hset(keys.sub(sub_id), "status", status.value)


# create / get


def test_create_writes_the_hash_and_the_index(r: redis.Redis, clock: FixedClock) -> None:
    stored = store.create(r, new_sub(), clock)
    assert (stored.created_at, stored.updated_at) == (T0, T0)
    assert r.hgetall(keys.sub("sub_1")) == stored.to_hash()
    assert r.zrange(keys.DUE, 0, -1, withscores=True) == [("sub_1", float(T0))]
    assert store.get(r, "sub_1") == stored
    assert store.require(r, "sub_1") == stored


def test_create_again_with_the_same_content_is_a_no_op(r: redis.Redis, clock: FixedClock) -> None:
    first = store.create(r, new_sub(), clock)
    store.pause(r, "sub_1", clock)
    before = dump(r)
    clock.advance(60_000)
    again = store.create(r, new_sub(), clock)
    assert dump(r) == before
    assert again.created_at == first.created_at
    assert again.status is S.PAUSED  # the stored subscription, as it is now


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": "10.00"}, "amount"),
        ({"stored_id": 1}, "stored_id"),
        ({"customer": "cust_2"}, "customer"),
        ({"cadence": {"cadence": "weekly", "start": "2026-01-31"}}, "cadence"),
        ({"description": ""}, "description"),
    ],
)
def test_create_with_different_content_is_refused(
    r: redis.Redis, clock: FixedClock, changes: dict[str, Any], field: str
) -> None:
    store.create(r, new_sub(), clock)
    before = dump(r)
    with pytest.raises(InvalidInput, match=f"sub_1 already exists with a different {field}"):
        store.create(r, new_sub(**changes), clock)
    assert dump(r) == before


def test_get_missing_and_bad_ids(r: redis.Redis) -> None:
    assert store.get(r, "nope") is None
    with pytest.raises(InvalidInput, match="no subscription nope"):
        store.require(r, "nope")
    with pytest.raises(InvalidInput, match="subscription id 'a:b' is invalid"):
        store.get(r, "a:b")


# status transitions

LEGAL = {  # written from the spec, independently of store.TRANSITIONS
    "pause": ({S.ACTIVE, S.PAST_DUE}, S.PAUSED),
    "resume": ({S.PAUSED}, S.ACTIVE),
    "cancel": ({S.ACTIVE, S.PAUSED, S.PAST_DUE, S.NEEDS_NEW_CARD}, S.CANCELLED),
    "mark past due": ({S.ACTIVE}, S.PAST_DUE),
    "mark needs new card": ({S.ACTIVE, S.PAST_DUE}, S.NEEDS_NEW_CARD),
    "reactivate": ({S.PAST_DUE, S.NEEDS_NEW_CARD}, S.ACTIVE),
}
FUNCTIONS: dict[str, Callable[[redis.Redis, str, FixedClock], Subscription]] = {
    "pause": store.pause,
    "resume": store.resume,
    "cancel": store.cancel,
    "mark past due": store.mark_past_due,
    "mark needs new card": store.mark_needs_new_card,
    "reactivate": store.reactivate,
}
CASES = [(name, status) for name in LEGAL for status in S]


def test_the_transition_table_is_the_spec() -> None:
    assert set(store.TRANSITIONS) == set(LEGAL)
    for name, (sources, target) in LEGAL.items():
        assert store.TRANSITIONS[name].sources == frozenset(sources)
        assert store.TRANSITIONS[name].target is target


@pytest.mark.parametrize(("name", "status"), CASES)
def test_every_transition_from_every_status(
    r: redis.Redis, clock: FixedClock, name: str, status: SubscriptionStatus
) -> None:
    store.create(r, new_sub(), clock)
    put_status(r, "sub_1", status)
    before = dump(r)
    clock.advance(1000)
    sources, target = LEGAL[name]
    if status in sources:
        result = FUNCTIONS[name](r, "sub_1", clock)
        assert result.status is target
        assert result.updated_at == T0 + 1000
        assert store.require(r, "sub_1") == result
        return
    with pytest.raises(
        store.TransitionRefused, match=f"sub_1(: it)? is (already )?{status}"
    ) as err:
        FUNCTIONS[name](r, "sub_1", clock)
    assert err.value.current is status
    assert dump(r) == before


def test_refusals_read_well(r: redis.Redis, clock: FixedClock) -> None:
    store.create(r, new_sub(), clock)
    with pytest.raises(InvalidInput, match=r"^sub_1 is already active$"):
        store.resume(r, "sub_1", clock)
    store.cancel(r, "sub_1", clock)
    with pytest.raises(InvalidInput, match=r"^cannot pause sub_1: it is cancelled, which is final"):
        store.pause(r, "sub_1", clock)
    store.create(r, new_sub("sub_2"), clock)
    store.pause(r, "sub_2", clock)
    with pytest.raises(
        InvalidInput, match=r"^cannot mark past due sub_2: it is paused \(only from active\)$"
    ):
        store.mark_past_due(r, "sub_2", clock)


def test_transitions_on_a_missing_subscription(r: redis.Redis, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput, match="no subscription ghost"):
        store.cancel(r, "ghost", clock)
    assert dump(r) == {}


def test_updated_at_moves_forward_even_within_one_millisecond(
    r: redis.Redis, clock: FixedClock
) -> None:
    store.create(r, new_sub(), clock)
    paused = store.pause(r, "sub_1", clock)
    resumed = store.resume(r, "sub_1", clock)
    updated = store.update(r, "sub_1", clock, description="x")
    assert [paused.updated_at, resumed.updated_at, updated.updated_at] == [T0 + 1, T0 + 2, T0 + 3]


def test_a_status_change_between_check_and_write_is_rechecked(
    r: redis.Redis, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pause read 'active'; the pipeline marks it past_due before the write. The status CAS
    fails, pause is checked again against past_due (still legal) and applies.
    """
    store.create(r, new_sub(), clock)
    real_require = store.require

    def require_then_race(r: redis.Redis, sub_id: str) -> Subscription:
        sub = real_require(r, sub_id)
        put_status(r, sub_id, S.PAST_DUE)  # as the charge pipeline's own script would
        return sub

    monkeypatch.setattr(store, "require", require_then_race)
    assert store.pause(r, "sub_1", clock).status is S.PAUSED


def test_a_cancel_between_check_and_write_refuses_the_resume(
    r: redis.Redis, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(r, new_sub(), clock)
    store.pause(r, "sub_1", clock)
    real_require = store.require

    def require_then_cancel(r: redis.Redis, sub_id: str) -> Subscription:
        sub = real_require(r, sub_id)
        put_status(r, sub_id, S.CANCELLED)  # another operator, between check and write
        return sub

    monkeypatch.setattr(store, "require", require_then_cancel)
    with pytest.raises(store.TransitionRefused, match="it is cancelled") as err:
        store.resume(r, "sub_1", clock)
    assert err.value.current is S.CANCELLED
    monkeypatch.undo()
    assert store.require(r, "sub_1").status is S.CANCELLED


# update


def test_update_changes_what_is_given(r: redis.Redis, clock: FixedClock) -> None:
    store.create(r, new_sub(metadata={"plan": "gold", "ref": "x"}), clock)
    clock.advance(5000)
    updated = store.update(
        r,
        "sub_1",
        clock,
        amount="12.50",
        description="Gym plus",
        language="en",
        cadence={"anchor_day": "15"},
        metadata={"plan": "silver", "ref": None},
    )
    assert str(updated.amount) == "12.50 AZN"
    assert (updated.description, updated.language) == ("Gym plus", "en")
    assert dict(updated.cadence) == {
        "cadence": "monthly",
        "start": "2026-01-31",
        "anchor_day": "15",
    }
    assert dict(updated.metadata) == {"plan": "silver"}
    assert (updated.created_at, updated.updated_at) == (T0, T0 + 5000)
    assert store.require(r, "sub_1") == updated
    assert r.hgetall(keys.sub("sub_1")) == updated.to_hash()


def test_update_with_nothing_new_writes_nothing(r: redis.Redis, clock: FixedClock) -> None:
    stored = store.create(r, new_sub(), clock)
    before = dump(r)
    clock.advance(1000)
    same = store.update(r, "sub_1", clock, amount="9.99", cadence={"cadence": "monthly"})
    assert same == stored
    assert dump(r) == before


def test_a_new_currency_needs_a_new_amount(r: redis.Redis, clock: FixedClock) -> None:
    store.create(r, new_sub(), clock)
    with pytest.raises(InvalidInput, match="changing the currency needs the amount"):
        store.update(r, "sub_1", clock, currency="USD")
    with pytest.raises(InvalidInput, match="has 2 decimals; JPY has 0"):
        store.update(r, "sub_1", clock, currency="JPY", amount="9.99")
    assert str(store.update(r, "sub_1", clock, currency="JPY", amount="999").amount) == ("999 JPY")


@pytest.mark.parametrize(
    ("status", "stored_id", "expected"),
    [
        (S.NEEDS_NEW_CARD, 77, S.ACTIVE),  # the card was replaced
        (S.NEEDS_NEW_CARD, 5125, S.NEEDS_NEW_CARD),  # the same card is no replacement
        (S.PAST_DUE, 77, S.PAST_DUE),
        (S.PAUSED, 77, S.PAUSED),
    ],
)
def test_a_new_card_reactivates_only_needs_new_card(
    r: redis.Redis,
    clock: FixedClock,
    status: SubscriptionStatus,
    stored_id: int,
    expected: SubscriptionStatus,
) -> None:
    store.create(r, new_sub(), clock)
    put_status(r, "sub_1", status)
    updated = store.update(r, "sub_1", clock, stored_id=str(stored_id))
    assert (updated.stored_id, updated.status) == (stored_id, expected)
    assert store.require(r, "sub_1").status is expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": "0"}, "zero"),
        ({"amount": "-1"}, "plain decimal"),
        ({"amount": "9.999"}, "decimals"),
        ({"amount": "١٢"}, "plain decimal"),
        ({"currency": "XXX", "amount": "1"}, "unsupported currency 'XXX'"),
        ({"stored_id": "1e3"}, "stored_id '1e3' is invalid"),
        ({"stored_id": "0"}, "stored_id 0 is invalid"),
        ({"stored_id": True}, "stored_id must be a positive integer"),
        ({"description": "a\x00b"}, "control characters"),
        ({"language": "fr"}, "language 'fr'"),
        ({"cadence": {"bad key": "x"}}, "cadence key 'bad key'"),
        ({"metadata": {"k": "\x1b"}}, "metadata k contains control characters"),
    ],
)
def test_rejected_updates_change_nothing(
    r: redis.Redis, clock: FixedClock, changes: dict[str, Any], message: str
) -> None:
    store.create(r, new_sub(), clock)
    store.create(r, new_sub("sub_2"), clock)
    before = dump(r)
    with pytest.raises(InvalidInput, match=message):
        store.update(r, "sub_1", clock, **changes)
    assert dump(r) == before


def test_cancelled_and_missing_subscriptions_cannot_be_updated(
    r: redis.Redis, clock: FixedClock
) -> None:
    store.create(r, new_sub(), clock)
    store.cancel(r, "sub_1", clock)
    before = dump(r)
    with pytest.raises(InvalidInput, match="sub_1 is cancelled, which is final"):
        store.update(r, "sub_1", clock, amount="1.00")
    with pytest.raises(InvalidInput, match="no subscription ghost"):
        store.update(r, "ghost", clock, amount="1.00")
    assert dump(r) == before


def _race_after_reads(
    monkeypatch: pytest.MonkeyPatch, race: Callable[[int], None], times: int
) -> list[int]:
    """Make ``store._read`` run ``race(n)`` right after its n-th read, for the first
    ``times`` reads: another writer changing the hash between update's read and write.
    """
    real_read = store._read
    reads: list[int] = []

    def read_then_race(r: redis.Redis, sub_id: str) -> dict[str, str]:
        raw = real_read(r, sub_id)
        reads.append(len(reads) + 1)
        if len(reads) <= times:
            race(len(reads))
        return raw

    monkeypatch.setattr(store, "_read", read_then_race)
    return reads


def test_update_retries_after_a_concurrent_change_and_keeps_it(
    r: redis.Redis, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(r, new_sub(), clock)

    def other_writer(_: int) -> None:
        r.hset(keys.sub("sub_1"), "description", "changed by someone else")

    reads = _race_after_reads(monkeypatch, other_writer, times=1)
    updated = store.update(r, "sub_1", clock, amount="12.50")
    assert reads == [1, 2]  # the first write was refused, the second read saw the change
    assert (str(updated.amount), updated.description) == ("12.50 AZN", "changed by someone else")
    assert store.require(r, "sub_1") == updated


def test_update_sees_a_concurrent_cancel_and_refuses(
    r: redis.Redis, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(r, new_sub(), clock)

    def other_operator(_: int) -> None:
        store.cancel(r, "sub_1", clock)

    _race_after_reads(monkeypatch, other_operator, times=1)
    with pytest.raises(InvalidInput, match="sub_1 is cancelled"):
        store.update(r, "sub_1", clock, amount="12.50")
    stored = store.require(r, "sub_1")
    assert (stored.status, str(stored.amount)) == (S.CANCELLED, "9.99 AZN")


def test_update_gives_up_when_it_keeps_losing(
    r: redis.Redis, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(r, new_sub(), clock)

    def other_writer(n: int) -> None:
        r.hset(keys.sub("sub_1"), "description", f"write {n}")

    reads = _race_after_reads(monkeypatch, other_writer, times=store.CAS_ATTEMPTS)
    with pytest.raises(store.ConcurrentChange, match="sub_1 kept changing"):
        store.update(r, "sub_1", clock, amount="12.50")
    assert len(reads) == store.CAS_ATTEMPTS
    stored = store.require(r, "sub_1")
    assert (stored.description, str(stored.amount)) == (
        f"write {store.CAS_ATTEMPTS}",
        "9.99 AZN",
    )


@pytest.mark.parametrize(
    ("change", "replaced"),
    [
        # rewriting a value with itself loses nothing: the compare is on content
        (lambda r: r.hset(keys.sub("sub_1"), "updated_at", str(T0)), True),
        (lambda r: r.hset(keys.sub("sub_1"), "status", "paused"), False),
        (lambda r: r.hset(keys.sub("sub_1"), "extra", "1"), False),
        (lambda r: r.hdel(keys.sub("sub_1"), "description"), False),
        (lambda r: r.delete(keys.sub("sub_1")), False),
    ],
)
def test_the_cas_write_needs_the_exact_hash_it_read(
    r: redis.Redis,
    clock: FixedClock,
    change: Callable[[redis.Redis], object],
    replaced: bool,
) -> None:
    store.create(r, new_sub(), clock)
    raw = store._read(r, "sub_1")
    change(r)
    after_change = dump(r)
    wanted = {**raw, "amount_minor": "1"}
    assert store._replace_if_unchanged(r, "sub_1", raw, wanted, T0) is replaced
    if replaced:
        assert r.hgetall(keys.sub("sub_1")) == wanted
    else:
        assert dump(r) == after_change


# list / count


def _five(r: redis.Redis, clock: FixedClock) -> None:
    for n in range(1, 6):
        store.create(r, new_sub(f"sub_{n}"), clock)
        clock.advance(1000)
    store.pause(r, "sub_2", clock)
    store.pause(r, "sub_4", clock)
    store.cancel(r, "sub_5", clock)


def _ids(subs: list[Subscription]) -> list[str]:
    return [s.id for s in subs]


def test_list_pages_in_due_order(r: redis.Redis, clock: FixedClock) -> None:
    _five(r, clock)
    everything = _ids(store.list_subscriptions(r))
    # every write puts a subscription at "now" in the due index: those paused and cancelled
    # last come last (ties by id)
    assert everything == ["sub_1", "sub_3", "sub_2", "sub_4", "sub_5"]
    assert _ids(store.list_subscriptions(r, offset=1, limit=2)) == everything[1:3]
    assert _ids(store.list_subscriptions(r, offset=4, limit=10)) == everything[4:]
    assert store.list_subscriptions(r, offset=5) == []
    assert store.count(r) == 5


def test_list_filters_by_status_across_scan_pages(
    r: redis.Redis, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _five(r, clock)
    monkeypatch.setattr(store, "SCAN_PAGE", 2)
    assert _ids(store.list_subscriptions(r, status="paused")) == ["sub_2", "sub_4"]
    assert _ids(store.list_subscriptions(r, status=S.PAUSED, offset=1)) == ["sub_4"]
    assert _ids(store.list_subscriptions(r, status="active", limit=1)) == ["sub_1"]
    assert _ids(store.list_subscriptions(r, status="active", offset=1)) == ["sub_3"]
    assert store.list_subscriptions(r, status="past_due") == []
    assert [store.count(r, status=s) for s in S] == [2, 2, 0, 0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "bogus"}, "status 'bogus' is not one of active, paused"),
        ({"limit": 0}, "limit 0 must be between 1 and 1000"),
        ({"limit": 1001}, "limit 1001"),
        ({"offset": -1}, "offset -1"),
        ({"limit": True}, "limit True"),
    ],
)
def test_list_rejects_bad_arguments(r: redis.Redis, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.list_subscriptions(r, **kwargs)


def test_every_returns_each_once_while_the_index_moves(r: redis.Redis, clock: FixedClock) -> None:
    for n in range(25):
        store.create(r, new_sub(f"sub_{n:02}"), clock)
    seen = []
    for sub in store.every(r, page=4):
        seen.append(sub.id)
        # the scheduler moves subscriptions meanwhile: the one just read to the end
        r.zadd(keys.DUE, {sub.id: T0 + 10**9})
    assert sorted(seen) == [f"sub_{n:02}" for n in range(25)]
