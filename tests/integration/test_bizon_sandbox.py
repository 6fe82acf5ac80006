"""The Bizon sandbox over real HTTP: the status table, declines by rule, faults and the
ledger, Basic auth, the listing's filters and pages, the admin API and the runners.

The status table below is the reference's "Order Status" table (see
:mod:`worker.sandbox.bizon.orders` for where it comes from), written out again here so the
test does not read the sandbox's own copy.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from worker.sandbox import FaultKind, FaultRule
from worker.sandbox.bizon import (
    USERNAME,
    BizonEndpoint,
    BizonProcess,
    BizonServer,
    BizonSettings,
    BizonState,
)

VISA = "4111111111111111"  # approves
MASTERCARD = "5555555555554444"  # approves: a payout destination
NO_FUNDS = "4000000000009995"  # 51 until topped up
EXPIRED = "4000000000000069"  # expired 01/24: 54
STOLEN = "4000000000009979"  # 43
DO_NOT_HONOR = "4000000000000002"  # 05
SCA = "4000000000003220"  # 3-D Secure on authorize, 1A on rebill
MALFUNCTION = "4000000000000119"  # 96: the operation and order end "error"
OVER_LIMIT = "4000000000000127"  # 61: a destination refusing for now
NOT_PERMITTED = "4000000000000101"  # 57: a destination refusing for good
UNKNOWN = "4242424242424242"  # not one of the sandbox's cards
CARD = {"cvv": "123", "expiration_month": 12, "expiration_year": 2030, "holder": "Ann Lee"}

#: The reference's table: status -> the operations it allows ("Possible operations").
TABLE: dict[str, set[str]] = {
    "new": set(),
    "prepared": set(),
    "authorized": {"reverse", "charge", "rebill"},
    "charged": {"refund", "credit", "rebill"},
    "reversed": {"rebill"},
    "refunded": {"refund", "credit", "rebill"},
    "rejected": {"rebill"},
    "fraud": {"rebill"},
    "declined": {"rebill"},
    "chargedback": {"rebill"},
    "credited": {"rebill"},
    "error": {"rebill"},
}
OPERATIONS = ("charge", "refund", "reverse", "cancel", "rebill", "credit")


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bizon_server() -> Iterator[BizonServer]:
    with BizonServer() as server:
        yield server


@pytest.fixture
def bizon(bizon_server: BizonServer) -> BizonServer:
    """The module's sandbox, back to its start state and default settings."""
    bizon_server.state.reset()
    bizon_server.state.settings = BizonSettings()
    return bizon_server


@pytest.fixture
def http(bizon: BizonServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bizon.base_url, auth=bizon.auth, timeout=10) as client:
        yield client


