"""TXPG payouts behind the gateway port: ``OCT`` → ``set-dst-token`` → ``exec-tran``
(``Single``, ``Credit``), and ``GET /order/{id}`` (detailed) to reconcile.

The pipeline drives a payout with the same four calls and state machine as a charge, so
:class:`TxpgPayoutGateway` has the charge adapter's shape and its errors (the client maps
them, once, for both). What differs is the card reference stored on the job:

``token:<ridByCofp>``
    a TWO card-on-file token, sent as ``extCof`` with ``cofProviderRid: TWO_COF``;
``pan:<key>``
    a card number typed in for an immediate payout. The PAN is never stored: ``<key>`` only
    names it in the vault of the process that accepted the payout (``pans``), which holds
    it in memory. After a restart the vault no longer has it and the payout ends with
    :class:`PanNotInMemory` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.errors import InvalidInput
from worker.gateway.port import (
    PAN_PREFIX,
    Approval,
    Lookup,
    OrderHandle,
    PanNotInMemory,
    PanVault,
    pan_lookup,
)
from worker.gateway.txpg.adapter import CREDIT_TYPES, classify, order_ref
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.models import (
    CardNumber,
    DestinationToken,
    OrderRequest,
    OrderType,
    TranRequest,
    TwoToken,
)
from worker.money import Money

TOKEN_PREFIX = "token:"  # noqa: S105 - a card reference prefix, not a secret


class InvalidCardRef(InvalidInput):
    """A payout's card reference is neither ``token:<ridByCofp>`` nor ``pan:<key>``."""


class TxpgPayoutGateway:
    """The gateway port for OCT payouts over a :class:`TxpgClient` (thread-safe if the vault
    is). It shares the charge gateway's name, ``txpg``, for breakers and halts; register it
    in the payouts' own gateway mapping, not the charges'.

        payouts = TxpgPayoutGateway(client, pans=vault)
        order = payouts.open_order(amount, "payout p-17")
        payouts.attach_card(order, "token:26AB0DACE700EF1180EB005056954BCC")
        approval = payouts.execute(order, amount)
    """

    name = "txpg"

    def __init__(
        self,
        client: TxpgClient,
        *,
        pans: PanVault | None = None,
        title: str | None = None,
        language: str = "az",
    ) -> None:
        self.client = client
        self.title = title
        self.language = language
        self._pan_of = pan_lookup(pans)

    def open_order(
        self, amount: Money, description: str, card_ref: str = "", ahead: Sequence[str] = ()
    ) -> OrderHandle:
        """An order of its own; the card is attached later, so ``card_ref`` and ``ahead``
        are not used here (the order's id comes back with the answer or not at all).
        """
        request = OrderRequest(
            OrderType.CREDIT, amount, description, language=self.language, title=self.title
        )
        order = self.client.create_order(request)
        return OrderHandle(str(order.id), order.password)

    def destination(self, card_ref: str) -> DestinationToken:
        """The destination token a card reference names; raises :class:`InvalidInput` (and
        sends nothing) when it names none. No message carries the reference or a PAN.
        """
        if card_ref.startswith(TOKEN_PREFIX):
            return TwoToken(card_ref.removeprefix(TOKEN_PREFIX))
        if card_ref.startswith(PAN_PREFIX) and len(card_ref) > len(PAN_PREFIX):
            pan = self._pan_of(card_ref)
            if pan is None:
                raise PanNotInMemory(
                    "the card number of this immediate payout is no longer in memory (the "
                    "process restarted before the card was attached); nothing was sent: "
                    "submit the payout again"
                )
            return CardNumber.parse(pan.reveal())
        raise InvalidCardRef("a payout's card reference must be 'token:<ridByCofp>' or 'pan:<key>'")

    def attach_card(self, order: OrderHandle, card_ref: str) -> None:
        self.client.set_dst_token(order_ref(order), self.destination(card_ref))

    def execute(self, order: OrderHandle, amount: Money) -> Approval:
        result = self.client.exec_tran(order_ref(order), TranRequest.credit(amount))
        return Approval(result.approval_code, result.rid_by_pmo, str(result.pmo_result_code))

    def lookup(self, order: OrderHandle) -> Lookup:
        return classify(self.client.get_order(int(order.id), detailed=True), CREDIT_TYPES)
