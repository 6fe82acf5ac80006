"""TXPG's code tables, as data: order statuses, ``errorCode`` values and PMO result codes.

Built from the reference (``kapital-txpg-api.md``, "Statuses and Error codes"). PMO codes are
Kapital's own numbering, not ISO 8583: 51 is an expired card, 59 insufficient funds.

The class of each PMO code decides what the worker does after a decline (see
``worker.errors.DeclineClass``). Where the reference's wording leaves room, the choice and its
reason are written next to the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from worker.errors import DeclineClass

H, S, N, U, A = (
    DeclineClass.HARD,
    DeclineClass.SOFT,
    DeclineClass.NEEDS_CUSTOMER,
    DeclineClass.UNAVAILABLE,
    DeclineClass.UNKNOWN,
)


class OrderStatus(enum.StrEnum):
    """Order statuses as TXPG spells them on the wire. ``UNKNOWN`` keeps anything else."""

    PREPARING = "Preparing"  #: being prepared, no transaction executed yet
    CANCELLED = "Cancelled"  #: cancelled by the consumer or merchant before payment
    REJECTED = "Rejected"  #: rejected by the PSP before payment
    REFUSED = "Refused"  #: the consumer refused to pay
    EXPIRED = "Expired"  #: timed out before payment
    AUTHORIZED = "Authorized"  #: an Auth (preauthorisation) transaction was executed
    PARTIALLY_PAID = "PartiallyPaid"  #: cleared for part of the amount
    FULLY_PAID = "FullyPaid"  #: cleared for the full amount
    FUNDED = "Funded"  #: debit executed (DualStep transfer orders)
    DECLINED = "Declined"  #: declined by the PMO or by 3-D Secure
    VOIDED = "Voided"  #: the authorized amount is zero after a reversal
    REFUNDED = "Refunded"  #: refunds equal the paid amount
    CLOSED = "Closed"  #: closed after payment
    UNKNOWN = "<unknown>"  #: a status this client does not know; never coerced to another

    @classmethod
    def parse(cls, raw: str) -> OrderStatus:
        try:
            return cls(raw)
        except ValueError:
            return cls.UNKNOWN


#: Statuses after which money was taken from the card (or sent, for OCT).
PAID_STATUSES = frozenset({OrderStatus.FULLY_PAID, OrderStatus.CLOSED, OrderStatus.FUNDED})
#: Statuses that say the order ended without moving money.
FAILED_STATUSES = frozenset(
    {
        OrderStatus.DECLINED,
        OrderStatus.REJECTED,
        OrderStatus.REFUSED,
        OrderStatus.EXPIRED,
        OrderStatus.CANCELLED,
    }
)

#: Order types (``typeRid``).
ORDER_TYPES = ("Order_SMS", "Order_DMS", "Order_REC", "DMSN3D", "OCT")


@dataclass(frozen=True, slots=True)
class PmoCode:
    code: int
    title: str
    decline_class: DeclineClass


_PMO: list[tuple[int, str, DeclineClass]] = [
    (0, "None", A),  # no result at all: the money outcome must be asked for
    (1, "Approved", A),
    (2, "Approved Partial", A),
    (3, "Approved Purchase Only", A),
    (4, "Postponed", A),  # "will be processed later": money may still move, so reconcile
    (6, "Strong customer authentication required", N),
    (7, "Need Checker's confirmation", N),
    (8, "Telebank customer already exists", H),
    (9, "Should select virtual card product", H),
    (10, "Should select account number", H),
    (11, "Should change PVV", N),
    (12, "Confirm payment precheck", N),
    (13, "Select bill", H),
    (14, "Customer confirmation requested", N),
    (15, "Original transaction not found", H),
    (16, "Slip already received", H),
    (17, "Personal information input error", H),
    (18, "SMS/EMail dynamic password requested", N),
    (19, "DPA/CAP dynamic password requested", N),
    (20, "Prepaid code not found", H),
    (21, "Corresponding account exhausted", S),  # the agent bank's account: theirs, temporary
    (22, "Acquirer limit exceeded", S),
    (23, "Cutover in process", S),
    (24, "Dynamic PVV Expired", N),
    (25, "Weak PIN", H),
    (26, "External authentication required", N),
    (27, "Additional data required", H),
    (29, "Closed account", H),
    (30, "Blocked", H),
    (40, "Lost card", H),
    (41, "Stolen card", H),
    (49, "Ineligible vendor account", H),
    (50, "Unauthorized usage", H),
    (51, "Expired card", H),
    (52, "Invalid card", H),
    (53, "Invalid PIN", H),
    (54, "System error", S),
    (55, "Ineligible transaction", H),
    (56, "Ineligible account", H),
    (57, "Transaction not supported", H),
    (58, "Restricted card", H),
    (59, "Insufficient funds", S),
    (60, "Uses limit exceeded", S),
    (61, "Withdrawal limit would be exceeded", S),
    (62, "PIN tries limit was reached", H),
    (63, "Withdrawal limit already reached", S),
    (64, "Credit amount limit", S),
    (65, "No statement information", H),
    (66, "Statement not available", H),
    (67, "Invalid amount", H),  # the same amount will be invalid again
    (68, "External decline", S),  # an unexplained decline upstream: worth a later try
    (69, "No sharing", H),
    (71, "Contact card issuer", N),
    (72, "Destination not available", S),
    (73, "Routing error", S),
    (74, "Format error", H),  # our request is wrong; repeating it will not help
    (75, "External decline special condition", H),  # suspected fraud
    (80, "Bad CVV", H),
    (81, "Bad CVV2", H),
    (82, "Invalid transaction", H),
    (83, "PIN tries limit was exceeded", H),
    (84, "Bad CAVV", H),
    (85, "Bad ARQC", H),
    (90, "Approve administrative card operation inside window", A),
    (91, "Approve administrative card operation outside of window", A),
    (92, "Approve administrative card operation", A),
    (93, "Should select card", N),
    (94, "Confirm Issuer Fee", N),
    (95, "Insufficient cash", S),
    (96, "Approved frictionless", A),
    (98, "Invalid merchant", H),
]

PMO_CODES: dict[int, PmoCode] = {code: PmoCode(code, title, cls) for code, title, cls in _PMO}

#: PMO codes that mean the transaction was approved.
APPROVED_PMO_CODES = frozenset({1, 2, 3, 90, 91, 92, 96})


def pmo_code(code: int) -> PmoCode:
    """The table entry for ``code``; an unlisted code is kept, with an UNKNOWN class."""
    return PMO_CODES.get(code, PmoCode(code, f"Unlisted PMO code {code}", A))


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    description: str


#: Every ``errorCode`` of the reference's error table, with its description.
ERROR_CODES: dict[str, ErrorCode] = {
    e.code: e
    for e in [
        ErrorCode("InvalidAmt", "Invalid amount"),
        ErrorCode("InvalidRequest", "Invalid request"),
        ErrorCode("InvalidTran", "Invalid transaction"),
        ErrorCode("InvalidTranLink", "Invalid transaction linkage"),
        ErrorCode("TranProhibited", "Transaction prohibited"),
        ErrorCode("ActionAppException", "Application exception in the gateway"),
        ErrorCode("CantChooseSettleAcct", "Can't choose settlement account"),
        ErrorCode("PmoIfaceNotFound", "PMO interface not found"),
        ErrorCode("PmoDecline", "Transaction declined by PMO"),
        ErrorCode("PmoUnreachable", "Can't reach PMO"),
        ErrorCode("InvalidCert", "Invalid certificate"),
        ErrorCode("InvalidLogin", "Invalid login or password"),
        ErrorCode("InvalidOrderState", "Invalid order state"),
        ErrorCode("InvalidUserSession", "Invalid user session"),
        ErrorCode("NeedChangePwd", "Need change password"),
        ErrorCode("OperationProhibited", "Operation prohibited"),
        ErrorCode("PwdTryLimitExceeded", "Password try limit has been exceeded"),
        ErrorCode("UserSessionExpired", "User session expired"),
        ErrorCode("CofpDecline", "Declined by CoF Provider"),
        ErrorCode("CofpUnreachable", "Can't reach CoF Provider"),
        ErrorCode("InvalidToken", "Invalid token"),
        ErrorCode("InvalidAutStatus", "Invalid authentication status"),
        ErrorCode("ConsumerNotFound", "Consumer not found"),
        ErrorCode("InvalidConsumer", "Invalid consumer"),
        ErrorCode("InvalidSecret", "Invalid secret code"),
        ErrorCode("SecretTryLimit", "Secret try limit has been exceeded"),
    ]
}