@pytest.fixture
def admin(bizon: BizonServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{bizon.admin_url}/", timeout=10) as client:
        yield client


def only(response: httpx.Response) -> dict[str, Any]:
    orders = response.json()["orders"]
    assert len(orders) == 1, response.text
    order: dict[str, Any] = orders[0]
    return order


def authorize(http: httpx.Client, pan: str = VISA, amount: str = "9.99", **extra: Any) -> Any:
    body = {"amount": amount, "pan": pan, "card": CARD, **extra}
    return only(http.post("/orders/authorize", json=body))


def put(http: httpx.Client, order: dict[str, Any], operation: str, **body: Any) -> httpx.Response:
    return http.put(f"/orders/{order['id']}/{operation}", json=body or None)


def order_in(http: httpx.Client, admin: httpx.Client, status: str) -> Any:
    """A new order in ``status``, reached through the API (and the admin API's verdicts)."""
    if status == "new":
        return only(http.post("/orders/create", json={"amount": "9.99"}))
    if status == "prepared":
        return authorize(http, options={"force3d": 1})
    if status == "declined":
        return authorize(http, DO_NOT_HONOR)
    if status == "error":
        return authorize(http, MALFUNCTION)
    if status == "credited":
        return only(http.post("/orders/credit", json={"amount": "5", "pan": MASTERCARD}))
    order = authorize(http)
    if status == "reversed":
        return only(put(http, order, "reverse"))
    if status == "authorized":
        return order
    charged = only(put(http, order, "charge"))
    if status == "charged":
        return charged
    if status == "refunded":  # partly: "fully or partially refunded", with money left
        return only(put(http, order, "refund", amount="1.00"))
    marked = admin.post(f"orders/{order['id']}/mark", json={"status": status})
    assert marked.status_code == 200, marked.text
    return only(marked)


def call(http: httpx.Client, order: dict[str, Any], operation: str) -> httpx.Response:
    if operation == "rebill":
        return http.post(f"/orders/{order['id']}/rebill", json={"amount": "9.99"})
    if operation == "credit":
        return http.post(f"/orders/{order['id']}/credit", json={"amount": "1.00"})
    return put(http, order, operation)


def listing(http: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    response = http.get("/orders/", params=filters)
    assert response.status_code == 200, response.text
    orders: list[dict[str, Any]] = response.json()["orders"]
    return orders


# -- the status table ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(TABLE))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_status_allows_what_the_table_says(
    bizon: BizonServer, http: httpx.Client, admin: httpx.Client, status: str, operation: str
) -> None:
    order = order_in(http, admin, status)
    assert order["status"] == status
    allowed = TABLE[status]
    if operation == "cancel":  # a reverse where reverse is allowed, else a refund
        allowed_here = bool(allowed & {"reverse", "refund"})
    else:
        allowed_here = operation in allowed
    entries = len(bizon.state.ledger)
    response = call(http, order, operation)
    if not allowed_here:
        assert response.status_code == 409, response.text
        assert response.json() == {
            "failure_type": "operation",
            "failure_message": response.json()["failure_message"],
            "order_id": order["id"],
        }
        assert status in response.json()["failure_message"]
        assert only(http.get(f"/orders/{order['id']}"))["status"] == status
        assert len(bizon.state.ledger) == entries  # nothing moved
        return
    assert response.status_code == 200, response.text
    answer = only(response)
    if operation in ("rebill", "credit"):  # a new order; the parent does not change
        assert answer["id"] != order["id"]
        assert only(http.get(f"/orders/{order['id']}"))["status"] == status
        assert bizon.state.order(answer["id"]).parent_id == int(order["id"])
    else:
        after = {"charge": "charged", "refund": "refunded", "reverse": "reversed"}
        cancelled = "reversed" if status == "authorized" else "refunded"
        assert answer["status"] == after.get(operation, cancelled)


def test_amounts_partial_charge_and_refunds_add_up(http: httpx.Client) -> None:
    order = authorize(http, amount="9.99")
    assert put(http, order, "charge", amount="10.00").json()["failure_type"] == "validation"
    charged = only(put(http, order, "charge", amount=1.99))
    assert (charged["amount_charged"], charged["status"]) == ("1.99", "charged")
    first = only(put(http, order, "refund", amount="0.99"))
    assert (first["amount_refunded"], first["status"]) == ("0.99", "refunded")
    assert put(http, order, "refund", amount="1.01").json()["failure_type"] == "validation"
    second = only(put(http, order, "cancel"))  # the rest
    assert second["amount_refunded"] == "1.99"
    assert put(http, order, "refund").json()["failure_type"] == "validation"
    reverse = put(http, authorize(http), "reverse", amount="1.00")
    assert "partial reversal" in reverse.json()["failure_message"]
    fee = only(http.get(f"/orders/{order['id']}", params={"expand": "operations.cashflow"}))
    charge = next(op for op in fee["operations"] if op["type"] == "charge")
    assert charge["cashflow"] == {
        "amount": "1.99",
        "currency": "USD",
        "fee": "0.06",
        "incoming": "1.93",
        "receivable": "1.93",
        "reserve": "0.00",
    }


def test_3ds_complete_complete3d20_and_resume(http: httpx.Client) -> None:
    v1 = authorize(http, options={"force3d": 1})
    assert (v1["status"], v1["secure3d"]["reason"]) == ("prepared", "force3d")
    assert "PaReq" in v1["form3d"]
    assert http.post(f"/orders/{v1['id']}/resume").json()["failure_type"] == "validation"
    assert http.post(f"/orders/{v1['id']}/complete", json={}).status_code == 400
    done = only(http.post(f"/orders/{v1['id']}/complete", json={"PaRes": "abc"}))
    assert done["status"] == "authorized"
    again = http.post(f"/orders/{v1['id']}/complete", json={"PaRes": "abc"})
    assert (again.status_code, again.json()["failure_message"]) == (409, "Order already completed")
    v2 = authorize(http, options={"force3d": 1, "secure3d20_return_url": "https://shop/3ds"})
    resumed = only(http.post(f"/orders/{v2['id']}/resume"))
    assert (resumed["status"], resumed["form3d"]["method"]) == ("prepared", "POST")
    wrong = http.post(f"/orders/{v2['id']}/complete", json={"PaRes": "abc"})
    assert wrong.json()["failure_type"] == "validation"
    assert only(http.get(f"/orders/{v2['id']}"))["status"] == "prepared"
    finished = only(http.post(f"/orders/{v2['id']}/complete3d20"))
    assert (finished["status"], finished["secure3d"]["version"]) == ("authorized", "2")


def test_payment_page_of_a_created_order(http: httpx.Client, admin: httpx.Client) -> None:
    created = http.post("/orders/create", json={"amount": "3.00", "options": {"auto_charge": 1}})
    assert created.status_code == 201
    order = only(created)
    assert created.headers["Location"].endswith(f"/pay/{order['id']}")
    paid = admin.post(f"orders/{order['id']}/pay", json={"pan": VISA, "card": CARD})
    assert (paid.status_code, only(paid)["status"]) == (200, "charged")
    assert admin.post(f"orders/{order['id']}/pay", json={"pan": VISA, "card": CARD}).status_code
    assert admin.post("orders/1/pay", json={"pan": VISA, "card": CARD}).status_code == 404
    assert admin.post(f"orders/{order['id']}/mark", json={"status": "paid"}).status_code == 400


# -- declines by rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pan", "code", "operation_status", "order_status"),
    [
        (VISA, "00", "success", "authorized"),
        (NO_FUNDS, "51", "failure", "declined"),
        (EXPIRED, "54", "failure", "declined"),
        (STOLEN, "43", "failure", "declined"),
        (DO_NOT_HONOR, "05", "failure", "declined"),
        (MALFUNCTION, "96", "error", "error"),
    ],
)
def test_cards_answer_by_rule_with_iso_codes(
    http: httpx.Client, pan: str, code: str, operation_status: str, order_status: str
) -> None:
    response = http.post("/orders/authorize", json={"amount": "9.99", "pan": pan, "card": CARD})
    assert response.status_code == 200  # a decline is an answer, not an error
    order = only(response)
    (operation,) = order["operations"]
    assert (operation["iso_response_code"], operation["status"]) == (code, operation_status)
    assert operation["iso_message"]
    assert order["status"] == order_status
    assert ("auth_code" in order) is (code == "00")


