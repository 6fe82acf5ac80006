"""One TXPG order and its state machine, with no HTTP, cards or clock inside.

A call on an order goes in two steps, so the engine can ask a card in between:
:meth:`Order.plan` checks that the order's *type* allows the call (else ``TranProhibited``),
that its *state* does (else ``InvalidOrderState``) and the amount (else ``InvalidAmt``);
:meth:`Order.apply` records the transaction and moves the status.

=================  ===============  ===================================  =====================
order type         call             allowed in                           moves to
=================  ===============  ===================================  =====================
Order_SMS, _REC    Single purchase  Preparing, with a source token       FullyPaid / Declined
Order_DMS, DMSN3D  Auth             Preparing, with a source token       Authorized / Declined
Order_DMS, DMSN3D  Clearing         Authorized, PartiallyPaid            FullyPaid when all
                                                                         the hold is cleared,
                                                                         else PartiallyPaid
OCT                Credit           Preparing, with a destination token  FullyPaid / Declined
all but OCT        Refund           FullyPaid, PartiallyPaid             Refunded when refunds
                                                                         reach the paid amount
Order_SMS, _REC    Single void      FullyPaid, PartiallyPaid (no refund) Voided
                   Full
Order_SMS, _REC    Single void      FullyPaid, once per order            PartiallyPaid
                   Partial
Order_DMS, DMSN3D  Auth void Full   Authorized                           Voided
Order_DMS, DMSN3D  Clearing void    FullyPaid, PartiallyPaid (no refund) Voided
                   Full
=================  ===============  ===================================  =====================

A purchase, auth or credit must be for the order's amount (TXPG takes the order's amount when
the call gives none). Declined, Voided and Refunded orders take no further calls, so a second
purchase on an order is always refused: dunning makes a new order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from worker.gateway.txpg.codes import OrderStatus
from worker.money import Money
from worker.sandbox.errors import TxpgError

APPROVED = 1


class OrderType(enum.StrEnum):
    SMS = "Order_SMS"  #: purchase on the hosted payment page
    DMS = "Order_DMS"  #: preauthorisation on the hosted payment page, then Clearing
    REC = "Order_REC"  #: recurring purchase with a saved card
    DMSN3D = "DMSN3D"  #: recurring preauthorisation with a saved card
    OCT = "OCT"  #: account-to-card credit (payout)


class Op(enum.StrEnum):
    """What an exec-tran call asks for, read from its phase, type and voidKind."""

    PURCHASE = "purchase"
    AUTH = "auth"
    CLEARING = "clearing"
    CREDIT = "credit"
    REFUND = "refund"
    VOID = "void"
    VOID_PARTIAL = "void-partial"


class TranType(enum.StrEnum):
    """A money movement's kind, as the audit ledger names it."""

    PURCHASE = "Purchase"
    AUTH = "Auth"
    CLEARING = "Clearing"
    CREDIT = "Credit"
    REFUND = "Refund"
    REVERSAL = "Reversal"


_ALLOWED: dict[OrderType, frozenset[Op]] = {
    OrderType.SMS: frozenset({Op.PURCHASE, Op.REFUND, Op.VOID, Op.VOID_PARTIAL}),
    OrderType.REC: frozenset({Op.PURCHASE, Op.REFUND, Op.VOID, Op.VOID_PARTIAL}),
    OrderType.DMS: frozenset({Op.AUTH, Op.CLEARING, Op.REFUND, Op.VOID}),
    OrderType.DMSN3D: frozenset({Op.AUTH, Op.CLEARING, Op.REFUND, Op.VOID}),
    OrderType.OCT: frozenset({Op.CREDIT}),
}
#: Calls that take the card's answer (and may be declined); the others always succeed.
CARD_OPS = frozenset({Op.PURCHASE, Op.AUTH, Op.CREDIT})
#: Calls that must carry the order password on the query string.
PASSWORD_OPS = CARD_OPS
_PAID = frozenset({OrderStatus.FULLY_PAID, OrderStatus.PARTIALLY_PAID})
_FINAL = frozenset({OrderStatus.DECLINED, OrderStatus.VOIDED, OrderStatus.REFUNDED})


