"""Bizon's code tables, as data: order and operation statuses, which actions each order status
allows, and the ISO 8583 response codes an operation carries, each with a decline class.

Sources and assumptions
-----------------------
* **Statuses and allowed actions.** The vendored text (``docs/reference/orders-gateway-api.txt``)
  lost both status tables in extraction: only their captions survive ("Status represents the
  current order state", "... the final result of processing the operation"). The tables are
  on Bizon's public page "Orders and operation paradigm" (docs.bizon.one, API - Payment
  gateway), from which :data:`ALLOWED` is copied. The text's examples show seven of the twelve
  order statuses (new, prepared, authorized, charged, reversed, refunded, credited).
  ``cancel`` and the 3-D Secure completions are not in that table; their rows are derived and
  marked below.
* **ISO response codes.** Neither the text nor the public pages list ``iso_response_code``
  values; the text's examples only show ``"00"``. The table is ISO 8583:1987 field 39 as
  acquirers publish it, with Visa's two-character additions (``1A``, ``N7``, ``R0``-``R3``).
  The classes follow Visa's decline categories (1: issuer will never approve, 2: cannot
  approve now, 3: data quality, 4: generic) and the card networks' retry rules for
  recurring (MIT) charges, mapped onto this project's :class:`~worker.errors.DeclineClass`:

  - ``HARD``: the card or the merchant setup will not work for this charge again; retrying
    breaks network rules (Visa category 1, revocations ``R0``/``R1``/``R3``, fraud, expired).
  - ``SOFT``: the same card may pass later (funds, limits, issuer or switch down, ``05``).
  - ``NEEDS_CUSTOMER``: only the cardholder can unblock it (strong customer authentication,
    refer to issuer, card not yet activated).
  - ``UNKNOWN``: not a clean "no" (``09`` in progress, ``94`` duplicate: the first may have
    been approved) or a code not in the table: the caller reconciles.

  Where a class is a judgement, the reason is written next to the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from worker.errors import DeclineClass

H, S, N, A = (
    DeclineClass.HARD,
    DeclineClass.SOFT,
    DeclineClass.NEEDS_CUSTOMER,
    DeclineClass.UNKNOWN,
)


class OrderStatus(enum.StrEnum):
    """An order's ``status``. ``UNKNOWN`` keeps anything else; it is never coerced."""

    NEW = "new"  #: created, not processed yet
    PREPARED = "prepared"  #: waiting for outside action (3-D Secure, the payment page)
    AUTHORIZED = "authorized"  #: authorization completed
    CHARGED = "charged"  #: charged
    REVERSED = "reversed"  #: the authorization was cancelled
    REFUNDED = "refunded"  #: fully or partially refunded
    REJECTED = "rejected"  #: rejected (by the gateway, before the acquirer)
    FRAUD = "fraud"  #: found to be fraud and rejected for it
    DECLINED = "declined"  #: declined by the acquirer
    CHARGEDBACK = "chargedback"  #: marked as a chargeback
    CREDITED = "credited"  #: credited (OCT)
    ERROR = "error"  #: an error during processing: "contact the support team"
    UNKNOWN = "<unknown>"  #: a status this client does not know

    @classmethod
    def parse(cls, raw: str) -> OrderStatus:
        try:
            return cls(raw)
        except ValueError:
            return cls.UNKNOWN


class OperationStatus(enum.StrEnum):
    """An operation's ``status``: the final result of processing it."""

    SUCCESS = "success"  #: processed successfully
    FAILURE = "failure"  #: declined (for instance an authorization decline)
    ERROR = "error"  #: an error during processing: "contact the support team"
    UNKNOWN = "<unknown>"

    @classmethod
    def parse(cls, raw: str) -> OperationStatus:
        try:
            return cls(raw)
        except ValueError:
            return cls.UNKNOWN


class OperationType(enum.StrEnum):
    """An operation's ``type``, as the text's examples show them."""

    AUTHORIZE = "authorize"
    CHARGE = "charge"
    REVERSE = "reverse"
    REFUND = "refund"
    CREDIT = "credit"
    UNKNOWN = "<unknown>"

    @classmethod
    def parse(cls, raw: str) -> OperationType:
        try:
            return cls(raw)
        except ValueError:
            return cls.UNKNOWN


