"""The Bizon sandbox as an aiohttp application: the reference's paths at the root (its host
is a placeholder, ``api.box:5001``), the shared admin API under ``/_admin``.

Every call goes through the shared pipeline (:func:`worker.sandbox.pipeline.serve`), so
latency, 502/503 pages, ``drop-before``, ``commit-then-drop`` and ``slow-body`` act here as
on the TXPG sandbox. Fault rules name these endpoints (:class:`BizonEndpoint`); ``orderId``
matches the order in the path (for rebill and credit: the parent order).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from worker.errors import InvalidInput
from worker.sandbox import admin
from worker.sandbox.bizon import bodies
from worker.sandbox.bizon.config import PASSWORD, USERNAME
from worker.sandbox.bizon.errors import BizonError, access, not_found, server
from worker.sandbox.bizon.state import BizonState, Result
from worker.sandbox.cards import BIZON_CARDS
from worker.sandbox.pipeline import Call, Reply, basic_auth_ok, serve
from worker.sandbox.wire import dumps

log = structlog.get_logger("worker.sandbox.bizon")


class BizonEndpoint(enum.StrEnum):
    """The Bizon sandbox's endpoints, as fault rules name them."""

    PING = "ping"
    GET_ORDER = "get-order"  #: GET /orders/:id
    LIST_ORDERS = "list-orders"  #: GET /orders/
    LIST_OPERATIONS = "list-operations"  #: GET /operations/
    EXCHANGE_RATES = "exchange-rates"  #: GET /exchange_rates/
    CREATE = "create"  #: POST /orders/create
    AUTHORIZE = "authorize"  #: POST /orders/authorize
    TOKEN_PAY = "token-pay"  # noqa: S105 - an endpoint name: POST /orders/token_pay
    CHARGE = "charge"  #: PUT /orders/:id/charge
    REFUND = "refund"  #: PUT /orders/:id/refund
    REVERSE = "reverse"  #: PUT /orders/:id/reverse
    CANCEL = "cancel"  #: PUT /orders/:id/cancel
    REBILL = "rebill"  #: POST /orders/:id/rebill
    CREDIT = "credit"  #: POST /orders/:id/credit
    CREDIT_PAN = "credit-pan"  #: POST /orders/credit
    COMPLETE = "complete"  #: POST /orders/:id/complete
    COMPLETE3D20 = "complete3d20"  #: POST /orders/:id/complete3d20
    RESUME = "resume"  #: POST /orders/:id/resume
    ANY = "any"


@dataclass(frozen=True, slots=True)
class BizonConfig:
    state: BizonState
    credentials: bytes  #: ``username:password``, compared in constant time
    latency_ms: int = 0
    log_requests: bool = False

    def __repr__(self) -> str:  # the credentials stay out of any repr
        return f"BizonConfig(latency_ms={self.latency_ms})"


CONFIG = web.AppKey("bizon_config", BizonConfig)


def _operations(state: BizonState, request: web.Request) -> Result:
    return state.list_operations(request.query, request.url)


#: What a route does: (state, order id from the path, JSON body, request) -> result.
Operation = Callable[[BizonState, int, dict[str, Any], web.Request], Result]

_E = BizonEndpoint
#: method, path, endpoint, operation
_ROUTES: tuple[tuple[str, str, BizonEndpoint, Operation], ...] = (
    ("GET", "/ping", _E.PING, lambda s, _i, _b, _r: s.ping()),
    ("GET", "/orders/", _E.LIST_ORDERS, lambda s, _i, _b, r: s.list_orders(r.query, r.url)),
    ("GET", "/orders", _E.LIST_ORDERS, lambda s, _i, _b, r: s.list_orders(r.query, r.url)),
    ("GET", "/orders/{id}", _E.GET_ORDER, lambda s, i, _b, r: s.get_order(i, r.query)),
    ("GET", "/operations/", _E.LIST_OPERATIONS, lambda s, _i, _b, r: _operations(s, r)),
    ("GET", "/operations", _E.LIST_OPERATIONS, lambda s, _i, _b, r: _operations(s, r)),
    ("GET", "/exchange_rates/", _E.EXCHANGE_RATES, lambda s, _i, _b, _r: s.exchange_rates()),
    ("GET", "/exchange_rates", _E.EXCHANGE_RATES, lambda s, _i, _b, _r: s.exchange_rates()),
    ("POST", "/orders/create", _E.CREATE, lambda s, _i, b, r: s.create(b, _origin(r))),
    ("POST", "/orders/authorize", _E.AUTHORIZE, lambda s, _i, b, r: s.authorize(b, _origin(r))),
    ("POST", "/orders/token_pay", _E.TOKEN_PAY, lambda s, _i, b, _r: s.token_pay(b)),
    ("POST", "/orders/credit", _E.CREDIT_PAN, lambda s, _i, b, _r: s.credit_pan(b)),
    ("PUT", "/orders/{id}/charge", _E.CHARGE, lambda s, i, b, _r: s.charge(i, b)),
    ("PUT", "/orders/{id}/refund", _E.REFUND, lambda s, i, b, _r: s.refund(i, b)),
    ("PUT", "/orders/{id}/reverse", _E.REVERSE, lambda s, i, b, _r: s.reverse(i, b)),
    ("PUT", "/orders/{id}/cancel", _E.CANCEL, lambda s, i, b, _r: s.cancel(i, b)),
    ("POST", "/orders/{id}/rebill", _E.REBILL, lambda s, i, b, _r: s.rebill(i, b)),
    ("POST", "/orders/{id}/credit", _E.CREDIT, lambda s, i, b, _r: s.credit(i, b)),
    ("POST", "/orders/{id}/complete", _E.COMPLETE, lambda s, i, b, _r: s.complete(i, b)),
    (
        "POST",
        "/orders/{id}/complete3d20",
        _E.COMPLETE3D20,
        lambda s, i, b, _r: s.complete3d20(i, b),
    ),
    ("POST", "/orders/{id}/resume", _E.RESUME, lambda s, i, _b, r: s.resume(i, _origin(r))),
)