def test_insufficient_funds_until_topped_up_then_a_rebill_succeeds(
    bizon: BizonServer, http: httpx.Client, admin: httpx.Client
) -> None:
    declined = authorize(http, NO_FUNDS, amount="15.00")
    assert declined["operations"][0]["iso_response_code"] == "51"
    key = "400000******9995"
    assert admin.post(f"cards/{key}/top-up", json={"amount": "10"}).status_code == 200
    retry = only(http.post(f"/orders/{declined['id']}/rebill", json={"amount": "15.00"}))
    assert retry["operations"][0]["iso_response_code"] == "51"  # 10.00 < 15.00
    admin.post(f"cards/{key}/top-up", json={"amount": "5.00"})
    paid = only(http.post(f"/orders/{retry['id']}/rebill", json={"amount": "15.00"}))
    assert (paid["status"], paid["operations"][0]["iso_response_code"]) == ("authorized", "00")
    card = next(c for c in admin.get("cards").json()["cards"] if c["displayName"] == key)
    assert card["balance"] == "0.00"  # the authorisation holds it
    assert admin.post("cards/400000******0001/top-up", json={"amount": "1"}).status_code == 404


def test_expiry_follows_the_sandbox_clock_and_unknown_cards_their_own_date(
    bizon: BizonServer, http: httpx.Client
) -> None:
    parent = only(put(http, authorize(http), "charge"))
    bizon.state.set_clock(lambda: datetime(2031, 1, 1, tzinfo=UTC))  # VISA expires 12/30
    expired = only(http.post(f"/orders/{parent['id']}/rebill", json={"amount": "9.99"}))
    assert expired["operations"][0]["iso_response_code"] == "54"
    bizon.state.set_clock(None)
    old = {**CARD, "expiration_year": 2020}
    unknown = only(http.post("/orders/authorize", json={"amount": 1, "pan": UNKNOWN, "card": old}))
    assert unknown["operations"][0]["iso_response_code"] == "54"
    assert unknown["issuer"] == {"bin": "424242"}  # not one of the sandbox's cards
    fresh = authorize(http, UNKNOWN)
    assert fresh["operations"][0]["iso_response_code"] == "00"


