"""The sans-I/O core of the TXPG client, shared by the sync and async clients.

Each function here builds a :class:`Call`: the HTTP method, path, body and the parser of
its answer. :func:`interpret` turns a response into the parsed model or the typed error, and
:func:`transport_error` maps a transport failure, using whether any byte of the request was
sent: before that nothing can have happened (retry), after it anything may have (reconcile).
These two functions are the only places where wire-level trouble becomes an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from worker import errors as base
from worker.gateway.txpg import json
from worker.gateway.txpg.errors import GATEWAY, error_from_body
from worker.gateway.txpg.fields import FieldError, Fields
from worker.gateway.txpg.models import (
    CardNumber,
    CreatedOrder,
    DestinationToken,
    OrderInfo,
    OrderRef,
    OrderRequest,
    SourceToken,
    StoredCard,
    TokenResult,
    TranRequest,
    TranResult,
)
from worker.sensitive import Secret

T = TypeVar("T")

DETAIL_QUERY = (("tranDetailLevel", "2"), ("tokenDetailLevel", "2"), ("orderDetailLevel", "2"))


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One TXPG request and how to read its answer. ``repr`` shows neither body nor password."""

    op: str
    method: str
    path: str
    parse: Callable[[Fields], T] = field(repr=False)
    body: dict[str, Any] | None = field(default=None, repr=False)
    password: Secret[str] | None = None
    query: tuple[tuple[str, str], ...] = ()
    order_id: int | None = None

    def params(self) -> list[tuple[str, str | int | float | bool | None]]:
        """The query string. The order password is revealed here, into the URL, and nowhere
        else; the URL is never logged (the httpx loggers are silenced, see ``worker.logs``).
        """
        params: list[tuple[str, str | int | float | bool | None]] = list(self.query)
        if self.password is not None:
            params.append(("password", self.password.reveal()))
        return params

    def content(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body)


def create_order(request: OrderRequest) -> Call[CreatedOrder]:
    order: dict[str, Any] = {
        "typeRid": request.type_rid.value,
        "amount": request.amount.to_gateway(),
        "currency": request.amount.currency,
        "language": request.language,
        "description": request.wire_description(),
    }
    if request.title is not None:
        order["title"] = request.title
    if request.hpp_redirect_url is not None:
        order["hppRedirectUrl"] = request.hpp_redirect_url
    if request.hpp_cof_capture_purposes:
        order["hppCofCapturePurposes"] = [p.value for p in request.hpp_cof_capture_purposes]
    return Call("create_order", "POST", "order/", CreatedOrder.parse, {"order": order})


def _token_body(token: SourceToken | DestinationToken) -> dict[str, Any]:
    if isinstance(token, StoredCard):
        return {"storedId": token.stored_id}
    if isinstance(token, CardNumber):
        return {"card": {"panBlock": {"data": token.pan.reveal()}, "entryMode": "ECommerce"}}
    return {
        "extCof": {"ridByCofp": token.rid_by_cofp, "cofProviderRid": token.cof_provider_rid},
        "card": {"entryMode": "ECommerce"},
    }


def set_src_token(
    order: OrderRef, token: SourceToken, initiation_env_kind: str = "Server"
) -> Call[TokenResult]:
    """Attach the card to charge. ``Server`` for merchant-initiated (recurring) charges."""
    body = {"order": {"initiationEnvKind": initiation_env_kind}, "token": _token_body(token)}
    return Call(
        "set_src_token",
        "POST",
        f"order/{order.id}/set-src-token",
        TokenResult.parse,
        body,
        order.password,
        order_id=order.id,
    )


def set_dst_token(order: OrderRef, token: DestinationToken) -> Call[TokenResult]:
    """Attach the card to pay out to (OCT): a PAN or a TWO token."""
    return Call(
        "set_dst_token",
        "POST",
        f"order/{order.id}/set-dst-token",
        TokenResult.parse,
        {"token": _token_body(token)},
        order.password,
        order_id=order.id,
    )


