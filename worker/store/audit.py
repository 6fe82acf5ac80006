"""The audit log ``bw:audit``: who did what to which thing, and when.

Operator actions (a dead-letter replay or discard, ...) are recorded here. An action that
changes stored state writes its audit entry in the same Lua script as the change: build the
fields with :func:`build` and pass them in (see :mod:`worker.store.deadletters`).
:func:`record` is for the rest.

The stream is never trimmed: operator actions are few, and the log is the record of them.
Entries hold ids, codes and amounts only, never a secret.
"""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Mapping
from typing import Any

import redis

from worker import keys
from worker.clock import SYSTEM
from worker.errors import InvalidInput
from worker.store.events import Entry, read_stream


def default_actor() -> str:
    """The OS user running the command: a record of who acted even without ``--actor``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "unknown"


def validate_actor(actor: str) -> str:
    """1-64 printable characters: the actor is shown in tables and events."""
    if not actor or len(actor) > 64 or not actor.isprintable() or actor != actor.strip():
        raise InvalidInput(
            f"actor {actor!r} is invalid: use 1-64 printable characters, no surrounding spaces"
        )
    return actor


def build(
    *, action: str, actor: str, target: str, now_ms: int, detail: Mapping[str, Any]
) -> dict[str, str]:
    """The stream entry's fields."""
    return {
        "id": uuid.uuid4().hex,
        "action": action,
        "actor": validate_actor(actor),
        "target": target,
        "time": str(now_ms),
        "detail": json.dumps(dict(detail), sort_keys=True, separators=(",", ":")),
    }


def parse(fields: Mapping[str, str]) -> dict[str, Any]:
    """An entry back as a dict: ``time`` an int, ``detail`` decoded."""
    return {**fields, "time": int(fields["time"]), "detail": json.loads(fields["detail"])}


def record(
    r: redis.Redis,
    *,
    action: str,
    actor: str,
    target: str,
    detail: Mapping[str, Any],
    now_ms: int | None = None,
) -> str:
    """Append one entry; returns its ``id`` (not the stream id)."""
    when = SYSTEM.now_ms() if now_ms is None else now_ms
    fields = build(action=action, actor=actor, target=target, now_ms=when, detail=detail)
    entry: dict[Any, Any] = dict(fields)  # redis-py's key type is invariant
    r.xadd(keys.AUDIT, entry)
    return fields["id"]


def read(r: redis.Redis, after: str = "0-0", count: int = 100) -> list[Entry]:
    """Up to ``count`` entries strictly after stream id ``after``, oldest first."""
    return read_stream(r, keys.AUDIT, after, count, parse)
