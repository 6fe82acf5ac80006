"""Strict JSON for gateway bodies: exact numbers, no NaN/Infinity, no duplicate keys.

Python's ``json`` accepts ``NaN``, ``Infinity`` and repeated keys (the last one wins) and reads
``9.99`` as a float. A payment gateway's body is read with none of that: numbers become
``int`` or ``Decimal``, and anything non-standard is a :class:`ValueError` that the caller
classifies as a malformed response.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def loads(body: bytes) -> Any:
    """Decode ``body`` strictly; raises ``ValueError`` (including ``UnicodeDecodeError``)."""
    text = body.decode("utf-8")
    return json.loads(
        text,
        parse_float=Decimal,
        parse_constant=_reject_constant,
        object_pairs_hook=_unique_keys,
    )


def dumps(payload: Any) -> bytes:
    """Encode a request body. Requests hold only strings, ints, lists and dicts."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
