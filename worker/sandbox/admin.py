"""The admin API under ``/_admin``: ledger, cards, faults, orders, reset. For loopback use.

It has no authentication, so it answers only clients on 127.0.0.1/::1 unless the app was
made with ``allow_remote_admin=True`` (``billing sandbox --admin-remote``, for a container).

==========================================  ==================================================
``GET    /_admin/health``                   ``{"ok": true}``: the sandbox is serving
``GET    /_admin/ledger[?orderId=N]``       ``{"entries": [...]}``: money moved, oldest first
``GET    /_admin/orders``                   ``{"orders": [...]}``: id, type, status, amounts
``POST   /_admin/orders/{id}/hpp-pay``      ``{"pan", "expiry", "save"}``: play the customer on
                                            the payment page (Order_SMS / Order_DMS)
``GET    /_admin/cards``                    ``{"cards": [...]}``
``POST   /_admin/cards``                    a card, or ``{"cards": [...]}``: register
``POST   /_admin/cards/{key}/top-up``       ``{"amount": "10.00", "currency": "AZN"}``
``GET    /_admin/faults``                   ``{"faults": [...]}`` with how often each fired
``POST   /_admin/faults``                   a rule, or ``{"faults": [...], "seed": 7}``: add
``DELETE /_admin/faults[/{id}]``            clear all rules, or one
``POST   /_admin/reset``                    forget orders, ledger, card changes and faults
==========================================  ==================================================

Errors are ``{"error": "..."}`` with 400 (bad input), 403 (not loopback) or 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from worker.errors import InvalidInput
from worker.sandbox.bodies import read_amount
from worker.sandbox.cards import card_from_json
from worker.sandbox.config import CONFIG
from worker.sandbox.engine import SandboxState
from worker.sandbox.errors import TxpgError
from worker.sandbox.faults import rule_from_json
from worker.sandbox.wire import loads

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def add_routes(app: web.Application) -> None:
    routes = app.router
    routes.add_get("/_admin/health", _health)
    routes.add_get("/_admin/ledger", _ledger)
    routes.add_get("/_admin/orders", _orders)
    routes.add_post("/_admin/orders/{id}/hpp-pay", _hpp_pay)
    routes.add_get("/_admin/cards", _cards)
    routes.add_post("/_admin/cards", _add_cards)
    routes.add_post("/_admin/cards/{key}/top-up", _top_up)
    routes.add_get("/_admin/faults", _faults)
    routes.add_post("/_admin/faults", _add_faults)
    routes.add_delete("/_admin/faults", _clear_faults)
    routes.add_delete("/_admin/faults/{id}", _remove_fault)
    routes.add_post("/_admin/reset", _reset)


def _state(request: web.Request) -> SandboxState:
    return request.app[CONFIG].state


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _admin(handler: Handler) -> Handler:
    """Refuse non-loopback clients; turn bad input into a 400 that says what is wrong."""

    @wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.remote not in _LOOPBACK and not request.app[CONFIG].allow_remote_admin:
            return _error(403, "the admin API answers loopback clients only")
        try:
            return await handler(request)
        except (InvalidInput, ValueError) as exc:
            return _error(400, str(exc))
        except TxpgError as exc:
            return _error(exc.http_status, exc.description)

    return guarded


async def _body(request: web.Request) -> Any:
    try:
        return loads(await request.read())
    except ValueError:
        raise InvalidInput("the body must be a JSON document") from None


@_admin
async def _health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


@_admin
async def _ledger(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("orderId")
    order_id = int(raw) if raw is not None else None
    entries = _state(request).ledger.entries(order_id=order_id)
    return web.json_response({"entries": [entry.to_json() for entry in entries]})


@_admin
async def _orders(request: web.Request) -> web.StreamResponse:
    orders = [
        {
            "id": order.id,
            "typeRid": order.type.value,
            "status": order.status.value,
            "amount": order.amount.to_gateway(),
            "currency": order.currency,
            "description": order.description,
            "trans": len(order.trans),
        }
        for order in _state(request).orders()
    ]
    return web.json_response({"orders": orders})


@_admin
async def _hpp_pay(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("pan"), str):
        raise InvalidInput('hpp-pay needs {"pan": "...", "expiry": "MMYY", "save": true}')
    expiry = body.get("expiry", "1230")
    order_id = request.match_info["id"]
    if not order_id.isdigit():
        return _error(404, f"order {order_id} not found")
    state = _state(request)
    try:
        result = state.hpp_pay(int(order_id), body["pan"], expiry, save=bool(body.get("save")))
    except TxpgError as exc:
        return web.json_response(exc.body(), status=exc.http_status)
    return web.json_response(result)


@_admin
async def _cards(request: web.Request) -> web.StreamResponse:
    cards = _state(request).cards.snapshot()
    return web.json_response({"cards": [card.to_json() for card in cards]})


@_admin
async def _add_cards(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    items = body["cards"] if isinstance(body, dict) and "cards" in body else [body]
    if not isinstance(items, list):
        raise InvalidInput('expected a card or {"cards": [...]}')
    cards = [card_from_json(item) for item in items]  # all checked before any is added
    state = _state(request)
    added = [state.cards.register(card).to_json() for card in cards]
    return web.json_response({"cards": added})


@_admin
async def _top_up(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    if not isinstance(body, dict):
        raise InvalidInput('top-up needs {"amount": "10.00", "currency": "AZN"}')
    currency = body.get("currency", "AZN")
    money = read_amount(body.get("amount"), currency if isinstance(currency, str) else "", "amount")
    key = request.match_info["key"]
    try:
        card = _state(request).top_up(key, money)
    except KeyError:
        return _error(404, f"no card {key}")
    return web.json_response({"card": card.to_json()})


@_admin
async def _faults(request: web.Request) -> web.StreamResponse:
    rules = _state(request).faults.rules()
    return web.json_response({"faults": [rule.to_json() for rule in rules]})


@_admin
async def _add_faults(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    seed = None
    items = [body]
    if isinstance(body, dict) and "faults" in body:
        items, seed = body["faults"], body.get("seed")
        if not isinstance(items, list) or (seed is not None and type(seed) is not int):
            raise InvalidInput('expected {"faults": [...], "seed": 7}')
    rules = [rule_from_json(item) for item in items]
    plan = _state(request).faults
    if seed is not None:
        plan.seed(seed)
    added = [plan.add(rule).to_json() for rule in rules]
    return web.json_response({"faults": added})


@_admin
async def _clear_faults(request: web.Request) -> web.StreamResponse:
    _state(request).faults.clear()
    return web.json_response({"faults": []})


@_admin
async def _remove_fault(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["id"]
    if not raw.isdigit() or not _state(request).faults.remove(int(raw)):
        return _error(404, f"no fault rule {raw}")
    return web.json_response({"removed": int(raw)})


@_admin
async def _reset(request: web.Request) -> web.StreamResponse:
    _state(request).reset()
    return web.json_response({"ok": True})
