"""The JSON shapes of TXPG's answers, following the Postman collection's examples key by key.

Fields the sandbox has no real value for (terminal, merchant, 3-D Secure data) hold fixed,
plausible values so that a client sees the same keys and types as from TXPG. Amounts are
:class:`~worker.sandbox.wire.Number` so they are written exactly. The ``type`` object is the
collection's for ``Order_SMS``; the sandbox's own guesses for the other order types.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from worker.sandbox.orders import Order, OrderType, Token, Tran, TranType
from worker.sandbox.wire import amount

#: TXPG writes local times of Baku (UTC+4, no daylight saving since 2016).
BAKU = timezone(timedelta(hours=4), "Asia/Baku")

TERMINAL = {"id": 41, "rid": "E1000010", "title": "E1000010", "mcc": 3011, "status": "Active"}
MERCHANT = {
    "id": 101,
    "rid": "E1000010",
    "title": "E1000010",
    "businessAddress": {"country": "AZE", "countryA2": "AZ", "countryN3": 31},
    "trustConsumerPhone": False,
}
DEFAULT_TITLE = "Sandbox"
STATUS_LOGIN = "E1010"
TDS_SERVER_URL = "http://127.0.0.1:1340"

_COF_STORE_USAGES = ["Cit", "PartialShipment", "Instalment", "Recurring", "UnspecifiedMit"]
_COF_STORE_USAGES += ["DelayedCharge"]
#: (title, hppTranPhase, allowTranTypes, allowTranPhases, allowAuthKinds, orderClass, CVV2)
_TYPES: dict[OrderType, tuple[str, str, list[str], list[str], list[str], str, bool]] = {
    OrderType.SMS: (
        "Single message",
        "Single",
        ["Purchase", "Refund", "CheckToken"],
        ["Single", "Prepare"],
        ["Final", "Undefined"],
        "Sale",
        True,
    ),
    OrderType.DMS: (
        "Dual message",
        "Auth",
        ["Purchase", "Refund", "CheckToken"],
        ["Auth", "Clearing", "Prepare"],
        ["Preliminary", "Final", "Undefined"],
        "Sale",
        True,
    ),
    OrderType.REC: (
        "Recurring",
        "Single",
        ["Purchase", "Refund"],
        ["Single"],
        ["Final", "Undefined"],
        "Sale",
        False,
    ),
    OrderType.DMSN3D: (
        "Dual message without 3-D Secure",
        "Auth",
        ["Purchase", "Refund"],
        ["Auth", "Clearing"],
        ["Preliminary", "Final", "Undefined"],
        "Sale",
        False,
    ),
    OrderType.OCT: (
        "Order credit transaction",
        "Single",
        ["Credit"],
        ["Single"],
        ["Final", "Undefined"],
        "Credit",
        False,
    ),
}
#: Order types paid on the hosted payment page (they have a CVV2 and a ``secret``).
HPP_TYPES = frozenset({OrderType.SMS, OrderType.DMS})


def when(moment: datetime) -> str:
    return moment.astimezone(BAKU).strftime("%Y-%m-%d %H:%M:%S")


def _cvv2_status(order: Order) -> str:
    if order.type not in HPP_TYPES:
        return "IneligibleOrder"
    return "Provided" if order.src is not None and order.src.authenticated else "Required"


def _tds_v2_status(order: Order) -> str:
    if order.type not in HPP_TYPES:
        return "IneligibleOrder"
    return "Verified" if order.src is not None and order.src.authenticated else "Required"


def created(order: Order, hpp_url: str) -> dict[str, Any]:
    """Create Order's answer."""
    body: dict[str, Any] = {
        "id": order.id,
        "hppUrl": hpp_url,
        "password": order.password,
        "status": order.status.value,
        "cvv2AuthStatus": _cvv2_status(order),
    }
    if order.secret is not None:
        body["secret"] = order.secret
    return {"order": body}


