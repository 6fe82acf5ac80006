"""Typed Bizon requests and responses.

Responses come in envelopes (``{"orders": [...]}``, ``{"operations": [...]}``,
``{"exchange_rates": [...]}``) and are parsed from strictly decoded JSON into the frozen
dataclasses below. Amounts arrive as strings (``"9.99"``, ``"-9.99"`` in a refund's cashflow)
and become :class:`~worker.money.Money` exactly, in the currency of the object that carries
them; a JSON number is accepted too, decoded exactly (``int`` or ``Decimal``), never a float.

Requests render amounts as strings with the currency's full exponent (``"9.99"``), as the
reference's ``/orders/credit`` example does; its other curl examples write a JSON number
(``9.99``), which a float-free encoder cannot produce exactly.

Secrets (a PAN, a CVV, the 3-D Secure CAVV) are :class:`~worker.sensitive.Secret`; a PAN in a
response is kept masked only. Customer details (name, e-mail, phone, address) are left out of
``repr`` so a logged object does not carry them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from worker.errors import InvalidInput
from worker.gateway.bizon.codes import (
    PAID_STATUSES,
    Action,
    IsoCode,
    OperationStatus,
    OperationType,
    OrderStatus,
    allows,
    iso_code,
)
from worker.gateway.txpg.fields import FieldError, Fields
from worker.money import Money
from worker.sensitive import CardNumber, Secret, mask_pan

_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
_EMPTY: Mapping[str, Any] = MappingProxyType({})
T = TypeVar("T")


class Reader(Fields):
    """:class:`Fields` with Bizon's amounts (strings) and nested readers of the same kind."""

    __slots__ = ()

    def obj(self, key: str) -> Reader:
        return Reader(self._get(key, True), f"{self.path}.{key}")

    def opt_obj(self, key: str) -> Reader | None:
        value = self._get(key, False)
        return None if value is None else Reader(value, f"{self.path}.{key}")

    def objs(self, key: str) -> list[Reader]:  # type: ignore[override]
        value = self._get(key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            raise FieldError(f"{self.path}.{key} must be a list")
        return [Reader(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]

    def decimal(self, key: str) -> Decimal:
        """A decimal written as a string (``"75.132109"``) or an exact JSON number."""
        value = self._get(key, True)
        if isinstance(value, str) and _AMOUNT.fullmatch(value):
            return Decimal(value)
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return Decimal(value)
        raise FieldError(f"{self.path}.{key} must be a decimal number")

    def amount(self, key: str, currency: str) -> Money:
        value = self.decimal(key)
        try:
            return Money.from_gateway(value, currency)
        except ValueError as exc:  # includes InvalidInput for an unknown currency
            raise FieldError(f"{self.path}.{key}: {exc}") from None

    def opt_amount(self, key: str, currency: str) -> Money | None:
        return self.amount(key, currency) if self.has(key) else None

    def names(self) -> list[str]:
        return list(self._data)

    def mapping(self, key: str) -> Mapping[str, Any]:
        """A free-form object (``custom_fields``), read-only."""
        value = self._get(key, False)
        if value is None:
            return _EMPTY
        if not isinstance(value, dict):
            raise FieldError(f"{self.path}.{key} must be an object")
        return MappingProxyType(dict(value))


# ----------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True, slots=True)
class Pong:
    """``GET /ping``."""

    message: str
    date: str | None

    @classmethod
    def parse(cls, body: Reader) -> Pong:
        return cls(message=body.string("message"), date=body.opt_string("date"))


@dataclass(frozen=True, slots=True)
class CardInfo:
    type: str | None  #: visa, mastercard, mir, ...
    subtype: str | None  #: classic, standard, electron, ...
    expiration: str | None  #: ``"10/22"``
    holder: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, card: Reader) -> CardInfo:
        return cls(
            type=card.opt_string("type"),
            subtype=card.opt_string("subtype"),
            expiration=card.opt_string("expiration"),
            holder=card.opt_string("holder"),
        )


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The customer's details. Personal data: none of it is in ``repr``."""

    country: str | None
    name: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    city: str | None = field(default=None, repr=False)
    state: str | None = field(default=None, repr=False)
    zip: str | None = field(default=None, repr=False)
    login: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, client: Reader) -> ClientInfo:
        return cls(
            country=client.opt_string("country"),
            name=client.opt_string("name"),
            email=client.opt_string("email"),
            phone=client.opt_text("phone"),
            address=client.opt_string("address"),
            city=client.opt_string("city"),
            state=client.opt_string("state"),
            zip=client.opt_text("zip"),
            login=client.opt_string("login"),
        )


