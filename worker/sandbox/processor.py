"""The processing centre behind the gateway (TXPG's "PMO"): it asks the card, numbers the
transaction, records it on the order, and writes approved money movements to the ledger.

A decline comes back as the reference's ``PmoDecline`` body: ``pmoResultCode`` as a string,
a ``declineReason``, ``match.ridByPmo`` and a ``pmoDeclineDesc`` naming the card masked
(first six, last four) with its expiry, as in the collection's example.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from worker.gateway.txpg.codes import pmo_code
from worker.sandbox import render
from worker.sandbox.cards import Card, CardRegistry
from worker.sandbox.errors import TxpgError
from worker.sandbox.ledger import Ledger, LedgerEntry
from worker.sandbox.orders import APPROVED, CARD_OPS, Op, Order, Plan, Token, Tran, TranType

#: ``errorDetails.declineReason`` by PMO code. ``SrcCardInvalid`` is the reference's; the
#: others follow its pattern (``DstCard...`` for a payout's card).
DECLINE_REASONS = {
    6: "ScaRequired",
    40: "SrcCardLost",
    41: "SrcCardStolen",
    51: "SrcCardExpired",
    52: "SrcCardInvalid",
    59: "InsufficientFunds",
}


def _direction(plan: Plan) -> str:
    if plan.tran_type in (TranType.PURCHASE, TranType.CLEARING):
        return "debit"
    if plan.tran_type is TranType.AUTH:
        return "hold"
    if plan.reverses is TranType.AUTH:
        return "release"
    return "credit"


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out.rjust(6, "0")


class Processor:
    """Executes checked plans. The caller holds the sandbox's lock."""

    def __init__(self, cards: CardRegistry, ledger: Ledger) -> None:
        self._cards = cards
        self._ledger = ledger
        self._seq = itertools.count(1)

    def card_of(self, token: Token | None) -> Card | None:
        """The registered card behind a token; ``None`` for a bare PAN (it always approves)."""
        if token is None:
            return None
        if token.stored_id is not None:
            return self._cards.by_stored_id(token.stored_id)
        if token.rid_by_cofp is not None:
            return self._cards.by_rid(token.rid_by_cofp)
        return None

    def execute(self, order: Order, plan: Plan, now: datetime) -> Tran:
        """Run ``plan`` on ``order``; returns the approved transaction or raises the decline."""
        token = order.dst if plan.op is Op.CREDIT else order.src
        card = self.card_of(token)
        money = order.money(plan.minor)
        code = APPROVED
        if plan.op in CARD_OPS and card is not None:
            code = card.answer(money, now, debit=plan.op is not Op.CREDIT)
        seq = next(self._seq)
        rid = str(17300000 + seq)
        tran = Tran(
            seq=seq,
            tran_type=plan.tran_type,
            phase=plan.phase,
            minor=plan.minor,
            clear_minor=order.clear_delta(plan) if code == APPROVED else 0,
            pmo_code=code,
            reg_time=now,
            approval_code=f"{(seq * 7919 + 53) % 10**6:06d}" if code == APPROVED else None,
            rid_by_pmo=rid,
            action_id=f"{render.when(now)[2:10].replace('-', '')}-{seq:08d}-{_base36(seq)}=",
            reverses=plan.reverses,
        )
        order.apply(plan, code, tran)
        if code != APPROVED:
            raise decline(token, code, rid, credit=plan.op is Op.CREDIT)
        if card is not None and plan.op not in (Op.CREDIT, Op.CLEARING):
            # a debit spends a limited balance; a refund or reversal gives it back
            self._cards.spend(card, money, sign=-1 if plan.op in CARD_OPS else 1)
        self._ledger.append(
            LedgerEntry(
                seq=self._ledger.next_seq(),
                time=now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                order_id=order.id,
                order_type=order.type.value,
                tran_type=plan.tran_type.value,
                amount=money.to_gateway(),
                currency=money.currency,
                direction=_direction(plan),
                card=token.display_name if token is not None else "",
                stored_id=token.stored_id if token is not None else None,
                rid_by_cofp=token.rid_by_cofp if token is not None else None,
                description=order.description,
                reverses=plan.reverses.value if plan.reverses is not None else None,
                rid_by_pmo=rid,
            )
        )
        return tran


def decline(token: Token | None, code: int, rid: str, *, credit: bool) -> TxpgError:
    """The ``PmoDecline`` error for ``code``, naming the card masked."""
    display = token.display_name if token is not None else "******"
    expiry = token.expiry if token is not None and token.expiry else "0000"
    desc = f"{pmo_code(code).title}. PAN={display}, ExpDate from Track2 (YYMM)="
    desc += f"{expiry[2:]}{expiry[:2]}"
    reason = DECLINE_REASONS.get(code, "PmoDecline")
    if credit:
        reason = reason.replace("SrcCard", "DstCard")
    return TxpgError(
        "PmoDecline",
        f"Auth Response: {code} - {desc}",
        details={
            "declineReason": reason,
            "match": {"ridByPmo": rid},
            "pmoResultCode": str(code),
            "pmoDeclineDesc": desc,
        },
    )
