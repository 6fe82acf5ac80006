"""The Bizon sandbox's orders and operations, without HTTP.

:class:`BizonState` extends the shared :class:`~worker.sandbox.core.SandboxCore` (cards,
ledger, faults, clock, reset, one lock) with Bizon's orders. It is also the Python API for
tests (``server.state``): read orders, the ledger, move the clock, set faults. Every
operation runs under the lock and answers a :class:`Result` (status, body, headers).

How an order comes to be, and what it starts as:

==========================  ================  ==============================================
call                        origin            first status
==========================  ================  ==============================================
POST /orders/create         ``create``        new (201, ``Location``: the payment page;
                                              ``POST /_admin/orders/{id}/pay`` plays the payer)
POST /orders/authorize      ``authorize``     authorized / declined / error; prepared (201)
                                              when 3-D Secure is forced or the card needs it
POST /orders/token_pay      ``token_pay``     authorized / declined / error (the wallet token
                                              stands for the card ``410937******4320``)
POST /orders/:id/rebill     ``rebill``        authorized / declined / error: a new order on
                                              the parent order's card (no cardholder: a card
                                              that needs SCA declines with ``1A``)
POST /orders/:id/credit     ``credit``        credited / declined: to the parent's card
POST /orders/credit         ``credit-pan``    credited / declined: to a PAN
==========================  ================  ==============================================

With ``options.auto_charge`` (create, authorize, token_pay) or the project setting
``BizonSettings.auto_charge`` (every authorisation, rebill included) an approved
authorisation is charged at once: the order ends ``charged``.

Rebill and ``merchant_order_id``: the reference lists for rebill only ``amount``, ``cvv``,
``location``, ``options.recurring`` and ``recurring_details``, so by default a rebill's
``merchant_order_id`` and ``description`` are ignored (the new order has none), as a
gateway that ignores unknown fields would. ``BizonSettings.rebill_merchant_fields`` accepts
and stores them, for when the gateway confirms it does. A credit takes them (its optional
parameters "are the same as for Authorize").
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from yarl import URL

from worker.money import Money
from worker.sandbox.bizon import bodies, listing, render
from worker.sandbox.bizon.config import BizonSettings
from worker.sandbox.bizon.errors import not_allowed, not_found, validation
from worker.sandbox.bizon.orders import (
    MARKABLE,
    Action,
    CardOnFile,
    OpStatus,
    OpType,
    Order,
    Secure3d,
    Status,
)
from worker.sandbox.bizon.processor import Processor
from worker.sandbox.cards import BIZON_CARDS, Behaviour, Card, brand_of, load_cards
from worker.sandbox.core import Clock, SandboxCore
from worker.sandbox.faults import FaultRule
from worker.sensitive import mask_pan

#: The card behind every token_pay wallet token: the reference's example shows 410937****4320.
DSRP_PAN = "4109370000044320"
#: GET /exchange_rates/: fixed rates, so a test can rely on them.
EXCHANGE_RATES = (
    ("EUR", "USD", "1.145036"),
    ("EUR", "AZN", "1.945000"),
    ("USD", "AZN", "1.700000"),
    ("USD", "EUR", "0.873335"),
)
OPERATION_EXPANDS = frozenset({"cashflow", "extra"})
GET_EXPANDS = render.ORDER_EXPANDS | {"operations.cashflow"}
_ID_BASE = 23014805000000000  #: ids look like the reference's: 17 digits
_ID_STEP = 104729


def bizon_demo_cards() -> list[Card]:
    """The Bizon sandbox's demo cards (``cards.json`` beside this module)."""
    data = resources.files(__package__).joinpath("cards.json").read_bytes()
    return load_cards(data, BIZON_CARDS)


