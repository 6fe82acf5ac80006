"""The admin API under ``/_admin``: ledger, cards, faults, orders, reset. For loopback use.

Shared by both sandboxes (:class:`AdminSettings` says what differs: the endpoint names of
fault rules, how a card is written, the default currency of a top-up); each gateway adds
its own routes under ``/_admin/orders/{id}/...`` with the same :func:`guarded` decorator.

It has no authentication, so it answers only clients on 127.0.0.1/::1 unless the app was
made with ``allow_remote_admin=True`` (``billing sandbox --admin-remote``, for a container).

==========================================  ==================================================
``GET    /_admin/health``                   ``{"ok": true}``: the sandbox is serving
``GET    /_admin/ledger[?orderId=N]``       ``{"entries": [...]}``: money moved, oldest first
``GET    /_admin/orders``                   ``{"orders": [...]}``: id, type, status, amounts
``POST   /_admin/orders/{id}/hpp-pay``      TXPG: ``{"pan", "expiry", "save"}``: play the
                                            customer on the payment page (Order_SMS / _DMS)
``POST   /_admin/orders/{id}/pay``          Bizon: play the customer on the payment page
``POST   /_admin/orders/{id}/mark``         Bizon: ``{"status": "chargedback"}`` (or
                                            ``fraud``, ``rejected``)
``GET    /_admin/cards``                    ``{"cards": [...]}``
``POST   /_admin/cards``                    a card, or ``{"cards": [...]}``: register
``POST   /_admin/cards/{key}/top-up``       ``{"amount": "10.00", "currency": "AZN"}``; the
                                            key is a storedId, a TWO token or a masked PAN
``GET    /_admin/faults``                   ``{"faults": [...]}`` with how often each fired
``POST   /_admin/faults``                   a rule, or ``{"faults": [...], "seed": 7}``: add
``DELETE /_admin/faults[/{id}]``            clear all rules, or one
``POST   /_admin/reset``                    forget orders, ledger, card changes and faults
==========================================  ==================================================

Errors are ``{"error": "..."}`` with 400 (bad input), 403 (not loopback) or 404.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import wraps
from typing import Any

from aiohttp import web

from worker.errors import InvalidInput
from worker.money import Money, parse_amount
from worker.sandbox.cards import TXPG_CARDS, Card, CardDialect, card_from_json
from worker.sandbox.core import SandboxCore
from worker.sandbox.faults import Endpoint, rule_from_json
from worker.sandbox.wire import loads

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """What the admin API needs to know about the sandbox it serves."""

    state: SandboxCore
    allow_remote: bool = False
    endpoints: type[enum.StrEnum] = Endpoint  #: the names fault rules use
    fault_by_card: bool = True  #: fault rules may match a storedId
    cards: CardDialect = TXPG_CARDS
    currency: str = "AZN"  #: a top-up's currency when it names none

    def read_card(self, data: Mapping[str, Any]) -> Card:
        return card_from_json(data, self.cards)


ADMIN = web.AppKey("sandbox_admin", AdminSettings)


def add_routes(app: web.Application, settings: AdminSettings) -> None:
    app[ADMIN] = settings
    routes = app.router
    routes.add_get("/_admin/health", _health)
    routes.add_get("/_admin/ledger", _ledger)
    routes.add_get("/_admin/orders", _orders)
    routes.add_get("/_admin/cards", _cards)
    routes.add_post("/_admin/cards", _add_cards)
    routes.add_post("/_admin/cards/{key}/top-up", _top_up)
    routes.add_get("/_admin/faults", _faults)
    routes.add_post("/_admin/faults", _add_faults)
    routes.add_delete("/_admin/faults", _clear_faults)
    routes.add_delete("/_admin/faults/{id}", _remove_fault)
    routes.add_post("/_admin/reset", _reset)


def _state(request: web.Request) -> SandboxCore:
    return request.app[ADMIN].state


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def guarded(handler: Handler) -> Handler:
    """Refuse non-loopback clients; turn bad input into a 400 that says what is wrong."""

    @wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        if request.remote not in _LOOPBACK and not request.app[ADMIN].allow_remote:
            return error(403, "the admin API answers loopback clients only")
        try:
            return await handler(request)
        except (InvalidInput, ValueError) as exc:
            return error(400, str(exc))

    return guard


async def read_body(request: web.Request) -> Any:
    """The request's JSON body; :class:`InvalidInput` (a 400) if it is not JSON."""
    try:
        return loads(await request.read())
    except ValueError:
        raise InvalidInput("the body must be a JSON document") from None


