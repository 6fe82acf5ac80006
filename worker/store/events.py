"""The outcome event stream ``bw:events``: append, page through, and tail.

Entries are built by :func:`worker.events.build`. State changes emit their events from the
Lua script that makes the change (``worker.store.charges``, :mod:`worker.store.deadletters`);
:func:`emit` is for events that accompany no stored change.

The stream is capped at about :data:`MAXLEN` entries (``MAXLEN ~``, which trims whole radix
nodes and so costs nothing per append): consumers that must not miss an event keep up, or
use a consumer group.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import redis

from worker import events, keys

#: The approximate length the stream is trimmed to.
MAXLEN = 1_000_000

#: How long one blocking read waits. It must stay below the client's ``socket_timeout``
#: (10 s, see :func:`worker.store.connect`), or a quiet stream would look like a dead Redis.
BLOCK_MS = 5_000

Entry = tuple[str, dict[str, Any]]


def emit(r: redis.Redis, fields: Mapping[str, str], maxlen: int = MAXLEN) -> str:
    """Append one event; returns its stream id."""
    entry: dict[Any, Any] = dict(fields)  # redis-py's key type is invariant
    return str(r.xadd(keys.EVENTS, entry, maxlen=maxlen, approximate=True))


def read(r: redis.Redis, after: str = "0-0", count: int = 100) -> list[Entry]:
    """Up to ``count`` events strictly after stream id ``after``, oldest first."""
    return read_stream(r, keys.EVENTS, after, count, events.parse)


def latest(r: redis.Redis, count: int = 100, before: str = "+") -> list[Entry]:
    """The newest ``count`` events up to ``before`` (inclusive), oldest first."""
    rows: Any = r.xrevrange(keys.EVENTS, max=before, min="-", count=count)
    return [(str(i), events.parse(f)) for i, f in reversed(rows)]


def last_id(r: redis.Redis, stream: str = keys.EVENTS) -> str:
    """The id of the stream's newest entry, ``0-0`` when it is empty."""
    rows: Any = r.xrevrange(stream, count=1)
    return str(rows[0][0]) if rows else "0-0"


def follow(
    r: redis.Redis, after: str = "$", block_ms: int = BLOCK_MS, count: int = 100
) -> Generator[Entry, None, None]:
    """Every event after ``after``, forever: blocks on ``XREAD`` while the stream is quiet.

    ``$`` is resolved to the newest id *now*, when ``follow`` is called, not at the first
    ``next()``: an event appended in between is not lost. Stop by closing the iterator (or
    Ctrl-C).
    """
    start = last_id(r) if after == "$" else after
    return _tail(r, start, block_ms, count)


def _tail(r: redis.Redis, after: str, block_ms: int, count: int) -> Generator[Entry, None, None]:
    while True:
        reply: Any = r.xread({keys.EVENTS: after}, count=count, block=block_ms)
        for _stream, rows in reply or []:
            for stream_id, fields in rows:
                after = str(stream_id)
                yield after, events.parse(fields)


def read_stream(
    r: redis.Redis,
    stream: str,
    after: str,
    count: int,
    parse: Callable[[Mapping[str, str]], dict[str, Any]],
) -> list[Entry]:
    """``XREAD`` without blocking: ``after`` is exclusive, so a page's last id is the next
    page's ``after``. Shared with :mod:`worker.store.audit`.
    """
    reply: Any = r.xread({stream: after}, count=count)
    out: list[Entry] = []
    for _stream, rows in reply or []:
        out.extend((str(i), parse(f)) for i, f in rows)
    return out