class Action(enum.StrEnum):
    """An action on an existing order (``/orders/:id/<action>``)."""

    CHARGE = "charge"
    REFUND = "refund"
    REVERSE = "reverse"
    CANCEL = "cancel"
    REBILL = "rebill"
    CREDIT = "credit"
    COMPLETE = "complete"
    COMPLETE3D20 = "complete3d20"
    RESUME = "resume"


_AFTER_3DS = frozenset({Action.COMPLETE, Action.COMPLETE3D20, Action.RESUME})

#: Order status -> the actions it allows. The "Possible operations" column of the public
#: status table, plus two derived rows: ``cancel`` reverses or refunds ("Amount of refund (not
#: applicable for reversing)"), so it is allowed wherever reverse or refund is; the 3-D Secure
#: completions (complete, complete3d20, resume) act on an order left ``prepared`` (the text:
#: "order will remain in the prepare status").
ALLOWED: dict[OrderStatus, frozenset[Action]] = {
    OrderStatus.NEW: frozenset(),
    OrderStatus.PREPARED: _AFTER_3DS,
    OrderStatus.AUTHORIZED: frozenset(
        {Action.REVERSE, Action.CHARGE, Action.REBILL, Action.CANCEL}
    ),
    OrderStatus.CHARGED: frozenset({Action.REFUND, Action.CREDIT, Action.REBILL, Action.CANCEL}),
    OrderStatus.REVERSED: frozenset({Action.REBILL}),
    OrderStatus.REFUNDED: frozenset({Action.REFUND, Action.CREDIT, Action.REBILL, Action.CANCEL}),
    OrderStatus.REJECTED: frozenset({Action.REBILL}),
    OrderStatus.FRAUD: frozenset({Action.REBILL}),
    OrderStatus.DECLINED: frozenset({Action.REBILL}),
    OrderStatus.CHARGEDBACK: frozenset({Action.REBILL}),
    OrderStatus.CREDITED: frozenset({Action.REBILL}),
    OrderStatus.ERROR: frozenset({Action.REBILL}),
    OrderStatus.UNKNOWN: frozenset(),
}


def allows(status: OrderStatus, action: Action) -> bool:
    """Whether an order in ``status`` accepts ``action``. An unknown status allows nothing."""
    return action in ALLOWED[status]


#: Statuses after which the order's money moved to the merchant (or, ``credited``, out).
PAID_STATUSES = frozenset({OrderStatus.CHARGED, OrderStatus.CREDITED})
#: Statuses that say the order ended without moving money.
FAILED_STATUSES = frozenset(
    {OrderStatus.DECLINED, OrderStatus.REJECTED, OrderStatus.FRAUD, OrderStatus.REVERSED}
)


@dataclass(frozen=True, slots=True)
class IsoCode:
    code: str
    title: str
    decline_class: DeclineClass
    reason: str | None = None  #: why the class, where it is a judgement


