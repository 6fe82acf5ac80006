"""The subscription model rejects malformed input with a message naming the field, and its
Redis hash form round-trips exactly.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import InvalidInput
from worker.money import CURRENCY_EXPONENTS, MAX_MINOR, Money
from worker.subscriptions import (
    Subscription,
    SubscriptionStatus,
    validate_id,
    validate_stored_id,
)

GOOD: dict[str, Any] = {
    "id": "sub_1",
    "customer": "cust-1",
    "stored_id": 5125,
    "amount": "9.99",
    "currency": "AZN",
}


def make(**changes: Any) -> Subscription:
    return Subscription.create(**{**GOOD, **changes})


def test_a_valid_subscription_keeps_exact_values() -> None:
    sub = make(
        description="Gym",
        language="en",
        cadence={"cadence": "monthly", "start": "2026-01-31"},
        now_ms=7,
    )
    assert sub.amount == Money(999, "AZN")
    assert str(sub.amount) == "9.99 AZN"
    assert (sub.stored_id, sub.language, sub.status) == (5125, "en", SubscriptionStatus.ACTIVE)
    assert dict(sub.cadence) == {"cadence": "monthly", "start": "2026-01-31"}
    assert (sub.created_at, sub.updated_at) == (7, 7)


@pytest.mark.parametrize(
    "value",
    ["", "_x", "-x", ".x", "a b", "a:b", "a|b", "a/b", "x" * 65, "ünï", "sub\n", "١٢", 12, None],
)
def test_bad_ids_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"subscription id .* is invalid"):
        make(id=value)


@pytest.mark.parametrize("value", ["a", "A.b-c_d", "9", "x" * 64])
def test_good_ids_are_accepted(value: str) -> None:
    assert validate_id(value) == value


def test_the_customer_is_validated_like_an_id() -> None:
    with pytest.raises(InvalidInput, match="customer 'a b' is invalid"):
        make(customer="a b")


@pytest.mark.parametrize(
    "value",
    ["0", "-1", "1e3", "١٢", "１２", " 12", "12 ", "1.0", "", "0x10", "1" * 19, 0, -5, 10**18],
)
def test_bad_stored_ids_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"stored_id .* is invalid"):
        validate_stored_id(value)


@pytest.mark.parametrize("value", [True, False])
def test_bools_are_not_stored_ids(value: bool) -> None:
    with pytest.raises(InvalidInput, match="stored_id must be a positive integer"):
        validate_stored_id(value)


@pytest.mark.parametrize("value", [5.0, None, [1], b"12"])
def test_non_integers_are_not_stored_ids(value: object) -> None:
    with pytest.raises(InvalidInput, match="stored_id"):
        validate_stored_id(value)


@pytest.mark.parametrize(("value", "expected"), [("5125", 5125), (1, 1), ("0007", 7)])
def test_stored_ids_from_text_or_int(value: object, expected: int) -> None:
    assert validate_stored_id(value) == expected


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("0", "zero"),
        ("0.00", "zero"),
        ("-9.99", "plain decimal"),
        ("9.999", "decimals"),
        ("٩.٩٩", "plain decimal"),
        ("9,99", "plain decimal"),
        ("1e2", "plain decimal"),
        (9.99, "must be a string"),
    ],
)
def test_bad_amounts_are_rejected(amount: object, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        make(amount=amount)


@pytest.mark.parametrize("currency", ["XXX", "azn", "", "AZN "])
def test_unknown_currencies_are_named(currency: str) -> None:
    with pytest.raises(InvalidInput, match="unsupported currency"):
        make(currency=currency)


def test_an_unhashable_currency_is_invalid_input_not_a_crash() -> None:
    with pytest.raises(InvalidInput, match="unsupported currency"):
        make(currency=["AZN"])


@pytest.mark.parametrize(
    "text",
    ["line\nbreak", "tab\there", "nul\x00", "del\x7f", "c1\x85", "esc\x1b[31m", "lone \ud800"],
)
def test_control_characters_and_lone_surrogates_are_rejected(text: str) -> None:
    with pytest.raises(InvalidInput, match="description contains control characters"):
        make(description=text)
    with pytest.raises(InvalidInput, match="metadata note contains control characters"):
        make(metadata={"note": text})


def test_long_descriptions_are_rejected() -> None:
    assert make(description="x" * 255).description == "x" * 255
    with pytest.raises(InvalidInput, match="longer than 255"):
        make(description="x" * 256)


def test_unicode_text_is_fine() -> None:
    assert make(description="İdman zalı: aylıq").description == "İdman zalı: aylıq"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"language": "fr"}, "language 'fr' is not one of az, en, ru"),
        ({"gateway": "paypal"}, "gateway 'paypal' is not one of txpg, bizon"),
        ({"cadence": {"bad key": "x"}}, "cadence key 'bad key' is invalid"),
        ({"cadence": {"k": 1}}, "cadence k must be text"),
        ({"metadata": ["a=b"]}, "metadata must be a mapping"),
        ({"description": None}, "description must be text"),
    ],
)
def test_other_fields_say_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make(**changes)


# Round trip: whatever the model accepts, its hash form gives back exactly.

_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)
_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")),
    max_size=40,
)
_money = st.sampled_from(sorted(CURRENCY_EXPONENTS)).flatmap(
    lambda c: st.builds(Money, st.integers(1, MAX_MINOR), st.just(c))
)
_subscriptions = st.builds(
    Subscription,
    id=_ids,
    customer=_ids,
    stored_id=st.integers(1, 10**18 - 1),
    amount=_money,
    description=_text,
    language=st.sampled_from(["az", "en", "ru"]),
    status=st.sampled_from(SubscriptionStatus),
    cadence=st.dictionaries(_ids, _text, max_size=4),
    metadata=st.dictionaries(_ids, _text, max_size=4),
    created_at=st.integers(0, 2**53),
    updated_at=st.integers(0, 2**53),
    cursor=st.sampled_from(["", "2026-01-31"]),
    pauses=st.lists(
        st.tuples(st.integers(0, 2**53), st.one_of(st.none(), st.integers(0, 2**53))),
        max_size=3,
    ).map(tuple),
)


@given(_subscriptions)
def test_hash_round_trip_is_exact(sub: Subscription) -> None:
    stored = sub.to_hash()
    assert all(isinstance(v, str) for v in stored.values())
    assert "id" not in stored  # the key holds it
    assert Subscription.from_hash(stored, sub.id) == sub


@given(_subscriptions)
def test_what_create_accepts_round_trips(sub: Subscription) -> None:
    rebuilt = Subscription.create(
        id=sub.id,
        customer=sub.customer,
        stored_id=str(sub.stored_id),
        amount=sub.amount.to_gateway(),
        currency=sub.currency,
        description=sub.description,
        language=sub.language,
        cadence={},
        metadata=sub.metadata,
    )
    assert rebuilt.amount == sub.amount
    assert Subscription.from_hash(rebuilt.to_hash(), sub.id) == rebuilt
