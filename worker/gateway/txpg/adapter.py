"""TXPG behind the gateway port: ``Order_REC`` → ``set-src-token`` (storedId) →
``exec-tran`` (``Single``, ``UnspecifiedMit``), and ``GET /order/{id}`` (detailed) to
reconcile.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from worker.errors import DeclineClass, MalformedResponse
from worker.gateway.port import Approval, Lookup, LookupOutcome, OrderHandle
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.codes import FAILED_STATUSES, OrderStatus, pmo_code
from worker.gateway.txpg.models import (
    OrderInfo,
    OrderRef,
    OrderRequest,
    OrderType,
    StoredCard,
    TranRequest,
)
from worker.money import Money

#: The ``trans[].type`` values of an order's own money movement, per kind of order. A
#: missing type counts: the order type allows only that one movement.
PURCHASE_TYPES: frozenset[str | None] = frozenset({None, "Purchase"})
CREDIT_TYPES: frozenset[str | None] = frozenset({None, "Credit"})


def order_ref(order: OrderHandle) -> OrderRef:
    """The TXPG address of a port order handle (id and order password)."""
    return OrderRef(int(order.id), order.secret)


def classify(info: OrderInfo, tran_types: Collection[str | None] = PURCHASE_TYPES) -> Lookup:
    """What a detailed order says about its money: a recurring purchase's by default, an OCT
    payout's with ``tran_types=CREDIT_TYPES``. The rules are the same for both: the order
    paid, or an approved transaction of those types, is PAID; a failed status is FAILED with
    the last such transaction's PMO code; Preparing with no transaction is NOT_EXECUTED.
    """
    moves = [t for t in info.trans if t.type in tran_types and not t.is_reversal]
    approved = [t for t in moves if t.approved]
    status = info.status_raw
    if info.paid or approved:
        return Lookup(LookupOutcome.PAID, status, result_code="1")
    if info.status in FAILED_STATUSES:
        last = moves[-1].pmo_result_code if moves else None
        entry = pmo_code(last) if last is not None else None
        # A failed order with no readable code is still dead: a new order may be tried.
        decline = entry.decline_class if entry else DeclineClass.SOFT
        if decline in (DeclineClass.UNKNOWN, DeclineClass.UNAVAILABLE):
            decline = DeclineClass.SOFT
        return Lookup(
            LookupOutcome.FAILED,
            status,
            decline_class=decline,
            result_code=None if last is None else str(last),
            result_title=entry.title if entry else None,
        )
    if info.status is OrderStatus.PREPARING and not info.trans:
        return Lookup(LookupOutcome.NOT_EXECUTED, status)
    return Lookup(LookupOutcome.UNRESOLVED, status)


class TxpgChargeGateway:
    """The charge port over a :class:`TxpgClient` (thread-safe; share one per process)."""

    name = "txpg"

    def __init__(self, client: TxpgClient) -> None:
        self.client = client

    def open_order(
        self, amount: Money, description: str, card_ref: str = "", ahead: Sequence[str] = ()
    ) -> OrderHandle:
        """An order of its own; the card is attached later, so ``card_ref`` and ``ahead``
        are not used here (the order's id comes back with the answer or not at all).
        """
        order = self.client.create_order(OrderRequest(OrderType.RECURRING, amount, description))
        return OrderHandle(str(order.id), order.password)

    def attach_card(self, order: OrderHandle, card_ref: str) -> None:
        if not card_ref.isdigit():
            raise MalformedResponse(f"card reference {card_ref!r} is not a TXPG storedId")
        self.client.set_src_token(order_ref(order), StoredCard(int(card_ref)))

    def execute(self, order: OrderHandle, amount: Money) -> Approval:
        result = self.client.exec_tran(order_ref(order), TranRequest.purchase(amount))
        return Approval(result.approval_code, result.rid_by_pmo, str(result.pmo_result_code))

    def lookup(self, order: OrderHandle) -> Lookup:
        return classify(self.client.get_order(int(order.id), detailed=True))