def exec_tran(order: OrderRef, tran: TranRequest) -> Call[TranResult]:
    body: dict[str, Any] = {"phase": tran.phase.value}
    if tran.authorization_kind is not None:
        body["authorizationKind"] = tran.authorization_kind
    if tran.amount is not None:
        body["amount"] = tran.amount.to_gateway()
    if tran.type is not None:
        body["type"] = tran.type
    if tran.void_kind is not None:
        body["voidKind"] = tran.void_kind
    if tran.cof_usage is not None:
        body["conditions"] = {"cofUsage": tran.cof_usage.value}
    return Call(
        "exec_tran",
        "POST",
        f"order/{order.id}/exec-tran",
        TranResult.parse,
        {"tran": body},
        order.password if tran.needs_order_password else None,
        order_id=order.id,
    )


def get_order(order_id: int, *, detailed: bool = False) -> Call[OrderInfo]:
    """``GET /order/{id}``; ``detailed`` adds the transaction and token lists."""
    return Call(
        "get_order_detailed" if detailed else "get_order",
        "GET",
        f"order/{order_id}",
        OrderInfo.parse,
        query=DETAIL_QUERY if detailed else (),
        order_id=order_id,
    )


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def interpret(call: Call[T], status: int, content_type: str | None, body: bytes) -> T:
    """The parsed answer to ``call``, or the typed error its response means."""
    if not _is_json(content_type):
        kind = (content_type or "no content type").split(";", 1)[0][:64]
        if status >= 500:
            raise base.OutcomeUnknown(
                f"{call.op}: HTTP {status} with a {kind} body", http_status=status, gateway=GATEWAY
            )
        raise base.MalformedResponse(
            f"{call.op}: expected JSON, got {kind} (HTTP {status})",
            http_status=status,
            gateway=GATEWAY,
        )
    try:
        payload = json.loads(body)
    except ValueError as exc:
        reason = str(exc).split(":", 1)[0][:80]
        raise base.MalformedResponse(
            f"{call.op}: invalid JSON ({reason})", http_status=status, gateway=GATEWAY
        ) from None
    try:
        fields = Fields(payload, "body")
    except FieldError:
        raise base.MalformedResponse(
            f"{call.op}: the JSON body is not an object", http_status=status, gateway=GATEWAY
        ) from None
    if fields.has("errorCode"):
        raise error_from_body(fields, status)
    if status >= 500:
        raise base.OutcomeUnknown(f"{call.op}: HTTP {status}", http_status=status, gateway=GATEWAY)
    if not 200 <= status < 300:
        raise base.MalformedResponse(
            f"{call.op}: HTTP {status} without an errorCode", http_status=status, gateway=GATEWAY
        )
    try:
        return call.parse(fields)
    except FieldError as exc:
        raise base.MalformedResponse(
            f"{call.op}: {exc}", http_status=status, gateway=GATEWAY
        ) from None


def transport_error(call: Call[Any], exc: Exception, sent: bool) -> base.BillingError:
    """Map a transport failure. ``sent`` is whether any byte of the request left us."""
    name = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return base.ConfigurationError(f"{call.op}: bad gateway URL ({name})")
    if not sent:
        return base.RequestNotSent(f"{call.op}: request not sent ({name})", gateway=GATEWAY)
    return base.OutcomeUnknown(f"{call.op}: no complete answer ({name})", gateway=GATEWAY)


def deadline_error(call: Call[Any], sent: bool, seconds: float) -> base.GatewayError:
    if not sent:
        return base.RequestNotSent(
            f"{call.op}: deadline of {seconds:g}s passed before sending", gateway=GATEWAY
        )
    return base.OutcomeUnknown(f"{call.op}: deadline of {seconds:g}s passed", gateway=GATEWAY)


def body_too_large(call: Call[Any], status: int, limit: int) -> base.GatewayError:
    return base.MalformedResponse(
        f"{call.op}: response body over {limit} bytes", http_status=status, gateway=GATEWAY
    )