def create_bizon_app(
    state: BizonState | None = None,
    *,
    username: str = USERNAME,
    password: str = PASSWORD,
    latency_ms: int = 0,
    allow_remote_admin: bool = False,
    log_requests: bool = False,
) -> web.Application:
    """The Bizon sandbox as an aiohttp app. ``state`` defaults to demo cards, no faults."""
    config = BizonConfig(
        state=state if state is not None else BizonState(),
        credentials=f"{username}:{password}".encode(),
        latency_ms=latency_ms,
        log_requests=log_requests,
    )
    app = web.Application()
    app[CONFIG] = config
    for method, path, endpoint, operation in _ROUTES:
        app.router.add_route(method, path, _handler(endpoint, operation))
    admin.add_routes(
        app,
        admin.AdminSettings(
            state=config.state,
            allow_remote=allow_remote_admin,
            endpoints=BizonEndpoint,
            fault_by_card=False,
            cards=BIZON_CARDS,
            currency=config.state.settings.currency,
        ),
    )
    app.router.add_post("/_admin/orders/{id}/pay", _admin_pay)
    app.router.add_post("/_admin/orders/{id}/mark", _admin_mark)
    return app


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _order_id(request: web.Request) -> int | None:
    """The path's order id; -1 for one that cannot be an order id (it is then unknown)."""
    raw = request.match_info.get("id")
    if raw is None:
        return None
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else -1


def _handler(endpoint: BizonEndpoint, operation: Operation) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.StreamResponse:
        config = request.app[CONFIG]
        order_id = _order_id(request)

        def handle(body: bytes) -> Reply:
            result = _answer(request, config, body, order_id, operation)
            headers = dict(result.headers)
            code = None
            if result.status >= 400:
                code = str(result.body.get("failure_type"))
                if result.status == 401:
                    headers["WWW-Authenticate"] = 'Basic realm="Bizon sandbox"'
            return Reply(result.status, dumps(result.body), headers, code)

        return await serve(
            request,
            Call(endpoint, order_id),
            handle,
            faults=config.state.faults,
            latency_ms=config.latency_ms,
            log_requests=config.log_requests,
        )

    return handler


def _answer(
    request: web.Request,
    config: BizonConfig,
    body: bytes,
    order_id: int | None,
    operation: Operation,
) -> Result:
    try:
        if not basic_auth_ok(request.headers.get("Authorization"), config.credentials):
            raise access()
        if order_id == -1:
            raise not_found(request.match_info["id"][:40])
        payload = bodies.read_body(body) if request.method in ("POST", "PUT") else {}
        return operation(config.state, order_id or 0, payload, request)
    except BizonError as err:
        return Result(err.status, err.body())
    except Exception:  # a sandbox bug: an error body, logged without the request's data
        log.exception("sandbox_call_failed", method=request.method, path=request.path)
        bug = server()
        return Result(bug.status, bug.body())


def _admin_call(request: web.Request, call: Callable[[BizonState, int], Result]) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        return admin.error(404, f"order {raw[:40]} not found")
    try:
        result = call(request.app[CONFIG].state, int(raw))
    except BizonError as err:
        return web.json_response(err.body(), status=err.status)
    return web.json_response(result.body, status=result.status)


@admin.guarded
async def _admin_pay(request: web.Request) -> web.StreamResponse:
    body = await admin.read_body(request)
    if not isinstance(body, dict):
        raise InvalidInput('pay needs {"pan": "...", "card": {"expiration_month": 12, ...}}')
    return _admin_call(request, lambda state, order_id: state.pay(order_id, body))


@admin.guarded
async def _admin_mark(request: web.Request) -> web.StreamResponse:
    body = await admin.read_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise InvalidInput('mark needs {"status": "chargedback"} (or fraud, rejected)')
    status = str(body["status"])
    return _admin_call(request, lambda state, order_id: state.mark(order_id, status))
