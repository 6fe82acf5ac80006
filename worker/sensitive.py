"""Secrets and card numbers: wrap them, mask them, scrub them.

* :class:`Secret` hides a value from ``repr``/``str``/logs; call :meth:`Secret.reveal` at the
  one place that must send it (an HTTP header, a query string).
* :func:`mask_pan` shows a PAN as first six and last four digits, the most ever shown.
* :func:`scrub` removes whatever looks like a PAN or an order password from free text (for
  example a gateway's ``pmoDeclineDesc``), so it is safe to log or store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from worker.errors import InvalidInput

T = TypeVar("T")

_REDACTED = "***"


class Secret(Generic[T]):
    """A value that must never be printed. ``repr`` and ``str`` show ``Secret('***')``."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_REDACTED}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled or sent in a message")


def luhn_ok(pan: str) -> bool:
    """The Luhn (mod 10) check of a string of ASCII digits."""
    if not pan.isascii() or not pan.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(pan)):
        digit = ord(char) - 48
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def mask_pan(pan: str) -> str:
    """``4169741330151778`` -> ``416974******1778``. Short input is masked whole."""
    digits = pan.strip()
    if len(digits) < 13:
        return "*" * len(digits)
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


# 13 to 19 digits, optionally grouped by spaces or dashes, not inside a longer digit run.
_PAN_LIKE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])", re.ASCII)
# password=... in query strings and key/value text; "password": "..." in JSON-ish text.
_PASSWORD_KV = re.compile(r"(?i)(password|secret|passwd|pwd)(=|\"?\s*:\s*\"?)([^&\s\",}]+)")
_BASIC = re.compile(r"(?i)(authorization\"?\s*[:=]\s*\"?basic\s+)[A-Za-z0-9+/=]+")


def _mask_match(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return mask_pan(digits) if luhn_ok(digits) else match.group(0)


def scrub(text: str) -> str:
    """Text with Luhn-valid PANs masked and password/secret values and Basic auth removed."""
    text = _PAN_LIKE.sub(_mask_match, text)
    text = _PASSWORD_KV.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", text)
    return _BASIC.sub(lambda m: f"{m.group(1)}{_REDACTED}", text)


@dataclass(frozen=True, slots=True)
class CardNumber:
    """A PAN a gateway is given (TXPG's ``set-dst-token``, Bizon's ``pan``). Kept secret;
    only :attr:`masked` is ever shown.
    """

    pan: Secret[str]

    @classmethod
    def parse(cls, text: str) -> CardNumber:
        digits = text.replace(" ", "")
        if not (digits.isascii() and digits.isdigit() and 13 <= len(digits) <= 19):
            raise InvalidInput("a card number must be 13 to 19 ASCII digits")
        if not luhn_ok(digits):
            raise InvalidInput(f"card number {mask_pan(digits)} fails the Luhn check")
        return cls(Secret(digits))

    @property
    def masked(self) -> str:
        return mask_pan(self.pan.reveal())
