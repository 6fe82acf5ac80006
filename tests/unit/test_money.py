"""Money is exact: strict parsing of people's input, exact reading of gateway numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import InvalidInput
from worker.money import MAX_MINOR, Money, parse_amount


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("9.99", "AZN", 999),
        ("10", "AZN", 1000),
        ("0.01", "AZN", 1),
        ("1.5", "AZN", 150),
        ("7", "JPY", 7),
        ("1.234", "KWD", 1234),
        ("007.10", "USD", 710),
    ],
)
def test_parse_amount_accepts_plain_decimals(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "zero"),
        ("0.00", "zero"),
        ("-1.00", "plain decimal"),
        ("+1", "plain decimal"),
        ("1.999", "decimals"),
        ("1e3", "plain decimal"),
        (" 1.00", "plain decimal"),
        ("1,00", "plain decimal"),
        ("", "plain decimal"),
        ("١٢", "plain decimal"),  # Arabic-Indic
        ("１２", "plain decimal"),
        ("NaN", "plain decimal"),
        ("Infinity", "plain decimal"),
        ("1.", "plain decimal"),
        (".5", "plain decimal"),
        ("99999999999999999", "too large"),
    ],
)
def test_parse_amount_rejects_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_amount(text, "AZN")


def test_unknown_currency_is_rejected_by_name() -> None:
    with pytest.raises(InvalidInput, match="unsupported currency 'XXX'"):
        parse_amount("1.00", "XXX")


def test_float_never_holds_money() -> None:
    with pytest.raises(TypeError):
        Money(9.99, "AZN")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON number"):
        Money.from_gateway(9.99, "AZN")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        (1, 100),
        (5, 500),
        (Decimal("9.99"), 999),
        (Decimal("1.0"), 100),
        (-1, -100),
        (Decimal("0.10"), 10),
    ],
)
def test_from_gateway_reads_json_numbers_exactly(value: int | Decimal, minor: int) -> None:
    assert Money.from_gateway(value, "AZN").minor == minor


@pytest.mark.parametrize("value", [Decimal("1.001"), Decimal("NaN"), Decimal("Infinity"), True])
def test_from_gateway_rejects_inexact_numbers(value: Decimal) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
        Money.from_gateway(value, "AZN")


@given(st.integers(min_value=1, max_value=MAX_MINOR), st.sampled_from(["AZN", "JPY", "KWD"]))
def test_gateway_text_round_trips(minor: int, currency: str) -> None:
    money = Money(minor, currency)
    text = money.to_gateway()
    assert parse_amount(text, currency) == money
    assert Money.from_gateway(Decimal(text), currency) == money
    exponent = money.exponent
    assert (len(text.split(".")[1]) if "." in text else 0) == exponent


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=10**9))
def test_addition_is_exact(a: int, b: int) -> None:
    assert (Money(a, "AZN") + Money(b, "AZN")).to_decimal() == Decimal(a + b) / 100


def test_adding_other_currencies_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot add"):
        Money(1, "AZN") + Money(1, "USD")
