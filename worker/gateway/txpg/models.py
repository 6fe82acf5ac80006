"""Typed TXPG requests and responses.

Requests are built from these dataclasses and rendered to JSON in ``operations.py``;
responses are parsed from strictly-decoded JSON (see ``json.py``) into the frozen
dataclasses below. Secrets (order password and secret, PANs) are wrapped in
:class:`~worker.sensitive.Secret` so that a ``repr`` or a log line cannot leak them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from worker.errors import InvalidInput
from worker.gateway.txpg.codes import PAID_STATUSES, OrderStatus, pmo_code
from worker.gateway.txpg.fields import Fields
from worker.money import Money
from worker.sensitive import CardNumber as CardNumber
from worker.sensitive import Secret


class OrderType(enum.StrEnum):
    """``typeRid`` of a new order."""

    PURCHASE = "Order_SMS"  #: one-step purchase on the hosted page
    PREAUTH = "Order_DMS"  #: preauthorisation then clearing, on the hosted page
    RECURRING = "Order_REC"  #: purchase with a saved card, server-initiated
    RECURRING_PREAUTH = "DMSN3D"  #: preauthorisation with a saved card
    CREDIT = "OCT"  #: account-to-card payout (Order Credit Transaction)


class CofUsage(enum.StrEnum):
    """``conditions.cofUsage`` values TXPG lists for card-on-file transactions."""

    CIT = "Cit"
    RECURRING = "Recurring"
    UNSPECIFIED_MIT = "UnspecifiedMit"
    INSTALMENT = "Instalment"
    PARTIAL_SHIPMENT = "PartialShipment"
    DELAYED_CHARGE = "DelayedCharge"


_LANGUAGES = frozenset({"az", "en", "ru"})


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """``POST /order/``. ``installments=N`` renders the description as ``TAKSIT=N``."""

    type_rid: OrderType
    amount: Money
    description: str = ""
    language: str = "az"
    title: str | None = None
    hpp_redirect_url: str | None = None
    hpp_cof_capture_purposes: tuple[CofUsage, ...] = ()
    installments: int | None = None

    def __post_init__(self) -> None:
        if self.amount.minor <= 0:
            raise InvalidInput("an order amount must be positive")
        if self.language not in _LANGUAGES:
            raise InvalidInput(f"language must be one of {sorted(_LANGUAGES)}")
        if self.installments is not None:
            if self.description:
                raise InvalidInput("an installment order carries only TAKSIT=N as description")
            if not 2 <= self.installments <= 36:
                raise InvalidInput("installments must be between 2 and 36 months")
        if len(self.description) > 255:
            raise InvalidInput("description is longer than 255 characters")

    def wire_description(self) -> str:
        if self.installments is not None:
            return f"TAKSIT={self.installments}"
        return self.description


@dataclass(frozen=True, slots=True)
class StoredCard:
    """A card saved at TXPG, referenced by its ``storedId``."""

    stored_id: int

    def __post_init__(self) -> None:
        if type(self.stored_id) is not int or self.stored_id <= 0:
            raise InvalidInput("storedId must be a positive integer")


@dataclass(frozen=True, slots=True)
class TwoToken:
    """A TWO card-on-file token (``extCof`` with ``cofProviderRid: TWO_COF``)."""

    rid_by_cofp: str
    cof_provider_rid: str = "TWO_COF"

    def __post_init__(self) -> None:
        rid = self.rid_by_cofp
        if not (rid.isascii() and rid.isalnum() and 8 <= len(rid) <= 64):
            raise InvalidInput("a TWO token's ridByCofp must be 8 to 64 ASCII letters or digits")


SourceToken = StoredCard | TwoToken
DestinationToken = CardNumber | TwoToken


class Phase(enum.StrEnum):
    SINGLE = "Single"
    AUTH = "Auth"
    CLEARING = "Clearing"


@dataclass(frozen=True, slots=True)
class TranRequest:
    """``POST /order/{id}/exec-tran``. Build it with the class methods."""

    phase: Phase
    amount: Money | None = None
    type: str | None = None
    cof_usage: CofUsage | None = None
    authorization_kind: str | None = None
    void_kind: str | None = None

    @classmethod
    def purchase(cls, amount: Money, cof_usage: CofUsage = CofUsage.UNSPECIFIED_MIT) -> TranRequest:
        """A one-step purchase with a saved card (the recurring charge)."""
        return cls(Phase.SINGLE, amount, cof_usage=cof_usage)

    @classmethod
    def preauthorize(
        cls, amount: Money, cof_usage: CofUsage = CofUsage.UNSPECIFIED_MIT
    ) -> TranRequest:
        return cls(Phase.AUTH, amount, cof_usage=cof_usage, authorization_kind="Preliminary")

    @classmethod
    def clearing(cls, amount: Money) -> TranRequest:
        return cls(Phase.CLEARING, amount)

    @classmethod
    def credit(cls, amount: Money) -> TranRequest:
        """Send funds to the destination card of an OCT order."""
        return cls(Phase.SINGLE, amount, type="Credit")

    @classmethod
    def refund(cls, amount: Money) -> TranRequest:
        return cls(Phase.SINGLE, amount, type="Refund")

    @classmethod
    def reversal(cls, phase: Phase = Phase.SINGLE, amount: Money | None = None) -> TranRequest:
        """A full reversal, or a partial one (once per order) when ``amount`` is given."""
        return cls(phase, amount, void_kind="Full" if amount is None else "Partial")

    @property
    def needs_order_password(self) -> bool:
        """The collection sends the password for purchases, auths and credits only."""
        return self.void_kind is None and self.phase != Phase.CLEARING and self.type != "Refund"


# ----------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True, slots=True)
class OrderRef:
    """What later calls need to address an order. The password goes in the query string."""

    id: int
    password: Secret[str] | None = None


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    """The answer to ``POST /order/``."""

    id: int
    hpp_url: str
    password: Secret[str]
    status: OrderStatus
    status_raw: str
    cvv2_auth_status: str | None
    secret: Secret[str] | None

    @property
    def ref(self) -> OrderRef:
        return OrderRef(self.id, self.password)

    def payment_page_url(self) -> Secret[str]:
        """``{hppUrl}/flex?id=…&password=…`` for hosted flows. Secret: it holds the password.

        The reference's examples give ``hppUrl`` already ending in ``/flex``; it is not doubled.
        """
        base = self.hpp_url.rstrip("/")
        if not base.endswith("/flex"):
            base += "/flex"
        return Secret(f"{base}?id={self.id}&password={self.password.reveal()}")

    @classmethod
    def parse(cls, body: Fields) -> CreatedOrder:
        order = body.obj("order")
        status_raw = order.string("status")
        secret = order.opt_text("secret")
        return cls(
            id=order.integer("id"),
            hpp_url=order.string("hppUrl"),
            password=Secret(order.string("password")),
            status=OrderStatus.parse(status_raw),
            status_raw=status_raw,
            cvv2_auth_status=order.opt_string("cvv2AuthStatus"),
            secret=None if secret is None else Secret(secret),
        )


@dataclass(frozen=True, slots=True)
class Token:
    """A card token as TXPG shows it: never more than a masked PAN."""

    id: int | None
    payment_method: str | None
    role: str | None
    status: str | None
    reg_time: str | None
    display_name: str | None
    entry_mode: str | None
    card_expiration: str | None
    card_brand: str | None

    @classmethod
    def parse(cls, token: Fields) -> Token:
        card = token.opt_obj("card")
        return cls(
            id=token.opt_integer("id"),
            payment_method=token.opt_string("paymentMethod"),
            role=token.opt_string("role"),
            status=token.opt_string("status"),
            reg_time=token.opt_string("regTime"),
            display_name=token.opt_string("displayName"),
            entry_mode=token.opt_string("entryMode"),
            card_expiration=card.opt_text("expiration") if card else None,
            card_brand=card.opt_string("brand") if card else None,
        )


@dataclass(frozen=True, slots=True)
class StoredToken:
    """An entry of ``storedTokens``: a token saved from this order."""

    id: int
    cof_provider_rid: str | None
    rid_by_cofp: str | None

    @classmethod
    def parse(cls, token: Fields) -> StoredToken:
        return cls(
            id=token.integer("id"),
            cof_provider_rid=token.opt_string("cofProviderRid"),
            # The reference spells it ``ridBycofp`` here and ``ridByCofp`` elsewhere.
            rid_by_cofp=token.opt_string("ridBycofp") or token.opt_string("ridByCofp"),
        )


@dataclass(frozen=True, slots=True)
class TokenResult:
    """The answer to ``set-src-token`` / ``set-dst-token``: the order's state and the token."""

    status: OrderStatus
    status_raw: str
    cvv2_auth_status: str | None
    tds_v1_auth_status: str | None
    tds_v2_auth_status: str | None
    otp_aut_status: str | None
    src_token: Token | None
    dst_token: Token | None

    @classmethod
    def parse(cls, body: Fields) -> TokenResult:
        order = body.obj("order")
        status_raw = order.string("status")
        src, dst = order.opt_obj("srcToken"), order.opt_obj("dstToken")
        return cls(
            status=OrderStatus.parse(status_raw),
            status_raw=status_raw,
            cvv2_auth_status=order.opt_string("cvv2AuthStatus"),
            tds_v1_auth_status=order.opt_string("tdsV1AuthStatus"),
            tds_v2_auth_status=order.opt_string("tdsV2AuthStatus"),
            otp_aut_status=order.opt_string("otpAutStatus"),
            src_token=Token.parse(src) if src else None,
            dst_token=Token.parse(dst) if dst else None,
        )


