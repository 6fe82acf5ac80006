"""Stored cards the sandbox knows, and how each one answers a charge.

A card is found by its ``storedId`` (``token.storedId``) or its TWO token (``ridByCofp``).
The sandbox keeps only what TXPG shows of a card: the masked PAN (first six, last four),
the expiry ``MMYY`` and the brand. A full PAN given in a cards file is masked on load.

How a card answers a debit (Purchase, Auth) or a credit (OCT), in this order:

1. its expiry month has passed by the sandbox's clock: PMO code 51 (expired card);
2. behaviour ``decline``: its ``pmoResultCode``, every time;
3. behaviour ``insufficient_funds``: 59 while the debit is above its ``balance`` (0 unless
   given); ``POST /_admin/cards/{storedId}/top-up`` raises the balance, so a later dunning
   attempt succeeds. An approved debit spends the balance; a refund or reversal gives it back;
4. otherwise approved (1).

Default demo cards (``cards.json`` beside this module; replace with ``--cards FILE``):

=========  ================================  ==========================  ======  =============
storedId   TWO ``ridByCofp``                 card                        expiry  behaviour
=========  ================================  ==========================  ======  =============
5125       D91E8A152405EE1180E4005056954BCC  Visa 416974******1778       11/30   approve (the
                                                                                 reference's)
5100       1B2B94F001F8EE1180EB005056954BCC  Mastercard 510307******3118  01/30   approve
5159       -                                 Visa 416974******0059       12/29   59 until topped
                                                                                 up (balance 0)
5151       -                                 Visa 416974******0051       01/24   51 (expired by
                                                                                 its date)
5141       -                                 Mastercard 510307******0041  12/29   41 stolen card
5106       -                                 Visa 416974******0006       12/29   6 strong auth
                                                                                 required
5152       -                                 Visa 416974******0052       12/29   52 invalid card
5154       -                                 Visa 416974******0054       12/29   54 system error
                                                                                 (a soft decline)
-          26AB0DACE700EF1180EB005056954BCC  Mastercard 510307******3344  12/29   approve (an OCT
                                                                                 destination)
-          4D0C64A1E700EF1180EB005056954BCC  Visa 416974******0064       12/29   64 credit amount
                                                                                 limit (an OCT
                                                                                 destination,
                                                                                 soft)
-          4D0C29A1E700EF1180EB005056954BCC  Mastercard 510307******0029  12/29   29 closed account
                                                                                 (an OCT
                                                                                 destination,
                                                                                 hard)
=========  ================================  ==========================  ======  =============

Every card with a TWO token can also be a payout's destination (``set-dst-token``), and a
credit asks it like a debit, except that a balance never limits a credit. The two declining
destinations use the PMO codes that speak of the receiving side: 64 "Credit amount limit"
(the reference: "Deposit limit is reached"; soft, the limit frees up later) and 29 "Closed
account" (hard, the card will never take the money). A PAN given to ``set-dst-token`` has no
registered card behind it and always approves.

The reference's test card expires 11/26; the sandbox's copy says 11/30 so the demo keeps
working after that month.

The behaviours are the gateway's business, the numbering is not: :meth:`Card.verdict` says
*what* happens (approved, expired, insufficient funds, declined) and each sandbox numbers
it its own way: :meth:`Card.answer` in TXPG's PMO codes, the Bizon sandbox in ISO 8583
response codes (``worker.sandbox.bizon.codes``). A card file is read in a
:class:`CardDialect`: TXPG's cards have a storedId or TWO token and a ``pmoResultCode``;
Bizon's are found by their PAN (kept masked) and decline with an ``isoResponseCode``.
"""

from __future__ import annotations

import enum
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from worker.errors import InvalidInput
from worker.money import Money, currency_exponent, parse_amount
from worker.sensitive import luhn_ok, mask_pan

APPROVED = 1
EXPIRED = 51
INSUFFICIENT_FUNDS = 59

_MASKED = re.compile(r"[0-9]{6}\*{3,9}[0-9]{4}", re.ASCII)
_ZERO = re.compile(r"0+(\.0+)?", re.ASCII)
_EXPIRY = re.compile(r"(0[1-9]|1[0-2])([0-9]{2})", re.ASCII)


