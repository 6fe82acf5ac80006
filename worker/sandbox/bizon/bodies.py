"""Reading Bizon request bodies strictly, field by field as the reference lists them.

Amounts are JSON numbers (``9.99``, read as ``Decimal``, never a float) or strings
(``"99.99"``), with at most the currency's decimals and above zero. A field the reference
does not list for an endpoint is ignored, as a gateway ignores what it does not know; a
listed field of the wrong shape is a ``validation`` error naming it. An empty body is ``{}``
(``PUT /orders/:id/charge`` and ``POST /orders/:id/complete3d20`` are sent without one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from worker.errors import InvalidInput
from worker.money import CURRENCY_EXPONENTS, Money, parse_amount
from worker.sandbox.bizon.errors import validation
from worker.sandbox.wire import loads
from worker.sensitive import luhn_ok

CLIENT_FIELDS = ("address", "city", "country", "email", "login", "name", "phone", "state", "zip")
MAX_CUSTOM_FIELDS = 10


def read_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = loads(body)
    except (ValueError, UnicodeDecodeError):
        raise validation("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise validation("the body must be a JSON object")
    return data


def options(data: dict[str, Any]) -> dict[str, Any]:
    """The request's ``options`` object (``{}`` when absent)."""
    return _object(data, "options")


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation(f"{key} must be an object")
    return value


def _text(data: dict[str, Any], key: str, path: str, *, limit: int = 255) -> str | None:
    """A string field; numbers are taken as their text (``"zip": 152589``)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise validation(f"{path} must be a string")
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise validation(f"{path} is longer than {limit} characters")
    return text


def flag(data: dict[str, Any], key: str, path: str) -> bool:
    """An option flag: ``1``/``0``, ``"1"``/``"0"`` or ``true``/``false``."""
    value = data.get(key)
    if value in (None, 0, "0", False, ""):
        return False
    if value in (1, "1", True):
        return True
    raise validation(f"{path} must be 0 or 1")


def currency(data: dict[str, Any], default: str) -> str:
    value = data.get("currency", default)
    if value not in CURRENCY_EXPONENTS:
        raise validation(f"currency must be one of {sorted(CURRENCY_EXPONENTS)}")
    return str(value)


def amount(data: dict[str, Any], money_currency: str, *, required: bool) -> Money | None:
    value = data.get("amount")
    if value is None:
        if required:
            raise validation("amount is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise validation('amount must be an amount like 9.99 or "9.99"')
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    try:
        return parse_amount(text, money_currency)
    except InvalidInput as exc:
        raise validation(f"amount: {exc}") from None


def pan(data: dict[str, Any]) -> str:
    value = data.get("pan")
    if not isinstance(value, str) or not 13 <= len(value) <= 19 or not luhn_ok(value):
        raise validation("pan must be a card number of 13 to 19 digits passing the Luhn check")
    return value


@dataclass(frozen=True, slots=True)
class CardFields:
    """``card.*`` of an authorize or credit request. The CVV is checked, never kept."""

    holder: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None


def card_fields(data: dict[str, Any], *, required: bool) -> CardFields:
    card = _object(data, "card")
    if required and not card:
        raise validation("card is required: expiration_month, expiration_year, cvv, holder")
    holder = _text(card, "holder", "card.holder", limit=40)
    if holder is not None and len(holder) < 2:
        raise validation("card.holder must be 2 to 40 characters")
    cvv = _text(card, "cvv", "card.cvv")
    if cvv is not None and not (cvv.isascii() and cvv.isdigit() and 3 <= len(cvv) <= 4):
        raise validation("card.cvv must be 3 or 4 digits")
    month = _number(card, "expiration_month", "card.expiration_month", required=required)
    year = _number(card, "expiration_year", "card.expiration_year", required=required)
    if month is not None and not 1 <= month <= 12:
        raise validation("card.expiration_month must be 1 to 12")
    if year is not None:
        year = year + 2000 if year < 100 else year
        if not 2000 <= year <= 2099:
            raise validation("card.expiration_year must be a year like 2030")
    return CardFields(holder, month, year)


def _number(data: dict[str, Any], key: str, path: str, *, required: bool) -> int | None:
    value = data.get(key)
    if value is None:
        if required:
            raise validation(f"{path} is required")
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 4:
        return int(value)
    if type(value) is int and value >= 0:
        return value
    raise validation(f"{path} must be a number")


def cvv(data: dict[str, Any]) -> None:
    """A rebill's top-level ``cvv``: optional, checked, never kept."""
    value = _text(data, "cvv", "cvv")
    if value is not None and not (value.isascii() and value.isdigit() and 3 <= len(value) <= 4):
        raise validation("cvv must be 3 or 4 digits")


@dataclass(slots=True)
class OrderFields:
    """The optional fields authorize, create, token_pay and credit share."""

    description: str | None = None
    merchant_order_id: str | None = None
    segment: str | None = None
    client: dict[str, str] = field(default_factory=dict)
    location: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    force3d: bool = False
    auto_charge: bool = False
    secure3d20: bool = False  #: ``options.secure3d20_return_url`` given: 3-D Secure 2.0


def order_fields(data: dict[str, Any]) -> OrderFields:
    options = _object(data, "options")
    custom = _object(data, "custom_fields")
    if len(custom) > MAX_CUSTOM_FIELDS:
        raise validation(f"custom_fields holds at most {MAX_CUSTOM_FIELDS} values")
    return OrderFields(
        description=description(data),
        merchant_order_id=merchant_order_id(data),
        segment=_text(data, "segment", "segment"),
        client=client(data),
        location=location(data),
        custom_fields=dict(custom),
        force3d=flag(options, "force3d", "options.force3d"),
        auto_charge=flag(options, "auto_charge", "options.auto_charge"),
        secure3d20=bool(_text(options, "secure3d20_return_url", "options.secure3d20_return_url")),
    )


def merchant_order_id(data: dict[str, Any]) -> str | None:
    value = _text(data, "merchant_order_id", "merchant_order_id")
    if value is not None and "," in value:
        # the listing filter takes a comma-separated list: an id with a comma is unfindable
        raise validation("merchant_order_id must not contain a comma")
    return value


def description(data: dict[str, Any]) -> str | None:
    return _text(data, "description", "description")


def client(data: dict[str, Any]) -> dict[str, str]:
    given = _object(data, "client")
    found = {key: _text(given, key, f"client.{key}") for key in CLIENT_FIELDS}
    return {key: value for key, value in found.items() if value is not None}


def location(data: dict[str, Any]) -> dict[str, str]:
    ip = _text(_object(data, "location"), "ip", "location.ip", limit=45)
    return {} if ip is None else {"ip": ip}


def dsrp(data: dict[str, Any]) -> str:
    """token_pay's ``dsrp``: the wallet type; the token itself is not kept."""
    given = _object(data, "dsrp")
    kind = given.get("type")
    if kind not in ("apple_pay", "google_pay"):
        raise validation("dsrp.type must be apple_pay or google_pay")
    token = given.get("token")
    if not isinstance(token, str) or not token:
        raise validation("dsrp.token is required")
    return str(kind)
