"""The sans-I/O core of the Bizon client, shared by the sync and async clients.

Each builder returns a :class:`Call`: method, path (with its query string), JSON body and the
parser of the answer. :func:`interpret` turns a response into the parsed model or raises the
typed error (through ``errors.py``, the one place for that mapping); :func:`next_page` follows
a listing's ``Link: <...>; rel="next"`` header, on the gateway's own origin only.

Paths, methods, bodies and parameters follow ``docs/reference/orders-gateway-api.txt``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode, urljoin

import httpx

from worker.errors import InvalidInput, MalformedResponse
from worker.gateway.bizon import errors
from worker.gateway.bizon.codes import Action
from worker.gateway.bizon.errors import GATEWAY
from worker.gateway.bizon.models import (
    Authorize,
    CardDetails,
    ClientDetails,
    CreatedOrder,
    CreateOrder,
    Credit,
    ExchangeRate,
    Expand,
    Operation,
    OperationFilter,
    Order,
    OrderFilter,
    OrderOptions,
    Page,
    Pan,
    Pong,
    Reader,
    Rebill,
    parse_exchange_rates,
    parse_operations,
    parse_order,
    parse_orders,
)
from worker.gateway.txpg import json
from worker.gateway.txpg.fields import FieldError
from worker.money import Money
from worker.sensitive import Secret

__all__ = ["Call", "Reply", "interpret", "next_page"]

T = TypeVar("T")

_ORDER_ID = re.compile(r"[0-9A-Za-z_-]{1,64}", re.ASCII)
_TIME = "%Y-%m-%d %H:%M:%S"

#: The ``options.*`` each endpoint documents; others are refused before sending.
OPTIONS_BY_ENDPOINT: dict[str, frozenset[str]] = {
    "create_order": frozenset(
        {
            "expiration_timeout",
            "force3d",
            "auto_charge",
            "language",
            "return_url",
            "template",
            "mobile",
            "terminal",
            "apple_pay_enabled",
            "google_pay_enabled",
            "secure3d20_return_url",
            "exemption_mit",
            "static_link",
        }
    ),
    "authorize": frozenset(
        {
            "force3d",
            "return_url",
            "auto_charge",
            "terminal",
            "recurring",
            "secure3d20_return_url",
            "exemption_mit",
        }
    ),
}
# Credits take "the same optional parameters as Authorize".
OPTIONS_BY_ENDPOINT["credit"] = OPTIONS_BY_ENDPOINT["authorize"]
OPTIONS_BY_ENDPOINT["credit_pan"] = OPTIONS_BY_ENDPOINT["authorize"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as the parsers see it: status, headers, the request's URL and the body."""

    status: int
    headers: httpx.Headers
    url: str
    body: Reader


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and how to read its answer. ``repr`` never shows the body."""

    op: str
    method: str
    path: str  #: relative to the base URL, query included; absolute for a next page
    parse: Callable[[Reply], T] = field(repr=False)
    body: dict[str, Any] | None = field(default=None, repr=False)
    order_id: str | None = None
    #: the action on an existing order, for the state check of a refusal
    action: Action | None = None
    #: whether the answer is an order whose last operation says how the call went
    checks_outcome: bool = False

    def content(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body)


# ----------------------------------------------------------------------------------------
# Rendering


def _order_id(order_id: str) -> str:
    if not (isinstance(order_id, str) and _ORDER_ID.fullmatch(order_id)):
        raise InvalidInput("an order id is 1 to 64 ASCII letters, digits, '-' or '_'")
    return order_id


def _amount(amount: Money) -> str:
    return amount.to_gateway()


def _query(pairs: Iterable[tuple[str, str]]) -> str:
    """A query string with the reference's literal commas (``expand=card,client``)."""
    items = [(k, v) for k, v in pairs if v]
    return "?" + urlencode(items, safe=",", quote_via=quote) if items else ""


def _csv(values: Iterable[str]) -> str:
    return ",".join(values)


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime(_TIME)


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _client(client: ClientDetails) -> dict[str, Any]:
    return _drop_none({f.name: getattr(client, f.name) for f in fields(client)})


