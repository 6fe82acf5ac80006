"""Bizon's errors, on the branch of ``worker.errors`` that says what the caller must do, and
the functions that are the one place where a Bizon response or transport failure becomes one.

::

    GatewayUnavailable   RequestNotSent (transport failed before a byte left), RateLimited (429)
    OutcomeUnknown       BizonOutcomeUnknown: a timeout or reset after sending, a 5xx, an
                         operation with status ``error``, an order in status ``error``;
                         MalformedResponse (non-JSON, bad JSON, missing fields, odd status)
    Declined             BizonDecline: the operation failed (``status: failure``) or the order
                         ended declined, rejected or as fraud; the class comes from the
                         ``iso_response_code`` (see ``codes.py``)
    RequestRejected      ValidationFailed (400, 422), OrderNotFound (404), BizonRejected (other
                         4xx)
      InvalidOrderState  the order's status does not allow the action (409; a 4xx that shows
                         the order in a status the action is not allowed in; "Order already
                         completed")
    CredentialsRejected  BizonCredentialsRejected (401, 403)

The reference gives no error body format and no HTTP status for errors; it shows only
successes (200, 201). So the mapping rests on the HTTP status, on the ``orders`` envelope when
an error carries one, and on the order's last operation: after an action (authorize, rebill,
charge, ...) that is the operation the action produced, since the examples list operations in
the order they happened. Free text from the gateway is scrubbed and cut short before it goes
into an exception: exceptions end up in logs and dead letters.
"""

from __future__ import annotations

from typing import Any

import httpx

from worker import errors as base
from worker.gateway.bizon.codes import (
    Action,
    OperationStatus,
    OrderStatus,
    allows,
    iso_code,
)
from worker.gateway.bizon.models import Order, Reader, parse_orders
from worker.gateway.txpg.fields import FieldError
from worker.sensitive import scrub

GATEWAY = "bizon"


class BizonError(base.GatewayError):
    """Mixin marker: the error came from Bizon."""


class RateLimited(BizonError, base.GatewayUnavailable):
    """HTTP 429: refused before processing. Retry the same request after a pause."""


class BizonOutcomeUnknown(BizonError, base.OutcomeUnknown):
    """The gateway may have acted: ask it (GET the order) before anything else."""


class BizonDecline(BizonError, base.Declined):
    """The gateway declined. Carries the order it answered with (a rebill's is a new order)."""

    def __init__(
        self,
        message: str,
        *,
        decline_class: base.DeclineClass,
        order: Order | None,
        iso_response_code: str | None,
        iso_title: str | None,
        iso_message: str | None,
        http_status: int | None,
    ) -> None:
        super().__init__(
            message,
            decline_class=decline_class,
            http_status=http_status,
            code=iso_response_code,
            request_id=order.id if order else None,
            gateway=GATEWAY,
            result_code=iso_response_code,
            result_title=iso_title,
            reason=iso_message,
        )
        self.order = order


class ValidationFailed(BizonError, base.RequestRejected):
    """400 or 422: the gateway refused the request's content. Nothing moved."""


class OrderNotFound(BizonError, base.RequestRejected):
    """404: no such order (or no such endpoint). Nothing moved."""


class BizonRejected(BizonError, base.RequestRejected):
    """Any other 4xx. Nothing moved."""


class InvalidOrderState(BizonError, base.InvalidOrderState):
    """The order's status does not allow the action (``codes.ALLOWED``)."""


class BizonCredentialsRejected(BizonError, base.CredentialsRejected):
    """401 or 403: the project login, password or client certificate was refused."""


_MESSAGE_KEYS = ("message", "error", "errors", "failure_message", "description", "detail")


def _text(value: Any, limit: int = 200) -> str:
    return scrub(str(value))[:limit]


def error_message(payload: Any) -> str:
    """A short, scrubbed message from an error body of unknown shape."""
    if isinstance(payload, dict):
        for key in _MESSAGE_KEYS:
            value = payload.get(key)
            if isinstance(value, list):
                return _text("; ".join(str(v) for v in value))
            if isinstance(value, dict):
                return _text(", ".join(f"{k}: {v}" for k, v in value.items()))
            if value is not None:
                return _text(value)
    return ""


def outcome_error(op: str, order: Order, http_status: int | None) -> base.GatewayError | None:
    """The error an action's answer means, or None when the action did what it should.

    The action's own operation is the order's last one: ``failure`` is a decline classed by
    its ISO code, ``error`` or an unknown status is an unknown outcome. Without operations,
    the order's status decides (declined, rejected, fraud: a decline; error: unknown).
    """
    last = order.last_operation
    if last is not None and last.status is not OperationStatus.SUCCESS:
        if last.status is OperationStatus.FAILURE:
            return _decline(op, order, last.iso_response_code, last.iso_message, http_status)
        return BizonOutcomeUnknown(
            f"{op}: {last.type_raw} operation ended {_text(last.status_raw, 32)!r}"
            f" (order {order.id}); ask the gateway",
            http_status=http_status,
            code=last.iso_response_code,
            request_id=order.id,
            gateway=GATEWAY,
        )
    if order.status in (OrderStatus.DECLINED, OrderStatus.REJECTED, OrderStatus.FRAUD):
        failed = [o for o in order.operations if o.status is OperationStatus.FAILURE]
        code = failed[-1].iso_response_code if failed else None
        message = failed[-1].iso_message if failed else None
        return _decline(op, order, code, message, http_status)
    if order.status is OrderStatus.ERROR:
        return BizonOutcomeUnknown(
            f"{op}: order {order.id} is in status error",
            http_status=http_status,
            request_id=order.id,
            gateway=GATEWAY,
        )
    return None


