"""The order state machine, without HTTP: what each order type and status allows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.gateway.txpg.codes import OrderStatus
from worker.money import Money
from worker.sandbox.errors import TxpgError
from worker.sandbox.orders import Op, Order, OrderType, Plan, Token, Tran, TranRequest

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
S = OrderStatus


def status(order: Order) -> OrderStatus:
    """The order's status, read through a call so the type checker does not narrow it."""
    return order.status


def _order(order_type: OrderType = OrderType.REC, minor: int = 999) -> Order:
    order = Order(1, order_type, Money(minor, "AZN"), "pw", None, NOW)
    token = Token(
        7,
        "Dst" if order_type is OrderType.OCT else "Src",
        "416974******1778",
        "Visa",
        "1130",
        NOW,
        stored_id=5125,
    )
    if order_type is OrderType.OCT:
        order.dst = token
    else:
        order.src = token
    return order


def _run(
    order: Order, op: Op, phase: str = "Single", minor: int | None = None, code: int = 1
) -> Plan:
    money = None if minor is None else Money(minor, "AZN")
    plan = order.plan(TranRequest(op, phase, money))
    tran = Tran(
        len(order.trans) + 1,
        plan.tran_type,
        plan.phase,
        plan.minor,
        order.clear_delta(plan),
        code,
        NOW,
        "000001",
        "1",
        "a=",
    )
    order.apply(plan, code, tran)
    return plan


def _refused(
    order: Order, code: str, op: Op, phase: str = "Single", minor: int | None = None
) -> str:
    before = (order.status, len(order.trans))
    with pytest.raises(TxpgError) as caught:
        order.plan(TranRequest(op, phase, None if minor is None else Money(minor, "AZN")))
    assert caught.value.code == code, caught.value.description
    assert (order.status, len(order.trans)) == before  # a refused call changes nothing
    return caught.value.description


def test_purchase_pays_the_order_and_a_second_purchase_is_refused() -> None:
    order = _order()
    _run(order, Op.PURCHASE, minor=999)
    assert (status(order), order.prev_status) == (S.FULLY_PAID, S.PREPARING)
    assert (order.authorized_minor, order.cleared_minor) == (999, 999)
    assert "FullyPaid" in _refused(order, "InvalidOrderState", Op.PURCHASE)


def test_purchase_without_an_amount_takes_the_orders_and_another_amount_is_refused() -> None:
    order = _order()
    _refused(order, "InvalidAmt", Op.PURCHASE, minor=998)
    assert _run(order, Op.PURCHASE).minor == 999


def test_purchase_needs_a_source_token() -> None:
    order = _order()
    order.src = None
    assert "set-src-token" in _refused(order, "InvalidOrderState", Op.PURCHASE)


def test_a_declined_order_is_final() -> None:
    order = _order()
    _run(order, Op.PURCHASE, code=59)
    assert status(order) is S.DECLINED
    assert order.finish_time == NOW
    assert order.cleared_minor == 0
    _refused(order, "InvalidOrderState", Op.PURCHASE)
    _refused(order, "InvalidOrderState", Op.REFUND, minor=1)


@pytest.mark.parametrize(
    ("order_type", "op", "phase"),
    [
        (OrderType.REC, Op.AUTH, "Auth"),
        (OrderType.REC, Op.CREDIT, "Single"),
        (OrderType.SMS, Op.CLEARING, "Clearing"),
        (OrderType.DMSN3D, Op.PURCHASE, "Single"),
        (OrderType.DMS, Op.VOID_PARTIAL, "Single"),
        (OrderType.OCT, Op.PURCHASE, "Single"),
        (OrderType.OCT, Op.REFUND, "Single"),
    ],
)
def test_calls_an_order_type_never_allows_are_prohibited(
    order_type: OrderType, op: Op, phase: str
) -> None:
    _refused(_order(order_type), "TranProhibited", op, phase)


