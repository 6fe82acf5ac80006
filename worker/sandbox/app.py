"""The TXPG sandbox as an aiohttp application: TXPG's paths under ``/api``, admin under
``/_admin``.

Every gateway call goes through the shared pipeline (:func:`worker.sandbox.pipeline.serve`:
faults, latency, commit-then-drop, slow bodies); what is TXPG's is here: its routes, its
Basic login, its error bodies and its request id header, and the ``hpp-pay`` admin route.

Nothing here logs a query string (order passwords travel in it), a header or a body: the
access log is off, and ``log_requests`` logs the method, the path and the outcome only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from worker.errors import InvalidInput
from worker.sandbox import admin
from worker.sandbox.config import CONFIG, DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig
from worker.sandbox.engine import SandboxState
from worker.sandbox.errors import TxpgError, unknown_order
from worker.sandbox.faults import Endpoint
from worker.sandbox.pipeline import Call, Reply, basic_auth_ok, serve
from worker.sandbox.wire import dumps, loads

log = structlog.get_logger("worker.sandbox")

Operation = Callable[[SandboxState, int, str | None, Any, web.Request], dict[str, Any]]


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
    admin.add_routes(app, admin.AdminSettings(state=config.state, allow_remote=allow_remote_admin))
    routes.add_post("/_admin/orders/{id}/hpp-pay", _hpp_pay)
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


async def _serve(
    request: web.Request, endpoint: Endpoint, operation: Operation
) -> web.StreamResponse:
    config = request.app[CONFIG]
    state = config.state
    order_id = _order_id(request)

    def stored_id(body: bytes) -> int | None:
        return state.stored_id_for(endpoint, order_id, _guess_json(body))

    def handle(body: bytes) -> Reply:
        status, payload = _answer(request, config, body, order_id, operation)
        headers = {"TXPG-REST-API-Request-ID": str(uuid.uuid4())}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="TXPG sandbox"'
        return Reply(status, dumps(payload), headers, payload.get("errorCode"))

    return await serve(
        request,
        Call(endpoint, order_id, stored_id),
        handle,
        faults=state.faults,
        latency_ms=config.latency_ms,
        log_requests=config.log_requests,
    )


def _answer(
    request: web.Request,
    config: SandboxConfig,
    body: bytes,
    order_id: int | None,
    operation: Operation,
) -> tuple[int, dict[str, Any]]:
    try:
        if not basic_auth_ok(request.headers.get("Authorization"), config.credentials):
            raise TxpgError("InvalidLogin", "Basic credentials missing or wrong")
        if order_id == -1:
            raise unknown_order(request.match_info["id"][:40])
        payload = None
        if request.method == "POST":
            try:
                payload = loads(body)
            except ValueError:
                raise TxpgError("InvalidRequest", "the body is not a JSON document") from None
        return 200, operation(
            config.state, order_id or 0, request.query.get("password"), payload, request
        )
    except TxpgError as err:
        return err.http_status, err.body()
    except Exception:  # a sandbox bug: answer like TXPG would, log without the request's data
        log.exception("sandbox_call_failed", method=request.method, path=request.path)
        bug = TxpgError("ActionAppException", "unexpected error in the sandbox")
        return bug.http_status, bug.body()


def _guess_json(body: bytes) -> Any:
    try:
        return loads(body)
    except ValueError:
        return None


@admin.guarded
async def _hpp_pay(request: web.Request) -> web.StreamResponse:
    body = await admin.read_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("pan"), str):
        raise InvalidInput('hpp-pay needs {"pan": "...", "expiry": "MMYY", "save": true}')
    expiry = body.get("expiry", "1230")
    order_id = request.match_info["id"]
    if not order_id.isdigit():
        return admin.error(404, f"order {order_id} not found")
    try:
        result = state_of(request.app).hpp_pay(
            int(order_id), body["pan"], expiry, save=bool(body.get("save"))
        )
    except TxpgError as exc:
        return web.json_response(exc.body(), status=exc.http_status)
    return web.json_response(result)
