"""The acquirer behind the Bizon sandbox: it asks the card, records the operation on the
order, moves the order's status, and writes approved money movements to the shared ledger.

Cards are the shared ones (:mod:`worker.sandbox.cards`), found by PAN (kept masked). A PAN
the sandbox does not know behaves like an ``approve`` card with the expiry the request gave.
A card whose decline code is ``1A`` (strong customer authentication required) is declined
only where no cardholder authenticated: a rebill; after 3-D Secure, on the payment page, or
with a wallet token it approves. A credit never needs a balance or SCA.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from worker.money import Money
from worker.sandbox.bizon import codes
from worker.sandbox.bizon.orders import CardOnFile, Operation, OpStatus, OpType, Order, Status
from worker.sandbox.cards import Card, CardRegistry, Verdict
from worker.sandbox.ledger import Ledger, LedgerEntry

_DIRECTION = {
    OpType.AUTHORIZE: "hold",
    OpType.CHARGE: "debit",
    OpType.REFUND: "credit",
    OpType.REVERSE: "release",
    OpType.CREDIT: "credit",
}
#: What a card-asking operation moves its order to, by the operation's status.
_AFTER = {OpStatus.FAILURE: Status.DECLINED, OpStatus.ERROR: Status.ERROR}


class Processor:
    """Runs operations; the caller holds the sandbox's lock and has checked the status."""

    def __init__(self, cards: CardRegistry, ledger: Ledger) -> None:
        self._cards = cards
        self._ledger = ledger
        self._ids = itertools.count(1)

    def card_for(self, on_file: CardOnFile) -> Card:
        """The registered card behind an order's card, else a stand-in that approves."""
        registered = self._cards.find(on_file.masked) if on_file.registered else None
        if registered is not None:
            return registered
        month, year = on_file.exp_month, on_file.exp_year
        expiry = f"{month:02d}{year % 100:02d}" if month and year else "1299"
        return Card(on_file.masked, expiry, on_file.brand.title())

    def ask(
        self, order: Order, op_type: OpType, money: Money, now: datetime, *, authenticated: bool
    ) -> Operation:
        """An authorisation or a credit: the card answers; the order moves by its answer."""
        assert order.card is not None
        card = self.card_for(order.card)
        debit = op_type is OpType.AUTHORIZE
        verdict = card.verdict(money, now, debit=debit)
        code = codes.code_for(verdict, card)
        if code == codes.SCA_REQUIRED and (authenticated or not debit):
            code, verdict = codes.APPROVED, Verdict.APPROVED
        op = self._record(order, op_type, money, code, now)
        if op.status is not OpStatus.SUCCESS:
            order.move(_AFTER[op.status], now)
            return op
        if debit:
            self._cards.spend(card, money, sign=-1)  # an authorisation holds a limited balance
        order.move(Status.AUTHORIZED if debit else Status.CREDITED, now)
        return op

    def settle(
        self, order: Order, op_type: OpType, money: Money, now: datetime, *, fee_bp: int = 0
    ) -> Operation:
        """A charge, refund or reversal: the acquirer's own business, always approved.

        ``fee_bp`` is a charge's fee in basis points, for its cashflow.
        """
        op = self._record(order, op_type, money, codes.APPROVED, now)
        if op_type is OpType.CHARGE:
            op.fee_minor = (money.minor * fee_bp + 5000) // 10000
            order.charged_minor += money.minor
            order.move(Status.CHARGED, now)
        elif op_type is OpType.REFUND:
            order.refunded_minor += money.minor
            order.move(Status.REFUNDED, now)
        else:
            order.move(Status.REVERSED, now)
        if op_type is not OpType.CHARGE and order.card is not None:
            self._cards.spend(self.card_for(order.card), money, sign=1)  # given back
        return op

    def _record(
        self, order: Order, op_type: OpType, money: Money, code: str, now: datetime
    ) -> Operation:
        seq = next(self._ids)
        approved = code == codes.APPROVED
        op = Operation(
            id=seq,
            order_id=order.id,
            type=op_type,
            amount=money,
            status=OpStatus(codes.operation_status(code)),
            iso_code=code,
            iso_message=codes.message(code),
            created=now,
        )
        if approved:
            first = op_type in (OpType.AUTHORIZE, OpType.CREDIT)
            op.auth_code = f"{(seq * 7919 + 53) % 10**6:06d}" if first else order.auth_code
            if op_type in (OpType.CHARGE, OpType.CREDIT):
                op.arn = f"7{order.id:017d}{seq:05d}"[-23:]
        order.operations.append(op)
        if approved:
            self._write_ledger(order, op, now)
        return op

    def _write_ledger(self, order: Order, op: Operation, now: datetime) -> None:
        card = order.card
        self._ledger.append(
            LedgerEntry(
                seq=self._ledger.next_seq(),
                time=now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                order_id=order.id,
                order_type=order.origin,
                tran_type=op.type.value,
                amount=op.amount.to_gateway(),
                currency=op.amount.currency,
                direction=_DIRECTION[op.type],
                card=card.masked if card is not None else "",
                stored_id=None,
                rid_by_cofp=None,
                description=order.description or "",
                reverses=OpType.AUTHORIZE.value if op.type is OpType.REVERSE else None,
                rid_by_pmo=op.arn or str(op.id),
                merchant_order_id=order.merchant_order_id,
                parent_order_id=order.parent_id,
            )
        )