def _options(endpoint: str, options: OrderOptions) -> dict[str, Any]:
    allowed = OPTIONS_BY_ENDPOINT[endpoint]
    rendered: dict[str, Any] = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if value is None:
            continue
        if f.name not in allowed:
            raise InvalidInput(f"options.{f.name} is not a parameter of {endpoint}")
        rendered[f.name] = int(value) if isinstance(value, bool) else value
    return rendered


def _card(card: CardDetails) -> dict[str, Any]:
    return _drop_none(
        {
            "cvv": card.cvv.reveal() if card.cvv is not None else None,
            "holder": card.holder,
            "expiration_month": card.expiration_month,
            "expiration_year": card.expiration_year,
        }
    )


def _common(
    endpoint: str,
    amount: Money,
    *,
    location_ip: str | None,
    merchant_order_id: str | None,
    segment: str | None,
    description: str | None,
    client: ClientDetails | None,
    custom_fields: Mapping[str, str],
    options: OrderOptions | None,
) -> dict[str, Any]:
    """The parameters create, authorize and the credits share, in the reference's names."""
    body: dict[str, Any] = {"amount": _amount(amount), "currency": amount.currency}
    body.update(
        _drop_none(
            {
                "merchant_order_id": merchant_order_id,
                "segment": segment,
                "description": description,
            }
        )
    )
    if client is not None:
        body["client"] = _client(client)
    if custom_fields:
        body["custom_fields"] = dict(custom_fields)
    if location_ip is not None:
        body["location"] = {"ip": location_ip}
    if options is not None:
        rendered = _options(endpoint, options)
        if rendered:
            body["options"] = rendered
    return body


# ----------------------------------------------------------------------------------------
# Parsers


def _order(reply: Reply) -> Order:
    return parse_order(reply.body)


def _acted(op: str) -> Callable[[Reply], Order]:
    """The parser of an action's answer: the order, unless its last operation failed."""

    def parse(reply: Reply) -> Order:
        order = parse_order(reply.body)
        error = errors.outcome_error(op, order, reply.status)
        if error is not None:
            raise error
        return order

    return parse


def _created(reply: Reply) -> CreatedOrder:
    return CreatedOrder(parse_order(reply.body), reply.headers.get("location"))


def _pong(reply: Reply) -> Pong:
    return Pong.parse(reply.body)


def _orders_page(reply: Reply) -> Page[Order]:
    return Page(parse_orders(reply.body), next_link(reply.headers, reply.url))


def _operations_page(reply: Reply) -> Page[Operation]:
    return Page(parse_operations(reply.body), next_link(reply.headers, reply.url))


def _rates(reply: Reply) -> tuple[ExchangeRate, ...]:
    return parse_exchange_rates(reply.body)


# ----------------------------------------------------------------------------------------
# Builders, one per endpoint


def ping() -> Call[Pong]:
    return Call("ping", "GET", "ping", _pong)


def get_order(order_id: str, expand: Iterable[Expand] = ()) -> Call[Order]:
    """``GET /orders/:id?expand=...``."""
    path = f"orders/{_order_id(order_id)}" + _query([("expand", _csv(expand))])
    return Call("get_order", "GET", path, _order, order_id=order_id)


def list_orders(flt: OrderFilter | None = None) -> Call[Page[Order]]:
    """The first page of ``GET /orders/``; the client follows the ``next`` links."""
    flt = flt or OrderFilter()
    query = [
        ("expand", _csv(flt.expand)),
        ("status", _csv(flt.status)),
        ("created_from", _time(flt.created_from)),
        ("created_to", _time(flt.created_to)),
        ("merchant_order_id", _csv(flt.merchant_order_id)),
        ("card.type", _csv(flt.card_type)),
        ("card.subtype", _csv(flt.card_subtype)),
        ("location.ip", _csv(flt.location_ip)),
        ("client.name", flt.client_name or ""),
        ("client.email", flt.client_email or ""),
        ("issuer.country", flt.issuer_country or ""),
        ("issuer.bin", _csv(flt.issuer_bin)),
        ("issuer.title", flt.issuer_title or ""),
    ]
    return Call("list_orders", "GET", "orders/" + _query(query), _orders_page)


def list_operations(flt: OperationFilter | None = None) -> Call[Page[Operation]]:
    """The first page of ``GET /operations/``."""
    flt = flt or OperationFilter()
    query = [
        ("expand", _csv(flt.expand)),
        ("status", _csv(flt.status)),
        ("type", _csv(flt.type)),
        ("created_from", _time(flt.created_from)),
        ("created_to", _time(flt.created_to)),
    ]
    return Call("list_operations", "GET", "operations/" + _query(query), _operations_page)