def _decline(
    op: str, order: Order, code: str | None, message: str | None, http_status: int | None
) -> BizonDecline:
    if code is not None:
        entry = iso_code(code, order.card_type)
        decline_class, title, code = entry.decline_class, entry.title, entry.code
    elif order.status is OrderStatus.FRAUD:
        decline_class, title = base.DeclineClass.HARD, "Fraud"
    else:
        # No code to class it by: reconcile (the caller asks the gateway), as for an
        # unlisted code.
        decline_class, title = base.DeclineClass.UNKNOWN, None
    reason = None if message is None else _text(message, 120)
    return BizonDecline(
        f"{op}: declined (order {order.id}, status {order.status_raw[:32]}"
        + (f", {code} {title}" if code else "")
        + ")",
        decline_class=decline_class,
        order=order,
        iso_response_code=code,
        iso_title=title,
        iso_message=reason,
        http_status=http_status,
    )


def response_error(
    op: str,
    action: Action | None,
    checks_outcome: bool,
    status: int,
    payload: Any,
) -> base.GatewayError | None:
    """The error a decoded JSON response means, or None for a 2xx (read by the parser)."""
    if status in (401, 403):
        return BizonCredentialsRejected(
            f"{op}: credentials rejected (HTTP {status})", http_status=status, gateway=GATEWAY
        )
    if status >= 500:
        detail = error_message(payload)
        return BizonOutcomeUnknown(
            f"{op}: HTTP {status}" + (f": {detail}" if detail else ""),
            http_status=status,
            gateway=GATEWAY,
        )
    if 200 <= status < 300:
        return None
    if not 400 <= status < 500:
        return base.MalformedResponse(
            f"{op}: unexpected HTTP {status}", http_status=status, gateway=GATEWAY
        )
    detail = error_message(payload)
    order = _order_in(payload)
    wrong_state = order is not None and action is not None and not allows(order.status, action)
    if order is not None and checks_outcome and not wrong_state:
        error = outcome_error(op, order, status)
        if error is not None:
            return error
    if wrong_state or status == 409 or "already completed" in detail.lower():
        state = f" (order {order.id} is {order.status_raw[:32]})" if order else ""
        return InvalidOrderState(
            f"{op}: not allowed in the order's state{state}" + (f": {detail}" if detail else ""),
            http_status=status,
            request_id=order.id if order else None,
            gateway=GATEWAY,
        )
    if status == 429:
        return RateLimited(f"{op}: rate limited (HTTP 429)", http_status=status, gateway=GATEWAY)
    cls = {400: ValidationFailed, 422: ValidationFailed, 404: OrderNotFound}.get(
        status, BizonRejected
    )
    return cls(
        f"{op}: rejected (HTTP {status})" + (f": {detail}" if detail else ""),
        http_status=status,
        gateway=GATEWAY,
    )


def _order_in(payload: Any) -> Order | None:
    """The one order of an error body that carries the ``orders`` envelope, if it does."""
    if not (isinstance(payload, dict) and isinstance(payload.get("orders"), list)):
        return None
    try:
        orders = parse_orders(Reader(payload, "body"))
    except FieldError:
        return None
    return orders[0] if len(orders) == 1 else None


def non_json_error(op: str, status: int, content_type: str | None) -> base.GatewayError:
    """A response that is not JSON: an HTML error page from a proxy, a bare 401, ..."""
    kind = (content_type or "no content type").split(";", 1)[0][:64]
    if status in (401, 403):
        return BizonCredentialsRejected(
            f"{op}: credentials rejected (HTTP {status})", http_status=status, gateway=GATEWAY
        )
    if status == 429:
        return RateLimited(f"{op}: rate limited (HTTP 429)", http_status=status, gateway=GATEWAY)
    if status >= 500:
        return BizonOutcomeUnknown(
            f"{op}: HTTP {status} with a {kind} body", http_status=status, gateway=GATEWAY
        )
    return base.MalformedResponse(
        f"{op}: expected JSON, got {kind} (HTTP {status})", http_status=status, gateway=GATEWAY
    )


def malformed(op: str, status: int, why: str) -> base.MalformedResponse:
    return base.MalformedResponse(f"{op}: {why}", http_status=status, gateway=GATEWAY)


def transport_error(op: str, exc: Exception, sent: bool) -> base.BillingError:
    """A transport failure. ``sent`` is whether any byte of the request left us."""
    name = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return base.ConfigurationError(f"{op}: bad gateway URL ({name})")
    if not sent:
        return base.RequestNotSent(f"{op}: request not sent ({name})", gateway=GATEWAY)
    return BizonOutcomeUnknown(f"{op}: no complete answer ({name})", gateway=GATEWAY)


def deadline_error(op: str, sent: bool, seconds: float) -> base.GatewayError:
    if not sent:
        return base.RequestNotSent(
            f"{op}: deadline of {seconds:g}s passed before sending", gateway=GATEWAY
        )
    return BizonOutcomeUnknown(f"{op}: deadline of {seconds:g}s passed", gateway=GATEWAY)
