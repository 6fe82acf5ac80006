"""The one way every sandbox gateway serves a call, whatever its API.

:func:`serve` reads the body, asks the fault plan, waits the injected latency, maybe fails
before handling (502, 503, a dropped connection), runs the gateway's handler (which checks
credentials and moves the state), then answers, or drops the connection *after* the state
moved (``commit-then-drop``), or trickles the body (``slow-body``). The TXPG app and the
Bizon app differ only in their handlers, so a fault behaves the same on both.

Nothing here logs a query string (TXPG's order passwords travel in it), a header or a body:
``log_requests`` logs the method, the path and the outcome only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from worker.sandbox import transport
from worker.sandbox.faults import BEFORE_KINDS, NO_FAULT, FaultKind, FaultPlan

log = structlog.get_logger("worker.sandbox")


@dataclass(frozen=True, slots=True)
class Reply:
    """A handled call's answer: what :func:`serve` sends unless a fault says otherwise."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    code: str | None = None  #: an error code for the request log: never request data


@dataclass(frozen=True, slots=True)
class Call:
    """One gateway call as the fault plan sees it."""

    endpoint: str
    order_id: int | None = None
    #: the storedId the call concerns, looked up only when a rule matches on one
    stored_id: Callable[[bytes], int | None] | None = None


Handler = Callable[[bytes], Reply]


async def serve(
    request: web.Request,
    call: Call,
    handle: Handler,
    *,
    faults: FaultPlan,
    latency_ms: int = 0,
    log_requests: bool = False,
) -> web.StreamResponse:
    body = await request.read() if request.method in ("POST", "PUT") else b""
    decision = NO_FAULT
    if faults.active:
        stored_id = None
        if call.stored_id is not None and faults.wants_stored_id:
            stored_id = call.stored_id(body)
        decision = faults.decide(call.endpoint, call.order_id, stored_id)
    delay = latency_ms + decision.delay_ms
    if delay:
        await asyncio.sleep(delay / 1000)
    action = decision.action
    if action is not None and action.kind in BEFORE_KINDS:
        _log(log_requests, request, action.kind.value, None)
        if action.kind is FaultKind.DROP_BEFORE:
            return transport.drop(request)
        return transport.error_page(action.kind)
    reply = handle(body)
    _log(log_requests, request, reply.status, reply.code)
    if action is not None and action.kind is FaultKind.COMMIT_THEN_DROP:
        return transport.drop(request)
    if action is not None and action.kind is FaultKind.SLOW_BODY:
        return await transport.trickle(request, reply.status, reply.body, action, reply.headers)
    return transport.json_response(reply.status, reply.body, reply.headers)


def basic_auth_ok(header: str | None, expected: bytes) -> bool:
    """True when ``header`` is HTTP Basic with exactly ``expected`` (``user:password``),
    compared in constant time."""
    if header is None or header[:6].lower() != "basic ":
        return False
    try:
        given = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)


def _log(enabled: bool, request: web.Request, outcome: object, code: object) -> None:
    if enabled:
        log.info(
            "sandbox_request_served",
            method=request.method,
            path=request.path,  # never the query string: it may carry an order password
            outcome=outcome,
            error_code=code,
        )
