"""The admin API: ledger, cards, top-ups, orders, reset; and that it is for loopback only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from worker.sandbox import SandboxServer, SandboxState, create_app
from worker.sandbox.admin import _health


def _charge(http: httpx.Client, stored_id: int, amount: str, description: str) -> int:
    order = http.post(
        "order/",
        json={
            "order": {
                "typeRid": "Order_REC",
                "amount": amount,
                "currency": "AZN",
                "description": description,
            }
        },
    ).json()["order"]
    params = {"password": order["password"]}
    http.post(
        f"order/{order['id']}/set-src-token", params=params, json={"token": {"storedId": stored_id}}
    )
    http.post(f"order/{order['id']}/exec-tran", params=params, json={"tran": {"phase": "Single"}})
    order_id: int = order["id"]
    return order_id


def test_ledger_over_http_and_as_jsonl(
    sandbox: SandboxServer, sandbox_http: httpx.Client, sandbox_admin: httpx.Client, tmp_path: Path
) -> None:
    first = _charge(sandbox_http, 5125, "1.50", "sub-1 2026-11")
    _charge(sandbox_http, 5100, "2", "sub-2 2026-11")
    entries = sandbox_admin.get("ledger").json()["entries"]
    assert [(e["seq"], e["amount"], e["description"]) for e in entries] == [
        (1, "1.50", "sub-1 2026-11"),
        (2, "2.00", "sub-2 2026-11"),
    ]
    only = sandbox_admin.get("ledger", params={"orderId": first}).json()["entries"]
    assert [e["order_id"] for e in only] == [first]
    path = tmp_path / "ledger.jsonl"
    assert sandbox.state.ledger.dump_jsonl(path) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == entries


def test_ledger_file_is_appended_as_money_moves(make_sandbox: Any, tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    server = make_sandbox(SandboxState(ledger_file=path))
    with httpx.Client(base_url=f"{server.base_url}/", auth=server.auth) as http:
        _charge(http, 5125, "3.00", "a")
        assert [json.loads(x)["amount"] for x in path.read_text().splitlines()] == ["3.00"]
        _charge(http, 5125, "4.00", "b")
    assert [json.loads(x)["amount"] for x in path.read_text().splitlines()] == ["3.00", "4.00"]


def test_register_a_card_and_charge_it(
    sandbox_http: httpx.Client, sandbox_admin: httpx.Client
) -> None:
    card = {
        "storedId": 7001,
        "pan": "5103071234563118",
        "expiry": "0130",
        "behaviour": "decline",
        "pmoResultCode": 71,
    }
    registered = sandbox_admin.post("cards", json=card)
    assert registered.status_code == 200
    assert registered.json()["cards"][0]["displayName"] == "510307******3118"
    assert "5103071234563118" not in sandbox_admin.get("cards").text
    order_id = _charge(sandbox_http, 7001, "1", "x")
    assert sandbox_http.get(f"order/{order_id}").json()["order"]["status"] == "Declined"
    bad = sandbox_admin.post("cards", json={"cards": [card, {"storedId": 1}]})
    assert bad.status_code == 400
    assert "displayName" in bad.json()["error"]


def test_top_up_errors(sandbox_admin: httpx.Client) -> None:
    assert sandbox_admin.post("cards/9999/top-up", json={"amount": "1"}).status_code == 404
    for body in ({"amount": "1.001"}, {"amount": 1.555}, {"amount": "1", "currency": "XXX"}, [1]):
        response = sandbox_admin.post("cards/5159/top-up", json=body)
        assert response.status_code == 400, body
    assert sandbox_admin.post("cards/5125/top-up", json={"amount": "1"}).status_code == 400


def test_orders_listing_and_reset(
    sandbox: SandboxServer, sandbox_http: httpx.Client, sandbox_admin: httpx.Client
) -> None:
    order_id = _charge(sandbox_http, 5125, "9.99", "x")
    sandbox_admin.post("cards/5159/top-up", json={"amount": "5"})
    sandbox_admin.post("faults", json={"kind": "http-502", "endpoint": "get-order"})
    listed = sandbox_admin.get("orders").json()["orders"]
    assert listed == [
        {
            "id": order_id,
            "typeRid": "Order_REC",
            "status": "FullyPaid",
            "amount": "9.99",
            "currency": "AZN",
            "description": "x",
            "trans": 1,
        }
    ]
    assert "password" not in json.dumps(listed)
    assert sandbox_admin.post("reset").json() == {"ok": True}
    assert sandbox_admin.get("orders").json() == {"orders": []}
    assert sandbox_admin.get("ledger").json() == {"entries": []}
    assert sandbox_admin.get("faults").json() == {"faults": []}
    card = next(c for c in sandbox_admin.get("cards").json()["cards"] if c["storedId"] == 5159)
    assert card["balance"] == "0.00"


def test_hpp_pay_is_only_for_payment_page_orders(
    sandbox_http: httpx.Client, sandbox_admin: httpx.Client
) -> None:
    order = sandbox_http.post(
        "order/", json={"order": {"typeRid": "Order_REC", "amount": "1", "currency": "AZN"}}
    ).json()["order"]
    response = sandbox_admin.post(f"orders/{order['id']}/hpp-pay", json={"pan": "4169741330151778"})
    assert response.json()["errorCode"] == "TranProhibited"
    assert (
        sandbox_admin.post("orders/999/hpp-pay", json={"pan": "4169741330151778"}).status_code
        == 404
    )
    assert sandbox_admin.post(f"orders/{order['id']}/hpp-pay", json={}).status_code == 400


@pytest.mark.parametrize(
    ("remote", "allowed", "status"),
    [
        ("127.0.0.1", False, 200),
        ("::1", False, 200),
        ("10.1.2.3", False, 403),
        ("10.1.2.3", True, 200),
    ],
)
def test_admin_answers_loopback_clients_only(remote: str, allowed: bool, status: int) -> None:
    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (remote, 5555) if name == "peername" else default

        def is_closing(self) -> bool:
            return False

    app = create_app(SandboxState(), allow_remote_admin=allowed)
    request = make_mocked_request("GET", "/_admin/health", app=app, transport=Transport())

    async def call() -> web.StreamResponse:
        return await _health(request)

    response = asyncio.run(call())
    assert response.status == status