@dataclass(frozen=True, slots=True)
class TranRequest:
    op: Op
    phase: str  #: ``Single``, ``Auth`` or ``Clearing``
    amount: Money | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A checked call: what will be recorded if the card (when asked) approves."""

    op: Op
    phase: str
    minor: int
    tran_type: TranType
    reverses: TranType | None = None


@dataclass(slots=True)
class Token:
    """A card token set on an order (``srcToken`` or ``dstToken``)."""

    id: int
    role: str  #: ``Src`` or ``Dst``
    display_name: str
    brand: str
    expiry: str | None
    reg_time: datetime
    stored_id: int | None = None
    rid_by_cofp: str | None = None
    #: authenticated with 3-D Secure on the hosted payment page (not for saved-card MIT)
    authenticated: bool = False


@dataclass(slots=True)
class Tran:
    """One transaction on an order, approved or declined."""

    seq: int
    tran_type: TranType
    phase: str
    minor: int
    clear_minor: int  #: signed: what it did to the cleared amount (refunds are negative)
    pmo_code: int
    reg_time: datetime
    approval_code: str | None
    rid_by_pmo: str
    action_id: str
    reverses: TranType | None = None

    @property
    def approved(self) -> bool:
        return self.pmo_code == APPROVED


@dataclass(slots=True)
class Order:
    id: int
    type: OrderType
    amount: Money
    password: str
    secret: str | None
    create_time: datetime
    description: str = ""
    title: str | None = None
    language: str = "az"
    hpp_redirect_url: str | None = None
    cof_purposes: tuple[str, ...] = ()
    installments: int | None = None
    status: OrderStatus = OrderStatus.PREPARING
    prev_status: OrderStatus | None = None
    finish_time: datetime | None = None
    initiation_env: str = "Server"
    src: Token | None = None
    dst: Token | None = None
    stored_tokens: list[Token] = field(default_factory=list)
    trans: list[Tran] = field(default_factory=list)
    authorized_minor: int = 0
    cleared_minor: int = 0
    refunded_minor: int = 0
    partial_void_done: bool = False

    @property
    def currency(self) -> str:
        return self.amount.currency

    def money(self, minor: int) -> Money:
        return Money(minor, self.amount.currency)

    # -- tokens -------------------------------------------------------------------------------

    def check_token(self, role: str) -> None:
        """Setting a token needs a Preparing order of a type that uses that role."""
        wants_dst = self.type is OrderType.OCT
        if (role == "Dst") != wants_dst:
            other = "set-dst-token" if wants_dst else "set-src-token"
            raise TxpgError("TranProhibited", f"a {self.type} order takes {other}")
        self._need_status({OrderStatus.PREPARING}, "set a token")

    # -- transactions -------------------------------------------------------------------------

    def plan(self, req: TranRequest) -> Plan:
        """Check a call against the order's type, state and amounts; nothing changes."""
        if req.op not in _ALLOWED[self.type]:
            raise TxpgError("TranProhibited", f"{req.op} is not allowed on a {self.type} order")
        if req.amount is not None and req.amount.currency != self.currency:
            raise TxpgError("InvalidAmt", f"the order's currency is {self.currency}")
        given = None if req.amount is None else req.amount.minor
        if req.op in CARD_OPS:
            return self._plan_first(req, given)
        if req.op is Op.CLEARING:
            self._need_status({OrderStatus.AUTHORIZED, OrderStatus.PARTIALLY_PAID}, "clear")
            left = self.authorized_minor - self.cleared_minor
            minor = left if given is None else given
            if not 0 < minor <= left:
                raise TxpgError("InvalidAmt", f"at most {self.money(left).to_gateway()} to clear")
            return Plan(req.op, "Clearing", minor, TranType.CLEARING)
        if req.op is Op.REFUND:
            self._need_status(_PAID, "refund")
            left = self.cleared_minor - self.refunded_minor
            minor = left if given is None else given
            if not 0 < minor <= left:
                raise TxpgError("InvalidAmt", f"at most {self.money(left).to_gateway()} to refund")
            return Plan(req.op, "Single", minor, TranType.REFUND)
        return self._plan_void(req, given)

    def _plan_first(self, req: TranRequest, given: int | None) -> Plan:
        tran_type, phase = {
            Op.PURCHASE: (TranType.PURCHASE, "Single"),
            Op.AUTH: (TranType.AUTH, "Auth"),
            Op.CREDIT: (TranType.CREDIT, "Single"),
        }[req.op]
        self._need_status({OrderStatus.PREPARING}, f"{req.op}")
        if req.op is Op.CREDIT and self.dst is None:
            raise TxpgError("InvalidOrderState", "no destination token: call set-dst-token first")
        if req.op is not Op.CREDIT and self.src is None:
            raise TxpgError("InvalidOrderState", "no source token: call set-src-token first")
        if given is not None and given != self.amount.minor:
            raise TxpgError("InvalidAmt", f"the order's amount is {self.amount.to_gateway()}")
        return Plan(req.op, phase, self.amount.minor, tran_type)

    def _plan_void(self, req: TranRequest, given: int | None) -> Plan:
        dual = self.type in (OrderType.DMS, OrderType.DMSN3D)
        if req.op is Op.VOID_PARTIAL:
            if req.phase != "Single":
                raise TxpgError("TranProhibited", "a partial reversal is for phase Single")
            if self.partial_void_done:
                raise TxpgError("InvalidOrderState", "a partial reversal was made already")
            self._need_status({OrderStatus.FULLY_PAID}, "partially reverse")
            self._need_no_refund()
            if given is None or not 0 < given < self.cleared_minor:
                paid = self.money(self.cleared_minor).to_gateway()
                raise TxpgError("InvalidAmt", f"a partial reversal needs 0 < amount < {paid}")
            return Plan(req.op, "Single", given, TranType.REVERSAL, TranType.PURCHASE)
        if req.phase == "Auth" and dual:
            self._need_status({OrderStatus.AUTHORIZED}, "reverse the authorisation")
            minor, reverses = self.authorized_minor, TranType.AUTH
        elif req.phase == "Clearing" and dual:
            self._need_status(_PAID, "reverse the clearing")
            self._need_no_refund()
            minor, reverses = self.cleared_minor, TranType.CLEARING
        elif req.phase == "Single" and not dual:
            self._need_status(_PAID, "reverse the purchase")
            self._need_no_refund()
            minor, reverses = self.cleared_minor, TranType.PURCHASE
        else:
            raise TxpgError("TranProhibited", f"no {req.phase} reversal on a {self.type} order")
        if given is not None and given != minor:
            raise TxpgError("InvalidAmt", f"a full reversal is {self.money(minor).to_gateway()}")
        return Plan(req.op, req.phase, minor, TranType.REVERSAL, reverses)

    def apply(self, plan: Plan, pmo_code: int, tran: Tran) -> None:
        """Record ``tran`` (built from ``plan`` and the card's ``pmo_code``); move the status."""
        self.trans.append(tran)
        if pmo_code != APPROVED:
            self._move(OrderStatus.DECLINED, tran.reg_time)
            return
        minor = plan.minor
        if plan.op in CARD_OPS:
            self.authorized_minor += minor
            if plan.op is Op.AUTH:
                self._move(OrderStatus.AUTHORIZED, tran.reg_time)
                return
            self.cleared_minor += minor
            self._move(OrderStatus.FULLY_PAID, tran.reg_time)
        elif plan.op is Op.CLEARING:
            self.cleared_minor += minor
            done = self.cleared_minor == self.authorized_minor
            status = OrderStatus.FULLY_PAID if done else OrderStatus.PARTIALLY_PAID
            self._move(status, tran.reg_time)
        elif plan.op is Op.REFUND:
            self.refunded_minor += minor
            if self.refunded_minor == self.cleared_minor:
                self._move(OrderStatus.REFUNDED, tran.reg_time)
        elif plan.op is Op.VOID_PARTIAL:
            self.partial_void_done = True
            self.cleared_minor -= minor
            self.authorized_minor -= minor
            self._move(OrderStatus.PARTIALLY_PAID, tran.reg_time)
        else:
            if plan.reverses is not TranType.AUTH:
                self.cleared_minor -= minor
            self.authorized_minor = 0
            self._move(OrderStatus.VOIDED, tran.reg_time)

    def clear_delta(self, plan: Plan) -> int:
        """What a transaction does to the cleared amount, as TXPG's ``clearAmount`` shows it."""
        if plan.op in (Op.PURCHASE, Op.CLEARING):
            return plan.minor
        if plan.op in (Op.REFUND, Op.CREDIT):
            return -plan.minor
        if plan.op is Op.AUTH or plan.reverses is TranType.AUTH:
            return 0
        return -plan.minor

    # -- helpers ------------------------------------------------------------------------------

    def _need_status(self, allowed: set[OrderStatus] | frozenset[OrderStatus], what: str) -> None:
        if self.status not in allowed:
            wanted = " or ".join(sorted(allowed))
            raise TxpgError(
                "InvalidOrderState",
                f"cannot {what}: order {self.id} is {self.status}, not {wanted}",
            )

    def _need_no_refund(self) -> None:
        if self.refunded_minor:
            raise TxpgError("InvalidOrderState", "the order has refunds; refund instead")

    def _move(self, status: OrderStatus, when: datetime) -> None:
        if status != self.status:
            self.prev_status, self.status = self.status, status
        if status in _FINAL:
            self.finish_time = when
