"""Stored cards: the demo set, how each answers, and reading cards from JSON."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from worker.errors import InvalidInput
from worker.money import Money
from worker.sandbox.cards import (
    Behaviour,
    Card,
    CardRegistry,
    card_from_json,
    demo_cards,
    load_cards,
)

NOW = datetime(2026, 11, 21, tzinfo=UTC)
AZN = Money(999, "AZN")


def _registry() -> CardRegistry:
    return CardRegistry(demo_cards(), threading.RLock())


@pytest.mark.parametrize(
    ("stored_id", "code"),
    [(5125, 1), (5100, 1), (5159, 59), (5151, 51), (5141, 41), (5106, 6), (5152, 52), (5154, 54)],
)
def test_demo_cards_answer_as_documented(stored_id: int, code: int) -> None:
    card = _registry().by_stored_id(stored_id)
    assert card is not None
    assert card.answer(AZN, NOW, debit=True) == code


def test_demo_cards_include_the_references_card_and_two_tokens() -> None:
    registry = _registry()
    reference = registry.by_stored_id(5125)
    assert reference is not None
    assert (reference.display_name, reference.brand) == ("416974******1778", "Visa")
    assert registry.by_rid("d91e8a152405ee1180e4005056954bcc") is reference  # case-insensitive
    destination = registry.by_rid("26AB0DACE700EF1180EB005056954BCC")
    assert destination is not None
    assert destination.answer(AZN, NOW, debit=False) == 1


def test_a_card_expires_after_the_last_day_of_its_month() -> None:
    card = Card("416974******1778", "1130", "Visa")
    assert card.answer(AZN, datetime(2030, 11, 30, 23, 59, tzinfo=UTC), debit=True) == 1
    assert card.answer(AZN, datetime(2030, 12, 1, tzinfo=UTC), debit=True) == 51
    assert card.answer(AZN, datetime(2030, 12, 1, tzinfo=UTC), debit=False) == 51


def test_insufficient_funds_until_topped_up_and_the_balance_is_spent() -> None:
    registry = _registry()
    card = registry.by_stored_id(5159)
    assert card is not None
    assert card.answer(AZN, NOW, debit=True) == 59
    registry.top_up("5159", Money(500, "AZN"))
    assert card.answer(AZN, NOW, debit=True) == 59  # 5.00 < 9.99
    assert registry.top_up("5159", Money(499, "AZN")).balance == Money(999, "AZN")
    assert card.answer(AZN, NOW, debit=True) == 1
    assert card.answer(AZN, NOW, debit=False) == 1  # a credit never needs a balance
    registry.spend(card, AZN, sign=-1)
    assert card.answer(Money(1, "AZN"), NOW, debit=True) == 59
    registry.reset()
    assert registry.by_stored_id(5159) is not card  # reset forgets the top-ups


def test_top_up_refuses_cards_without_a_balance_and_other_currencies() -> None:
    registry = _registry()
    with pytest.raises(InvalidInput, match="no balance"):
        registry.top_up("5125", AZN)
    with pytest.raises(InvalidInput, match="holds AZN"):
        registry.top_up("5159", Money(100, "USD"))
    with pytest.raises(KeyError):
        registry.top_up("4242", AZN)


def test_a_full_pan_in_a_cards_file_is_masked_on_load() -> None:
    (card,) = load_cards(b'[{"storedId": 7, "pan": "4169741330151778", "expiry": "1130"}]')
    assert card.display_name == "416974******1778"
    assert "4169741330151778" not in repr(card)
    assert card.brand == "Visa"
    assert card.behaviour is Behaviour.APPROVE


def test_a_registered_card_replaces_one_with_the_same_stored_id() -> None:
    registry = _registry()
    card = card_from_json(
        {
            "storedId": 5125,
            "displayName": "510307******3118",
            "expiry": "0130",
            "behaviour": "decline",
            "pmoResultCode": "71",
        }
    )
    registry.register(card)
    found = registry.find("5125")
    assert found is not None
    assert found.answer(AZN, NOW, debit=True) == 71
    assert found.brand == "Mastercard"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"displayName": "416974******1778", "expiry": "1130"}, "storedId or a ridByCofp"),
        ({"storedId": 1, "pan": "4169741330151779", "expiry": "1130"}, "Luhn"),
        ({"storedId": 1, "displayName": "4169741330151778", "expiry": "1130"}, "masked"),
        ({"storedId": 1, "displayName": "416974******1778", "expiry": "1330"}, "MMYY"),
        (
            {
                "storedId": 1,
                "displayName": "416974******1778",
                "expiry": "1130",
                "behaviour": "decline",
            },
            "pmoResultCode",
        ),
        (
            {
                "storedId": 1,
                "displayName": "416974******1778",
                "expiry": "1130",
                "behaviour": "maybe",
            },
            "behaviour must be",
        ),
        (
            {"storedId": 1, "displayName": "416974******1778", "expiry": "1130", "balance": "5"},
            "only for behaviour",
        ),
        (
            {
                "storedId": 1,
                "displayName": "416974******1778",
                "expiry": "1130",
                "behaviour": "insufficient_funds",
                "balance": "5.555",
            },
            "decimals",
        ),
        ({"storedId": True, "displayName": "416974******1778", "expiry": "1130"}, "positive"),
        ({"storedId": 1, "displayName": "416974******1778", "expiry": "1130", "cvv": 1}, "unknown"),
    ],
)
def test_bad_card_entries_say_what_is_wrong(entry: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        card_from_json(entry)


def test_load_cards_refuses_other_documents() -> None:
    with pytest.raises(InvalidInput, match="valid JSON"):
        load_cards(b"{")
    with pytest.raises(InvalidInput, match="list"):
        load_cards(b'{"cards": 5}')
