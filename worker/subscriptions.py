"""Subscriptions: what a customer pays, with which saved card, how often. Pure: no I/O.

A subscription is validated as a whole when it is built (:meth:`Subscription.create`), so a
rejected input changes nothing and the error says which field is wrong and why. Stored as a
Redis hash of strings (:meth:`to_hash` / :meth:`from_hash`); the amount as integer minor units.

Cadence fields are kept as given and validated by ``worker.periods.parse_cadence``; an empty
cadence means the subscription is charged only on request (``billing charge``).

Two fields belong to the scheduler: ``cursor``, the last period it recorded (opened or
skipped), and ``pauses``, the pause history it needs to skip periods that fell due while
paused. The stored hash leaves out the id (the key holds it) and every field still at its
default, which keeps a subscription under 512 bytes of Redis memory.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from worker.errors import InvalidInput
from worker.money import Money, currency_exponent, parse_amount

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
_LANGUAGES = ("az", "en", "ru")
GATEWAYS = ("txpg", "bizon")


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"  #: periods are charged when due
    PAUSED = "paused"  #: nothing is charged; periods that fall due are recorded as skipped
    PAST_DUE = "past_due"  #: dunning ran out for a period; later periods are still charged
    NEEDS_NEW_CARD = "needs_new_card"  #: a hard decline: nothing is charged until the card changes
    CANCELLED = "cancelled"  #: final


#: Statuses in which a due period may be charged.
CHARGEABLE = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})


def validate_id(value: object, what: str = "id") -> str:
    """1-64 ASCII letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r} is invalid: use 1-64 ASCII letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def validate_stored_id(value: object) -> int:
    """A TXPG ``storedId``: a positive integer (given as an int or a string of ASCII digits)."""
    if isinstance(value, bool):
        raise InvalidInput("stored_id must be a positive integer")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if not isinstance(value, int) or value <= 0 or value >= 10**18:
        raise InvalidInput(f"stored_id {value!r} is invalid: it must be a positive integer")
    return value


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    customer: str
    stored_id: int
    amount: Money
    description: str = ""
    language: str = "az"
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    gateway: str = "txpg"
    cadence: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0  #: ms since the epoch
    updated_at: int = 0
    cursor: str = ""  #: the last period key the scheduler recorded ("" before the first)
    #: pause history, oldest first: (paused_at, resumed_at) in ms, None while still paused
    pauses: tuple[tuple[int, int | None], ...] = ()
    #: the card on Bizon: the id of an earlier (customer-present) order to rebill; "" if none
    parent_order: str = ""

    def card_ref(self, gateway: str | None = None) -> str:
        """The card reference ``gateway`` (default: the subscription's own) charges: TXPG's
        storedId, Bizon's parent order id; "" when the subscription holds none there.
        """
        name = gateway or self.gateway
        if name == "bizon":
            return self.parent_order
        return str(self.stored_id) if self.stored_id else ""

    def cards(self) -> dict[str, str]:
        """Every gateway's card reference this subscription holds."""
        return {name: ref for name in GATEWAYS if (ref := self.card_ref(name))}

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def chargeable(self) -> bool:
        return self.status in CHARGEABLE

    @classmethod
    def create(
        cls,
        *,
        id: str,
        customer: str,
        stored_id: object = None,
        amount: str,
        currency: str,
        description: str = "",
        language: str = "az",
        gateway: str = "txpg",
        cadence: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        now_ms: int = 0,
        parent_order: str = "",
    ) -> Subscription:
        """Validate every field; raise :class:`InvalidInput` naming the first bad one."""
        from worker.periods import parse_cadence  # periods imports this module

        currency_exponent(currency)  # an unknown (or unhashable) currency is named, not a crash
        money = parse_amount(amount, currency)
        cadence_map = _strings(cadence or {}, "cadence")
        if cadence_map:
            parse_cadence(cadence_map)
        gateway = _choice(gateway, GATEWAYS, "gateway")
        parent = str(parent_order or "")
        if parent and not (parent.isascii() and parent.isdigit() and len(parent) <= 30):
            raise InvalidInput(f"parent_order {parent!r} is invalid: it must be an order id")
        if gateway == "bizon" and not parent:
            raise InvalidInput("a bizon subscription needs parent_order (an earlier order's id)")
        none_given = stored_id is None or stored_id == ""
        stored = 0 if none_given and gateway != "txpg" else validate_stored_id(stored_id)
        return cls(
            id=validate_id(id, "subscription id"),
            customer=validate_id(customer, "customer"),
            stored_id=stored,
            amount=money,
            description=_text(description, "description", 255),
            language=_choice(language, _LANGUAGES, "language"),
            gateway=gateway,
            cadence=cadence_map,
            metadata=_strings(metadata or {}, "metadata"),
            created_at=now_ms,
            updated_at=now_ms,
            parent_order=parent,
        )

    def with_status(self, status: SubscriptionStatus, now_ms: int) -> Subscription:
        return replace(self, status=status, updated_at=now_ms)

    def to_hash(self) -> dict[str, str]:
        """The stored hash: no ``id`` (the key holds it), and no field at its default."""
        out = {
            "customer": self.customer,
            "stored_id": str(self.stored_id),
            "amount_minor": str(self.amount.minor),
            "currency": self.amount.currency,
            "status": self.status.value,
            "created_at": str(self.created_at),
            "updated_at": str(self.updated_at),
        }
        optional = {
            "description": self.description,
            "language": "" if self.language == "az" else self.language,
            "gateway": "" if self.gateway == "txpg" else self.gateway,
            "cadence": _compact(self.cadence),
            "metadata": _compact(self.metadata),
            "cursor": self.cursor,
            "pauses": format_pauses(self.pauses),
            "parent_order": self.parent_order,
        }
        out.update({name: value for name, value in optional.items() if value})
        return out

    @classmethod
    def from_hash(cls, data: Mapping[str, str], sub_id: str) -> Subscription:
        return cls(
            id=sub_id,
            customer=data["customer"],
            stored_id=int(data["stored_id"]),
            amount=Money(int(data["amount_minor"]), data["currency"]),
            description=data.get("description", ""),
            language=data.get("language") or "az",
            status=SubscriptionStatus(data["status"]),
            gateway=data.get("gateway") or "txpg",
            cadence=json.loads(data.get("cadence") or "{}"),
            metadata=json.loads(data.get("metadata") or "{}"),
            created_at=int(data.get("created_at", "0")),
            updated_at=int(data.get("updated_at", "0")),
            cursor=data.get("cursor", ""),
            pauses=parse_pauses(data.get("pauses", "")),
            parent_order=data.get("parent_order", ""),
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-able view for the CLI and events: no secrets live on a subscription."""
        return {
            "id": self.id,
            "customer": self.customer,
            "stored_id": self.stored_id,
            "amount": self.amount.to_gateway(),
            "currency": self.currency,
            "status": self.status.value,
            "gateway": self.gateway,
            "parent_order": self.parent_order,
            "description": self.description,
            "language": self.language,
            "cadence": dict(self.cadence),
            "metadata": dict(self.metadata),
        }


def _compact(values: Mapping[str, str]) -> str:
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":")) if values else ""


def format_pauses(pauses: tuple[tuple[int, int | None], ...]) -> str:
    """``paused-resumed`` spans in ms, comma-separated; an open pause ends with ``-``."""
    return ",".join(f"{low}-{'' if high is None else high}" for low, high in pauses)


def parse_pauses(text: str) -> tuple[tuple[int, int | None], ...]:
    spans: list[tuple[int, int | None]] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        spans.append((int(low), int(high) if high else None))
    return tuple(spans)


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    # Cc: C0, DEL and C1 controls; Cs: lone surrogates, which Redis (UTF-8) cannot store.
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidInput(f"{what} contains control characters or invalid unicode")
    return value


def _choice(value: object, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _strings(values: Mapping[str, Any], what: str) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{what} must be a mapping of key to text")
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not _ID.fullmatch(key):
            raise InvalidInput(f"{what} key {key!r} is invalid")
        out[key] = _text(value, f"{what} {key}", 500)
    return out


PERIOD_KEY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def validate_period(value: object) -> str:
    """A period key: the period's start date, ``YYYY-MM-DD``, a real calendar date."""
    if not isinstance(value, str) or not PERIOD_KEY.fullmatch(value):
        raise InvalidInput(f"period {value!r} is invalid: use the start date, YYYY-MM-DD")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"period {value!r} is not a calendar date") from None
    return value