def exchange_rates() -> Call[tuple[ExchangeRate, ...]]:
    """``GET /exchange_rates/`` (the reference documents no parameters of its own)."""
    return Call("exchange_rates", "GET", "exchange_rates/", _rates)


def create_order(request: CreateOrder) -> Call[CreatedOrder]:
    """``POST /orders/create``: 201, the order in the body, the payment page in Location."""
    body = _common(
        "create_order",
        request.amount,
        location_ip=request.location_ip,
        merchant_order_id=request.merchant_order_id,
        segment=request.segment,
        description=request.description,
        client=request.client,
        custom_fields=request.custom_fields,
        options=request.options,
    )
    return Call("create_order", "POST", "orders/create", _created, body)


def authorize(request: Authorize) -> Call[Order]:
    """``POST /orders/authorize``: 200 when done, 201 when the cardholder must pass 3-D
    Secure (the order is ``prepared`` and carries ``form3d``).
    """
    body = _common(
        "authorize",
        request.amount,
        location_ip=request.location_ip,
        merchant_order_id=request.merchant_order_id,
        segment=request.segment,
        description=request.description,
        client=request.client,
        custom_fields=request.custom_fields,
        options=request.options,
    )
    body["pan"] = request.pan.pan.reveal()
    card = _card(request.card)
    if card:
        body["card"] = card
    if request.secure3d is not None:
        s3d = request.secure3d
        body["secure3d"] = _drop_none(
            {
                "xid": s3d.xid,
                "cavv": s3d.cavv.reveal() if s3d.cavv is not None else None,
                "eci": s3d.eci,
                "ds_trans_id": s3d.ds_trans_id,
            }
        )
    if request.recurring_details is not None:
        rd = request.recurring_details
        body["recurring_details"] = _drop_none(
            {
                "parent_order_id": rd.parent_order_id,
                "trace_id": rd.trace_id,
                "indicator": rd.indicator,
            }
        )
    return Call(
        "authorize", "POST", "orders/authorize", _acted("authorize"), body, checks_outcome=True
    )


def _on_order(
    action: Action, method: str, order_id: str, body: dict[str, Any] | None = None
) -> Call[Order]:
    op = action.value
    return Call(
        op,
        method,
        f"orders/{_order_id(order_id)}/{op}",
        _acted(op),
        body,
        order_id=order_id,
        action=action,
        checks_outcome=True,
    )


def _optional_amount(amount: Money | None) -> dict[str, Any] | None:
    if amount is None:
        return None
    if amount.minor <= 0:
        raise InvalidInput("an amount must be positive")
    return {"amount": _amount(amount)}


def charge(order_id: str, amount: Money | None = None) -> Call[Order]:
    """``PUT /orders/:id/charge``; no body charges the authorized amount."""
    return _on_order(Action.CHARGE, "PUT", order_id, _optional_amount(amount))


def refund(order_id: str, amount: Money | None = None) -> Call[Order]:
    """``PUT /orders/:id/refund``; no body refunds in full."""
    return _on_order(Action.REFUND, "PUT", order_id, _optional_amount(amount))


def reverse(order_id: str) -> Call[Order]:
    """``PUT /orders/:id/reverse`` (no parameters)."""
    return _on_order(Action.REVERSE, "PUT", order_id)


def cancel(order_id: str, amount: Money | None = None) -> Call[Order]:
    """``PUT /orders/:id/cancel``: reverses or refunds; ``amount`` is for a refund only."""
    return _on_order(Action.CANCEL, "PUT", order_id, _optional_amount(amount))


def rebill(order_id: str, request: Rebill) -> Call[Order]:
    """``POST /orders/:id/rebill``: answers with a NEW order (its id is not ``order_id``)."""
    body: dict[str, Any] = {"amount": _amount(request.amount)}
    if request.cvv is not None:
        body["cvv"] = request.cvv.reveal()
    if request.location_ip is not None:
        body["location"] = {"ip": request.location_ip}
    if request.recurring is not None:
        body["options"] = {"recurring": int(request.recurring)}
    details = _drop_none({"trace_id": request.trace_id, "indicator": request.indicator})
    if details:
        body["recurring_details"] = details
    if request.merchant_order_id is not None:
        body["merchant_order_id"] = request.merchant_order_id
    if request.description is not None:
        body["description"] = request.description
    return _on_order(Action.REBILL, "POST", order_id, body)