class Verdict(enum.Enum):
    """What a card does with a money movement, before any gateway numbers it."""

    APPROVED = "approved"
    EXPIRED = "expired"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    DECLINED = "declined"  #: the card's own decline code says why


#: TXPG's PMO code for each verdict but DECLINED (the card says which code then).
_PMO_CODES = {
    Verdict.APPROVED: APPROVED,
    Verdict.EXPIRED: EXPIRED,
    Verdict.INSUFFICIENT_FUNDS: INSUFFICIENT_FUNDS,
}


_ISO_CODE = re.compile(r"[0-9A-Z]{2}", re.ASCII)


@dataclass(frozen=True, slots=True)
class CardDialect:
    """How one gateway's cards file is written."""

    code_key: str  #: the JSON key of a ``decline`` card's code
    needs_token: bool  #: a card must have a storedId or TWO token (else: found by its PAN)
    currency: str  #: a balance's currency when the entry names none


TXPG_CARDS = CardDialect("pmoResultCode", needs_token=True, currency="AZN")
BIZON_CARDS = CardDialect("isoResponseCode", needs_token=False, currency="USD")


class Behaviour(enum.StrEnum):
    APPROVE = "approve"  #: approved unless expired
    DECLINE = "decline"  #: always declined with the card's ``pmoResultCode``
    INSUFFICIENT_FUNDS = "insufficient_funds"  #: 59 until the balance covers the debit


@dataclass(slots=True)
class Card:
    """One stored card. Mutable only through :class:`CardRegistry` (its balance)."""

    display_name: str  #: masked PAN, ``416974******1778``
    expiry: str  #: ``MMYY``
    brand: str
    behaviour: Behaviour = Behaviour.APPROVE
    stored_id: int | None = None
    rid_by_cofp: str | None = None
    decline_code: int | None = None  #: TXPG's PMO code, for ``decline``
    balance: Money | None = None  #: for ``insufficient_funds``; ``None`` means no limit
    iso_code: str | None = None  #: an ISO 8583 response code (``"43"``), for ``decline``

    def __post_init__(self) -> None:
        if (
            self.behaviour is Behaviour.DECLINE
            and self.decline_code in (None, 0, APPROVED)
            and self.iso_code in (None, "00")
        ):
            raise InvalidInput("a 'decline' card needs a pmoResultCode that is not 0 or 1")
        if self.behaviour is Behaviour.INSUFFICIENT_FUNDS and self.balance is None:
            self.balance = Money(0, "AZN")

    def expired(self, now: datetime) -> bool:
        """True once the expiry month is over (a card is valid through its last day)."""
        month, year = int(self.expiry[:2]), 2000 + int(self.expiry[2:])
        return (now.year, now.month) > (year, month)

    def verdict(self, money: Money, now: datetime, *, debit: bool) -> Verdict:
        """What this card does with ``money`` now, in the order of the module docstring."""
        if self.expired(now):
            return Verdict.EXPIRED
        if self.behaviour is Behaviour.DECLINE:
            return Verdict.DECLINED
        balance = self.balance
        short = balance is not None and (
            balance.currency != money.currency or balance.minor < money.minor
        )
        if debit and short:
            return Verdict.INSUFFICIENT_FUNDS
        return Verdict.APPROVED

    def answer(self, money: Money, now: datetime, *, debit: bool) -> int:
        """The PMO result code this card gives for moving ``money`` now (TXPG's numbering)."""
        verdict = self.verdict(money, now, debit=debit)
        if verdict is Verdict.DECLINED and self.decline_code is not None:
            return self.decline_code
        return _PMO_CODES.get(verdict, APPROVED)

    def key(self) -> str:
        """How the admin API names this card: its storedId, else its TWO token, else its
        masked PAN (a Bizon card)."""
        if self.stored_id is not None:
            return str(self.stored_id)
        return self.rid_by_cofp if self.rid_by_cofp is not None else self.display_name

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "storedId": self.stored_id,
            "ridByCofp": self.rid_by_cofp,
            "displayName": self.display_name,
            "expiry": self.expiry,
            "brand": self.brand,
            "behaviour": self.behaviour.value,
        }
        if self.decline_code is not None:
            data["pmoResultCode"] = self.decline_code
        if self.iso_code is not None:
            data["isoResponseCode"] = self.iso_code
        if self.balance is not None:
            data["balance"] = self.balance.to_gateway()
            data["currency"] = self.balance.currency
        return data