@dataclass(frozen=True, slots=True)
class TranResult:
    """The answer to an approved ``exec-tran``."""

    approval_code: str | None
    tran_action_id: str | None
    rid_by_pmo: str | None
    pmo_result_code: int

    @property
    def pmo_title(self) -> str:
        return pmo_code(self.pmo_result_code).title

    @classmethod
    def parse(cls, body: Fields) -> TranResult:
        tran = body.obj("tran")
        match = tran.opt_obj("match")
        return cls(
            approval_code=tran.opt_text("approvalCode"),
            tran_action_id=match.opt_text("tranActionId") if match else None,
            rid_by_pmo=match.opt_text("ridByPmo") if match else None,
            pmo_result_code=tran.int_text("pmoResultCode"),
        )


@dataclass(frozen=True, slots=True)
class Transaction:
    """One entry of a detailed order's ``trans`` list."""

    approval_code: str | None
    action_id: str | None
    order_id: int | None
    billing_status: str | None
    is_reversal: bool
    rid_by_pmo: str | None
    reg_time: str | None
    amount: Money
    clear_amount: Money | None
    description: str | None
    phase: str | None
    type: str | None
    pmo_result_code: int | None

    @property
    def approved(self) -> bool:
        return self.pmo_result_code == 1

    @classmethod
    def parse(cls, tran: Fields, order_currency: str) -> Transaction:
        currency = tran.opt_string("currency") or order_currency
        clear_ccy = tran.opt_string("clearCcy") or currency
        return cls(
            approval_code=tran.opt_text("approvalCode"),
            action_id=tran.opt_string("actionId"),
            order_id=tran.opt_integer("orderId"),
            billing_status=tran.opt_string("billingStatus"),
            is_reversal=bool(tran.opt_bool("isReversal")),
            rid_by_pmo=tran.opt_text("ridByPmo"),
            reg_time=tran.opt_string("regTime"),
            amount=tran.money("amount", currency),
            clear_amount=tran.opt_money("clearAmount", clear_ccy),
            description=tran.opt_string("description"),
            phase=tran.opt_string("phase"),
            type=tran.opt_string("type"),
            pmo_result_code=tran.opt_int_text("pmoResultCode"),
        )