_ISO: list[tuple[str, str, DeclineClass, str | None]] = [
    # Approvals: a "failure" operation carrying one is a contradiction, so reconcile.
    ("00", "Approved", A, None),
    ("08", "Honour with identification", A, None),
    ("10", "Approved for partial amount", A, "partly approved: the money did move"),
    ("11", "Approved (VIP)", A, None),
    ("16", "Approved, update track 3", A, None),
    ("85", "No reason to decline", A, "the approval of a verification"),
    # Declines.
    ("01", "Refer to card issuer", N, "the cardholder must call the issuer"),
    ("02", "Refer to card issuer, special condition", N, "the cardholder must call the issuer"),
    ("03", "Invalid merchant", H, "our acquiring setup, not the card: ops must fix it first"),
    ("04", "Pick up card", H, None),
    ("05", "Do not honour", S, "generic: issuers use it for temporary reasons; Visa category 4"),
    ("06", "Error", S, "an issuer-side error"),
    ("07", "Pick up card, special condition", H, "suspected fraud"),
    ("09", "Request in progress", A, "not an answer yet"),
    ("12", "Invalid transaction", H, "Visa category 1"),
    ("13", "Invalid amount", H, "the same amount will be invalid again"),
    ("14", "Invalid card number", H, "Visa category 1: the stored card does not exist"),
    ("15", "No such issuer", H, "Visa category 1"),
    ("17", "Customer cancellation", H, None),
    ("19", "Re-enter transaction", S, None),
    ("20", "Invalid response", S, None),
    ("21", "No action taken", S, None),
    ("22", "Suspected malfunction", S, None),
    ("25", "Unable to locate record", H, "the original is not there: repeating cannot help"),
    ("28", "File temporarily unavailable", S, None),
    ("30", "Format error", H, "our request is wrong; repeating it will not help"),
    ("33", "Expired card, pick up", H, None),
    ("34", "Suspected fraud, pick up", H, None),
    ("36", "Restricted card, pick up", H, None),
    ("38", "PIN tries exceeded, pick up", H, None),
    ("39", "No credit account", H, "the card has no account this charge can use"),
    ("40", "Function not supported", H, None),
    ("41", "Lost card", H, None),
    ("43", "Stolen card", H, None),
    ("46", "Closed account", H, "Visa category 1"),
    ("51", "Insufficient funds", S, None),
    ("52", "No checking account", H, "the card has no account this charge can use"),
    ("53", "No savings account", H, "the card has no account this charge can use"),
    ("54", "Expired card", H, "the card on file must be replaced by the customer"),
    ("55", "Incorrect PIN", H, None),
    ("56", "No card record", H, None),
    ("57", "Transaction not permitted to cardholder", H, "Visa category 1"),
    ("58", "Transaction not permitted to terminal", H, "our terminal setup: ops must fix it"),
    ("59", "Suspected fraud", H, "Visa lists it as retryable; billing does not retry fraud"),
    ("61", "Exceeds withdrawal amount limit", S, None),
    ("62", "Restricted card", H, "restricted for this kind of use (region, e-commerce)"),
    ("63", "Security violation", H, None),
    # 65 is decided with the card brand: see iso_code().
    ("65", "Exceeds withdrawal frequency limit", S, "Visa: a count limit, it resets"),
    ("68", "Response received too late", S, "the issuer did not answer in time; nothing moved"),
    ("75", "PIN tries exceeded", H, None),
    ("78", "Blocked, first used", N, "the card is not activated yet: the cardholder must"),
    ("79", "Already reversed", H, "repeating cannot help"),
    ("82", "Negative CVV or CAM result", H, "Visa category 3"),
    ("91", "Issuer or switch inoperative", S, "the issuer is down: the same card later"),
    ("92", "Routing not possible", S, "a routing fault upstream, usually temporary"),
    ("93", "Violation of law", H, None),
    ("94", "Duplicate transmission", A, "the first request may have been approved"),
    ("96", "System malfunction", S, "the issuer or switch failed: the same card later"),
    ("1A", "Additional customer authentication required", N, "Visa's SCA soft decline"),
    ("N7", "Decline for CVV2 failure", H, None),
    ("R0", "Stop payment order", H, "the cardholder stopped this recurring payment"),
    ("R1", "Revocation of authorization order", H, "the cardholder revoked recurring payments"),
    ("R3", "Revocation of all authorizations order", H, "the cardholder revoked them all"),
]

ISO_CODES: dict[str, IsoCode] = {c: IsoCode(c, t, cls, r) for c, t, cls, r in _ISO}

#: Codes that mean approved.
APPROVED_ISO_CODES = frozenset({"00", "08", "10", "11", "16", "85"})

#: Mastercard uses 65 for "strong customer authentication required" (PSD2 soft decline).
_MASTERCARD_65 = IsoCode(
    "65", "Strong customer authentication required", N, "Mastercard's SCA soft decline"
)
_VISA_BRANDS = frozenset({"visa", "electron"})


def normalize_iso(raw: str) -> str:
    """``"5"`` and ``" 05 "`` are ``"05"``; letters are upper-cased."""
    code = raw.strip().upper()
    return code.zfill(2) if code.isascii() and code.isdigit() and len(code) == 1 else code


def iso_code(raw: str, card_type: str | None = None) -> IsoCode:
    """The table entry for a response code; an unlisted code is kept, class UNKNOWN.

    65 depends on the brand: a count limit for Visa (soft), SCA required for Mastercard. With
    no brand it is read as SCA (needs the customer), because retrying an SCA decline without
    the cardholder only spends the card's network attempt cap.
    """
    code = normalize_iso(raw)
    if code == "65" and (card_type or "").lower() not in _VISA_BRANDS:
        return _MASTERCARD_65
    return ISO_CODES.get(code, IsoCode(code, f"Unlisted response code {code[:8]}", A))
