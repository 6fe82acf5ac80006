"""Reading TXPG request bodies strictly, the way a careful gateway would.

Amounts are strings (``"1"``, ``"1.0"``, ``"9.99"``) or JSON numbers read as ``Decimal``, with
at most the currency's decimals and above zero; anything else is ``InvalidAmt``. A missing or
mistyped field is ``InvalidRequest`` with its path. Unknown keys are ignored, as TXPG does for
the many optional fields the collection shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.errors import InvalidInput
from worker.money import CURRENCY_EXPONENTS, Money, parse_amount
from worker.sandbox.errors import TxpgError
from worker.sandbox.orders import Op, OrderType, TranRequest
from worker.sensitive import luhn_ok

_TAKSIT = re.compile(r"TAKSIT=([0-9]{1,2})(?![0-9])")
_COF_USAGES = {"Cit", "Recurring", "UnspecifiedMit", "Instalment", "PartialShipment"}
_COF_USAGES |= {"DelayedCharge"}
_ENV_KINDS = {"Server", "Browser"}


def _bad(path: str, wanted: str) -> TxpgError:
    return TxpgError("InvalidRequest", f"{path} must be {wanted}")


def _object(data: Any, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _bad(path, "a JSON object")
    return data


def _opt_str(data: dict[str, Any], key: str, path: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(f"{path}.{key}", "a string")
    return value


def read_amount(value: Any, currency: str, path: str) -> Money:
    """An amount field, checked against the currency's exponent; ``InvalidAmt`` if wrong."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TxpgError("InvalidAmt", f'{path} must be an amount like "9.99"')
    if isinstance(value, Decimal):
        text = format(value, "f")
    else:
        text = value if isinstance(value, str) else str(value)
    try:
        return parse_amount(text, currency)
    except InvalidInput as exc:
        raise TxpgError("InvalidAmt", f"{path}: {exc}") from None


@dataclass(frozen=True, slots=True)
class NewOrder:
    type: OrderType
    amount: Money
    language: str
    description: str
    title: str | None
    hpp_redirect_url: str | None
    cof_purposes: tuple[str, ...]
    installments: int | None
    stored_id: int | None  #: ``order.srcToken.storedId``: a saved card given at creation


def read_new_order(payload: Any) -> NewOrder:
    order = _object(_object(payload, "body").get("order"), "order")
    try:
        order_type = OrderType(str(order.get("typeRid")))
    except ValueError:
        raise _bad("order.typeRid", f"one of {[t.value for t in OrderType]}") from None
    currency = order.get("currency")
    if currency not in CURRENCY_EXPONENTS:
        raise _bad("order.currency", f"one of {sorted(CURRENCY_EXPONENTS)}")
    if "amount" not in order:
        raise TxpgError("InvalidAmt", "order.amount is required")
    amount = read_amount(order["amount"], currency, "order.amount")
    description = _opt_str(order, "description", "order") or ""
    installments = None
    if "TAKSIT=" in description:
        match = _TAKSIT.search(description)
        if match is None or not 2 <= int(match.group(1)) <= 24:
            raise _bad("order.description", "'TAKSIT=N' with N from 2 to 24 months")
        installments = int(match.group(1))
    redirect = _opt_str(order, "hppRedirectUrl", "order")
    if redirect is not None and not redirect.startswith(("http://", "https://")):
        raise _bad("order.hppRedirectUrl", "an http(s) URL")
    purposes = order.get("hppCofCapturePurposes", [])
    if not isinstance(purposes, list) or not all(p in _COF_USAGES for p in purposes):
        raise _bad("order.hppCofCapturePurposes", f"a list of {sorted(_COF_USAGES)}")
    stored_id = None
    if "srcToken" in order:
        stored_id = read_stored_id(_object(order["srcToken"], "order.srcToken"), "order.srcToken")
    return NewOrder(
        type=order_type,
        amount=amount,
        language=_opt_str(order, "language", "order") or "az",
        description=description,
        title=_opt_str(order, "title", "order"),
        hpp_redirect_url=redirect,
        cof_purposes=tuple(purposes),
        installments=installments,
        stored_id=stored_id,
    )


def read_stored_id(token: dict[str, Any], path: str) -> int:
    value = token.get("storedId")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is not int or value <= 0:
        raise _bad(f"{path}.storedId", "a positive integer")
    return value