def valid_expiry(text: object) -> bool:
    """``MMYY`` with a real month."""
    return isinstance(text, str) and _EXPIRY.fullmatch(text) is not None


def brand_of(digits: str) -> str:
    if digits.startswith("4"):
        return "Visa"
    if digits[:1] in ("2", "5"):
        return "Mastercard"
    return "Card"


def card_from_json(data: Mapping[str, Any], dialect: CardDialect = TXPG_CARDS) -> Card:
    """Build a card from its JSON form (a cards file entry or an admin request).

    Keys: ``storedId`` and/or ``ridByCofp`` (at least one, in TXPG's dialect),
    ``displayName`` (masked) or ``pan`` (full, Luhn-checked, masked at once), ``expiry``
    (``MMYY``), ``brand``, ``behaviour``, the dialect's decline code (``pmoResultCode`` or
    ``isoResponseCode``, for ``decline``), ``balance`` and ``currency``.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("a card must be a JSON object")
    known = {"storedId", "ridByCofp", "displayName", "pan", "expiry", "brand", "behaviour"}
    known |= {dialect.code_key, "balance", "currency", "note"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"card has unknown keys {unknown}; known: {sorted(known)}")
    stored_id = data.get("storedId")
    if stored_id is not None and (type(stored_id) is not int or stored_id <= 0):
        raise InvalidInput(f"storedId must be a positive integer, got {stored_id!r}")
    rid = data.get("ridByCofp")
    if rid is not None and (not isinstance(rid, str) or not rid.isalnum()):
        raise InvalidInput("ridByCofp must be a string of letters and digits")
    if stored_id is None and rid is None and dialect.needs_token:
        raise InvalidInput("a card needs a storedId or a ridByCofp (TWO token)")
    display = _display_name(data)
    expiry = data.get("expiry")
    if not isinstance(expiry, str) or not valid_expiry(expiry):
        raise InvalidInput(f"expiry must be MMYY like '1130', got {expiry!r}")
    brand = data.get("brand", brand_of(display))
    if not isinstance(brand, str) or not brand:
        raise InvalidInput("brand must be a non-empty string")
    try:
        behaviour = Behaviour(data.get("behaviour", "approve"))
    except ValueError:
        choices = ", ".join(b.value for b in Behaviour)
        raise InvalidInput(f"behaviour must be one of {choices}") from None
    code, iso = _decline_code(data, behaviour, dialect)
    balance = None
    if behaviour is Behaviour.INSUFFICIENT_FUNDS:
        currency = data.get("currency", dialect.currency)
        raw = data.get("balance", "0")
        if isinstance(raw, str) and _ZERO.fullmatch(raw):
            currency_exponent(currency)
            balance = Money(0, currency)
        else:
            balance = parse_amount(raw, currency)
    elif "balance" in data:
        raise InvalidInput("balance is only for behaviour 'insufficient_funds'")
    return Card(display, expiry, brand, behaviour, stored_id, rid, code, balance, iso)


def _decline_code(
    data: Mapping[str, Any], behaviour: Behaviour, dialect: CardDialect
) -> tuple[int | None, str | None]:
    """The (PMO, ISO) decline code of an entry; only a ``decline`` card has one."""
    key = dialect.code_key
    code = data.get(key)
    if behaviour is not Behaviour.DECLINE:
        if code is not None:
            raise InvalidInput(f"{key} is only for behaviour 'decline'")
        return None, None
    if key == "isoResponseCode":
        if not isinstance(code, str) or not _ISO_CODE.fullmatch(code) or code == "00":
            raise InvalidInput(
                "a 'decline' card needs an isoResponseCode of two digits or capitals, not '00'"
            )
        return None, code
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if type(code) is not int or code in (0, APPROVED):
        raise InvalidInput("a 'decline' card needs a pmoResultCode that is not 0 or 1")
    return code, None


def _display_name(data: Mapping[str, Any]) -> str:
    if "pan" in data:
        pan = data["pan"]
        if not isinstance(pan, str) or not 13 <= len(pan) <= 19 or not luhn_ok(pan):
            raise InvalidInput("pan must be 13 to 19 digits passing the Luhn check")
        return mask_pan(pan)
    display = data.get("displayName")
    if not isinstance(display, str) or not _MASKED.fullmatch(display):
        raise InvalidInput("displayName must be a masked PAN like '416974******1778'")
    return display


def load_cards(source: Path | str | bytes, dialect: CardDialect = TXPG_CARDS) -> list[Card]:
    """Cards from a JSON file (a path) or JSON bytes: ``{"cards": [...]}`` or a bare list."""
    text = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"cards file is not valid JSON: {exc}") from None
    items = data.get("cards") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidInput('cards file must hold a list or {"cards": [...]}')
    return [card_from_json(item, dialect) for item in items]


def demo_cards() -> list[Card]:
    """The default demo cards shipped as ``cards.json`` (see the table above)."""
    return load_cards(resources.files(__package__).joinpath("cards.json").read_bytes())


class CardRegistry:
    """Cards by ``storedId``, by TWO token and by masked PAN. Every method takes the lock."""

    def __init__(self, cards: Iterable[Card], lock: threading.RLock) -> None:
        self._lock = lock
        self._initial = [replace(card) for card in cards]
        self._by_id: dict[int, Card] = {}
        self._by_rid: dict[str, Card] = {}
        self._by_display: dict[str, Card] = {}
        self._next_stored_id = 9001
        self.reset()

    def reset(self) -> None:
        """Forget registrations and top-ups: back to the cards given at start."""
        with self._lock:
            self._by_id.clear()
            self._by_rid.clear()
            self._by_display.clear()
            for card in self._initial:
                self.register(replace(card))

    def register(self, card: Card) -> Card:
        """Add or replace a card (by storedId, TWO token and masked PAN)."""
        with self._lock:
            if card.stored_id is not None:
                self._by_id[card.stored_id] = card
            if card.rid_by_cofp is not None:
                self._by_rid[card.rid_by_cofp.upper()] = card
            self._by_display[card.display_name] = card
            return card

    def new_stored_id(self) -> int:
        """A storedId no card has (for cards saved on the hosted payment page)."""
        with self._lock:
            while self._next_stored_id in self._by_id:
                self._next_stored_id += 1
            return self._next_stored_id

    def by_stored_id(self, stored_id: int) -> Card | None:
        with self._lock:
            return self._by_id.get(stored_id)

    def by_rid(self, rid: str) -> Card | None:
        with self._lock:
            return self._by_rid.get(rid.upper())

    def by_pan(self, pan: str) -> Card | None:
        """The card registered for a full PAN, found by its masked form (first six, last
        four): the sandbox never keeps a full PAN. The last one registered wins."""
        with self._lock:
            return self._by_display.get(mask_pan(pan))

    def find(self, key: str) -> Card | None:
        """A card by the admin API's key: a storedId, a masked PAN, else a TWO token."""
        with self._lock:
            if key.isdigit():
                return self._by_id.get(int(key))
            if "*" in key:
                return self._by_display.get(key)
            return self._by_rid.get(key.upper())

    def top_up(self, key: str, money: Money) -> Card:
        """Add ``money`` to a card's balance; the card must be ``insufficient_funds``."""
        with self._lock:
            card = self.find(key)
            if card is None:
                raise KeyError(key)
            if card.balance is None:
                raise InvalidInput(f"card {key} has no balance (behaviour {card.behaviour})")
            if card.balance.currency != money.currency:
                raise InvalidInput(
                    f"card {key} holds {card.balance.currency}, not {money.currency}"
                )
            card.balance = card.balance + money
            return replace(card)

    def spend(self, card: Card, money: Money, *, sign: int) -> None:
        """Take (``sign=-1``) or give back (``+1``) ``money`` on a card that has a balance."""
        with self._lock:
            if card.balance is not None and card.balance.currency == money.currency:
                card.balance = Money(card.balance.minor + sign * money.minor, money.currency)

    def snapshot(self) -> list[Card]:
        """Copies of every card, each once."""
        with self._lock:
            seen: dict[int, Card] = {}
            everything = [*self._by_id.values(), *self._by_rid.values()]
            for card in [*everything, *self._by_display.values()]:
                seen.setdefault(id(card), card)
            return [replace(card) for card in seen.values()]