def _credit_body(endpoint: str, request: Credit) -> dict[str, Any]:
    return _common(
        endpoint,
        request.amount,
        location_ip=request.location_ip,
        merchant_order_id=request.merchant_order_id,
        segment=request.segment,
        description=request.description,
        client=request.client,
        custom_fields=request.custom_fields,
        options=request.options,
    )


def credit(order_id: str, request: Credit) -> Call[Order]:
    """``POST /orders/:id/credit``: an OCT to the card of an earlier order."""
    if request.card is not None:
        raise InvalidInput("a credit to an order's card takes no card details")
    return _on_order(Action.CREDIT, "POST", order_id, _credit_body("credit", request))


def credit_pan(pan: Pan, request: Credit) -> Call[Order]:
    """``POST /orders/credit``: an OCT to a card number, with no earlier order."""
    body = _credit_body("credit_pan", request)
    body["pan"] = pan.pan.reveal()
    if request.card is not None:
        card = _card(request.card)
        if card:
            body["card"] = card
    return Call(
        "credit_pan", "POST", "orders/credit", _acted("credit_pan"), body, checks_outcome=True
    )


def complete(order_id: str, pares: Secret[str]) -> Call[Order]:
    """``POST /orders/:id/complete`` with the ACS's ``PaRes`` (3-D Secure 1)."""
    return _on_order(Action.COMPLETE, "POST", order_id, {"PaRes": pares.reveal()})


def complete3d20(order_id: str, cres: Secret[str]) -> Call[Order]:
    """``POST /orders/:id/complete3d20`` with the base64 ``cres`` (3-D Secure 2)."""
    return _on_order(Action.COMPLETE3D20, "POST", order_id, {"cres": cres.reveal()})


def resume(order_id: str) -> Call[Order]:
    """``POST /orders/:id/resume``: continue after the 3DS Method URL (no parameters)."""
    return _on_order(Action.RESUME, "POST", order_id)


# ----------------------------------------------------------------------------------------
# Pagination

_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")


def next_link(headers: httpx.Headers, request_url: str) -> str | None:
    """The absolute URL of ``rel="next"`` in the ``Link`` headers (RFC 8288), if any."""
    for value in headers.get_list("link"):
        for match in _LINK.finditer(value):
            for param in match.group(2).split(";"):
                name, _, rel = param.partition("=")
                if name.strip().lower() == "rel" and "next" in rel.strip().strip('"').split():
                    return urljoin(request_url, str(match.group(1)).strip())
    return None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def next_page(call: Call[Page[T]], url: str, base_url: str) -> Call[Page[T]]:
    """The call for the page at ``url``. A link off the gateway's origin is refused: the
    client would send it the Basic credentials.
    """
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        raise MalformedResponse(f"{call.op}: unreadable next link", gateway=GATEWAY) from None
    if _origin(target) != _origin(httpx.URL(base_url)):
        raise MalformedResponse(
            f"{call.op}: next link points off the gateway ({target.scheme}://{target.host})",
            gateway=GATEWAY,
        )
    return Call(call.op, "GET", str(target), call.parse)


# ----------------------------------------------------------------------------------------
# Responses


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def interpret(call: Call[T], status: int, headers: httpx.Headers, url: str, body: bytes) -> T:
    """The parsed answer to ``call``, or the typed error its response means."""
    if not _is_json(headers.get("content-type")):
        raise errors.non_json_error(call.op, status, headers.get("content-type"))
    try:
        payload = json.loads(body)
    except ValueError as exc:
        reason = str(exc).split(":", 1)[0][:80]
        raise errors.malformed(call.op, status, f"invalid JSON ({reason})") from None
    error = errors.response_error(call.op, call.action, call.checks_outcome, status, payload)
    if error is not None:
        raise error
    try:
        return call.parse(Reply(status, headers, url, Reader(payload, "body")))
    except FieldError as exc:
        raise errors.malformed(call.op, status, str(exc)) from None


def body_too_large(call: Call[Any], status: int, limit: int) -> MalformedResponse:
    return errors.malformed(call.op, status, f"response body over {limit} bytes")