@dataclass(frozen=True, slots=True)
class Result:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class BizonState(SandboxCore):
    """Everything the Bizon sandbox knows. ``cards=None`` loads its demo cards."""

    def __init__(
        self,
        cards: Iterable[Card] | None = None,
        faults: Iterable[FaultRule] = (),
        *,
        seed: int | None = None,
        clock: Clock | None = None,
        ledger_file: Path | None = None,
        settings: BizonSettings | None = None,
    ) -> None:
        super().__init__(
            bizon_demo_cards() if cards is None else cards,
            faults,
            seed=seed,
            clock=clock,
            ledger_file=ledger_file,
        )
        #: the project settings; replace it (``dataclasses.replace``) to change one
        self.settings = settings or BizonSettings()
        self.processor = Processor(self.cards, self.ledger)
        self._orders: dict[int, Order] = {}
        self._ids = itertools.count(1)

    # -- the Python API -----------------------------------------------------------------------

    def order(self, order_id: int | str) -> Order:
        """A copy of one order; ``KeyError`` if unknown."""
        with self.lock:
            return copy.deepcopy(self._orders[int(order_id)])

    def orders(self) -> list[Order]:
        """Copies of every order, oldest first."""
        with self.lock:
            return [copy.deepcopy(order) for order in self._orders.values()]

    def forget_orders(self) -> None:
        self._orders.clear()

    def order_summaries(self) -> list[dict[str, Any]]:
        with self.lock:
            return [render.summary(order) for order in self._orders.values()]

    # -- reading ------------------------------------------------------------------------------

    def ping(self) -> Result:
        return Result(200, {"date": render.when(self.clock()), "message": "PONG!"})

    def get_order(self, order_id: int, query: Mapping[str, str]) -> Result:
        listing.check_params(query, frozenset({"expand"}))
        expand = listing.expand_of(query, GET_EXPANDS)
        with self.lock:
            return self._answer(self._order(order_id), expand)

    def list_orders(self, query: Mapping[str, str], url: URL) -> Result:
        keep = listing.order_filter(query)
        expand = listing.expand_of(query, GET_EXPANDS)
        with self.lock:
            rows = [o for o in reversed(self._orders.values()) if keep(o)]
            page, headers = listing.page_of(rows, query, url, self.settings.page_size)
            body = [render.order_json(o, expand, self.settings.descriptor) for o in page]
        return Result(200, render.orders_body(body), headers)

    def list_operations(self, query: Mapping[str, str], url: URL) -> Result:
        keep = listing.operation_filter(query)
        expand = listing.expand_of(query, OPERATION_EXPANDS)
        with self.lock:
            ops = [op for order in self._orders.values() for op in order.operations]
            rows = sorted((op for op in ops if keep(op)), key=lambda op: op.id, reverse=True)
            page, headers = listing.page_of(rows, query, url, self.settings.page_size)
            body = [
                render.operation_json(op, cashflow="cashflow" in expand, order_id=True)
                for op in page
            ]
        return Result(200, {"operations": body}, headers)

    def exchange_rates(self) -> Result:
        rates = [{"from": a, "rate": rate, "to": b} for a, b, rate in EXCHANGE_RATES]
        return Result(200, {"exchange_rates": rates})

    # -- new orders ---------------------------------------------------------------------------

    def create(self, payload: dict[str, Any], origin: str) -> Result:
        """POST /orders/create: a ``new`` order waiting for the payer on the payment page."""
        currency = bodies.currency(payload, self.settings.currency)
        money = bodies.amount(payload, currency, required=True)
        fields = bodies.order_fields(payload)
        with self.lock:
            order = self._new_order("create", money, fields)
            result = self._answer(order, render.FULL, status=201)
            result.headers["Location"] = f"{origin}/pay/{order.id}"
            return result

    def authorize(self, payload: dict[str, Any], origin: str) -> Result:
        """POST /orders/authorize: 200 when authorised (or declined), 201 when ``prepared``
        for 3-D Secure (``options.force3d``, or a card that needs SCA)."""
        currency = bodies.currency(payload, self.settings.currency)
        money = bodies.amount(payload, currency, required=True)
        pan = bodies.pan(payload)
        card = bodies.card_fields(payload, required=True)
        fields = bodies.order_fields(payload)
        with self.lock:
            order = self._new_order("authorize", money, fields)
            order.card = self._card_on_file(pan, card)
            needs_sca = self._needs_sca(order.card)
            if fields.force3d or needs_sca:
                reason = "force3d" if fields.force3d else "sca"
                order.secure3d = Secure3d(2 if fields.secure3d20 else 1, reason)
                order.move(Status.PREPARED, order.created)
                return self._answer(order, render.FULL, status=201, origin=origin)
            self._authorize(order, authenticated=False)
            return self._answer(order, render.FULL)

    def token_pay(self, payload: dict[str, Any]) -> Result:
        """POST /orders/token_pay: an authorisation with a wallet's (already authenticated)
        token. The sandbox does not decrypt it: every token stands for :data:`DSRP_PAN`."""
        currency = bodies.currency(payload, self.settings.currency)
        money = bodies.amount(payload, currency, required=True)
        kind = bodies.dsrp(payload)
        fields = bodies.order_fields(payload)
        with self.lock:
            order = self._new_order("token_pay", money, fields)
            registered = self.cards.by_pan(DSRP_PAN)
            month, year = (None, None)
            if registered is not None:
                month, year = int(registered.expiry[:2]), 2000 + int(registered.expiry[2:])
            order.card = self._card_on_file(DSRP_PAN, bodies.CardFields(None, month, year))
            order.dsrp = kind
            order.rrn = f"{order.id + 177_000_000_000_000}"
            self._authorize(order, authenticated=True)
            return self._answer(order, render.FULL)

    def rebill(self, parent_id: int, payload: dict[str, Any]) -> Result:
        """POST /orders/:id/rebill: a new order on the parent's card (the recurring charge)."""
        bodies.cvv(payload)
        location = bodies.location(payload)
        bodies.flag(bodies.options(payload), "recurring", "options.recurring")
        merchant = bodies.OrderFields(location=location)
        if self.settings.rebill_merchant_fields:
            merchant.merchant_order_id = bodies.merchant_order_id(payload)
            merchant.description = bodies.description(payload)
        with self.lock:
            parent = self._order(parent_id)
            parent.need(Action.REBILL)
            money = bodies.amount(payload, parent.currency, required=False) or parent.amount
            order = self._child(parent, "rebill", money, merchant)
            self._authorize(order, authenticated=False)
            return self._answer(order, render.FULL)

    def credit(self, parent_id: int, payload: dict[str, Any]) -> Result:
        """POST /orders/:id/credit: an OCT to the card of an earlier (charged) order."""
        fields = bodies.order_fields(payload)
        with self.lock:
            parent = self._order(parent_id)
            parent.need(Action.CREDIT)
            currency = bodies.currency(payload, parent.currency)
            money = bodies.amount(payload, currency, required=True)
            assert money is not None
            order = self._child(parent, "credit", money, fields)
            self.processor.ask(order, OpType.CREDIT, money, self.clock(), authenticated=True)
            return self._answer(order, render.FULL)

    def credit_pan(self, payload: dict[str, Any]) -> Result:
        """POST /orders/credit: an OCT to a card number, linked to no order."""
        currency = bodies.currency(payload, self.settings.currency)
        money = bodies.amount(payload, currency, required=True)
        assert money is not None
        pan = bodies.pan(payload)
        card = bodies.card_fields(payload, required=False)
        fields = bodies.order_fields(payload)
        with self.lock:
            order = self._new_order("credit-pan", money, fields)
            order.card = self._card_on_file(pan, card)
            self.processor.ask(order, OpType.CREDIT, money, self.clock(), authenticated=True)
            return self._answer(order, render.FULL)

    # -- operations on an order ---------------------------------------------------------------

    def charge(self, order_id: int, payload: dict[str, Any]) -> Result:
        with self.lock:
            order = self._order(order_id)
            order.need(Action.CHARGE)
            money = bodies.amount(payload, order.currency, required=False) or order.amount
            if money.minor > order.amount.minor:
                raise validation(f"amount is more than the authorised {order.amount}", order.id)
            self._settle(order, OpType.CHARGE, money)
            return self._answer(order, render.FULL)

    def refund(self, order_id: int, payload: dict[str, Any]) -> Result:
        with self.lock:
            order = self._order(order_id)
            order.need(Action.REFUND)
            self._refund(order, payload)
            return self._answer(order, render.FULL)

    def reverse(self, order_id: int, payload: dict[str, Any]) -> Result:
        with self.lock:
            order = self._order(order_id)
            order.need(Action.REVERSE)
            self._reverse(order, payload)
            return self._answer(order, render.FULL)

    def cancel(self, order_id: int, payload: dict[str, Any]) -> Result:
        """Reverse an authorized order; refund a charged or refunded one."""
        with self.lock:
            order = self._order(order_id)
            if order.status is Status.AUTHORIZED:
                if payload.get("amount") is not None:
                    raise validation("amount is not applicable for reversing", order.id)
                self._reverse(order, payload)
            elif order.status in (Status.CHARGED, Status.REFUNDED):
                self._refund(order, payload)
            else:
                raise not_allowed(
                    f"cancel is not allowed for an order in status {order.status} "
                    "(it reverses an authorized order and refunds a charged one)",
                    order.id,
                )
            return self._answer(order, render.FULL)

    def complete(self, order_id: int, payload: dict[str, Any]) -> Result:
        """POST /orders/:id/complete: the PaRes of 3-D Secure 1.0. Any PaRes passes."""
        pares = payload.get("PaRes")
        if not isinstance(pares, str) or not pares:
            raise validation("PaRes is required", order_id)
        with self.lock:
            order = self._waiting_3ds(order_id)
            assert order.secure3d is not None
            if order.secure3d.version != 1:
                raise validation("the order waits for 3-D Secure 2.0: complete3d20", order.id)
            order.secure3d.done = True
            self._authorize(order, authenticated=True)
            return self._answer(order, ())  # its example is unexpanded

    def complete3d20(self, order_id: int, payload: dict[str, Any]) -> Result:
        """POST /orders/:id/complete3d20. The sandbox's ACS answers at once (its RReq is
        there), so ``cres`` may be left out; an order not on 3-D Secure 2.0 stays prepared."""
        cres = payload.get("cres")
        if cres is not None and not isinstance(cres, str):
            raise validation("cres must be a string", order_id)
        with self.lock:
            order = self._waiting_3ds(order_id)
            assert order.secure3d is not None
            if order.secure3d.version != 2:
                raise validation("the order does not wait for 3-D Secure 2.0", order.id)
            order.secure3d.done = True
            self._authorize(order, authenticated=True)
            return self._answer(order, render.FULL)

    def resume(self, order_id: int, origin: str) -> Result:
        """POST /orders/:id/resume: after the 3DS Method URL, the challenge form."""
        with self.lock:
            order = self._waiting_3ds(order_id)
            assert order.secure3d is not None
            if order.secure3d.version != 2:
                raise validation("the order does not wait for 3-D Secure 2.0", order.id)
            return self._answer(order, render.FULL, origin=origin)

    # -- the admin API's ----------------------------------------------------------------------

    def pay(self, order_id: int, payload: dict[str, Any]) -> Result:
        """Play the payer on the payment page of a ``new`` order (``/_admin/.../pay``)."""
        pan = bodies.pan(payload)
        card = bodies.card_fields(payload, required=True)
        with self.lock:
            order = self._order(order_id)
            if order.status is not Status.NEW:
                raise not_allowed(f"the order is {order.status}, not new", order.id)
            order.card = self._card_on_file(pan, card)
            self._authorize(order, authenticated=True)
            return self._answer(order, render.FULL)

    def mark(self, order_id: int, status: str) -> Result:
        """Set ``rejected``, ``fraud`` or ``chargedback``: the gateway's verdicts."""
        if status not in MARKABLE:
            raise validation(f"status must be one of {sorted(MARKABLE)}")
        with self.lock:
            order = self._order(order_id)
            order.move(Status(status), self.clock())
            return self._answer(order, render.FULL)

    # -- inside -------------------------------------------------------------------------------

    def _order(self, order_id: int) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise not_found(order_id)
        return order

    def _waiting_3ds(self, order_id: int) -> Order:
        order = self._order(order_id)
        if order.status is not Status.PREPARED or order.secure3d is None:
            raise not_allowed("Order already completed", order.id)
        return order

    def _answer(
        self, order: Order, expand: Iterable[str], *, status: int = 200, origin: str = ""
    ) -> Result:
        """The order as ``{"orders": [...]}``; with ``origin``, its 3-D Secure form too."""
        body = render.order_json(order, expand, self.settings.descriptor)
        if origin:
            body = dict(sorted({**body, **render.form3d(order, origin)}.items()))
        return Result(status, render.orders_body([body]))

    def _new_order(self, origin: str, money: Money | None, fields: bodies.OrderFields) -> Order:
        assert money is not None
        now = self.clock()
        order = Order(
            id=_ID_BASE + next(self._ids) * _ID_STEP,
            origin=origin,
            amount=money,
            created=now,
            updated=now,
            description=fields.description,
            merchant_order_id=fields.merchant_order_id,
            segment=fields.segment,
            client=fields.client,
            location=fields.location,
            custom_fields=fields.custom_fields,
            auto_charge=fields.auto_charge or self.settings.auto_charge,
        )
        self._orders[order.id] = order
        return order

    def _child(self, parent: Order, origin: str, money: Money, fields: bodies.OrderFields) -> Order:
        if parent.card is None:
            raise validation(f"order {parent.id} has no card to {origin}", parent.id)
        order = self._new_order(origin, money, fields)
        order.card = copy.copy(parent.card)
        order.parent_id = parent.id
        if origin == "rebill":
            order.auto_charge = self.settings.auto_charge
        return order

    def _card_on_file(self, pan: str, card: bodies.CardFields) -> CardOnFile:
        """What the order keeps of a card: masked, never the PAN."""
        brand = brand_of(pan).lower()
        return CardOnFile(
            masked=mask_pan(pan),
            brand="card" if brand not in ("visa", "mastercard") else brand,
            holder=card.holder,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            registered=self.cards.by_pan(pan) is not None,
        )

    def _needs_sca(self, on_file: CardOnFile) -> bool:
        card = self.processor.card_for(on_file)
        return card.behaviour is Behaviour.DECLINE and card.iso_code == "1A"

    def _authorize(self, order: Order, *, authenticated: bool) -> None:
        now = self.clock()
        op = self.processor.ask(
            order, OpType.AUTHORIZE, order.amount, now, authenticated=authenticated
        )
        if op.status is OpStatus.SUCCESS and order.auto_charge:
            self._settle(order, OpType.CHARGE, order.amount)

    def _settle(self, order: Order, op_type: OpType, money: Money) -> None:
        fee = self.settings.fee_basis_points
        self.processor.settle(order, op_type, money, self.clock(), fee_bp=fee)

    def _refund(self, order: Order, payload: dict[str, Any]) -> None:
        left = order.charged_minor - order.refunded_minor
        if left <= 0:
            raise validation("the order is refunded in full already", order.id)
        money = bodies.amount(payload, order.currency, required=False) or order.money(left)
        if money.minor > left:
            raise validation(f"at most {order.money(left)} is left to refund", order.id)
        self._settle(order, OpType.REFUND, money)

    def _reverse(self, order: Order, payload: dict[str, Any]) -> None:
        if payload.get("amount") is not None:
            raise validation("a partial reversal is not supported", order.id)
        self._settle(order, OpType.REVERSE, order.amount)