def token_set(order: Order, token: Token) -> dict[str, Any]:
    """set-src-token's and set-dst-token's answer."""
    card: dict[str, Any] = {}
    if token.expiry is not None:
        card["expiration"] = token.expiry
    card["brand"] = token.brand
    key = "srcToken" if token.role == "Src" else "dstToken"
    return {
        "order": {
            "status": order.status.value,
            "cvv2AuthStatus": _cvv2_status(order),
            "tdsV1AuthStatus": "IneligibleOrder",
            "tdsV2AuthStatus": _tds_v2_status(order),
            "otpAutStatus": "IneligibleOrder",
            key: {
                "id": token.id,
                "paymentMethod": "Card",
                "role": token.role,
                "status": "Active",
                "regTime": when(token.reg_time),
                "displayName": token.display_name,
                "card": card,
            },
        }
    }


def tran_result(tran: Tran) -> dict[str, Any]:
    """exec-tran's answer for an approved transaction."""
    return {
        "tran": {
            "approvalCode": tran.approval_code,
            "match": {"tranActionId": tran.action_id, "ridByPmo": tran.rid_by_pmo},
            "pmoResultCode": str(tran.pmo_code),
        }
    }


def simple(order: Order) -> dict[str, Any]:
    """GET order without detail levels."""
    body: dict[str, Any] = {"id": order.id, "typeRid": order.type.value}
    body["status"] = order.status.value
    if order.prev_status is not None:
        body["prevStatus"] = order.prev_status.value
    body["lastStatusLogin"] = STATUS_LOGIN
    body["amount"] = amount(order.amount.minor, order.currency)
    body["currency"] = order.currency
    body["createTime"] = when(order.create_time)
    if order.finish_time is not None:
        body["finishTime"] = when(order.finish_time)
    body["title"] = order.title or DEFAULT_TITLE
    body["type"] = {"title": _TYPES[order.type][0]}
    return {"order": body}


def detailed(order: Order, hpp_url: str, *, trans: bool, tokens: bool) -> dict[str, Any]:
    """GET order with ``tranDetailLevel``/``tokenDetailLevel``/``orderDetailLevel``."""
    ccy = order.currency
    full = amount(order.amount.minor, ccy)
    body: dict[str, Any] = {"id": order.id, "hppUrl": hpp_url}
    if order.hpp_redirect_url is not None:
        body["hppRedirectUrl"] = order.hpp_redirect_url
    body["password"] = order.password
    body["status"] = order.status.value
    if order.prev_status is not None:
        body["prevStatus"] = order.prev_status.value
    body.update(lastStatusLogin=STATUS_LOGIN, amount=full, currency=ccy, terminal=TERMINAL)
    body.update(srcAmount=full, srcAmountFull=full, srcCurrency=ccy)
    body.update(dstAmount=full, dstCurrency=ccy, createTime=when(order.create_time))
    if order.finish_time is not None:
        body["finishTime"] = when(order.finish_time)
    if tokens and order.stored_tokens:
        body["storedTokens"] = [_stored(token) for token in order.stored_tokens]
    if trans:
        body["trans"] = [_tran(order, tran) for tran in order.trans]
    body["cvv2AuthStatus"] = _cvv2_status(order)
    body["tdsV1AuthStatus"] = "IneligibleOrder"
    body["tdsV2AuthStatus"] = _tds_v2_status(order)
    body["tdsServerUrl"] = TDS_SERVER_URL
    body["authorizedChargeAmount"] = amount(order.authorized_minor, ccy)
    body["clearedChargeAmount"] = amount(order.cleared_minor, ccy)
    body["clearedRefundAmount"] = amount(order.refunded_minor, ccy)
    body["title"] = order.title or DEFAULT_TITLE
    body["description"] = order.description
    body["language"] = order.language
    if tokens and order.src is not None:
        body["srcToken"] = _token(order.src)
    if tokens and order.dst is not None:
        body["dstToken"] = _token(order.dst)
    body["merchant"] = MERCHANT
    body["initiationEnvKind"] = order.initiation_env
    body["type"] = _type(order.type)
    body["hppCofCapturePurposes"] = list(order.cof_purposes)
    body["custAttrs"] = []
    body["reportPubs"] = {}
    return {"order": body}