@dataclass(frozen=True, slots=True)
class OrderInfo:
    """The answer to ``GET /order/{id}``, simple or detailed (detailed fills more fields)."""

    id: int
    type_rid: str | None
    status: OrderStatus
    status_raw: str
    prev_status_raw: str | None
    amount: Money
    create_time: str | None
    finish_time: str | None
    title: str | None
    description: str | None
    language: str | None
    trans: tuple[Transaction, ...] = ()
    src_token: Token | None = None
    dst_token: Token | None = None
    stored_tokens: tuple[StoredToken, ...] = ()
    authorized_charge_amount: Money | None = None
    cleared_charge_amount: Money | None = None
    cleared_refund_amount: Money | None = None
    hpp_cof_capture_purposes: tuple[str, ...] = ()
    password: Secret[str] | None = field(default=None, repr=False)

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def paid(self) -> bool:
        return self.status in PAID_STATUSES

    @classmethod
    def parse(cls, body: Fields) -> OrderInfo:
        order = body.obj("order")
        currency = order.string("currency")
        status_raw = order.string("status")
        order_type = order.opt_obj("type")
        type_rid = order.opt_string("typeRid") or (
            order_type.opt_string("rid") if order_type else None
        )
        src, dst = order.opt_obj("srcToken"), order.opt_obj("dstToken")
        password = order.opt_string("password")
        return cls(
            id=order.integer("id"),
            type_rid=type_rid,
            status=OrderStatus.parse(status_raw),
            status_raw=status_raw,
            prev_status_raw=order.opt_string("prevStatus"),
            amount=order.money("amount", currency),
            create_time=order.opt_string("createTime"),
            finish_time=order.opt_string("finishTime"),
            title=order.opt_string("title"),
            description=order.opt_string("description"),
            language=order.opt_string("language"),
            trans=tuple(Transaction.parse(t, currency) for t in order.objs("trans")),
            src_token=Token.parse(src) if src else None,
            dst_token=Token.parse(dst) if dst else None,
            stored_tokens=tuple(StoredToken.parse(t) for t in order.objs("storedTokens")),
            authorized_charge_amount=order.opt_money("authorizedChargeAmount", currency),
            cleared_charge_amount=order.opt_money("clearedChargeAmount", currency),
            cleared_refund_amount=order.opt_money("clearedRefundAmount", currency),
            hpp_cof_capture_purposes=order.strs("hppCofCapturePurposes"),
            password=None if password is None else Secret(password),
        )
