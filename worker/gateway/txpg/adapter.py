"""TXPG behind the gateway port: ``Order_REC`` → ``set-src-token`` (storedId) →
``exec-tran`` (``Single``, ``UnspecifiedMit``), and ``GET /order/{id}`` (detailed) to
reconcile.
"""

from __future__ import annotations

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


def _ref(order: OrderHandle) -> OrderRef:
    return OrderRef(int(order.id), order.secret)


def classify(info: OrderInfo) -> Lookup:
    """What a detailed order says about a recurring purchase's money."""
    purchases = [t for t in info.trans if t.type in (None, "Purchase") and not t.is_reversal]
    approved = [t for t in purchases if t.approved]
    status = info.status_raw
    if info.paid or approved:
        return Lookup(LookupOutcome.PAID, status, result_code="1")
    if info.status in FAILED_STATUSES:
        last = purchases[-1].pmo_result_code if purchases else None
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

    def open_order(self, amount: Money, description: str) -> OrderHandle:
        order = self.client.create_order(OrderRequest(OrderType.RECURRING, amount, description))
        return OrderHandle(str(order.id), order.password)

    def attach_card(self, order: OrderHandle, card_ref: str) -> None:
        if not card_ref.isdigit():
            raise MalformedResponse(f"card reference {card_ref!r} is not a TXPG storedId")
        self.client.set_src_token(_ref(order), StoredCard(int(card_ref)))

    def execute(self, order: OrderHandle, amount: Money) -> Approval:
        result = self.client.exec_tran(_ref(order), TranRequest.purchase(amount))
        return Approval(result.approval_code, result.rid_by_pmo, str(result.pmo_result_code))

    def lookup(self, order: OrderHandle) -> Lookup:
        return classify(self.client.get_order(int(order.id), detailed=True))
