"""Request bodies read strictly: amounts, order fields, tokens and exec-tran calls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from worker.money import Money
from worker.sandbox.bodies import read_amount, read_new_order, read_token, read_tran
from worker.sandbox.errors import TxpgError
from worker.sandbox.orders import Op, OrderType


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        ("1", 100),
        ("1.0", 100),
        ("9.99", 999),
        ("0.01", 1),
        (Decimal("9.99"), 999),
        (Decimal("1E+2"), 10000),  # a JSON number 1E+2 is exactly 100
        (5, 500),
    ],
)
def test_amounts_up_to_the_currency_exponent(value: Any, minor: int) -> None:
    assert read_amount(value, "AZN", "amount") == Money(minor, "AZN")


@pytest.mark.parametrize(
    "value",
    [
        "9.999",
        "0",
        "0.00",
        "-1",
        "+1",
        "1e2",
        " 1",
        "1,00",
        "١",
        "",
        ".5",
        True,
        None,
        [1],
        Decimal("1.000"),
        Decimal("-1"),
    ],
)
def test_other_amounts_are_invalid_amt(value: Any) -> None:
    with pytest.raises(TxpgError) as caught:
        read_amount(value, "AZN", "order.amount")
    assert caught.value.code == "InvalidAmt"
    assert "order.amount" in caught.value.description


def test_amount_decimals_follow_the_currency() -> None:
    assert read_amount("1.234", "KWD", "a") == Money(1234, "KWD")
    with pytest.raises(TxpgError):
        read_amount("1.5", "JPY", "a")


def _order(**fields: Any) -> dict[str, Any]:
    base = {"typeRid": "Order_REC", "amount": "1.0", "currency": "AZN", "language": "az"}
    return {"order": {**base, **fields}}


def test_new_order_fields() -> None:
    new = read_new_order(
        _order(
            typeRid="Order_SMS",
            description="TAKSIT=6",
            hppRedirectUrl="http://txpgtst.kapitalbank.az",
            hppCofCapturePurposes=["Cit"],
            title="TestOrder",
        )
    )
    assert (new.type, new.amount, new.installments) == (OrderType.SMS, Money(100, "AZN"), 6)
    assert (new.cof_purposes, new.title, new.stored_id) == (("Cit",), "TestOrder", None)
    assert read_new_order(_order(srcToken={"storedId": 5125})).stored_id == 5125


@pytest.mark.parametrize(
    ("fields", "code", "where"),
    [
        ({"typeRid": "Order_XYZ"}, "InvalidRequest", "typeRid"),
        ({"currency": "AZM"}, "InvalidRequest", "currency"),
        ({"amount": "1.001"}, "InvalidAmt", "amount"),
        ({"description": "TAKSIT=1"}, "InvalidRequest", "TAKSIT"),
        ({"description": "TAKSIT=x"}, "InvalidRequest", "TAKSIT"),
        ({"hppRedirectUrl": "javascript:alert(1)"}, "InvalidRequest", "hppRedirectUrl"),
        ({"hppCofCapturePurposes": "Cit"}, "InvalidRequest", "hppCofCapturePurposes"),
        ({"description": 5}, "InvalidRequest", "description"),
    ],
)
def test_bad_new_orders(fields: dict[str, Any], code: str, where: str) -> None:
    with pytest.raises(TxpgError) as caught:
        read_new_order(_order(**fields))
    assert caught.value.code == code
    assert where in caught.value.description


def test_new_order_needs_an_order_object_and_an_amount() -> None:
    payloads: list[Any] = [None, [], {"order": 5}, {"orders": {}}]
    for payload in payloads:
        with pytest.raises(TxpgError, match=r"body|order") as caught:
            read_new_order(payload)
        assert caught.value.code == "InvalidRequest"
    body = _order()
    del body["order"]["amount"]
    with pytest.raises(TxpgError) as caught:
        read_new_order(body)
    assert caught.value.code == "InvalidAmt"


def test_tokens() -> None:
    assert read_token({"token": {"storedId": 5125}}, allow_pan=False).stored_id == 5125
    two = {"extCof": {"ridByCofp": "D91E8A15", "cofProviderRid": "TWO_COF"}}
    assert read_token({"token": two}, allow_pan=False).rid_by_cofp == "D91E8A15"
    pan = {"token": {"card": {"panBlock": {"data": "4169741330151778"}}}}
    ref = read_token(pan, allow_pan=True)
    assert ref.pan == "4169741330151778"
    assert "4169741330151778" not in repr(ref)
    with pytest.raises(TxpgError, match="storedId or extCof"):
        read_token(pan, allow_pan=False)  # set-src-token takes no PAN
    bad = {"token": {"card": {"panBlock": {"data": "4169741330151779"}}}}
    with pytest.raises(TxpgError) as caught:
        read_token(bad, allow_pan=True)
    assert caught.value.code == "InvalidToken"
    assert "4169741330151779" not in str(caught.value)
    with pytest.raises(TxpgError, match="TWO_COF"):
        read_token({"token": {"extCof": {"ridByCofp": "A", "cofProviderRid": "X"}}}, allow_pan=True)
    with pytest.raises(TxpgError, match="initiationEnvKind"):
        read_token(
            {"order": {"initiationEnvKind": "Phone"}, "token": {"storedId": 1}}, allow_pan=False
        )


@pytest.mark.parametrize(
    ("tran", "op", "minor"),
    [
        (
            {"phase": "Single", "amount": "1.00", "conditions": {"cofUsage": "UnspecifiedMit"}},
            Op.PURCHASE,
            100,
        ),
        ({"phase": "Single"}, Op.PURCHASE, None),
        ({"phase": "Auth", "authorizationKind": "Preliminary", "amount": "1.00"}, Op.AUTH, 100),
        ({"phase": "Clearing", "amount": "1.00"}, Op.CLEARING, 100),
        ({"phase": "Single", "amount": "1.00", "type": "Credit"}, Op.CREDIT, 100),
        ({"phase": "Single", "amount": "2.00", "type": "Refund"}, Op.REFUND, 200),
        ({"phase": "Single", "voidKind": "Full"}, Op.VOID, None),
        ({"phase": "Single", "amount": "1.00", "voidKind": "Partial"}, Op.VOID_PARTIAL, 100),
        ({"phase": "Auth", "voidKind": "Full"}, Op.VOID, None),
        ({"phase": "Clearing", "voidKind": "Full"}, Op.VOID, None),
    ],
)
def test_exec_tran_calls(tran: dict[str, Any], op: Op, minor: int | None) -> None:
    request = read_tran({"tran": tran}, "AZN")
    assert request.op is op
    assert request.phase == tran["phase"]
    assert (request.amount.minor if request.amount else None) == minor


@pytest.mark.parametrize(
    ("tran", "where"),
    [
        ({"phase": "Prepare"}, "tran.phase"),
        ({"phase": "Auth"}, "authorizationKind"),
        ({"phase": "Single", "voidKind": "Half"}, "voidKind"),
        ({"phase": "Single", "voidKind": "Full", "type": "Refund"}, "tran.type"),
        ({"phase": "Single", "type": "Debit"}, "tran.type"),
        ({"phase": "Single", "conditions": {"cofUsage": "Sometimes"}}, "cofUsage"),
    ],
)
def test_bad_exec_tran_calls(tran: dict[str, Any], where: str) -> None:
    with pytest.raises(TxpgError) as caught:
        read_tran({"tran": tran}, "AZN")
    assert caught.value.code == "InvalidRequest"
    assert where in caught.value.description