@dataclass(frozen=True, slots=True)
class TokenRef:
    """Which card a set-src-token or set-dst-token body names. Exactly one field is set."""

    stored_id: int | None = None
    rid_by_cofp: str | None = None
    pan: str | None = None  #: set-dst-token only; Luhn-checked; never stored or logged
    initiation_env: str | None = None

    def __repr__(self) -> str:  # keep the PAN out of any traceback or log line
        return f"TokenRef(stored_id={self.stored_id}, rid_by_cofp={self.rid_by_cofp})"


def read_token(payload: Any, *, allow_pan: bool) -> TokenRef:
    body = _object(payload, "body")
    env = None
    if "order" in body:
        env = _opt_str(_object(body["order"], "order"), "initiationEnvKind", "order")
        if env is not None and env not in _ENV_KINDS:
            raise _bad("order.initiationEnvKind", f"one of {sorted(_ENV_KINDS)}")
    token = _object(body.get("token"), "token")
    if "storedId" in token:
        return TokenRef(stored_id=read_stored_id(token, "token"), initiation_env=env)
    if "extCof" in token:
        ext = _object(token["extCof"], "token.extCof")
        if ext.get("cofProviderRid") != "TWO_COF":
            raise _bad("token.extCof.cofProviderRid", "'TWO_COF'")
        rid = ext.get("ridByCofp")
        if not isinstance(rid, str) or not rid.isascii() or not rid.isalnum():
            raise _bad("token.extCof.ridByCofp", "a string of letters and digits")
        return TokenRef(rid_by_cofp=rid, initiation_env=env)
    if allow_pan and "card" in token:
        card = _object(token["card"], "token.card")
        block = _object(card.get("panBlock"), "token.card.panBlock")
        pan = block.get("data")
        if not isinstance(pan, str) or not 13 <= len(pan) <= 19 or not luhn_ok(pan):
            raise TxpgError("InvalidToken", "token.card.panBlock.data is not a valid card number")
        return TokenRef(pan=pan, initiation_env=env)
    wanted = "storedId, extCof or card.panBlock" if allow_pan else "storedId or extCof"
    raise _bad("token", f"an object with {wanted}")


def read_tran(payload: Any, currency: str) -> TranRequest:
    """The exec-tran body: which call it is (see :class:`~worker.sandbox.orders.Op`)."""
    tran = _object(_object(payload, "body").get("tran"), "tran")
    phase = tran.get("phase")
    if phase not in ("Single", "Auth", "Clearing"):
        raise _bad("tran.phase", "Single, Auth or Clearing")
    void_kind = tran.get("voidKind")
    tran_type = tran.get("type")
    amount = None
    if tran.get("amount") is not None:
        amount = read_amount(tran["amount"], currency, "tran.amount")
    if void_kind is not None:
        if void_kind not in ("Full", "Partial"):
            raise _bad("tran.voidKind", "Full or Partial")
        if tran_type is not None:
            raise _bad("tran.type", "absent in a reversal")
        op = Op.VOID if void_kind == "Full" else Op.VOID_PARTIAL
        return TranRequest(op, phase, amount)
    if phase == "Clearing":
        return TranRequest(Op.CLEARING, phase, amount)
    if phase == "Auth":
        if tran.get("authorizationKind") != "Preliminary":
            raise _bad("tran.authorizationKind", "'Preliminary' with phase Auth")
        _check_conditions(tran)
        return TranRequest(Op.AUTH, phase, amount)
    if tran_type == "Credit":
        return TranRequest(Op.CREDIT, phase, amount)
    if tran_type == "Refund":
        return TranRequest(Op.REFUND, phase, amount)
    if tran_type not in (None, "Purchase"):
        raise _bad("tran.type", "Purchase, Credit or Refund")
    _check_conditions(tran)
    return TranRequest(Op.PURCHASE, phase, amount)


def _check_conditions(tran: dict[str, Any]) -> None:
    if "conditions" in tran:
        usage = _object(tran["conditions"], "tran.conditions").get("cofUsage")
        if usage is not None and usage not in _COF_USAGES:
            raise _bad("tran.conditions.cofUsage", f"one of {sorted(_COF_USAGES)}")
