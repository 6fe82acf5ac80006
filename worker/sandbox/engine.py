"""The sandbox's TXPG operations and state, without HTTP: orders, cards, ledger and faults.

:class:`SandboxState` is also the Python API for tests and the demo (``server.state``): read
orders and the ledger, register and top up cards, set faults, move the clock, reset. Every
operation runs under one re-entrant lock, so the HTTP thread and a test thread may use it at
once; reads return copies.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from worker.sandbox import render
from worker.sandbox.bodies import TokenRef, read_new_order, read_token, read_tran
from worker.sandbox.cards import Behaviour, Card, brand_of, demo_cards, valid_expiry
from worker.sandbox.core import Clock, SandboxCore, utc_now
from worker.sandbox.errors import TxpgError, unknown_order
from worker.sandbox.faults import Endpoint, FaultRule
from worker.sandbox.orders import PASSWORD_OPS, Op, Order, OrderType, Plan, Token
from worker.sandbox.processor import Processor
from worker.sensitive import luhn_ok, mask_pan

__all__ = ["Clock", "SandboxState", "utc_now"]

_PASSWORD_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # noqa: S105 - not a password


class SandboxState(SandboxCore):
    """Everything the TXPG sandbox knows. ``cards=None`` loads the demo cards.

    Cards, ledger, faults, clock, top-ups and reset come from
    :class:`~worker.sandbox.core.SandboxCore`; the orders and TXPG's operations are here.
    """

    def __init__(
        self,
        cards: Iterable[Card] | None = None,
        faults: Iterable[FaultRule] = (),
        *,
        seed: int | None = None,
        clock: Clock | None = None,
        ledger_file: Path | None = None,
    ) -> None:
        super().__init__(
            demo_cards() if cards is None else cards,
            faults,
            seed=seed,
            clock=clock,
            ledger_file=ledger_file,
        )
        self.processor = Processor(self.cards, self.ledger)
        self._orders: dict[int, Order] = {}
        self._order_ids = itertools.count(10001)
        self._token_ids = itertools.count(40001)

    # -- the Python API -----------------------------------------------------------------------

    def order(self, order_id: int) -> Order:
        """A copy of one order (status, amounts, trans); ``KeyError`` if unknown."""
        with self.lock:
            return copy.deepcopy(self._orders[order_id])

    def orders(self) -> list[Order]:
        """Copies of every order, oldest first."""
        with self.lock:
            return [copy.deepcopy(order) for order in self._orders.values()]

    def forget_orders(self) -> None:
        self._orders.clear()

    def order_summaries(self) -> list[dict[str, Any]]:
        return [
            {
                "id": order.id,
                "typeRid": order.type.value,
                "status": order.status.value,
                "amount": order.amount.to_gateway(),
                "currency": order.currency,
                "description": order.description,
                "trans": len(order.trans),
            }
            for order in self.orders()
        ]

    # -- the gateway operations (called by worker.sandbox.app) --------------------------------

    def create_order(self, payload: Any, hpp_url: str) -> dict[str, Any]:
        new = read_new_order(payload)
        with self.lock:
            now = self.clock()
            order = Order(
                id=next(self._order_ids),
                type=new.type,
                amount=new.amount,
                password="".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(12)),
                secret=f"{secrets.randbelow(10**6):06d}" if new.type in render.HPP_TYPES else None,
                create_time=now,
                description=new.description,
                title=new.title,
                language=new.language,
                hpp_redirect_url=new.hpp_redirect_url,
                cof_purposes=new.cof_purposes,
                installments=new.installments,
            )
            if new.stored_id is not None:
                order.check_token("Src")
                order.src = self._src_token(TokenRef(stored_id=new.stored_id), now)
            self._orders[order.id] = order
            return render.created(order, hpp_url)

    def set_src_token(self, order_id: int, password: str | None, payload: Any) -> dict[str, Any]:
        return self._set_token(order_id, password, payload, "Src")

    def set_dst_token(self, order_id: int, password: str | None, payload: Any) -> dict[str, Any]:
        return self._set_token(order_id, password, payload, "Dst")

    def exec_tran(self, order_id: int, password: str | None, payload: Any) -> dict[str, Any]:
        with self.lock:
            order = self._order(order_id)
            self._check_password(order, password, required=False)  # a wrong one: refused first
            request = read_tran(payload, order.currency)
            self._check_password(order, password, required=request.op in PASSWORD_OPS)
            plan = order.plan(request)
            return self._execute(order, plan)

    def get_order(
        self, order_id: int, password: str | None, query: Mapping[str, str], hpp_url: str
    ) -> dict[str, Any]:
        levels = {}
        for name in ("tranDetailLevel", "tokenDetailLevel", "orderDetailLevel"):
            raw = query.get(name, "0")
            if not raw.isascii() or not raw.isdigit():
                raise TxpgError("InvalidRequest", f"{name} must be 0, 1 or 2")
            levels[name] = int(raw)
        with self.lock:
            order = self._order(order_id)
            self._check_password(order, password, required=False)
            if not any(levels.values()):
                return render.simple(order)
            return render.detailed(
                order,
                hpp_url,
                trans=levels["tranDetailLevel"] > 0,
                tokens=levels["tokenDetailLevel"] > 0,
            )

    def stored_id_for(self, endpoint: Endpoint, order_id: int | None, payload: Any) -> int | None:
        """The storedId a call concerns, for fault rules that match on it."""
        if endpoint is Endpoint.SET_SRC_TOKEN:
            try:
                return read_token(payload, allow_pan=False).stored_id
            except TxpgError:
                return None
        with self.lock:
            order = self._orders.get(order_id) if order_id is not None else None
            token = order.src if order is not None else None
            return token.stored_id if token is not None else None

    def hpp_pay(self, order_id: int, pan: str, expiry: str, *, save: bool) -> dict[str, Any]:
        """Play the customer on the hosted payment page: pay an Order_SMS/Order_DMS by PAN.

        Order_SMS is purchased, Order_DMS authorised. With ``save`` (the customer ticked "save
        my card"; the order must have ``hppCofCapturePurposes``) the card is saved: it gets a
        new storedId and TWO token, usable for recurring orders, and the order lists them in
        ``storedTokens``. The PAN itself is masked at once and never kept.
        """
        if not 13 <= len(pan) <= 19 or not luhn_ok(pan):
            raise TxpgError("InvalidToken", "pan is not a valid card number")
        if not valid_expiry(expiry):
            raise TxpgError("InvalidRequest", "expiry must be MMYY")
        with self.lock:
            order = self._order(order_id)
            if order.type not in render.HPP_TYPES:
                raise TxpgError("TranProhibited", f"a {order.type} order has no payment page")
            order.check_token("Src")
            if save and not order.cof_purposes:
                raise TxpgError("InvalidRequest", "the order has no hppCofCapturePurposes")
            now = self.clock()
            display = mask_pan(pan)
            token = Token(
                next(self._token_ids),
                "Src",
                display,
                brand_of(pan),
                expiry,
                now,
                authenticated=True,
            )
            order.src, order.initiation_env = token, "Browser"
            saved = None
            if save:
                saved = self.cards.register(
                    Card(
                        display,
                        expiry,
                        token.brand,
                        Behaviour.APPROVE,
                        stored_id=self.cards.new_stored_id(),
                        rid_by_cofp=uuid.uuid4().hex.upper(),
                    )
                )
                token.stored_id, token.rid_by_cofp = saved.stored_id, saved.rid_by_cofp
                order.stored_tokens = [
                    Token(saved.stored_id or 0, "Src", display, token.brand, expiry, now),
                    Token(
                        next(self._token_ids),
                        "Src",
                        display,
                        token.brand,
                        expiry,
                        now,
                        rid_by_cofp=saved.rid_by_cofp,
                    ),
                ]
            op = Op.PURCHASE if order.type is OrderType.SMS else Op.AUTH
            plan = order.plan(read_tran(_first_call(op), order.currency))
            result = self._execute(order, plan)
            if saved is not None:
                result["storedId"] = saved.stored_id
                result["ridByCofp"] = saved.rid_by_cofp
            result["status"] = order.status.value
            return result

    # -- inside -------------------------------------------------------------------------------

    def _order(self, order_id: int) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise unknown_order(order_id)
        return order

    @staticmethod
    def _check_password(order: Order, password: str | None, *, required: bool) -> None:
        if password is None:
            if required:
                raise TxpgError("OperationProhibited", "the order password is required")
            return
        if not secrets.compare_digest(password.encode(), order.password.encode()):
            raise TxpgError("OperationProhibited", "wrong order password")

    def _set_token(
        self, order_id: int, password: str | None, payload: Any, role: str
    ) -> dict[str, Any]:
        with self.lock:
            order = self._order(order_id)
            self._check_password(order, password, required=True)
            ref = read_token(payload, allow_pan=role == "Dst")
            order.check_token(role)
            now = self.clock()
            if role == "Src":
                order.src = self._src_token(ref, now)
                if ref.initiation_env is not None:
                    order.initiation_env = ref.initiation_env
                return render.token_set(order, order.src)
            order.dst = self._dst_token(ref, now)
            return render.token_set(order, order.dst)

    def _card_for(self, ref: TokenRef) -> Card:
        card = None
        if ref.stored_id is not None:
            card = self.cards.by_stored_id(ref.stored_id)
            name = f"storedId {ref.stored_id}"
        else:
            card = self.cards.by_rid(ref.rid_by_cofp or "")
            name = f"TWO token {ref.rid_by_cofp}"
        if card is None:
            raise TxpgError("InvalidToken", f"no saved card with {name}")
        return card

    def _src_token(self, ref: TokenRef, now: datetime) -> Token:
        card = self._card_for(ref)
        return Token(
            next(self._token_ids),
            "Src",
            card.display_name,
            card.brand,
            card.expiry,
            now,
            stored_id=ref.stored_id if ref.stored_id is not None else card.stored_id,
            rid_by_cofp=ref.rid_by_cofp or card.rid_by_cofp,
        )

    def _dst_token(self, ref: TokenRef, now: datetime) -> Token:
        if ref.pan is not None:
            return Token(
                next(self._token_ids), "Dst", mask_pan(ref.pan), brand_of(ref.pan), None, now
            )
        card = self._card_for(ref)
        return Token(
            next(self._token_ids),
            "Dst",
            card.display_name,
            card.brand,
            card.expiry,
            now,
            stored_id=card.stored_id,
            rid_by_cofp=ref.rid_by_cofp or card.rid_by_cofp,
        )

    def _execute(self, order: Order, plan: Plan) -> dict[str, Any]:
        return render.tran_result(self.processor.execute(order, plan, self.clock()))


def _first_call(op: Op) -> dict[str, Any]:
    if op is Op.PURCHASE:
        return {"tran": {"phase": "Single"}}
    return {"tran": {"phase": "Auth", "authorizationKind": "Preliminary"}}