def _type(order_type: OrderType) -> dict[str, Any]:
    title, hpp_phase, tran_types, phases, auth_kinds, order_class, cvv2 = _TYPES[order_type]
    return {
        "allowVoid": True,
        "hppTranPhase": hpp_phase,
        "secretLength": 6 if order_type in HPP_TYPES else 0,
        "title": title,
        "rid": order_type.value,
        "paymentMethods": ["Card"],
        "cardBrands": ["Visa", "Mastercard"],
        "allowTdsAttempt": False,
        "allowTdsCant": False,
        "allowTdsChallenged": False,
        "allowSurcharge": False,
        "allowTranTypes": tran_types,
        "allowTranPhases": phases,
        "allowAuthKinds": auth_kinds,
        "allowCofStoreUsages": _COF_STORE_USAGES,
        "orderClass": order_class,
        "allowCVV2": cvv2,
    }


def _tran(order: Order, tran: Tran) -> dict[str, Any]:
    ccy = order.currency
    body: dict[str, Any] = {}
    if tran.approval_code is not None:
        body["approvalCode"] = tran.approval_code
    body.update(
        actionId=tran.action_id,
        orderId=order.id,
        terminalId=TERMINAL["id"],
        merchantId=MERCHANT["id"],
        billingStatus="Normal",
        isReversal=tran.tran_type is TranType.REVERSAL,
        ridByAcquirer=tran.rid_by_pmo,
        ridByPmo=tran.rid_by_pmo,
        regTime=when(tran.reg_time),
        clearAmount=amount(tran.clear_minor, ccy),
        clearCcy=ccy,
        amount=amount(tran.minor, ccy),
        currency=ccy,
    )
    # TXPG names a transaction by its type; clearing and reversals by their phase and flag.
    reversed_type = tran.reverses or tran.tran_type
    wire_type = {
        TranType.AUTH: "Purchase",
        TranType.CLEARING: "Purchase",
        TranType.REVERSAL: "Purchase",
    }.get(reversed_type, reversed_type.value)
    body["description"] = tran.tran_type.value
    body["phase"] = tran.phase
    body["type"] = wire_type
    body["pmoResultCode"] = str(tran.pmo_code)
    return body


def _token(token: Token) -> dict[str, Any]:
    card: dict[str, Any] = {"authentication": _authentication(token)}
    if token.expiry is not None:
        card["expiration"] = token.expiry
    card["brand"] = token.brand
    card["issuerRid"] = "4" if token.brand == "Visa" else "5"
    return {
        "id": token.id,
        "paymentMethod": "Card",
        "role": token.role,
        "status": "Active",
        "regTime": when(token.reg_time),
        "entryMode": "ECommerce",
        "displayName": token.display_name,
        "owner": {},
        "card": card,
    }


def _authentication(token: Token) -> dict[str, Any]:
    """3-D Secure results for a card paid on the payment page; none for a saved-card MIT."""
    if not token.authenticated:
        return {"needCvv2": False, "needTds": False}
    tran_id = f"00000000-0000-4000-8000-{token.id:012d}"
    ds_id = f"00000000-0000-4000-9000-{token.id:012d}"
    ares = {
        "threeDSServerTransID": tran_id,
        "dsTransID": ds_id,
        "messageType": "ARes",
        "messageVersion": "2.2.0",
        "eci": "05",
        "transStatus": "Y",
    }
    rreq = {**ares, "messageType": "RReq", "authenticationType": "02"}
    return {
        "needCvv2": False,
        "needTds": False,
        "tranId": tran_id,
        "tdsDsTranId": ds_id,
        "timestamp": token.reg_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "tdsProtocolVer": "2.2.0",
        "cryptType": "Tds",
        "cryptVal": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "eci": "05",
        "tdsARes": json.dumps(ares, separators=(",", ":")),
        "tdsRReq": json.dumps(rreq, separators=(",", ":")),
    }


def _stored(token: Token) -> dict[str, Any]:
    if token.rid_by_cofp is not None:
        return {"cofProviderRid": "TWO_COF", "id": token.id, "ridBycofp": token.rid_by_cofp}
    return {"id": token.id}
