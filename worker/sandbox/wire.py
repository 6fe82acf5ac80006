"""JSON as TXPG speaks it: amounts are JSON numbers written exactly, never through a float.

Python's ``json`` can only write a number it holds as ``int`` or ``float``, and ``9.99`` must
never become a float. So responses are built with :class:`Number` (the literal text of a JSON
number) wherever an amount goes, and :func:`dumps` writes that text as is. Requests are read
with :func:`loads`: fractions become ``Decimal``, ``NaN``/``Infinity`` and repeated keys are
refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from worker.money import CURRENCY_EXPONENTS


class Number(str):
    """The literal text of a JSON number (``"9.99"``, ``"-1"``), written without quotes."""

    __slots__ = ()


def amount(minor: int, currency: str) -> Number:
    """``minor`` units of ``currency`` as TXPG writes them: ``1``, ``9.99``, ``9.9``, ``-1``.

    Trailing zeros are dropped (TXPG answers ``"amount": 1`` for an order of ``"1.0"``).
    """
    exponent = CURRENCY_EXPONENTS[currency]
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    text = f"{frac:0{exponent}d}".rstrip("0") if exponent else ""
    return Number(f"{sign}{whole}.{text}" if text else f"{sign}{whole}")


def _encode(value: Any, out: Callable[[str], object]) -> None:
    if isinstance(value, str):
        out(value if isinstance(value, Number) else encode_basestring(value))
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, int):
        out(str(value))
    elif isinstance(value, Mapping):
        out("{")
        first = True
        for key, item in value.items():
            if not first:
                out(",")
            first = False
            out(encode_basestring(key))
            out(":")
            _encode(item, out)
        out("}")
    elif isinstance(value, Sequence):
        out("[")
        for index, item in enumerate(value):
            if index:
                out(",")
            _encode(item, out)
        out("]")
    else:
        # A float (or anything else) here is a bug: amounts must go through amount().
        raise TypeError(f"cannot write {type(value).__name__} to a TXPG body")


def dumps(value: Any) -> bytes:
    """Encode a response body; :class:`Number` values are written as bare numbers."""
    parts: list[str] = []
    _encode(value, parts.append)
    return "".join(parts).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def loads(body: bytes) -> Any:
    """Decode a request body strictly; raises ``ValueError`` on anything doubtful."""
    return json.loads(
        body.decode("utf-8"),
        parse_float=Decimal,
        parse_constant=_reject_constant,
        object_pairs_hook=_unique,
    )