def read_money(value: Any, currency: Any) -> Money:
    """An admin amount (``"10.00"``, ``10``, ``10.5``) in ``currency``, exactly."""
    if not isinstance(currency, str):
        raise InvalidInput("currency must be a string like 'AZN'")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidInput('amount must be an amount like "10.00"')
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    return parse_amount(text, currency)


@guarded
async def _health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


@guarded
async def _ledger(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("orderId")
    order_id = int(raw) if raw is not None else None
    entries = _state(request).ledger.entries(order_id=order_id)
    return web.json_response({"entries": [entry.to_json() for entry in entries]})


@guarded
async def _orders(request: web.Request) -> web.StreamResponse:
    return web.json_response({"orders": _state(request).order_summaries()})


@guarded
async def _cards(request: web.Request) -> web.StreamResponse:
    cards = _state(request).cards.snapshot()
    return web.json_response({"cards": [card.to_json() for card in cards]})


@guarded
async def _add_cards(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    items = body["cards"] if isinstance(body, dict) and "cards" in body else [body]
    if not isinstance(items, list):
        raise InvalidInput('expected a card or {"cards": [...]}')
    settings = request.app[ADMIN]
    cards = [settings.read_card(item) for item in items]  # all checked before any is added
    state = _state(request)
    added = [state.cards.register(card).to_json() for card in cards]
    return web.json_response({"cards": added})


@guarded
async def _top_up(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    if not isinstance(body, dict):
        raise InvalidInput('top-up needs {"amount": "10.00", "currency": "AZN"}')
    currency = body.get("currency", request.app[ADMIN].currency)
    money = read_money(body.get("amount"), currency)
    key = request.match_info["key"]
    try:
        card = _state(request).top_up(key, money)
    except KeyError:
        return error(404, f"no card {key}")
    return web.json_response({"card": card.to_json()})


@guarded
async def _faults(request: web.Request) -> web.StreamResponse:
    rules = _state(request).faults.rules()
    return web.json_response({"faults": [rule.to_json() for rule in rules]})


@guarded
async def _add_faults(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    seed = None
    items = [body]
    if isinstance(body, dict) and "faults" in body:
        items, seed = body["faults"], body.get("seed")
        if not isinstance(items, list) or (seed is not None and type(seed) is not int):
            raise InvalidInput('expected {"faults": [...], "seed": 7}')
    settings = request.app[ADMIN]
    rules = [
        rule_from_json(item, settings.endpoints, by_card=settings.fault_by_card) for item in items
    ]
    plan = _state(request).faults
    if seed is not None:
        plan.seed(seed)
    added = [plan.add(rule).to_json() for rule in rules]
    return web.json_response({"faults": added})


@guarded
async def _clear_faults(request: web.Request) -> web.StreamResponse:
    _state(request).faults.clear()
    return web.json_response({"faults": []})


@guarded
async def _remove_fault(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["id"]
    if not raw.isdigit() or not _state(request).faults.remove(int(raw)):
        return error(404, f"no fault rule {raw}")
    return web.json_response({"removed": int(raw)})


@guarded
async def _reset(request: web.Request) -> web.StreamResponse:
    _state(request).reset()
    return web.json_response({"ok": True})