@dataclass(frozen=True, slots=True)
class IssuerInfo:
    bin: str | None
    country: str | None  #: ISO 3166-1 alpha-3
    title: str | None

    @classmethod
    def parse(cls, issuer: Reader) -> IssuerInfo:
        return cls(
            bin=issuer.opt_text("bin"),
            country=issuer.opt_string("country"),
            title=issuer.opt_string("title"),
        )


@dataclass(frozen=True, slots=True)
class LocationInfo:
    country: str | None
    city: str | None
    region: str | None
    ip: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, location: Reader) -> LocationInfo:
        return cls(
            country=location.opt_string("country"),
            city=location.opt_string("city"),
            region=location.opt_string("region"),
            ip=location.opt_string("ip"),
        )


@dataclass(frozen=True, slots=True)
class Secure3dInfo:
    reason: str | None  #: why 3-D Secure was used (``force3d``, ``dsrp``)
    scenario: str | None  #: ``full``, ``unknown``, ...
    authorization_status: str | None  #: ``Y``, ...
    version: str | None
    eci: str | None
    xid: str | None
    dsrp: str | None
    dsrp_type: str | None
    cavv: Secret[str] | None = None

    @classmethod
    def parse(cls, secure3d: Reader) -> Secure3dInfo:
        cavv = secure3d.opt_string("cavv")
        return cls(
            reason=secure3d.opt_string("reason"),
            scenario=secure3d.opt_string("scenario"),
            authorization_status=secure3d.opt_string("authorization_status"),
            version=secure3d.opt_text("version"),
            eci=secure3d.opt_text("eci"),
            xid=secure3d.opt_string("xid"),
            dsrp=secure3d.opt_text("dsrp"),
            dsrp_type=secure3d.opt_string("dsrp_type"),
            cavv=None if cavv is None else Secret(cavv),
        )


@dataclass(frozen=True, slots=True)
class Form3d:
    """The form the cardholder must submit to the ACS: ``action``, ``method`` and the hidden
    inputs (``MD``, ``PaReq``, ``TermUrl`` for 3-D Secure 1; ``threeDSSessionData`` for 2).
    """

    action: str | None
    method: str | None
    inputs: Mapping[str, str]

    @classmethod
    def parse(cls, form: Reader) -> Form3d:
        inputs = {k: form.text(k) for k in form.names() if k not in {"action", "method"}}
        return cls(form.opt_string("action"), form.opt_string("method"), MappingProxyType(inputs))


@dataclass(frozen=True, slots=True)
class Cashflow:
    """Financial details of an operation, in the accounting ``currency``."""

    currency: str
    amount: Money | None
    fee: Money | None
    incoming: Money | None
    receivable: Money | None
    reserve: Money | None

    @classmethod
    def parse(cls, cashflow: Reader) -> Cashflow:
        ccy = cashflow.string("currency")
        return cls(
            currency=ccy,
            amount=cashflow.opt_amount("amount", ccy),
            fee=cashflow.opt_amount("fee", ccy),
            incoming=cashflow.opt_amount("incoming", ccy),
            receivable=cashflow.opt_amount("receivable", ccy),
            reserve=cashflow.opt_amount("reserve", ccy),
        )


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of an order (``operations[]``), or a row of ``GET /operations/``."""

    type: OperationType
    type_raw: str
    status: OperationStatus
    status_raw: str
    amount: Money
    iso_response_code: str | None
    iso_message: str | None
    created: str | None
    auth_code: str | None
    arn: str | None
    trace_id: str | None
    id: str | None
    order_id: str | None  #: only in ``GET /operations/``
    cashflow: Cashflow | None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def succeeded(self) -> bool:
        return self.status is OperationStatus.SUCCESS

    def iso(self, card_type: str | None = None) -> IsoCode | None:
        """The response code's table entry (65 depends on the card brand)."""
        code = self.iso_response_code
        return None if code is None else iso_code(code, card_type)

    @classmethod
    def parse(cls, op: Reader, default_currency: str | None = None) -> Operation:
        currency = op.opt_string("currency") or default_currency
        if currency is None:
            raise FieldError(f"{op.path}.currency is missing")
        type_raw, status_raw = op.string("type"), op.string("status")
        cashflow = op.opt_obj("cashflow")
        return cls(
            type=OperationType.parse(type_raw),
            type_raw=type_raw,
            status=OperationStatus.parse(status_raw),
            status_raw=status_raw,
            amount=op.amount("amount", currency),
            iso_response_code=op.opt_text("iso_response_code"),
            iso_message=op.opt_string("iso_message"),
            created=op.opt_string("created"),
            auth_code=op.opt_text("auth_code"),
            arn=op.opt_text("arn"),
            trace_id=op.opt_text("trace_id"),
            id=op.opt_text("id"),
            order_id=op.opt_text("order_id"),
            cashflow=Cashflow.parse(cashflow) if cashflow else None,
            extra=op.mapping("extra"),
        )


