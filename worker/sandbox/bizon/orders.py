"""One Bizon order, its operations, and the status table: which operation each status allows.

The table is the reference's "Order Status" table (its "Possible operations" column). The
vendored text (docs/reference/orders-gateway-api.txt) lost that table when it was extracted,
leaving only its caption "Status represents the current order state"; the rows below are
from the public page it came from (docs.bizon.one, "Orders and operation paradigm"):

===========  ===================================================  =========================
status       meaning                                              possible operations
===========  ===================================================  =========================
new          created, not processed yet (waits for the payer)     -
prepared     waiting for outside action (3-D Secure)              - (complete, complete3d20,
                                                                  resume)
authorized   authorization completed                              reverse, charge, rebill
charged      the order has been charged                           refund, credit, rebill
reversed     the authorisation has been cancelled                 rebill
refunded     fully or partially refunded                          refund, credit, rebill
rejected     rejected                                             rebill
fraud        rejected as fraud                                    rebill
declined     declined by the acquirer                             rebill
chargedback  marked as chargeback                                 rebill
credited     credited (OCT)                                       rebill
error        an error occurred during processing                  rebill
===========  ===================================================  =========================

``cancel`` is not in the table: it is a reverse on an authorized order and a refund on a
charged or refunded one, so it is allowed wherever one of those is. ``rebill`` and
``credit`` make a *new* order from this one's card; this order does not change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.money import Money
from worker.sandbox.bizon.errors import not_allowed


class Status(enum.StrEnum):
    NEW = "new"
    PREPARED = "prepared"
    AUTHORIZED = "authorized"
    CHARGED = "charged"
    REVERSED = "reversed"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    FRAUD = "fraud"
    DECLINED = "declined"
    CHARGEDBACK = "chargedback"
    CREDITED = "credited"
    ERROR = "error"


class Action(enum.StrEnum):
    """An operation the status table names."""

    REVERSE = "reverse"
    CHARGE = "charge"
    REFUND = "refund"
    CREDIT = "credit"
    REBILL = "rebill"


ALLOWED: dict[Status, frozenset[Action]] = {
    Status.NEW: frozenset(),
    Status.PREPARED: frozenset(),
    Status.AUTHORIZED: frozenset({Action.REVERSE, Action.CHARGE, Action.REBILL}),
    Status.CHARGED: frozenset({Action.REFUND, Action.CREDIT, Action.REBILL}),
    Status.REVERSED: frozenset({Action.REBILL}),
    Status.REFUNDED: frozenset({Action.REFUND, Action.CREDIT, Action.REBILL}),
    Status.REJECTED: frozenset({Action.REBILL}),
    Status.FRAUD: frozenset({Action.REBILL}),
    Status.DECLINED: frozenset({Action.REBILL}),
    Status.CHARGEDBACK: frozenset({Action.REBILL}),
    Status.CREDITED: frozenset({Action.REBILL}),
    Status.ERROR: frozenset({Action.REBILL}),
}
#: Statuses the admin API may set by hand (the gateway's own verdicts, not the merchant's).
MARKABLE = frozenset({Status.REJECTED, Status.FRAUD, Status.CHARGEDBACK})


class OpType(enum.StrEnum):
    AUTHORIZE = "authorize"
    CHARGE = "charge"
    REFUND = "refund"
    REVERSE = "reverse"
    CREDIT = "credit"


class OpStatus(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  #: declined
    ERROR = "error"  #: an error while processing


@dataclass(slots=True)
class Operation:
    id: int
    order_id: int
    type: OpType
    amount: Money
    status: OpStatus
    iso_code: str
    iso_message: str
    created: datetime
    auth_code: str | None = None  #: on approved operations only
    arn: str | None = None  #: on approved charges and credits
    fee_minor: int = 0  #: a charge's fee, as its cashflow shows it


@dataclass(slots=True)
class CardOnFile:
    """What the order keeps of its card: never the PAN, only what the reference shows."""

    masked: str  #: first six, stars, last four (the registry's form)
    brand: str  #: ``visa``, ``mastercard``...
    holder: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None  #: four digits
    registered: bool = False  #: one of the sandbox's cards (its issuer is known)

    @property
    def bin(self) -> str:
        return self.masked[:6]

    @property
    def last4(self) -> str:
        return self.masked[-4:]


@dataclass(slots=True)
class Secure3d:
    """A 3-D Secure authentication the order waits for, or went through."""

    version: int  #: 1 (PaReq/PaRes, ``complete``) or 2 (``complete3d20``, ``resume``)
    reason: str  #: ``force3d`` (asked for) or ``sca`` (the card needs it)
    done: bool = False


@dataclass(slots=True)
class Order:
    id: int
    origin: str  #: ``create``, ``authorize``, ``token_pay``, ``rebill``, ``credit``...
    amount: Money
    created: datetime
    updated: datetime
    status: Status = Status.NEW
    description: str | None = None
    merchant_order_id: str | None = None
    segment: str | None = None
    client: dict[str, str] = field(default_factory=dict)
    location: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    card: CardOnFile | None = None
    auto_charge: bool = False  #: ``options.auto_charge`` (or the project setting)
    secure3d: Secure3d | None = None
    dsrp: str | None = None  #: ``apple_pay`` / ``google_pay`` for a token_pay order
    rrn: str | None = None
    parent_id: int | None = None
    operations: list[Operation] = field(default_factory=list)
    charged_minor: int = 0
    refunded_minor: int = 0

    @property
    def currency(self) -> str:
        return self.amount.currency

    def money(self, minor: int) -> Money:
        return Money(minor, self.amount.currency)

    @property
    def auth_code(self) -> str | None:
        """The approval code of the operation that authorised (or credited) the order."""
        for op in self.operations:
            if op.type in (OpType.AUTHORIZE, OpType.CREDIT) and op.status is OpStatus.SUCCESS:
                return op.auth_code
        return None

    def need(self, action: Action) -> None:
        """Refuse ``action`` unless the status table allows it in this order's status."""
        if action not in ALLOWED[self.status]:
            allowed = ", ".join(sorted(ALLOWED[self.status])) or "nothing"
            raise not_allowed(
                f"{action} is not allowed for an order in status {self.status} "
                f"(it allows: {allowed})",
                self.id,
            )

    def move(self, status: Status, when: datetime) -> None:
        self.status = status
        self.updated = when
