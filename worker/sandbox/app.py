"""The sandbox as an aiohttp application: TXPG's paths under ``/api``, admin under ``/_admin``.

Every gateway call goes through one pipeline (:func:`_serve`): read the body, ask the fault
plan, wait the injected latency, maybe fail before handling (502, 503, dropped connection),
check Basic credentials, run the operation on :class:`~worker.sandbox.engine.SandboxState`,
then answer, or drop the connection after committing, or trickle the body.

Nothing here logs a query string (order passwords travel in it), a header or a body: the
access log is off, and ``log_requests`` logs the method, the path and the outcome only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from worker.sandbox import admin, transport
from worker.sandbox.config import CONFIG, DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig
from worker.sandbox.engine import SandboxState
from worker.sandbox.errors import TxpgError, unknown_order
from worker.sandbox.faults import BEFORE_KINDS, NO_FAULT, Endpoint, FaultKind
from worker.sandbox.wire import dumps, loads

log = structlog.get_logger("worker.sandbox")

Call = Callable[[SandboxState, int, str | None, Any, web.Request], dict[str, Any]]


def create_app(
    state: SandboxState | None = None,
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    latency_ms: int = 0,
    allow_remote_admin: bool = False,
    log_requests: bool = False,
) -> web.Application:
    """The sandbox gateway as an aiohttp app. ``state`` defaults to demo cards and no faults.

    ``latency_ms`` delays every gateway call (not admin calls), for benchmarks.
    ``allow_remote_admin`` lets non-loopback clients use ``/_admin`` (off: admin is for
    loopback use only; it has no authentication).
    """
    config = SandboxConfig(
        state=state if state is not None else SandboxState(),
        credentials=f"{username}:{password}".encode(),
        latency_ms=latency_ms,
        allow_remote_admin=allow_remote_admin,
        log_requests=log_requests,
    )
    app = web.Application()
    app[CONFIG] = config
    routes = app.router
    routes.add_post("/api/order/", _create_order)
    routes.add_post("/api/order", _create_order)
    routes.add_post("/api/order/{id}/set-src-token", _set_src_token)
    routes.add_post("/api/order/{id}/set-dst-token", _set_dst_token)
    routes.add_post("/api/order/{id}/exec-tran", _exec_tran)
    routes.add_get("/api/order/{id}", _get_order)
    admin.add_routes(app)
    return app


def state_of(app: web.Application) -> SandboxState:
    return app[CONFIG].state


def _hpp_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/flex"


async def _create_order(request: web.Request) -> web.StreamResponse:
    return await _serve(
        request,
        Endpoint.CREATE_ORDER,
        lambda state, _id, _pw, payload, req: state.create_order(payload, _hpp_url(req)),
    )


async def _set_src_token(request: web.Request) -> web.StreamResponse:
    return await _serve(
        request,
        Endpoint.SET_SRC_TOKEN,
        lambda state, order_id, pw, payload, _req: state.set_src_token(order_id, pw, payload),
    )


async def _set_dst_token(request: web.Request) -> web.StreamResponse:
    return await _serve(
        request,
        Endpoint.SET_DST_TOKEN,
        lambda state, order_id, pw, payload, _req: state.set_dst_token(order_id, pw, payload),
    )


async def _exec_tran(request: web.Request) -> web.StreamResponse:
    return await _serve(
        request,
        Endpoint.EXEC_TRAN,
        lambda state, order_id, pw, payload, _req: state.exec_tran(order_id, pw, payload),
    )


async def _get_order(request: web.Request) -> web.StreamResponse:
    return await _serve(
        request,
        Endpoint.GET_ORDER,
        lambda state, order_id, pw, _payload, req: state.get_order(
            order_id, pw, req.query, _hpp_url(req)
        ),
    )


def _order_id(request: web.Request) -> int | None:
    raw = request.match_info.get("id")
    if raw is None:
        return None
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else -1


async def _serve(request: web.Request, endpoint: Endpoint, call: Call) -> web.StreamResponse:
    config = request.app[CONFIG]
    state = config.state
    body = await request.read() if request.method == "POST" else b""
    order_id = _order_id(request)
    decision = NO_FAULT
    if state.faults.active:
        stored_id = None
        if state.faults.wants_stored_id:
            stored_id = state.stored_id_for(endpoint, order_id, _guess_json(body))
        decision = state.faults.decide(endpoint, order_id, stored_id)
    delay = config.latency_ms + decision.delay_ms
    if delay:
        await asyncio.sleep(delay / 1000)
    action = decision.action
    if action is not None and action.kind in BEFORE_KINDS:
        _log(config, request, action.kind.value, None)
        if action.kind is FaultKind.DROP_BEFORE:
            return transport.drop(request)
        return transport.error_page(action.kind)
    status, payload = _answer(request, config, body, order_id, call)
    _log(config, request, status, payload.get("errorCode"))
    if action is not None and action.kind is FaultKind.COMMIT_THEN_DROP:
        return transport.drop(request)
    data = dumps(payload)
    if action is not None and action.kind is FaultKind.SLOW_BODY:
        return await transport.trickle(request, status, data, action)
    return transport.json_response(status, data)


def _answer(
    request: web.Request, config: SandboxConfig, body: bytes, order_id: int | None, call: Call
) -> tuple[int, dict[str, Any]]:
    try:
        if not _authorized(request.headers.get("Authorization"), config.credentials):
            raise TxpgError("InvalidLogin", "Basic credentials missing or wrong")
        if order_id == -1:
            raise unknown_order(request.match_info["id"][:40])
        payload = None
        if request.method == "POST":
            try:
                payload = loads(body)
            except ValueError:
                raise TxpgError("InvalidRequest", "the body is not a JSON document") from None
        return 200, call(
            config.state, order_id or 0, request.query.get("password"), payload, request
        )
    except TxpgError as err:
        return err.http_status, err.body()
    except Exception:  # a sandbox bug: answer like TXPG would, log without the request's data
        log.exception("sandbox_call_failed", method=request.method, path=request.path)
        bug = TxpgError("ActionAppException", "unexpected error in the sandbox")
        return bug.http_status, bug.body()


def _authorized(header: str | None, expected: bytes) -> bool:
    if header is None or header[:6].lower() != "basic ":
        return False
    try:
        given = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)


def _guess_json(body: bytes) -> Any:
    try:
        return loads(body)
    except ValueError:
        return None


def _log(config: SandboxConfig, request: web.Request, outcome: object, code: object) -> None:
    if config.log_requests:
        log.info(
            "sandbox_request_served",
            method=request.method,
            path=request.path,  # never the query string: it carries the order password
            outcome=outcome,
            error_code=code,
        )