def _masked(pan: str | None) -> str | None:
    """A response's ``pan`` is masked already (``411111****1111``); if a full number ever
    came back, it is masked here, so no model holds one.
    """
    if pan is None or not pan.isdigit():
        return pan
    return mask_pan(pan)


@dataclass(frozen=True, slots=True)
class Order:
    """An order, as every order endpoint returns it (the expanded parts when asked for)."""

    id: str
    status: OrderStatus
    status_raw: str
    amount: Money
    amount_charged: Money | None
    amount_refunded: Money | None
    created: str | None
    updated: str | None
    description: str | None
    descriptor: str | None
    merchant_order_id: str | None
    segment: str | None
    auth_code: str | None
    rrn: str | None
    pan: str | None  #: masked
    card: CardInfo | None
    issuer: IssuerInfo | None
    location: LocationInfo | None
    secure3d: Secure3dInfo | None
    form3d: Form3d | None
    operations: tuple[Operation, ...]
    client: ClientInfo | None = field(default=None, repr=False)
    custom_fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, repr=False)
    form3d_html: str | None = field(default=None, repr=False)

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def paid(self) -> bool:
        return self.status in PAID_STATUSES

    @property
    def awaiting_customer(self) -> bool:
        """Prepared and waiting for the cardholder (3-D Secure form, payment page)."""
        return self.status is OrderStatus.PREPARED

    @property
    def card_type(self) -> str | None:
        return self.card.type if self.card else None

    @property
    def last_operation(self) -> Operation | None:
        return self.operations[-1] if self.operations else None

    def allows(self, action: Action) -> bool:
        return allows(self.status, action)

    @classmethod
    def parse(cls, order: Reader) -> Order:
        currency = order.string("currency")
        status_raw = order.string("status")
        card, client = order.opt_obj("card"), order.opt_obj("client")
        issuer, location = order.opt_obj("issuer"), order.opt_obj("location")
        secure3d, form3d = order.opt_obj("secure3d"), order.opt_obj("form3d")
        return cls(
            id=order.text("id"),
            status=OrderStatus.parse(status_raw),
            status_raw=status_raw,
            amount=order.amount("amount", currency),
            amount_charged=order.opt_amount("amount_charged", currency),
            amount_refunded=order.opt_amount("amount_refunded", currency),
            created=order.opt_string("created"),
            updated=order.opt_string("updated"),
            description=order.opt_string("description"),
            descriptor=order.opt_string("descriptor"),
            merchant_order_id=order.opt_text("merchant_order_id"),
            segment=order.opt_text("segment"),
            auth_code=order.opt_text("auth_code"),
            rrn=order.opt_text("rrn"),
            pan=_masked(order.opt_string("pan")),
            card=CardInfo.parse(card) if card else None,
            issuer=IssuerInfo.parse(issuer) if issuer else None,
            location=LocationInfo.parse(location) if location else None,
            secure3d=Secure3dInfo.parse(secure3d) if secure3d else None,
            form3d=Form3d.parse(form3d) if form3d else None,
            operations=tuple(Operation.parse(op, currency) for op in order.objs("operations")),
            client=ClientInfo.parse(client) if client else None,
            custom_fields=order.mapping("custom_fields"),
            form3d_html=order.opt_string("form3d_html"),
        )


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """A row of ``GET /exchange_rates/``. A rate is a ratio, not money: a ``Decimal``."""

    from_currency: str
    to_currency: str
    rate: Decimal

    @classmethod
    def parse(cls, row: Reader) -> ExchangeRate:
        return cls(row.string("from"), row.string("to"), row.decimal("rate"))


def parse_orders(body: Reader) -> tuple[Order, ...]:
    """The ``orders`` envelope (required, possibly empty)."""
    return tuple(Order.parse(o) for o in _envelope(body, "orders"))


