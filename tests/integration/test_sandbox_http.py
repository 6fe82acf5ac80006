"""The sandbox over real HTTP: the TXPG chains, credentials, order passwords, declines and
the audit ledger, spoken with raw httpx (never the project's TXPG client).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from worker.sandbox import SandboxServer

MIT = {"cofUsage": "UnspecifiedMit"}


def _json(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.text, parse_float=Decimal)
    return body


def create(
    http: httpx.Client, amount: str = "9.99", type_rid: str = "Order_REC", **extra: Any
) -> tuple[int, str]:
    order = {"typeRid": type_rid, "amount": amount, "currency": "AZN", "language": "az"}
    response = http.post("order/", json={"order": {**order, "description": "sub-1", **extra}})
    assert response.status_code == 200, response.text
    body = response.json()["order"]
    return body["id"], body["password"]


def set_src(http: httpx.Client, order: tuple[int, str], stored_id: int) -> httpx.Response:
    return http.post(
        f"order/{order[0]}/set-src-token",
        params={"password": order[1]},
        json={"order": {"initiationEnvKind": "Server"}, "token": {"storedId": stored_id}},
    )


def execute(
    http: httpx.Client, order: tuple[int, str] | int, tran: dict[str, Any]
) -> httpx.Response:
    if isinstance(order, int):
        return http.post(f"order/{order}/exec-tran", json={"tran": tran})
    return http.post(
        f"order/{order[0]}/exec-tran", params={"password": order[1]}, json={"tran": tran}
    )


def charge(
    http: httpx.Client, stored_id: int, amount: str = "9.99"
) -> tuple[tuple[int, str], httpx.Response]:
    order = create(http, amount)
    assert set_src(http, order, stored_id).status_code == 200
    return order, execute(http, order, {"phase": "Single", "amount": amount, "conditions": MIT})


def status(http: httpx.Client, order_id: int) -> str:
    value: str = http.get(f"order/{order_id}").json()["order"]["status"]
    return value


def test_recurring_charge_is_approved_once_and_in_the_ledger(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    order, response = charge(sandbox_http, 5125)
    assert response.status_code == 200
    tran = response.json()["tran"]
    assert tran["pmoResultCode"] == "1"
    assert tran["approvalCode"].isdigit()
    again = execute(sandbox_http, order, {"phase": "Single", "amount": "9.99", "conditions": MIT})
    assert again.status_code == 409
    assert again.json()["errorCode"] == "InvalidOrderState"
    (entry,) = sandbox.state.ledger.entries()
    assert (entry.order_id, entry.order_type, entry.tran_type) == (
        order[0],
        "Order_REC",
        "Purchase",
    )
    assert (entry.amount, entry.currency, entry.direction) == ("9.99", "AZN", "debit")
    assert (entry.card, entry.stored_id, entry.description) == ("416974******1778", 5125, "sub-1")
    assert entry.rid_by_pmo == tran["match"]["ridByPmo"]


def test_detailed_order_writes_amounts_exactly(sandbox_http: httpx.Client) -> None:
    order, _ = charge(sandbox_http, 5125, "9.90")
    response = sandbox_http.get(
        f"order/{order[0]}",
        params={"tranDetailLevel": 2, "tokenDetailLevel": 2, "orderDetailLevel": 2},
    )
    assert '"amount":9.9,' in response.text  # a JSON number, exact, never 9.9000000001
    body = _json(response)["order"]
    assert (body["status"], body["prevStatus"], body["type"]["rid"]) == (
        "FullyPaid",
        "Preparing",
        "Order_REC",
    )
    assert body["amount"] == Decimal("9.9")
    assert body["clearedChargeAmount"] == Decimal("9.9")
    assert body["clearedRefundAmount"] == 0
    (tran,) = body["trans"]
    assert (tran["type"], tran["phase"], tran["amount"], tran["clearAmount"]) == (
        "Purchase",
        "Single",
        Decimal("9.9"),
        Decimal("9.9"),
    )
    assert body["srcToken"]["displayName"] == "416974******1778"
    simple = _json(sandbox_http.get(f"order/{order[0]}"))["order"]
    assert simple["typeRid"] == "Order_REC"
    assert "trans" not in simple
    assert "password" not in simple


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        (("TerminalSys/kapital", "wrong"), {}),
        (("someone", "kapital123"), {}),
        (None, {}),
        (None, {"Authorization": "Basic !!!"}),
        (None, {"Authorization": "Bearer abc"}),
    ],
)
def test_wrong_or_missing_credentials_are_invalid_login(
    sandbox: SandboxServer, auth: tuple[str, str] | None, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=f"{sandbox.base_url}/", auth=auth, headers=headers) as client:
        response = client.post("order/", json={"order": {}})
        assert response.status_code == 401
        assert response.json()["errorCode"] == "InvalidLogin"
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert client.get("order/10001").status_code == 401
    assert sandbox.state.orders() == []


def test_other_credentials_can_be_configured(make_sandbox: Any) -> None:
    server = make_sandbox(username="merchant", password="s3cret-pass")
    with httpx.Client(base_url=f"{server.base_url}/") as client:
        ok = client.post("order/", auth=("merchant", "s3cret-pass"), json={"order": {}})
        assert ok.json()["errorCode"] == "InvalidRequest"  # past the login
        assert (
            client.post("order/", auth=("TerminalSys/kapital", "kapital123"), json={}).status_code
            == 401
        )


def test_order_password_is_required_where_the_collection_sends_it(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    order = create(sandbox_http)
    bodies = {
        "set-src-token": {"token": {"storedId": 5125}},
        "exec-tran": {"tran": {"phase": "Single", "conditions": MIT}},
    }
    for path, body in bodies.items():
        missing = sandbox_http.post(f"order/{order[0]}/{path}", json=body)
        wrong = sandbox_http.post(
            f"order/{order[0]}/{path}", params={"password": "x" + order[1]}, json=body
        )
        for response in (missing, wrong):
            assert response.status_code == 403
            assert response.json()["errorCode"] == "OperationProhibited"
    purchase = {"phase": "Single", "conditions": MIT}
    assert set_src(sandbox_http, order, 5125).status_code == 200
    assert execute(sandbox_http, order[0], purchase).status_code == 403  # no password
    assert execute(sandbox_http, order, purchase).status_code == 200
    # a refund goes without it, as in the collection, but a wrong one is still refused
    refund = {"phase": "Single", "amount": "1.00", "type": "Refund"}
    wrong = sandbox_http.post(
        f"order/{order[0]}/exec-tran", params={"password": "nope"}, json={"tran": refund}
    )
    assert wrong.status_code == 403
    assert execute(sandbox_http, order[0], refund).status_code == 200
    assert sandbox_http.get(f"order/{order[0]}", params={"password": "nope"}).status_code == 403
    assert sandbox_http.get(f"order/{order[0]}", params={"password": order[1]}).status_code == 200
    assert [e.tran_type for e in sandbox.state.ledger.entries()] == ["Purchase", "Refund"]


def test_unknown_orders_are_404(sandbox_http: httpx.Client) -> None:
    for response in (
        sandbox_http.get("order/999999"),
        sandbox_http.get("order/abc"),
        sandbox_http.post("order/999999/exec-tran", json={"tran": {"phase": "Single"}}),
    ):
        assert response.status_code == 404
        assert response.json()["errorCode"] == "InvalidRequest"


def test_malformed_bodies_are_invalid_request(sandbox_http: httpx.Client) -> None:
    for content in (b"not json", b'{"order": {"amount": NaN}}', b"[1]"):
        response = sandbox_http.post("order/", content=content)
        assert response.status_code == 400
        assert response.json()["errorCode"] == "InvalidRequest"


@pytest.mark.parametrize("amount", ["9.999", "0", "-1", "1e2", "", "٩"])
def test_bad_amounts_are_invalid_amt(
    sandbox: SandboxServer, sandbox_http: httpx.Client, amount: str
) -> None:
    response = sandbox_http.post(
        "order/", json={"order": {"typeRid": "Order_REC", "amount": amount, "currency": "AZN"}}
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == "InvalidAmt"
    assert sandbox.state.orders() == []


@pytest.mark.parametrize(
    ("stored_id", "code", "reason"),
    [(5152, "52", "SrcCardInvalid"), (5141, "41", "SrcCardStolen"), (5106, "6", "ScaRequired")],
)
def test_declines_have_the_reference_shape_and_decline_the_order(
    sandbox: SandboxServer, sandbox_http: httpx.Client, stored_id: int, code: str, reason: str
) -> None:
    order, response = charge(sandbox_http, stored_id)
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "PmoDecline"
    details = body["errorDetails"]
    assert (details["pmoResultCode"], details["declineReason"]) == (code, reason)
    assert details["match"]["ridByPmo"].isdigit()
    assert (
        "PAN=416974******" in details["pmoDeclineDesc"]
        or "PAN=510307******" in details["pmoDeclineDesc"]
    )
    assert (
        body["errorDescription"]
        == f"Transaction declined by PMO: Auth Response: {code} - {details['pmoDeclineDesc']}"
    )
    assert status(sandbox_http, order[0]) == "Declined"
    assert sandbox.state.ledger.entries() == []
    again = execute(sandbox_http, order, {"phase": "Single", "conditions": MIT})
    assert again.json()["errorCode"] == "InvalidOrderState"


def test_insufficient_funds_until_topped_up_then_the_next_attempt_succeeds(
    sandbox: SandboxServer, sandbox_http: httpx.Client, sandbox_admin: httpx.Client
) -> None:
    _, first = charge(sandbox_http, 5159)
    assert first.json()["errorDetails"]["pmoResultCode"] == "59"
    assert first.json()["errorDetails"]["declineReason"] == "InsufficientFunds"
    top_up = sandbox_admin.post("cards/5159/top-up", json={"amount": "20.00", "currency": "AZN"})
    assert top_up.status_code == 200
    assert top_up.json()["card"]["balance"] == "20.00"
    _, second = charge(sandbox_http, 5159)  # dunning: a new order
    assert second.status_code == 200
    _, third = charge(sandbox_http, 5159, "10.02")  # 10.01 left
    assert third.json()["errorDetails"]["pmoResultCode"] == "59"
    assert [(e.stored_id, e.amount) for e in sandbox.state.ledger.entries()] == [(5159, "9.99")]


def test_an_expired_card_declines_with_51_by_the_sandbox_clock(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    _, approved = charge(sandbox_http, 5125)  # expires 11/30
    assert approved.status_code == 200
    sandbox.state.set_clock(lambda: datetime(2030, 12, 1, tzinfo=UTC))
    _, expired = charge(sandbox_http, 5125)
    details = expired.json()["errorDetails"]
    assert (details["pmoResultCode"], details["declineReason"]) == ("51", "SrcCardExpired")
    assert "ExpDate from Track2 (YYMM)=3011" in details["pmoDeclineDesc"]
    _, demo_expired = charge(sandbox_http, 5151)
    assert demo_expired.json()["errorDetails"]["pmoResultCode"] == "51"


def test_unknown_stored_card_is_invalid_token(sandbox_http: httpx.Client) -> None:
    order = create(sandbox_http)
    response = set_src(sandbox_http, order, 4242)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "InvalidToken"
    two = {"token": {"extCof": {"ridByCofp": "0000", "cofProviderRid": "TWO_COF"}}}
    response = sandbox_http.post(
        f"order/{order[0]}/set-src-token", params={"password": order[1]}, json=two
    )
    assert response.json()["errorCode"] == "InvalidToken"


def test_payout_to_a_pan_and_to_a_two_token(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    pan_order = create(sandbox_http, "1", "OCT", title="Payout")
    bad = {"token": {"card": {"panBlock": {"data": "4169741330151779"}, "entryMode": "ECommerce"}}}
    response = sandbox_http.post(
        f"order/{pan_order[0]}/set-dst-token", params={"password": pan_order[1]}, json=bad
    )
    assert response.json()["errorCode"] == "InvalidToken"
    good = {"token": {"card": {"panBlock": {"data": "4169741330151778"}, "entryMode": "ECommerce"}}}
    response = sandbox_http.post(
        f"order/{pan_order[0]}/set-dst-token", params={"password": pan_order[1]}, json=good
    )
    assert response.status_code == 200
    assert "4169741330151778" not in response.text
    assert response.json()["order"]["dstToken"]["displayName"] == "416974******1778"
    credit = {"phase": "Single", "amount": "1.00", "type": "Credit"}
    assert execute(sandbox_http, pan_order, credit).status_code == 200

    two_order = create(sandbox_http, "25.50", "OCT")
    two = {
        "token": {
            "extCof": {"ridByCofp": "26AB0DACE700EF1180EB005056954BCC", "cofProviderRid": "TWO_COF"}
        }
    }
    sandbox_http.post(
        f"order/{two_order[0]}/set-dst-token", params={"password": two_order[1]}, json=two
    )
    assert execute(sandbox_http, two_order, {**credit, "amount": "25.50"}).status_code == 200
    assert status(sandbox_http, two_order[0]) == "FullyPaid"
    entries = sandbox.state.ledger.entries(tran_type="Credit")
    assert [(e.amount, e.direction, e.card) for e in entries] == [
        ("1.00", "credit", "416974******1778"),
        ("25.50", "credit", "510307******3344"),
    ]
    assert "4169741330151778" not in json.dumps(
        [e.to_json() for e in sandbox.state.ledger.entries()]
    )
    # a payout order takes no source token and no purchase
    wrong = set_src(sandbox_http, create(sandbox_http, "1", "OCT"), 5125)
    assert wrong.json()["errorCode"] == "TranProhibited"


def test_preauthorisation_then_clearing(sandbox: SandboxServer, sandbox_http: httpx.Client) -> None:
    order = create(sandbox_http, "10.00", "DMSN3D")
    set_src(sandbox_http, order, 5100)
    auth = {
        "phase": "Auth",
        "authorizationKind": "Preliminary",
        "amount": "10.00",
        "conditions": MIT,
    }
    assert execute(sandbox_http, order, auth).status_code == 200
    assert status(sandbox_http, order[0]) == "Authorized"
    too_much = execute(sandbox_http, order[0], {"phase": "Clearing", "amount": "10.01"})
    assert too_much.json()["errorCode"] == "InvalidAmt"
    assert (
        execute(sandbox_http, order[0], {"phase": "Clearing", "amount": "10.00"}).status_code == 200
    )
    assert status(sandbox_http, order[0]) == "FullyPaid"
    assert [(e.tran_type, e.amount, e.direction) for e in sandbox.state.ledger.entries()] == [
        ("Auth", "10.00", "hold"),
        ("Clearing", "10.00", "debit"),
    ]


def test_refund_and_reversals(sandbox: SandboxServer, sandbox_http: httpx.Client) -> None:
    refunded, _ = charge(sandbox_http, 5125, "5.00")
    assert (
        execute(
            sandbox_http, refunded[0], {"phase": "Single", "amount": "2.00", "type": "Refund"}
        ).status_code
        == 200
    )
    too_much = execute(
        sandbox_http, refunded[0], {"phase": "Single", "amount": "3.01", "type": "Refund"}
    )
    assert too_much.json()["errorCode"] == "InvalidAmt"
    assert (
        execute(
            sandbox_http, refunded[0], {"phase": "Single", "amount": "3.00", "type": "Refund"}
        ).status_code
        == 200
    )
    assert status(sandbox_http, refunded[0]) == "Refunded"

    partial, _ = charge(sandbox_http, 5125, "5.00")
    assert (
        execute(
            sandbox_http, partial[0], {"phase": "Single", "amount": "1.00", "voidKind": "Partial"}
        ).status_code
        == 200
    )
    twice = execute(
        sandbox_http, partial[0], {"phase": "Single", "amount": "1.00", "voidKind": "Partial"}
    )
    assert (twice.status_code, twice.json()["errorCode"]) == (409, "InvalidOrderState")
    assert (
        execute(sandbox_http, partial[0], {"phase": "Single", "voidKind": "Full"}).status_code
        == 200
    )
    assert status(sandbox_http, partial[0]) == "Voided"

    rows = [(e.order_id, e.tran_type, e.amount, e.reverses) for e in sandbox.state.ledger.entries()]
    assert rows == [
        (refunded[0], "Purchase", "5.00", None),
        (refunded[0], "Refund", "2.00", None),
        (refunded[0], "Refund", "3.00", None),
        (partial[0], "Purchase", "5.00", None),
        (partial[0], "Reversal", "1.00", "Purchase"),
        (partial[0], "Reversal", "4.00", "Purchase"),
    ]


def test_installments_and_a_saved_card_from_the_payment_page(
    sandbox: SandboxServer, sandbox_http: httpx.Client, sandbox_admin: httpx.Client
) -> None:
    bad = sandbox_http.post(
        "order/",
        json={
            "order": {
                "typeRid": "Order_SMS",
                "amount": "1",
                "currency": "AZN",
                "description": "TAKSIT=99",
            }
        },
    )
    assert bad.json()["errorCode"] == "InvalidRequest"
    order = create(
        sandbox_http,
        "12.00",
        "Order_SMS",
        description="TAKSIT=6",
        hppCofCapturePurposes=["Cit", "Recurring"],
    )
    paid = sandbox_admin.post(
        f"orders/{order[0]}/hpp-pay",
        json={"pan": "5103071234563118", "expiry": "0130", "save": True},
    )
    assert paid.status_code == 200, paid.text
    stored_id = paid.json()["storedId"]
    assert "5103071234563118" not in paid.text
    assert status(sandbox_http, order[0]) == "FullyPaid"
    # the saved card now pays a recurring order
    _, recurring = charge(sandbox_http, stored_id, "12.00")
    assert recurring.status_code == 200
    assert [e.card for e in sandbox.state.ledger.entries()] == ["510307******3118"] * 2


def test_many_orders_get_distinct_ids_and_passwords(sandbox_http: httpx.Client) -> None:
    orders = [create(sandbox_http) for _ in range(20)]
    assert len({o[0] for o in orders}) == 20
    assert len({o[1] for o in orders}) == 20


def test_concurrent_duplicate_purchases_charge_exactly_once(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    order = create(sandbox_http)
    set_src(sandbox_http, order, 5125)
    url = f"{sandbox.base_url}/order/{order[0]}/exec-tran"

    def send(_: int) -> int:
        with httpx.Client(auth=sandbox.auth) as client:
            tran = {"tran": {"phase": "Single", "conditions": MIT}}
            return client.post(url, params={"password": order[1]}, json=tran).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = sorted(pool.map(send, range(16)))
    assert statuses == [200] + [409] * 15
    assert len(sandbox.state.ledger.entries(order_id=order[0])) == 1
