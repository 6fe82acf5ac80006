"""The event stream and the audit log, read back field by field from a real Redis."""

from __future__ import annotations

import getpass
from typing import Any

import pytest
import redis

from worker import events, keys
from worker.clock import SYSTEM
from worker.errors import InvalidInput
from worker.events import EventType
from worker.store import audit
from worker.store import events as stream

T = 1_793_512_800_000


def _event(n: int, kind: EventType = EventType.CHARGE_SUCCEEDED) -> dict[str, str]:
    return events.build(kind, f"sub-{n}|2026-11-01", T + n, {"order_id": 4000 + n})


def test_emit_and_read_back_exact_fields(r: redis.Redis) -> None:
    fields = _event(1)
    stream_id = stream.emit(r, fields)

    assert r.xrange(keys.EVENTS) == [(stream_id, fields)]
    assert stream.read(r) == [
        (
            stream_id,
            {
                "id": fields["id"],
                "type": "charge.succeeded",
                "key": "sub-1|2026-11-01",
                "time": T + 1,
                "data": {"order_id": 4001},
            },
        )
    ]


def test_read_pages_after_an_id(r: redis.Redis) -> None:
    ids = [stream.emit(r, _event(n)) for n in range(5)]
    first = stream.read(r, count=2)
    assert [i for i, _ in first] == ids[:2]
    rest = stream.read(r, after=first[-1][0], count=100)
    assert [i for i, _ in rest] == ids[2:]
    assert stream.read(r, after=ids[-1]) == []


def test_latest_returns_the_newest_oldest_first(r: redis.Redis) -> None:
    ids = [stream.emit(r, _event(n)) for n in range(5)]
    assert [i for i, _ in stream.latest(r, 2)] == ids[3:]
    assert [i for i, _ in stream.latest(r, 2, before=f"({ids[3]}")] == ids[1:3]
    assert stream.last_id(r) == ids[-1]


def test_an_empty_stream_reads_empty(r: redis.Redis) -> None:
    assert stream.read(r) == []
    assert stream.latest(r) == []
    assert stream.last_id(r) == "0-0"


def test_emit_trims_to_about_maxlen(r: redis.Redis) -> None:
    for n in range(350):
        stream.emit(r, _event(n), maxlen=10)
    assert r.xlen(keys.EVENTS) < 350  # approximate trimming drops whole nodes


def test_follow_sees_only_events_after_it_was_called(r: redis.Redis) -> None:
    stream.emit(r, _event(1))
    live = stream.follow(r, block_ms=1000)
    second = stream.emit(r, _event(2))
    third = stream.emit(r, _event(3))
    try:
        assert next(live)[0] == second
        assert next(live)[0] == third
    finally:
        live.close()


def test_follow_from_an_id(r: redis.Redis) -> None:
    ids = [stream.emit(r, _event(n)) for n in range(3)]
    live = stream.follow(r, after=ids[0], block_ms=1000)
    try:
        assert [next(live)[0], next(live)[0]] == ids[1:]
    finally:
        live.close()


def test_audit_record_and_read_back(r: redis.Redis) -> None:
    record_id = audit.record(
        r,
        action="subscription.pause",
        actor="alice",
        target="sub-1",
        detail={"from": "active", "to": "paused"},
        now_ms=T,
    )
    rows: Any = r.xrange(keys.AUDIT)
    [(stream_id, fields)] = rows
    assert fields == {
        "id": record_id,
        "action": "subscription.pause",
        "actor": "alice",
        "target": "sub-1",
        "time": str(T),
        "detail": '{"from":"active","to":"paused"}',
    }
    assert audit.read(r) == [
        (
            stream_id,
            {
                "id": record_id,
                "action": "subscription.pause",
                "actor": "alice",
                "target": "sub-1",
                "time": T,
                "detail": {"from": "active", "to": "paused"},
            },
        )
    ]


def test_audit_time_defaults_to_now(r: redis.Redis) -> None:
    before = SYSTEM.now_ms()
    audit.record(r, action="a", actor="alice", target="t", detail={})
    after = SYSTEM.now_ms()
    [(_, fields)] = audit.read(r)
    assert before <= fields["time"] <= after


def test_default_actor_is_the_os_user() -> None:
    assert audit.default_actor() == getpass.getuser()


@pytest.mark.parametrize("actor", ["", " alice", "a\nb", "x" * 65])
def test_bad_actors_are_rejected(r: redis.Redis, actor: str) -> None:
    with pytest.raises(InvalidInput, match="actor"):
        audit.record(r, action="a", actor=actor, target="t", detail={})
    assert r.exists(keys.AUDIT) == 0