def test_a_card_needing_sca_goes_to_3ds_and_declines_a_rebill_with_1a(
    http: httpx.Client,
) -> None:
    prepared = http.post("/orders/authorize", json={"amount": "5", "pan": SCA, "card": CARD})
    assert prepared.status_code == 201
    order = only(prepared)
    assert (order["status"], order["secure3d"]["reason"]) == ("prepared", "sca")
    done = only(http.post(f"/orders/{order['id']}/complete", json={"PaRes": "ok"}))
    assert done["status"] == "authorized"
    rebill = only(http.post(f"/orders/{order['id']}/rebill", json={"amount": "5"}))
    (operation,) = rebill["operations"]
    assert (operation["iso_response_code"], rebill["status"]) == ("1A", "declined")


def test_payout_destinations_decline_by_rule(bizon: BizonServer, http: httpx.Client) -> None:
    for pan, code in ((MASTERCARD, "00"), (OVER_LIMIT, "61"), (NOT_PERMITTED, "57"), (SCA, "00")):
        order = only(http.post("/orders/credit", json={"amount": "20.00", "pan": pan}))
        assert order["operations"][0]["iso_response_code"] == code, pan
    credits = bizon.state.ledger.entries(tran_type="credit")
    assert [(e.card, e.direction) for e in credits] == [
        ("555555******4444", "credit"),
        ("400000******3220", "credit"),
    ]


# -- faults, the ledger, and finding an order whose answer was lost ------------------------------


def test_commit_then_drop_on_rebill_leaves_one_entry_found_by_time_window(
    bizon: BizonServer, http: httpx.Client
) -> None:
    """The reference lets rebill set no merchant_order_id: the documented way back to a
    rebill whose answer was lost is the listing's created_from/created_to window, narrowed by
    issuer.bin and matched on the card (pan) and amount."""
    parent = only(put(http, authorize(http), "charge"))
    key = "sub-42:2026-11"
    bizon.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, BizonEndpoint.REBILL, times=1))
    sent = datetime.now(UTC).replace(microsecond=0)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(
            f"/orders/{parent['id']}/rebill", json={"amount": "7.77", "merchant_order_id": key}
        )
    (entry,) = bizon.state.ledger.entries(order_id=None)[-1:]
    assert (entry.order_type, entry.tran_type, entry.direction) == ("rebill", "authorize", "hold")
    assert (entry.amount, entry.parent_order_id) == ("7.77", int(parent["id"]))
    assert [e for e in bizon.state.ledger.entries() if e.order_type == "rebill"] == [entry]
    # merchant_order_id is not a rebill field: the new order has none, the filter finds nothing
    assert listing(http, merchant_order_id=key) == []
    window = {
        "created_from": (sent - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S"),
        "created_to": (sent + timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M:%S"),
        "issuer.bin": parent["pan"][:6],
    }
    found = [
        o
        for o in listing(http, **window)
        if o["pan"] == parent["pan"] and o["amount"] == "7.77" and o["id"] != parent["id"]
    ]
    assert [int(o["id"]) for o in found] == [entry.order_id]
    assert found[0]["merchant_order_id"] is None


def test_commit_then_drop_on_rebill_found_by_merchant_order_id_when_rebill_takes_it(
    bizon: BizonServer, http: httpx.Client
) -> None:
    bizon.state.settings = dataclasses.replace(bizon.state.settings, rebill_merchant_fields=True)
    parent = only(put(http, authorize(http), "charge"))
    key = "sub-42:2026-11"
    bizon.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, BizonEndpoint.REBILL, times=1))
    body = {"amount": "9.99", "merchant_order_id": key, "description": "sub-42 November"}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"/orders/{parent['id']}/rebill", json=body)
    rebills = [e for e in bizon.state.ledger.entries() if e.order_type == "rebill"]
    assert [(e.merchant_order_id, e.description) for e in rebills] == [(key, "sub-42 November")]
    (found,) = listing(http, merchant_order_id=f"other,{key}")
    assert (int(found["id"]), found["status"]) == (rebills[0].order_id, "authorized")


