"""Replay every request of Kapital's Postman collection against the sandbox over real HTTP.

Each request is sent as the collection writes it (body verbatim, the collection's own Basic
login), with only the host, ``{id}`` and ``{password}`` adapted. First an order of the right
type and state is made, where possible with the collection's own requests (a Clearing needs an
authorised order, a refund a paid one...). Every response the collection has an example for
must have the example's shape: the same keys, recursively, and compatible value types. A key
is optional only where the collection's own examples of that request disagree (``finishTime``
appears once an order is finished, ``storedTokens`` once a card was saved). Requests without
an example must succeed with a sensible shape and move the order as TXPG describes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.reference import COLLECTION
from worker.sandbox import SandboxServer

COLLECTION_HOST = "https://txpgtst.kapitalbank.az/api"
DETAIL = "tranDetailLevel=2&tokenDetailLevel=2&orderDetailLevel=2"


@dataclass(frozen=True)
class Example:
    name: str
    body: Any


@dataclass(frozen=True)
class Request:
    key: str  #: "Folder/Name"
    method: str
    url: str
    body: str | None
    auth: tuple[str, str]
    examples: tuple[Example, ...]


def _load() -> list[Request]:
    data = json.loads(COLLECTION.read_text(encoding="utf-8"))
    basic = {item["key"]: item["value"] for item in data["auth"]["basic"]["basicConfig"]}
    auth = (basic["username"], basic["password"])
    found: list[Request] = []

    def walk(items: list[dict[str, Any]], folder: str) -> None:
        for item in items:
            if "item" in item:
                walk(item["item"], item["name"])
                continue
            raw = item["request"]
            url = raw["url"] if isinstance(raw["url"], str) else raw["url"]["raw"]
            examples = tuple(
                Example(e["name"], json.loads(e["body"], parse_float=Decimal))
                for e in item.get("response", [])
                if e.get("body")
            )
            body = (raw.get("body") or {}).get("raw")
            found.append(
                Request(f"{folder}/{item['name']}", raw["method"], url, body, auth, examples)
            )

    walk(data["item"], "")
    return found


REQUESTS = {r.key: r for r in _load()}


def _paths(value: Any, path: str = "$") -> set[str]:
    out = {path}
    if isinstance(value, dict):
        for key, item in value.items():
            out |= _paths(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            out |= _paths(item, f"{path}[]")
    return out


def optional_paths(examples: tuple[Example, ...]) -> set[str]:
    """Paths some examples of one request have and others do not."""
    sets = [_paths(e.body) for e in examples]
    return set().union(*sets) - sets[0].intersection(*sets[1:]) if sets else set()


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Decimal):
        return "number"
    return type(value).__name__


def shape_diff(example: Any, actual: Any, optional: set[str], path: str = "$") -> list[str]:
    """Differences in keys and value types between an example and a response."""
    if _kind(example) != _kind(actual):
        return [f"{path}: {_kind(actual)} where the example has {_kind(example)}"]
    diffs: list[str] = []
    if isinstance(example, dict):
        for key in example.keys() - actual.keys():
            if f"{path}.{key}" not in optional:
                diffs.append(f"{path}.{key}: missing")
        for key in actual.keys() - example.keys():
            if f"{path}.{key}" not in optional:
                diffs.append(f"{path}.{key}: not in the example")
        for key in example.keys() & actual.keys():
            diffs += shape_diff(example[key], actual[key], optional, f"{path}.{key}")
    elif isinstance(example, list) and example and actual:
        for index, item in enumerate(actual):
            if len(actual) == len(example):
                diffs += shape_diff(example[index], item, optional, f"{path}[]")
            elif all(shape_diff(e, item, optional, f"{path}[]") for e in example):
                diffs.append(f"{path}[{index}]: matches no example item")
    return diffs


# -- talking to the sandbox ---------------------------------------------------------------


@dataclass
class Order:
    id: int
    password: str


class Replayer:
    """Sends collection requests (and the few admin calls a browser would make) to a sandbox."""

    def __init__(self, sandbox: SandboxServer, client: httpx.Client) -> None:
        self.sandbox = sandbox
        self.client = client

    def send(self, key: str, order: Order | None = None) -> httpx.Response:
        request = REQUESTS[key]
        url = request.url.replace(COLLECTION_HOST, self.sandbox.base_url)
        if order is not None:
            url = url.replace("{id}", str(order.id)).replace("{password}", order.password)
        assert "{" not in url, f"{key}: {url} still has a placeholder"
        return self.client.request(
            request.method,
            url,
            content=request.body.encode() if request.body else None,
            headers={"Content-Type": "application/json"} if request.body else {},
            auth=request.auth,
        )

    def ok(self, key: str, order: Order | None = None) -> dict[str, Any]:
        response = self.send(key, order)
        assert response.status_code == 200, f"{key}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("application/json")
        body: dict[str, Any] = json.loads(response.text, parse_float=Decimal)
        return body

    def create(self, key: str) -> Order:
        body = self.ok(key)["order"]
        return Order(body["id"], body["password"])

    def create_custom(self, type_rid: str, amount: str) -> Order:
        """An order the collection has no request for (another amount), with the same fields."""
        response = self.client.post(
            f"{self.sandbox.base_url}/order/",
            json={
                "order": {
                    "typeRid": type_rid,
                    "amount": amount,
                    "currency": "AZN",
                    "language": "az",
                    "description": "Testdesc",
                }
            },
            auth=REQUESTS["Create Order/Purchase"].auth,
        )
        assert response.status_code == 200, response.text
        body = response.json()["order"]
        return Order(body["id"], body["password"])

    def pay_on_hpp(self, order: Order, *, save: bool = False) -> None:
        """What the customer does in the browser on the payment page (not in the collection)."""
        response = self.client.post(
            f"{self.sandbox.admin_url}/orders/{order.id}/hpp-pay",
            json={"pan": "4169741330151778", "expiry": "1130", "save": save},
        )
        assert response.status_code == 200, response.text

    def status(self, order: Order) -> str:
        response = self.client.get(
            f"{self.sandbox.base_url}/order/{order.id}", auth=REQUESTS["Create Order/Purchase"].auth
        )
        status: str = response.json()["order"]["status"]
        return status

    # orders in the states the replayed requests need

    def paid_recurring(self, amount: str = "1.0") -> Order:
        order = self.create_custom("Order_REC", amount) if amount != "1.0" else None
        order = order or self.create("Create Order/Recurring")
        self.ok("Set Source Token/Standart token", order)
        response = self.client.post(
            f"{self.sandbox.base_url}/order/{order.id}/exec-tran",
            params={"password": order.password},
            json={"tran": {"phase": "Single", "conditions": {"cofUsage": "UnspecifiedMit"}}},
            auth=REQUESTS["Create Order/Purchase"].auth,
        )
        assert response.status_code == 200, response.text
        return order

    def authorized_dms(self) -> Order:
        order = self.create("Create Order/Prepurchase")
        self.pay_on_hpp(order)
        assert self.status(order) == "Authorized"
        return order


@pytest.fixture
def replay(sandbox: SandboxServer) -> Iterator[Replayer]:
    with httpx.Client(timeout=10) as client:
        yield Replayer(sandbox, client)


# -- one scenario per collection request ----------------------------------------------------
# Each returns (response body, the example it must match or None, the order it acted on).

Outcome = tuple[dict[str, Any], str | None, Order | None]
Scenario = Callable[[Replayer], list[Outcome]]


def _create(key: str, example: str | None) -> Scenario:
    def run(r: Replayer) -> list[Outcome]:
        body = r.ok(key)
        return [(body, example, Order(body["order"]["id"], body["order"]["password"]))]

    return run


def _set_src(key: str, example: str | None) -> Scenario:
    def run(r: Replayer) -> list[Outcome]:
        order = r.create("Create Order/Recurring")
        return [(r.ok(key, order), example, order)]

    return run


def _set_dst(key: str) -> Scenario:
    def run(r: Replayer) -> list[Outcome]:
        order = r.create("Create Order/Order Credit Transaction")
        return [(r.ok(key, order), None, order)]

    return run


def _clearing(r: Replayer) -> list[Outcome]:
    order = r.authorized_dms()
    return [
        (
            r.ok("Execution Transaction/Clearing after Authorization", order),
            "Success Response",
            order,
        )
    ]


def _purchase(r: Replayer) -> list[Outcome]:
    key = "Execution Transaction/Purchase with saved card"
    approved = r.create("Create Order/Recurring")
    r.ok("Set Source Token/Standart token", approved)
    outcomes: list[Outcome] = [(r.ok(key, approved), "Success Response", approved)]
    declined = r.create("Create Order/Recurring")
    response = r.client.post(  # the demo card that declines with 52, as in the example
        f"{r.sandbox.base_url}/order/{declined.id}/set-src-token",
        params={"password": declined.password},
        json={"order": {"initiationEnvKind": "Server"}, "token": {"storedId": 5152}},
        auth=REQUESTS[key].auth,
    )
    assert response.status_code == 200
    decline = r.send(key, declined)
    assert decline.status_code == 400
    outcomes.append(
        (json.loads(decline.text, parse_float=Decimal), "Purchase with saved card", declined)
    )
    return outcomes


def _preauth(r: Replayer) -> list[Outcome]:
    order = r.create_custom("DMSN3D", "1.00")
    r.ok("Set Source Token/Standart token", order)
    body = r.ok("Execution Transaction/Preauthorization with saved card", order)
    return [(body, "Success Response", order)]


def _credit(r: Replayer) -> list[Outcome]:
    order = r.create("Create Order/Order Credit Transaction")
    r.ok("Set Destination Token/PAN", order)
    return [(r.ok("Execution Transaction/Execute Credit Operation", order), None, order)]


def _reversal(key: str, make: Callable[[Replayer], Order]) -> Scenario:
    def run(r: Replayer) -> list[Outcome]:
        order = make(r)
        return [(r.ok(key, order), None, order)]

    return run


def _cleared_dms(r: Replayer) -> Order:
    order = r.authorized_dms()
    r.ok("Execution Transaction/Clearing after Authorization", order)
    return order


def _refund(r: Replayer) -> list[Outcome]:
    order = r.paid_recurring("2.00")  # the collection refunds 2.00
    return [(r.ok("Refund/Refund", order), "Refund", order)]


def _refunded_sms(r: Replayer) -> Order:
    """The order of the GET examples: an Order_SMS paid on the payment page, then refunded."""
    order = r.create("Create Order/Purchase")
    r.pay_on_hpp(order)
    response = r.client.post(
        f"{r.sandbox.base_url}/order/{order.id}/exec-tran",
        json={"tran": {"phase": "Single", "amount": "1.00", "type": "Refund"}},
        auth=REQUESTS["Refund/Refund"].auth,
    )
    assert response.status_code == 200, response.text
    return order


def _get_simple(r: Replayer) -> list[Outcome]:
    order = _refunded_sms(r)
    return [(r.ok("Get Order Status/Simple", order), "Simple", order)]


def _get_detailed(r: Replayer) -> list[Outcome]:
    key = "Get Order Status/Detailed"
    refunded = _refunded_sms(r)
    saved = r.create("Create Order/Purchase")
    r.pay_on_hpp(saved, save=True)
    refunded_body, saved_body = r.ok(key, refunded), r.ok(key, saved)
    # The keys the two examples disagree on, each where its example has it:
    assert "finishTime" in refunded_body["order"]
    assert "storedTokens" not in refunded_body["order"]
    assert "finishTime" not in saved_body["order"]
    assert [set(t) for t in saved_body["order"]["storedTokens"]] == [
        {"id"},
        {"cofProviderRid", "id", "ridBycofp"},
    ]
    return [(refunded_body, "Detailed", refunded), (saved_body, "With COF data", saved)]


SCENARIOS: dict[str, Scenario] = {
    "Create Order/Purchase": _create("Create Order/Purchase", "Success response"),
    "Create Order/Prepurchase": _create("Create Order/Prepurchase", "Success response"),
    "Create Order/Recurring": _create("Create Order/Recurring", "Success response"),
    "Create Order/Order Credit Transaction": _create("Create Order/Order Credit Transaction", None),
    "Create Order/İnstallment (Taksit)": _create("Create Order/İnstallment (Taksit)", None),
    "Set Source Token/TWO token": _set_src("Set Source Token/TWO token", "Success Response"),
    "Set Source Token/Standart token": _set_src("Set Source Token/Standart token", None),
    "Set Destination Token/PAN": _set_dst("Set Destination Token/PAN"),
    "Set Destination Token/TWO token": _set_dst("Set Destination Token/TWO token"),
    "Execution Transaction/Clearing after Authorization": _clearing,
    "Execution Transaction/Purchase with saved card": _purchase,
    "Execution Transaction/Preauthorization with saved card": _preauth,
    "Execution Transaction/Execute Credit Operation": _credit,
    "Reversal/Purchase Reversal": _reversal("Reversal/Purchase Reversal", Replayer.paid_recurring),
    "Reversal/Purchase Partial Reversal": _reversal(
        "Reversal/Purchase Partial Reversal", lambda r: r.paid_recurring("2.00")
    ),
    "Reversal/Prepurchase Auth Reversal": _reversal(
        "Reversal/Prepurchase Auth Reversal", Replayer.authorized_dms
    ),
    "Reversal/Prepurchase Clearing Reversal": _reversal(
        "Reversal/Prepurchase Clearing Reversal", _cleared_dms
    ),
    "Refund/Refund": _refund,
    "Get Order Status/Simple": _get_simple,
    "Get Order Status/Detailed": _get_detailed,
}

#: Where each request leaves its order, as the reference's flows describe.
STATUS_AFTER = {
    "Create Order/Purchase": "Preparing",
    "Create Order/Prepurchase": "Preparing",
    "Create Order/Recurring": "Preparing",
    "Create Order/Order Credit Transaction": "Preparing",
    "Create Order/İnstallment (Taksit)": "Preparing",
    "Set Source Token/TWO token": "Preparing",
    "Set Source Token/Standart token": "Preparing",
    "Set Destination Token/PAN": "Preparing",
    "Set Destination Token/TWO token": "Preparing",
    "Execution Transaction/Clearing after Authorization": "FullyPaid",
    "Execution Transaction/Preauthorization with saved card": "Authorized",
    "Execution Transaction/Execute Credit Operation": "FullyPaid",
    "Reversal/Purchase Reversal": "Voided",
    "Reversal/Purchase Partial Reversal": "PartiallyPaid",
    "Reversal/Prepurchase Auth Reversal": "Voided",
    "Reversal/Prepurchase Clearing Reversal": "Voided",
    "Refund/Refund": "Refunded",
}


def test_every_collection_request_has_a_scenario() -> None:
    assert len(REQUESTS) == 20
    assert set(SCENARIOS) == set(REQUESTS)


@pytest.mark.parametrize("key", sorted(REQUESTS))
def test_replayed_request_matches_the_collection(replay: Replayer, key: str) -> None:
    request = REQUESTS[key]
    examples = {e.name: e for e in request.examples}
    optional = optional_paths(request.examples)
    outcomes = SCENARIOS[key](replay)
    assert outcomes
    matched = set()
    for body, example_name, order in outcomes:
        if example_name is not None:
            example = examples[example_name].body
            assert shape_diff(example, body, optional) == [], f"{key} vs {example_name!r}"
            matched.add(example_name)
            if "order" in example and "status" in example["order"]:  # GET: same states too
                for field in ("status", "prevStatus", "typeRid"):
                    assert body["order"].get(field) == example["order"].get(field), field
        else:
            _check_sensible(key, body)
        if key in STATUS_AFTER and order is not None:
            assert replay.status(order) == STATUS_AFTER[key], key
    assert matched == set(examples), f"{key}: examples not replayed: {set(examples) - matched}"


def _check_sensible(key: str, body: dict[str, Any]) -> None:
    """Requests without an example: the shape their siblings' examples show."""
    if key.startswith("Create Order/"):
        order = body["order"]
        assert isinstance(order["id"], int)
        assert isinstance(order["password"], str)
        assert len(order["password"]) >= 8
        assert order["status"] == "Preparing"
        assert order["hppUrl"].endswith("/flex")
    elif key.startswith(("Set Source Token/", "Set Destination Token/")):
        order = body["order"]
        token = order["srcToken" if "Source" in key else "dstToken"]
        assert token["role"] == ("Src" if "Source" in key else "Dst")
        assert token["displayName"].count("*") == 6  # first six, last four: never the PAN
        assert token["card"]["brand"] in ("Visa", "Mastercard")
    else:  # exec-tran: the same answer as the collection's exec-tran examples
        reference = REQUESTS["Execution Transaction/Clearing after Authorization"].examples[0]
        assert shape_diff(reference.body, body, set()) == []
        assert body["tran"]["pmoResultCode"] == "1"


def test_shape_diff_finds_what_differs() -> None:
    """The comparison itself must be able to fail."""
    example = {"order": {"id": 1, "amount": Decimal("1.5"), "list": [{"a": "x"}]}}
    assert shape_diff(example, {"order": {"id": 2, "amount": 3, "list": [{"a": "y"}]}}, set()) == []
    assert shape_diff(example, {"order": {"id": "2", "amount": 3, "list": []}}, set()) == [
        "$.order.id: str where the example has number"
    ]
    assert shape_diff(example, {"order": {"id": 2, "list": [{"a": "y", "b": 1}]}}, set()) == [
        "$.order.amount: missing",
        "$.order.list[].b: not in the example",
    ]
    assert shape_diff({"ok": True}, {"ok": 1}, set()) == ["$.ok: number where the example has bool"]
    assert shape_diff({"a": 1}, {}, {"$.a"}) == []
