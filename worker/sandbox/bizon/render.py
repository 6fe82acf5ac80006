"""The JSON shapes of the Bizon sandbox's answers, key by key as the reference's examples.

An order always has ``amount``, ``amount_charged``, ``amount_refunded``, ``created``,
``currency``, ``description``, ``id``, ``merchant_order_id``, ``status``, ``updated``; and,
once it has them, ``auth_code`` (an approved authorisation or credit), ``descriptor`` (any
operation ran), ``pan`` (a card is known), ``segment`` (one was given) and ``rrn``
(token_pay). ``expand`` adds ``card``, ``client``, ``location``, ``custom_fields``,
``issuer``, ``secure3d`` and ``operations`` (``operations.cashflow``: with each operation's
cashflow). The listing shows orders unexpanded unless asked; the operations that act on an
order answer fully expanded, as every example shows, except ``complete`` (its example is
unexpanded). Amounts are strings with the currency's decimals; times are
``YYYY-MM-DD HH:MM:SS`` (UTC); ids are strings. Keys are written in alphabetical order.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from worker.money import Money
from worker.sandbox.bizon.orders import CardOnFile, Operation, OpStatus, OpType, Order

ORDER_EXPANDS = frozenset(
    {"card", "client", "location", "custom_fields", "issuer", "secure3d", "operations"}
)
#: What the operations on an order answer with: every expand, operations with cashflow.
FULL = ORDER_EXPANDS | {"operations.cashflow"}
#: The sandbox's test issuer, for its own cards (an unknown PAN shows its BIN only).
ISSUER_COUNTRY = "UKR"
ISSUER_TITLE = "TestBank"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def money(value: Money) -> str:
    return value.to_gateway()


def order_json(order: Order, expand: Iterable[str], descriptor: str) -> dict[str, Any]:
    wanted = frozenset(expand)
    data: dict[str, Any] = {
        "amount": money(order.amount),
        "amount_charged": money(order.money(order.charged_minor)),
        "amount_refunded": money(order.money(order.refunded_minor)),
        "created": when(order.created),
        "currency": order.currency,
        "description": order.description,
        "id": str(order.id),
        "merchant_order_id": order.merchant_order_id,
        "status": order.status.value,
        "updated": when(order.updated),
    }
    if order.auth_code is not None:
        data["auth_code"] = order.auth_code
    if order.operations:
        data["descriptor"] = descriptor
    if order.card is not None:
        data["pan"] = bizon_mask(order.card.masked)
    if order.segment is not None:
        data["segment"] = order.segment
    if order.rrn is not None:
        data["rrn"] = order.rrn
    if "card" in wanted:
        data["card"] = card_json(order.card)
    if "client" in wanted:
        data["client"] = dict(order.client)
    if "location" in wanted:
        data["location"] = dict(order.location)
    if "custom_fields" in wanted:
        data["custom_fields"] = dict(order.custom_fields)
    if "issuer" in wanted:
        data["issuer"] = issuer_json(order.card)
    if "secure3d" in wanted:
        data["secure3d"] = secure3d_json(order)
    if "operations" in wanted or "operations.cashflow" in wanted:
        cashflow = "operations.cashflow" in wanted
        data["operations"] = [operation_json(op, cashflow=cashflow) for op in order.operations]
    return dict(sorted(data.items()))


def orders_body(orders: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"orders": list(orders)}


def bizon_mask(masked: str) -> str:
    """``411111******1111`` -> ``411111****1111``: the reference writes four stars always."""
    return f"{masked[:6]}****{masked[-4:]}"


def card_json(card: CardOnFile | None) -> dict[str, Any]:
    if card is None:
        return {}
    data: dict[str, Any] = {
        "expiration": f"{card.exp_month or 0}/{(card.exp_year or 0) % 100}",
        "subtype": "classic" if card.brand == "visa" else "standard",
        "type": card.brand,
    }
    if card.holder is not None:
        data["holder"] = card.holder
    return dict(sorted(data.items()))


def issuer_json(card: CardOnFile | None) -> dict[str, Any]:
    if card is None:
        return {}
    if not card.registered:
        return {"bin": card.bin}
    return {"bin": card.bin, "country": ISSUER_COUNTRY, "title": ISSUER_TITLE}


def secure3d_json(order: Order) -> dict[str, Any]:
    if order.dsrp is not None:
        return {
            "authorization_status": "Y",
            "cavv": _cavv(order.id),
            "dsrp": "1",
            "dsrp_type": order.dsrp,
            "eci": "5",
            "reason": "dsrp",
            "scenario": "unknown",
            "version": "1",
            "xid": f"{order.id:064x}",
        }
    tds = order.secure3d
    if tds is None:
        return {}
    if not tds.done:
        if tds.version == 1:
            return {"reason": tds.reason, "scenario": "unknown"}
        pending = {"dsrp": "0", "eci": "0", "reason": tds.reason, "scenario": "unknown"}
        return {**pending, "version": "2"}
    return {
        "authorization_status": "Y",
        "cavv": _cavv(order.id),
        "dsrp": "0",
        "eci": "5",
        "reason": tds.reason,
        "scenario": "full",
        "version": str(tds.version),
        "xid": _b64(f"xid-{order.id}"),
    }


def form3d(order: Order, origin: str) -> dict[str, Any]:
    """``form3d`` and ``form3d_html`` of a ``prepared`` order: where the payer goes next."""
    tds = order.secure3d
    if tds is not None and tds.version == 2:
        form = {
            "action": f"{origin}/complete/secure3d20",
            "method": "POST",
            "threeDSSessionData": _b64(str(order.id)),
        }
        fields = {"threeDSSessionData": form["threeDSSessionData"]}
    else:
        form = {
            "MD": _b64(str(order.id)),
            "PaReq": "PaReq",
            "TermUrl": f"{origin}/complete/secure3d",
            "action": f"{origin}/test/bank",
            "method": "GET",
        }
        fields = {"MD": form["MD"], "PaReq": "PaReq", "TermUrl": form["TermUrl"]}
    inputs = "".join(
        f'<input type="hidden" name="{name}" value="{value}">' for name, value in fields.items()
    )
    html = (
        f'<form id="form3d" method="{form["method"]}" action="{form["action"]}">{inputs}</form>'
        "<script>window.onload = function() {document.forms['form3d'].submit();}</script>"
    )
    return {"form3d": form, "form3d_html": html}


def operation_json(op: Operation, *, cashflow: bool, order_id: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "amount": money(op.amount),
        "created": when(op.created),
        "currency": op.amount.currency,
        "iso_message": op.iso_message,
        "iso_response_code": op.iso_code,
        "status": op.status.value,
        "type": op.type.value,
    }
    if op.auth_code is not None:
        data["auth_code"] = op.auth_code
    if op.arn is not None:
        data["arn"] = op.arn
    if cashflow:
        data["cashflow"] = cashflow_json(op)
    if order_id:  # in the listing: the order's id (and, as its examples, not the op's)
        data["order_id"] = str(op.order_id)
    else:
        data["id"] = str(op.id)
    return dict(sorted(data.items()))


def cashflow_json(op: Operation) -> dict[str, str]:
    """What the operation did to the merchant's money, as the examples show it.

    A charge brings its amount in less its fee (9.99 at 3%: fee 0.30, incoming 9.69); a
    refund or credit takes its amount out; an authorisation or reversal moves nothing yet.
    """
    minor = op.amount.minor
    amount = incoming = fee = 0
    if op.status is OpStatus.SUCCESS:
        if op.type is OpType.CHARGE:
            fee = op.fee_minor
            amount, incoming = minor, minor - fee
        elif op.type in (OpType.REFUND, OpType.CREDIT):
            amount = incoming = -minor
    cur = op.amount.currency

    def text(value: int) -> str:
        sign = "-" if value < 0 else ""
        return sign + Money(abs(value), cur).to_gateway()

    return {
        "amount": text(amount),
        "currency": cur,
        "fee": text(fee),
        "incoming": text(incoming),
        "receivable": text(incoming),
        "reserve": text(0),
    }


def summary(order: Order) -> dict[str, Any]:
    """One line for ``GET /_admin/orders``: no PAN, not even masked."""
    return {
        "id": str(order.id),
        "origin": order.origin,
        "status": order.status.value,
        "amount": money(order.amount),
        "currency": order.currency,
        "amount_charged": money(order.money(order.charged_minor)),
        "amount_refunded": money(order.money(order.refunded_minor)),
        "merchant_order_id": order.merchant_order_id,
        "description": order.description,
        "parent_order_id": None if order.parent_id is None else str(order.parent_id),
        "operations": len(order.operations),
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _cavv(order_id: int) -> str:
    return base64.b64encode(order_id.to_bytes(20, "big")).decode()
