"""The sandbox's JSON: amounts written exactly as JSON numbers, requests read strictly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.money import CURRENCY_EXPONENTS
from worker.sandbox.wire import Number, amount, dumps, loads


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (100, "AZN", "1"),
        (999, "AZN", "9.99"),
        (990, "AZN", "9.9"),
        (1, "AZN", "0.01"),
        (0, "AZN", "0"),
        (-100, "AZN", "-1"),
        (-5, "AZN", "-0.05"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (10**15, "AZN", "10000000000000"),
    ],
)
def test_amount_is_written_like_txpg(minor: int, currency: str, text: str) -> None:
    assert amount(minor, currency) == text
    assert dumps({"amount": amount(minor, currency)}) == f'{{"amount":{text}}}'.encode()


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
)
def test_amount_reads_back_to_the_same_exact_value(minor: int, currency: str) -> None:
    written = dumps([amount(minor, currency)])
    (value,) = json.loads(written, parse_float=Decimal)
    assert Decimal(value) == Decimal(minor).scaleb(-CURRENCY_EXPONENTS[currency])
    text = written.decode()[1:-1]
    assert "e" not in text.lower()  # never an exponent
    assert "." not in text or not text.endswith(("0", "."))  # no trailing zeros


def test_dumps_writes_every_json_type_and_escapes_strings() -> None:
    body = {"s": 'a"b\\c\n', "i": -3, "t": True, "f": False, "n": None, "l": [1, {"k": []}]}
    assert json.loads(dumps(body)) == body
    assert dumps({"x": Number("1.50")}) == b'{"x":1.50}'


def test_dumps_refuses_a_float_so_money_cannot_slip_through_one() -> None:
    with pytest.raises(TypeError, match="float"):
        dumps({"amount": 9.99})


def test_loads_reads_fractions_as_decimal() -> None:
    assert loads(b'{"a": 9.99, "b": 1}') == {"a": Decimal("9.99"), "b": 1}


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1, "a": 2}', b"\xff"])
def test_loads_refuses_doubtful_json(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        loads(body)