def parse_order(body: Reader) -> Order:
    """The ``orders`` envelope of a call about one order: exactly one order in it."""
    orders = parse_orders(body)
    if len(orders) != 1:
        raise FieldError(f"body.orders must hold exactly one order, got {len(orders)}")
    return orders[0]


def parse_operations(body: Reader) -> tuple[Operation, ...]:
    """The ``operations`` envelope of ``GET /operations/``."""
    return tuple(Operation.parse(op) for op in _envelope(body, "operations"))


def parse_exchange_rates(body: Reader) -> tuple[ExchangeRate, ...]:
    return tuple(ExchangeRate.parse(r) for r in _envelope(body, "exchange_rates"))


def _envelope(body: Reader, key: str) -> list[Reader]:
    if key not in body.names():
        raise FieldError(f"{body.path}.{key} is missing")
    return body.objs(key)


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    """``POST /orders/create``: the new order, and the payment page from ``Location``."""

    order: Order
    payment_url: str | None

    @property
    def id(self) -> str:
        return self.order.id


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, and the absolute URL of the next one, if any."""

    items: tuple[T, ...]
    next_url: str | None


# ----------------------------------------------------------------------------------------
# Requests (rendered to JSON in ``operations.py``)


def _positive(amount: Money) -> None:
    if amount.minor <= 0:
        raise InvalidInput("an amount must be positive")


#: A card number, kept secret (only ``masked`` is ever shown): the same as TXPG's.
Pan = CardNumber


@dataclass(frozen=True, slots=True)
class CardDetails:
    """``card.*`` of an authorization (the PAN is sent apart, as ``pan``)."""

    expiration_month: int | None = None
    expiration_year: int | None = None
    holder: str | None = field(default=None, repr=False)
    cvv: Secret[str] | None = None

    def __post_init__(self) -> None:
        month, year = self.expiration_month, self.expiration_year
        if month is not None and not 1 <= month <= 12:
            raise InvalidInput("expiration_month must be 1 to 12")
        if year is not None and not 2000 <= year <= 2099:
            raise InvalidInput("expiration_year must be a four-digit year")
        if self.holder is not None and not 2 <= len(self.holder) <= 40:
            raise InvalidInput("a cardholder name has 2 to 40 characters")
        if self.cvv is not None:
            cvv = self.cvv.reveal()
            if not (cvv.isascii() and cvv.isdigit() and 3 <= len(cvv) <= 4):
                raise InvalidInput("a CVV is 3 or 4 ASCII digits")


@dataclass(frozen=True, slots=True)
class ClientDetails:
    """``client.*`` of a request. Personal data: none of it is in ``repr``."""

    country: str | None = None  #: ISO 3166-1 alpha-3
    name: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    city: str | None = field(default=None, repr=False)
    state: str | None = field(default=None, repr=False)
    zip: str | None = field(default=None, repr=False)
    login: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class OrderOptions:
    """``options.*``. Each endpoint takes only the options the reference lists for it; the
    request builders refuse the others (``operations.OPTIONS_BY_ENDPOINT``).
    """

    expiration_timeout: str | None = None  #: ``"30m"``
    force3d: bool | None = None
    auto_charge: bool | None = None
    language: str | None = None
    return_url: str | None = None
    template: str | None = None
    mobile: bool | None = None
    terminal: str | None = None
    apple_pay_enabled: bool | None = None
    google_pay_enabled: bool | None = None
    secure3d20_return_url: str | None = None
    exemption_mit: bool | None = None
    static_link: bool | None = None
    recurring: bool | None = None


@dataclass(frozen=True, slots=True)
class Secure3dData:
    """``secure3d.*`` of an authorization: a 3-D Secure result obtained elsewhere."""

    xid: str | None = None
    cavv: Secret[str] | None = None
    eci: str | None = None
    ds_trans_id: str | None = None


@dataclass(frozen=True, slots=True)
class RecurringDetails:
    """``recurring_details.*``. ``parent_order_id`` is for authorize only."""

    parent_order_id: str | None = None
    trace_id: str | None = None
    indicator: str | None = None  #: ``m101``, ...


def _custom_fields(values: Mapping[str, str]) -> None:
    if len(values) > 10:
        raise InvalidInput("at most 10 custom fields")


@dataclass(frozen=True, slots=True)
class CreateOrder:
    """``POST /orders/create``: an order waiting for the cardholder on the payment page."""

    amount: Money
    merchant_order_id: str | None = None
    segment: str | None = None
    description: str | None = None
    client: ClientDetails | None = None
    custom_fields: Mapping[str, str] = field(default_factory=dict)
    location_ip: str | None = None
    options: OrderOptions | None = None

    def __post_init__(self) -> None:
        _positive(self.amount)
        _custom_fields(self.custom_fields)


@dataclass(frozen=True, slots=True)
class Authorize:
    """``POST /orders/authorize``: a card payment (``auto_charge`` makes it one step)."""

    amount: Money
    pan: Pan
    card: CardDetails = CardDetails()
    location_ip: str | None = None
    merchant_order_id: str | None = None
    segment: str | None = None
    description: str | None = None
    client: ClientDetails | None = None
    custom_fields: Mapping[str, str] = field(default_factory=dict)
    options: OrderOptions | None = None
    secure3d: Secure3dData | None = None
    recurring_details: RecurringDetails | None = None

    def __post_init__(self) -> None:
        _positive(self.amount)
        _custom_fields(self.custom_fields)


@dataclass(frozen=True, slots=True)
class Rebill:
    """``POST /orders/:id/rebill``: a repeated payment with the card of an earlier order.
    The gateway answers with a NEW order; the amount's currency is the earlier order's.
    """

    amount: Money
    cvv: Secret[str] | None = None
    location_ip: str | None = None
    recurring: bool | None = None  #: ``options.recurring``
    trace_id: str | None = None  #: ``recurring_details.trace_id``
    indicator: str | None = None  #: ``recurring_details.indicator``
    #: not in the reference's rebill parameters: sent only to a gateway known to honour them
    merchant_order_id: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        _positive(self.amount)


@dataclass(frozen=True, slots=True)
class Credit:
    """``POST /orders/:id/credit`` and ``POST /orders/credit`` (OCT, a payout to a card).
    "Optional parameters are the same as for Authorize" (except the card, for the linked one).
    """

    amount: Money
    location_ip: str | None = None
    merchant_order_id: str | None = None
    segment: str | None = None
    description: str | None = None
    client: ClientDetails | None = None
    custom_fields: Mapping[str, str] = field(default_factory=dict)
    options: OrderOptions | None = None
    card: CardDetails | None = None  #: ``/orders/credit`` only

    def __post_init__(self) -> None:
        _positive(self.amount)
        _custom_fields(self.custom_fields)


class Expand(enum.StrEnum):
    """``expand`` of the order endpoints: the extra objects to show."""

    CARD = "card"
    CLIENT = "client"
    LOCATION = "location"
    CUSTOM_FIELDS = "custom_fields"
    ISSUER = "issuer"
    SECURE3D = "secure3d"
    OPERATIONS_CASHFLOW = "operations.cashflow"


ALL_EXPANDS: tuple[Expand, ...] = tuple(Expand)


class OperationExpand(enum.StrEnum):
    """``expand`` of ``GET /operations/``."""

    CASHFLOW = "cashflow"
    EXTRA = "extra"


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Filters of ``GET /orders/``. Lists are sent comma-separated; times are the gateway's
    clock (the reference names no zone) as ``YYYY-MM-DD HH:MM:SS``.
    """

    expand: tuple[Expand, ...] = ()
    status: tuple[OrderStatus, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    merchant_order_id: tuple[str, ...] = ()
    card_type: tuple[str, ...] = ()
    card_subtype: tuple[str, ...] = ()
    location_ip: tuple[str, ...] = ()
    client_name: str | None = field(default=None, repr=False)  #: a part of the name
    client_email: str | None = field(default=None, repr=False)  #: a part of the e-mail
    issuer_country: str | None = None
    issuer_bin: tuple[str, ...] = ()
    issuer_title: str | None = None  #: a part of the issuer's name

    def __post_init__(self) -> None:
        if OrderStatus.UNKNOWN in self.status:
            raise InvalidInput("cannot filter by an unknown status")


@dataclass(frozen=True, slots=True)
class OperationFilter:
    """Filters of ``GET /operations/``."""

    expand: tuple[OperationExpand, ...] = ()
    status: tuple[OperationStatus, ...] = ()
    type: tuple[OperationType, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None

    def __post_init__(self) -> None:
        if OperationStatus.UNKNOWN in self.status or OperationType.UNKNOWN in self.type:
            raise InvalidInput("cannot filter by an unknown status or type")
