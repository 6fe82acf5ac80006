"""Exact money: integer minor units with an ISO 4217 currency. No floats, ever.

Two ways in:

* :func:`parse_amount` for input from people and files ("9.99"): strict ASCII digits,
  at most the currency's exponent of decimals, strictly positive.
* :meth:`Money.from_gateway` for numbers read back from a gateway's JSON (``1``, ``5``,
  ``-1`` for a refund's clear amount), already decoded as ``int`` or ``Decimal``; they must be
  exact at the currency's exponent.

And one way out: :meth:`Money.to_gateway` renders ``"9.99"`` (always the full exponent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from worker.errors import InvalidInput

#: ISO 4217 minor-unit exponents of the currencies this worker accepts. AZN first: TXPG's own.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AZN": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "RUB": 2,
    "TRY": 2,
    "GEL": 2,
    "KZT": 2,
    "JPY": 0,
    "KWD": 3,
}

#: The largest amount accepted, in minor units: far above any card limit, below any overflow.
MAX_MINOR = 10**15

_AMOUNT = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]+))?", re.ASCII)


def currency_exponent(currency: str) -> int:
    """The number of decimals of ``currency``; raises :class:`InvalidInput` for unknown codes."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except (KeyError, TypeError):
        known = ", ".join(sorted(CURRENCY_EXPONENTS))
        raise InvalidInput(f"unsupported currency {currency!r} (known: {known})") from None


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An exact amount: ``minor`` units of ``currency`` (999 AZN-minor is 9.99 AZN)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:
            raise TypeError(f"Money.minor must be int, not {type(self.minor).__name__}")
        currency_exponent(self.currency)

    @property
    def exponent(self) -> int:
        return CURRENCY_EXPONENTS[self.currency]

    def to_decimal(self) -> Decimal:
        """The amount as a ``Decimal`` quantized to the currency's exponent."""
        return Decimal(self.minor).scaleb(-self.exponent)

    def to_gateway(self) -> str:
        """The amount as the gateway wants it: a string with the full exponent (``"9.99"``)."""
        return f"{self.to_decimal():.{self.exponent}f}"

    def __str__(self) -> str:
        return f"{self.to_gateway()} {self.currency}"

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.minor + other.minor, self.currency)

    @classmethod
    def from_gateway(cls, value: int | Decimal, currency: str) -> Money:
        """Read an amount a gateway sent as a JSON number (decoded as int or Decimal).

        Raises ``ValueError`` when the number is not exact at the currency's exponent; the
        gateway adapters turn that into a malformed-response error.
        """
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise ValueError(f"amount must be a JSON number, got {type(value).__name__}")
        exponent = currency_exponent(currency)
        try:
            scaled = Decimal(value).scaleb(exponent)
            if not scaled.is_finite() or scaled != scaled.to_integral_value():
                raise ValueError(f"amount {value} has more than {exponent} decimals")
        except InvalidOperation as exc:
            raise ValueError(f"amount {value} is not a number") from exc
        minor = int(scaled)
        if abs(minor) > MAX_MINOR:
            raise ValueError("amount out of range")
        return cls(minor, currency)


def parse_amount(text: str, currency: str) -> Money:
    """Parse a positive amount written by a person (``"9.99"``, ``"10"``) strictly.

    Rejected with a message that says why: empty, signs, exponents, spaces, non-ASCII digits,
    more decimals than the currency has, zero, and amounts above :data:`MAX_MINOR`.
    """
    exponent = currency_exponent(currency)
    if not isinstance(text, str):
        raise InvalidInput(f"amount must be a string like '9.99', got {type(text).__name__}")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise InvalidInput(
            f"amount {text!r} is not a plain decimal number like '9.99' "
            "(digits 0-9 and at most one '.', no sign, spaces or exponent)"
        )
    frac = match.group("frac") or ""
    if len(frac) > exponent:
        raise InvalidInput(f"amount {text!r} has {len(frac)} decimals; {currency} has {exponent}")
    minor = int(match.group("whole")) * 10**exponent + int(frac.ljust(exponent, "0") or "0")
    if minor == 0:
        raise InvalidInput(f"amount {text!r} is zero; a charge or payout must be positive")
    if minor > MAX_MINOR:
        raise InvalidInput(f"amount {text!r} is too large")
    return Money(minor, currency)