def test_preauthorisation_then_partial_and_final_clearing() -> None:
    order = _order(OrderType.DMSN3D, 1000)
    _refused(order, "InvalidOrderState", Op.CLEARING, "Clearing")
    _run(order, Op.AUTH, "Auth")
    assert status(order) is S.AUTHORIZED
    _refused(order, "InvalidAmt", Op.CLEARING, "Clearing", 1001)
    _run(order, Op.CLEARING, "Clearing", 400)
    assert status(order) is S.PARTIALLY_PAID
    plan = _run(order, Op.CLEARING, "Clearing")  # the rest of the hold
    assert plan.minor == 600
    assert (status(order), order.cleared_minor) == (S.FULLY_PAID, 1000)
    _refused(order, "InvalidOrderState", Op.CLEARING, "Clearing", 1)


def test_auth_reversal_voids_and_clearing_reversal_voids() -> None:
    held = _order(OrderType.DMS, 500)
    _run(held, Op.AUTH, "Auth")
    _refused(held, "TranProhibited", Op.VOID, "Single")
    assert _run(held, Op.VOID, "Auth").minor == 500
    assert (status(held), held.authorized_minor) == (S.VOIDED, 0)

    cleared = _order(OrderType.DMS, 500)
    _run(cleared, Op.AUTH, "Auth")
    _refused(cleared, "InvalidOrderState", Op.VOID, "Clearing")  # nothing cleared yet
    _run(cleared, Op.CLEARING, "Clearing")
    _refused(cleared, "InvalidOrderState", Op.VOID, "Auth")
    _run(cleared, Op.VOID, "Clearing")
    assert (status(cleared), cleared.cleared_minor) == (S.VOIDED, 0)


def test_partial_reversal_only_once_then_a_full_one_voids_the_rest() -> None:
    order = _order(minor=1000)
    _run(order, Op.PURCHASE)
    _refused(order, "InvalidAmt", Op.VOID_PARTIAL)  # the amount is required
    _refused(order, "InvalidAmt", Op.VOID_PARTIAL, minor=1000)  # less than paid
    _run(order, Op.VOID_PARTIAL, minor=300)
    assert (status(order), order.cleared_minor) == (S.PARTIALLY_PAID, 700)
    assert "already" in _refused(order, "InvalidOrderState", Op.VOID_PARTIAL, minor=100)
    assert _run(order, Op.VOID).minor == 700
    assert status(order) is S.VOIDED


def test_refunds_up_to_the_paid_amount_then_refunded() -> None:
    order = _order(minor=1000)
    _refused(order, "InvalidOrderState", Op.REFUND, minor=100)
    _run(order, Op.PURCHASE)
    _run(order, Op.REFUND, minor=400)
    assert status(order) is S.FULLY_PAID
    _refused(order, "InvalidAmt", Op.REFUND, minor=601)
    assert "refund" in _refused(order, "InvalidOrderState", Op.VOID)
    _run(order, Op.REFUND)  # the rest
    assert (status(order), order.prev_status, order.refunded_minor) == (
        S.REFUNDED,
        S.FULLY_PAID,
        1000,
    )
    assert order.finish_time == NOW


def test_credit_pays_out_an_oct_order_once() -> None:
    order = _order(OrderType.OCT, 100)
    plan = _run(order, Op.CREDIT)
    assert order.clear_delta(plan) == -100
    assert status(order) is S.FULLY_PAID
    _refused(order, "InvalidOrderState", Op.CREDIT)


def test_tokens_are_set_only_while_preparing_and_by_the_right_role() -> None:
    order = _order()
    order.check_token("Src")
    with pytest.raises(TxpgError, match="set-src-token") as caught:
        order.check_token("Dst")
    assert caught.value.code == "TranProhibited"
    _run(order, Op.PURCHASE)
    with pytest.raises(TxpgError) as late:
        order.check_token("Src")
    assert late.value.code == "InvalidOrderState"