def test_commit_then_drop_on_an_auto_charged_rebill_debits_once(
    bizon: BizonServer, http: httpx.Client
) -> None:
    bizon.state.settings = dataclasses.replace(bizon.state.settings, auto_charge=True)
    parent = authorize(http)
    assert parent["status"] == "charged"
    bizon.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, BizonEndpoint.REBILL, times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"/orders/{parent['id']}/rebill", json={"amount": "9.99"})
    debits = [e for e in bizon.state.ledger.entries() if e.direction == "debit"]
    assert [e.order_type for e in debits] == ["authorize", "rebill"]


@pytest.mark.parametrize("endpoint", [BizonEndpoint.CREDIT, BizonEndpoint.CREDIT_PAN])
def test_commit_then_drop_on_credit_leaves_one_entry_found_by_merchant_order_id(
    bizon: BizonServer, http: httpx.Client, endpoint: BizonEndpoint
) -> None:
    parent = only(put(http, authorize(http), "charge"))
    key = "payout-7"
    body = {"amount": "25.50", "merchant_order_id": key, "description": "run 2026-11"}
    bizon.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, endpoint, times=1))
    if endpoint is BizonEndpoint.CREDIT:
        path = f"/orders/{parent['id']}/credit"
    else:
        path, body = "/orders/credit", {**body, "pan": MASTERCARD}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(path, json=body)
    (entry,) = bizon.state.ledger.entries(tran_type="credit")
    assert (entry.amount, entry.direction, entry.merchant_order_id) == ("25.50", "credit", key)
    assert entry.description == "run 2026-11"
    (found,) = listing(http, merchant_order_id=key)
    assert (int(found["id"]), found["status"]) == (entry.order_id, "credited")


def test_commit_then_drop_on_charge_then_the_order_says_charged(
    bizon: BizonServer, http: httpx.Client
) -> None:
    order = authorize(http)
    bizon.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, BizonEndpoint.CHARGE, times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        put(http, order, "charge")
    assert only(http.get(f"/orders/{order['id']}"))["status"] == "charged"
    assert put(http, order, "charge").status_code == 409  # no second charge
    assert len(bizon.state.ledger.entries(tran_type="charge")) == 1


def test_faults_before_handling_move_nothing(bizon: BizonServer, http: httpx.Client) -> None:
    parent = only(put(http, authorize(http), "charge"))
    entries, orders = len(bizon.state.ledger), len(bizon.state.orders())
    rebill = f"/orders/{parent['id']}/rebill"
    for kind, status in ((FaultKind.HTTP_502, 502), (FaultKind.HTTP_503, 503)):
        bizon.state.faults.add(FaultRule(kind, BizonEndpoint.REBILL, times=1))
        response = http.post(rebill, json={"amount": "1"})
        assert response.status_code == status
        assert "nginx" in response.text
    bizon.state.faults.add(FaultRule(FaultKind.DROP_BEFORE, BizonEndpoint.ANY, times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(rebill, json={"amount": "1"})
    assert (len(bizon.state.ledger), len(bizon.state.orders())) == (entries, orders)


def test_latency_slow_body_and_rules_for_one_order(bizon: BizonServer, http: httpx.Client) -> None:
    first = only(put(http, authorize(http), "charge"))
    second = only(put(http, authorize(http), "charge"))
    plan = bizon.state.faults
    plan.add(FaultRule(FaultKind.HTTP_503, BizonEndpoint.REBILL, order_id=int(second["id"])))
    assert http.post(f"/orders/{first['id']}/rebill", json={}).status_code == 200
    assert http.post(f"/orders/{second['id']}/rebill", json={}).status_code == 503
    plan.clear()
    plan.add(FaultRule(FaultKind.LATENCY, BizonEndpoint.PING, latency_ms=150))
    started = time.monotonic()
    assert http.get("/ping").status_code == 200
    assert time.monotonic() - started >= 0.15
    plan.clear()
    plan.add(FaultRule(FaultKind.SLOW_BODY, BizonEndpoint.GET_ORDER, latency_ms=1, chunk_bytes=64))
    assert only(http.get(f"/orders/{first['id']}"))["id"] == first["id"]


def test_ledger_over_the_admin_api(http: httpx.Client, admin: httpx.Client) -> None:
    order = authorize(http, merchant_order_id="m-1", description="Book sale #453")
    put(http, order, "charge")
    put(http, order, "refund", amount="1.00")
    put(http, authorize(http), "reverse")
    entries = admin.get("ledger", params={"orderId": order["id"]}).json()["entries"]
    assert [(e["tran_type"], e["direction"], e["amount"]) for e in entries] == [
        ("authorize", "hold", "9.99"),
        ("charge", "debit", "9.99"),
        ("refund", "credit", "1.00"),
    ]
    assert {(e["merchant_order_id"], e["description"]) for e in entries} == {
        ("m-1", "Book sale #453")
    }
    everything = admin.get("ledger").json()["entries"]
    assert [e["direction"] for e in everything[3:]] == ["hold", "release"]
    assert VISA not in json.dumps(everything)
    (summary, _) = admin.get("orders").json()["orders"]
    assert (summary["status"], summary["amount_refunded"]) == ("refunded", "1.00")


def test_admin_faults_use_bizon_endpoint_names(admin: httpx.Client) -> None:
    added = admin.post("faults", json={"kind": "commit-then-drop", "endpoint": "rebill"})
    assert added.json()["faults"][0]["endpoint"] == "rebill"
    txpg = admin.post("faults", json={"kind": "http-502", "endpoint": "exec-tran"})
    assert txpg.status_code == 400
    assert "rebill" in txpg.json()["error"]  # it names the endpoints there are
    by_card = admin.post("faults", json={"kind": "http-502", "storedId": 5125})
    assert (by_card.status_code, "storedId" in by_card.json()["error"]) == (400, True)
    admin.delete("faults")
    assert admin.get("faults").json() == {"faults": []}


def test_admin_registers_cards_by_pan(http: httpx.Client, admin: httpx.Client) -> None:
    card = {"pan": UNKNOWN, "expiry": "1230", "behaviour": "decline", "isoResponseCode": "62"}
    registered = admin.post("cards", json=card)
    assert registered.json()["cards"][0]["displayName"] == "424242******4242"
    assert UNKNOWN not in admin.get("cards").text
    assert authorize(http, UNKNOWN)["operations"][0]["iso_response_code"] == "62"
    bad = admin.post("cards", json={**card, "isoResponseCode": "00"})
    assert bad.status_code == 400
    txpg = admin.post("cards", json={**card, "pmoResultCode": 41})
    assert "unknown keys" in txpg.json()["error"]


# -- Basic auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ping"),
        ("GET", "/orders/"),
        ("GET", "/operations/"),
        ("POST", "/orders/authorize"),
        ("POST", "/orders/credit"),
        ("PUT", "/orders/23014805000104729/charge"),
    ],
)
@pytest.mark.parametrize("auth", [None, (USERNAME, "wrong"), ("someone", "password")])
def test_basic_auth_is_required_everywhere(
    bizon: BizonServer, method: str, path: str, auth: tuple[str, str] | None
) -> None:
    body = {"amount": "1", "pan": VISA, "card": CARD}
    with httpx.Client(base_url=bizon.base_url, auth=auth) as client:
        response = client.request(method, path, json=body if method != "GET" else None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Bizon sandbox"'
    assert response.json() == {
        "failure_type": "access",
        "failure_message": "Basic credentials missing or wrong",
        "order_id": None,
    }
    assert bizon.state.orders() == []


def test_the_right_login_pings_and_errors_have_one_shape(http: httpx.Client) -> None:
    pong = http.get("/ping").json()
    assert pong["message"] == "PONG!"
    assert datetime.strptime(pong["date"], "%Y-%m-%d %H:%M:%S")
    missing = http.get("/orders/23014805000104729")
    assert (missing.status_code, missing.json()["failure_type"]) == (404, "not_found")
    assert http.get("/orders/abc").status_code == 404
    bad = http.post("/orders/authorize", content=b"{nope")
    assert (bad.status_code, bad.json()["failure_type"]) == (400, "validation")
    for body in (
        {"amount": "9.999", "pan": VISA, "card": CARD},
        {"amount": 0, "pan": VISA, "card": CARD},
        {"amount": "1", "pan": "4111111111111112", "card": CARD},
        {"amount": "1", "pan": VISA},
        {"amount": "1", "pan": VISA, "card": {**CARD, "expiration_month": 13}},
    ):
        response = http.post("/orders/authorize", json=body)
        assert response.status_code == 400, body
        assert set(response.json()) == {"failure_type", "failure_message", "order_id"}


# -- the listing: filters and pages -------------------------------------------------------------


def test_listing_filters(bizon: BizonServer, http: httpx.Client) -> None:
    bizon.state.set_clock(lambda: datetime(2026, 1, 10, 12, tzinfo=UTC))
    january = authorize(http, merchant_order_id="a-1", client={"email": "ann@yahoo.com"})
    bizon.state.set_clock(lambda: datetime(2026, 2, 10, 12, tzinfo=UTC))
    february = authorize(http, MASTERCARD, merchant_order_id="b-2", location={"ip": "8.8.8.8"})
    declined = authorize(http, DO_NOT_HONOR)

    def ids(**filters: str) -> list[str]:
        return [o["id"] for o in listing(http, **filters)]

    assert ids() == [declined["id"], february["id"], january["id"]]  # newest first
    assert ids(status="declined") == [declined["id"]]
    assert ids(status="authorized,declined") == ids()
    assert ids(merchant_order_id="a-1,b-2") == [february["id"], january["id"]]
    assert ids(**{"card.type": "mastercard"}) == [february["id"]]
    assert ids(**{"card.subtype": "classic"}) == [declined["id"], january["id"]]
    assert ids(**{"client.email": "@YAHOO.com"}) == [january["id"]]
    assert ids(**{"location.ip": "8.8.8.8,8.8.8.9"}) == [february["id"]]
    assert ids(**{"issuer.bin": "555555,411111"}) == [february["id"], january["id"]]
    assert ids(**{"issuer.country": "UKR", "issuer.title": "bank"}) == ids()
    assert ids(created_from="2026-02-01 00:00:00") == [declined["id"], february["id"]]
    assert ids(created_to="2026-01-31") == [january["id"]]
    assert ids(created_from="2026-01-10 12:00:00", created_to="2026-01-10 12:00:00") == [
        january["id"]
    ]
    assert "card" not in listing(http)[0]
    assert "card" in listing(http, expand="card,issuer")[0]
    for bad in ({"description": "x"}, {"status": "paid"}, {"created_from": "10/01/2026"}):
        response = http.get("/orders/", params=bad)
        assert response.json()["failure_type"] == "validation", bad
    assert http.get("/orders/", params={"expand": "everything"}).status_code == 400


def test_operations_listing_filters(http: httpx.Client) -> None:
    order = only(put(http, authorize(http), "charge"))
    authorize(http, STOLEN)
    operations = http.get("/operations/").json()["operations"]
    assert [(o["type"], o["status"]) for o in operations] == [
        ("authorize", "failure"),
        ("charge", "success"),
        ("authorize", "success"),
    ]
    assert all("cashflow" not in o for o in operations)
    charges = http.get("/operations/", params={"type": "charge", "expand": "cashflow"})
    (charge,) = charges.json()["operations"]
    assert (charge["order_id"], charge["cashflow"]["fee"]) == (order["id"], "0.30")
    failures = http.get("/operations/", params={"status": "failure,error"}).json()
    assert [o["iso_response_code"] for o in failures["operations"]] == ["43"]
    assert http.get("/operations/", params={"type": "purchase"}).status_code == 400


def test_pages_of_the_listing_follow_link_headers(bizon: BizonServer, http: httpx.Client) -> None:
    bizon.state.settings = dataclasses.replace(bizon.state.settings, page_size=3)
    made = [authorize(http, merchant_order_id=f"k-{n}")["id"] for n in range(7)]
    authorize(http)  # without a merchant_order_id: filtered out
    wanted = ",".join(f"k-{n}" for n in range(7))
    seen: list[str] = []
    links_seen: list[list[str]] = []
    url: str | None = f"/orders/?merchant_order_id={wanted}"
    while url is not None:
        response = http.get(url)
        assert response.status_code == 200
        seen += [o["id"] for o in response.json()["orders"]]
        links = response.links
        links_seen.append(sorted(str(rel) for rel in links))
        assert links["first"]["url"].endswith("page=1")
        assert f"merchant_order_id={wanted}" in links["last"]["url"]
        url = links.get("next", {}).get("url")
    assert seen == made[::-1]  # every order once, newest first
    assert links_seen == [
        ["first", "last", "next"],
        ["first", "last", "next", "prev"],
        ["first", "last", "prev"],
    ]
    beyond = http.get("/orders/", params={"merchant_order_id": wanted, "page": "9"})
    assert beyond.json()["orders"] == []
    assert http.get("/orders/", params={"page": "0"}).status_code == 400
    operations = http.get("/operations/")
    assert len(operations.json()["operations"]) == 3
    assert operations.links["last"]["url"].endswith("page=3")


# -- the runners and the command -----------------------------------------------------------------


@pytest.mark.slow
def test_the_child_process_serves_and_stops_on_sigterm(tmp_path: Path, log_dir: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    process = BizonProcess(ledger_file=ledger, auto_charge=True, extra_args=("--log-requests",))
    with process:
        assert process.lines[0] == f"Bizon sandbox listening on {process.base_url}"
        assert process.base_url == process.origin
        with httpx.Client(base_url=process.base_url, auth=process.auth) as http:
            order = authorize(http)
        assert order["status"] == "charged"  # --auto-charge
        assert httpx.get(f"{process.admin_url}/health").json() == {"ok": True}
    assert process.stop() == 0
    (log_dir / f"bizon-sandbox-{process.pid}.log").write_text("\n".join(process.lines) + "\n")
    assert [json.loads(line)["direction"] for line in ledger.read_text().splitlines()] == [
        "hold",
        "debit",
    ]
    assert process.lines[-1] == "Bizon sandbox stopped"
    assert not any(VISA in line for line in process.lines)


def test_the_command_serves_bizon_with_its_own_defaults() -> None:
    from worker.cli import app

    result = CliRunner().invoke(app, ["sandbox", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for words in ("--gateway", "txpg", "bizon", "8090", "--auto-charge", "--rebill-merchant"):
        assert words in result.output
    refused = CliRunner().invoke(app, ["sandbox", "--auto-charge"])
    assert refused.exit_code != 0
    assert "bizon options" in refused.output


def test_the_thread_runner_shares_the_txpg_runner(bizon: BizonServer) -> None:
    from worker.sandbox.server import ThreadedServer

    assert isinstance(bizon, ThreadedServer)
    assert bizon.base_url == f"http://127.0.0.1:{bizon.port}"
    assert bizon.admin_url == f"{bizon.base_url}/_admin"
    assert isinstance(bizon.state, BizonState)
