"""Every example of the Bizon reference text, through the client's models and request builders.

The text (``docs/reference/orders-gateway-api.txt``) is a PDF-to-text export: curl commands,
``>``/``<`` header lines and JSON bodies, with no markers around the JSON. The extractor:

* request bodies are the shell-quoted arguments of ``-d '...'`` / ``--data '...'``;
* response bodies are every other top-level JSON object, found with a string-aware brace
  matcher once the request bodies are blanked out;
* the export wrapped two long strings (``form3d_html``) across lines; a newline inside a JSON
  string is put back as the space it replaced.

Counted by hand, section by section (heading: responses):

  ping 1, GET /orders/:id 1, GET /orders/ 1, GET /operations/ 1, GET /exchange_rates/ 2 (a
  repeat of the operations example, then the rates), create 2, authorize 3, reverse 1,
  charge 2, refund 2, cancel 1, rebill 1, POST /orders/:id/credit 1, POST /orders/credit 1,
  token_pay 1, complete 1, complete3d20 1, resume 1  = 24 responses;

  create 2, authorize 3, charge 1, refund 1, rebill 1, credit 1, /orders/credit 1, token_pay 1,
  complete 1 = 12 request bodies. Two of them are not JSON as printed: the
  ``/orders/:id/credit`` body misses a comma after ``"currency" : "USD"``, and the token_pay
  token is cut off mid-string.
"""

from __future__ import annotations

import json as stdjson
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.reference import REFERENCE
from worker.gateway.bizon import operations as ops
from worker.gateway.bizon.client import BizonClient
from worker.gateway.bizon.codes import OperationStatus, OrderStatus
from worker.gateway.bizon.models import (
    Authorize,
    CardDetails,
    ClientDetails,
    CreateOrder,
    Credit,
    Order,
    OrderOptions,
    Pan,
    Pong,
    Reader,
    Rebill,
    parse_exchange_rates,
    parse_operations,
    parse_orders,
)
from worker.gateway.bizon.settings import BizonSettings
from worker.gateway.txpg import json as strict_json
from worker.money import Money
from worker.sensitive import Secret

TEXT_PATH = REFERENCE / "orders-gateway-api.txt"
RESPONSES_BY_HAND = 24
REQUESTS_BY_HAND = 12

_HEADING = re.compile(r"\(\s*(GET|POST|PUT) (/[^)\s]*)\)")
_REQUEST = re.compile(r"(?:-d|--data) '(.*?)'", re.DOTALL)
_AMOUNT_KEY = re.compile(
    r'"(?:amount|amount_charged|amount_refunded|fee|incoming|receivable|reserve)"\s*:\s*"'
)


@dataclass(frozen=True)
class Block:
    start: int  #: offset in the text
    heading: str  #: "METHOD /path" of the section it sits in
    text: str  #: the JSON text, wrapped strings mended
    status: int  #: the example's HTTP status, if it shows one (else 200)
    location: str | None  #: the example's Location header, if it shows one


def _headings(text: str) -> list[tuple[int, str]]:
    return [(m.start(), f"{m.group(1)} {m.group(2)}") for m in _HEADING.finditer(text)]


def _heading_at(headings: list[tuple[int, str]], offset: int) -> str:
    return [h for start, h in headings if start < offset][-1]


def _objects(text: str) -> list[tuple[int, str]]:
    """Top-level JSON objects: braces outside strings, newlines inside strings mended."""
    found: list[tuple[int, str]] = []
    depth, in_string, escaped, start = 0, False, False, 0
    out: list[str] = []
    for i, char in enumerate(text):
        if depth == 0:
            if char == "{":
                depth, start, out = 1, i, ["{"]
            continue
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            out.append(" " if char == "\n" else char)
            continue
        out.append(char)
        if char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                found.append((start, "".join(out)))
    return found


def _head_before(text: str, offset: int) -> str:
    """The response header lines just before a body (back to the previous blank marker)."""
    window = text[max(0, offset - 400) : offset]
    return window.split("curl ")[-1]


def extract() -> tuple[list[Block], list[Block]]:
    text = TEXT_PATH.read_text(encoding="utf-8")
    headings = _headings(text)
    requests = []
    blanked = text
    for match in _REQUEST.finditer(text):
        body = match.group(1)
        requests.append(Block(match.start(1), _heading_at(headings, match.start()), body, 0, None))
        blanked = blanked[: match.start(1)] + " " * len(body) + blanked[match.end(1) :]
    responses = []
    for start, body in _objects(blanked):
        head = _head_before(text, start)
        status = re.search(r"HTTP/1\.1 (\d{3})", head)
        location = re.search(r"Location: (\S+)", head)
        responses.append(
            Block(
                start,
                _heading_at(headings, start),
                body,
                int(status.group(1)) if status else 200,
                location.group(1) if location else None,
            )
        )
    return responses, requests


RESPONSES, REQUESTS = extract()


def test_the_counts_are_the_ones_counted_by_hand() -> None:
    assert len(RESPONSES) == RESPONSES_BY_HAND
    assert len(REQUESTS) == REQUESTS_BY_HAND
    per_heading: dict[str, int] = {}
    for block in RESPONSES:
        per_heading[block.heading] = per_heading.get(block.heading, 0) + 1
    assert per_heading == {
        "GET /ping": 1,
        "GET /orders/:id": 1,
        "GET /orders/": 1,
        "GET /operations/": 1,
        "GET /exchange_rates/": 2,
        "POST /orders/create": 2,
        "POST /orders/authorize": 3,
        "PUT /orders/:id/reverse": 1,
        "PUT /orders/:id/charge": 2,
        "PUT /orders/:id/refund": 2,
        "PUT /orders/:id/cancel": 1,
        "POST /orders/:id/rebill": 1,
        "POST /orders/:id/credit": 1,
        "POST /orders/credit": 1,
        "POST /orders/token_pay": 1,
        "POST /orders/:id/complete": 1,
        "POST /orders/:id/complete3d20": 1,
        "POST /orders/:id/resume": 1,
    }


def _reader(block: Block) -> Reader:
    return Reader(strict_json.loads(block.text.encode()), "body")


def _label(block: Block) -> str:
    return f"{block.heading}@{block.start}"


@pytest.mark.parametrize("block", RESPONSES, ids=_label)
def test_every_response_parses_with_the_models(block: Block) -> None:
    body = _reader(block)
    names = body.names()
    if "orders" in names:
        orders = parse_orders(body)
        assert orders
        for order in orders:
            assert order.status is not OrderStatus.UNKNOWN, order.status_raw
            assert all(op.status is OperationStatus.SUCCESS for op in order.operations)
            assert all(op.iso_response_code == "00" for op in order.operations)
    elif "operations" in names:
        assert len(parse_operations(body)) == 2
    elif "exchange_rates" in names:
        assert len(parse_exchange_rates(body)) == 4
    else:
        assert Pong.parse(body).message == "PONG!"


def _amounts_round_trip(raw: dict[str, Any], order: Order) -> int:
    """Every amount of the raw order, against the parsed one, as the same exact string."""
    checked = 0
    pairs = [
        (raw["amount"], order.amount),
        (raw.get("amount_charged"), order.amount_charged),
        (raw.get("amount_refunded"), order.amount_refunded),
    ]
    for raw_op, op in zip(raw.get("operations", []), order.operations, strict=True):
        pairs.append((raw_op["amount"], op.amount))
        if "cashflow" in raw_op:
            assert op.cashflow is not None
            for key in ("amount", "fee", "incoming", "receivable", "reserve"):
                pairs.append((raw_op["cashflow"][key], getattr(op.cashflow, key)))
    for text, money in pairs:
        if text is None:
            assert money is None
            continue
        assert isinstance(money, Money)
        assert money.to_gateway() == text
        checked += 1
    return checked


def test_every_amount_of_every_example_round_trips_exactly() -> None:
    checked = 0
    for block in RESPONSES:
        payload = strict_json.loads(block.text.encode())
        if "orders" not in payload:
            continue
        orders = parse_orders(Reader(payload, "body"))
        for raw, order in zip(payload["orders"], orders, strict=True):
            checked += _amounts_round_trip(raw, order)
    # Every amount-like key printed in the order examples was compared: 207 of them.
    printed = sum(len(_AMOUNT_KEY.findall(b.text)) for b in RESPONSES if '"orders"' in b.text)
    assert checked == printed == 207


def _one(heading: str, index: int = 0) -> Block:
    return [b for b in RESPONSES if b.heading == heading][index]


def test_key_fields_of_the_order_information_example() -> None:
    (order,) = parse_orders(_reader(_one("GET /orders/:id")))
    assert order.id == "65213580296542862"
    assert order.status is OrderStatus.AUTHORIZED
    assert order.amount == Money(999, "USD")
    assert order.amount_charged == Money(0, "USD")
    assert order.pan == "411111****1111"
    assert order.card is not None
    assert order.card.type == "visa"
    assert order.issuer is not None
    assert order.issuer.country == "UKR"
    authorize, charge = order.operations
    assert authorize.cashflow is not None
    assert authorize.cashflow.receivable == Money(-3639, "USD")
    assert charge.arn == "73922059535879175995901"
    assert charge.amount == Money(121300, "USD")
    assert charge.cashflow is not None
    assert charge.cashflow.fee == Money(1213, "USD")
    assert charge.cashflow.incoming == Money(120087, "USD")
    assert charge.cashflow.receivable == Money(116448, "USD")
    assert charge.cashflow.reserve == Money(3639, "USD")


def test_key_fields_of_refunds_credits_rates_and_3ds() -> None:
    (refunded,) = parse_orders(_reader(_one("PUT /orders/:id/refund")))
    assert refunded.status is OrderStatus.REFUNDED
    assert refunded.amount_refunded == Money(999, "USD")
    assert refunded.operations[-1].cashflow is not None
    assert refunded.operations[-1].cashflow.amount == Money(-999, "USD")
    (credited,) = parse_orders(_reader(_one("POST /orders/credit")))
    assert credited.status is OrderStatus.CREDITED
    assert credited.amount == Money(9999, "USD")
    assert credited.operations[0].cashflow is not None
    assert credited.operations[0].cashflow.receivable == Money(-10299, "USD")
    operations = parse_operations(_reader(_one("GET /operations/")))
    assert operations[0].order_id == "23011537206894183"
    assert operations[0].amount == Money(1199100, "EUR")
    rates = parse_exchange_rates(_reader(_one("GET /exchange_rates/", 1)))
    assert rates[0].rate == Decimal("75.132109")
    (prepared,) = parse_orders(_reader(_one("POST /orders/authorize", 2)))
    assert prepared.awaiting_customer
    assert prepared.form3d is not None
    assert prepared.form3d.inputs["MD"] == "MjMwMTQ4MDYwNzgwNjEzMDM="
    assert prepared.form3d_html is not None
    assert 'type="hidden" name="MD"' in prepared.form3d_html
    (resumed,) = parse_orders(_reader(_one("POST /orders/:id/resume")))
    assert resumed.form3d is not None
    assert resumed.form3d.inputs == {"threeDSSessionData": "NjAzOTE5NzY5Mjk4MDY1NDE="}
    (token_paid,) = parse_orders(_reader(_one("POST /orders/token_pay")))
    assert token_paid.secure3d is not None
    assert "Af9x" not in repr(token_paid)  # the CAVV is a Secret
    assert token_paid.rrn == "69702830725209556"


# --- the same bodies through the client's real response path ------------------------------

ID = "23014806643308174"
USD = Money(999, "USD")


def _call(block: Block, client: BizonClient) -> Any:
    pan = Pan.parse("4111111111111111")
    calls: dict[str, Callable[[], Any]] = {
        "GET /ping": lambda: client.ping(),
        "GET /orders/:id": lambda: client.get_order(ID),
        "GET /orders/": lambda: list(client.list_orders()),
        "GET /operations/": lambda: list(client.list_operations()),
        "POST /orders/create": lambda: client.create_order(CreateOrder(USD)),
        "POST /orders/authorize": lambda: client.authorize(Authorize(USD, pan)),
        "PUT /orders/:id/reverse": lambda: client.reverse(ID),
        "PUT /orders/:id/charge": lambda: client.charge(ID),
        "PUT /orders/:id/refund": lambda: client.refund(ID),
        "PUT /orders/:id/cancel": lambda: client.cancel(ID),
        "POST /orders/:id/rebill": lambda: client.rebill(ID, Rebill(USD)),
        "POST /orders/:id/credit": lambda: client.credit(ID, Credit(USD)),
        "POST /orders/credit": lambda: client.credit_pan(pan, Credit(USD)),
        "POST /orders/:id/complete": lambda: client.complete(ID, Secret("YAED53A345D")),
        "POST /orders/:id/complete3d20": lambda: client.complete3d20(ID, Secret("ewog")),
        "POST /orders/:id/resume": lambda: client.resume(ID),
    }
    if block.heading == "GET /exchange_rates/":
        is_rates = "exchange_rates" in block.text
        return client.exchange_rates() if is_rates else list(client.list_operations())
    return calls[block.heading]()


CLIENT_BLOCKS = [b for b in RESPONSES if b.heading != "POST /orders/token_pay"]


@pytest.mark.parametrize("block", CLIENT_BLOCKS, ids=_label)
def test_every_response_goes_through_the_client(block: Block) -> None:
    headers = {"content-type": "application/json"}
    if block.location:
        headers["location"] = block.location

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(block.status, headers=headers, content=block.text.encode())

    with BizonClient(BizonSettings(), transport=httpx.MockTransport(handler)) as client:
        result = _call(block, client)
    assert result
    if block.heading == "POST /orders/create":
        assert result.payment_url == block.location
        assert result.payment_url.endswith(result.id)


# --- request bodies: what our builders send for the same inputs ---------------------------

PAN = Pan.parse("4111111111111111")
CLIENT = ClientDetails(
    address="Main ave. 1",
    city="San Francisco",
    country="USA",
    email="foo@bar.com",
    name="John Smith",
    phone="+1 456 890",
    state="CA",
    zip="123456",
)
CARD = CardDetails(
    cvv=Secret("333"), expiration_month=12, expiration_year=2020, holder="John Smith"
)
OPTIONS = OrderOptions(force3d=False, return_url="http://shop.com", terminal="")
FULL = {
    "client": CLIENT,
    "description": "Book sale #453",
    "location_ip": "6.6.6.6",
    "merchant_order_id": "5678",
    "segment": "987654321",
    "options": OPTIONS,
}
TWO = Money(199, "USD")

#: (heading, index among that heading's requests) -> the call our builders make.
BUILT: dict[tuple[str, int], ops.Call[Any]] = {
    ("POST /orders/create", 0): ops.create_order(CreateOrder(USD)),
    ("POST /orders/create", 1): ops.create_order(CreateOrder(USD, **FULL)),  # type: ignore[arg-type]
    ("POST /orders/authorize", 0): ops.authorize(Authorize(USD, PAN, CARD, location_ip="6.6.6.6")),
    ("POST /orders/authorize", 1): ops.authorize(Authorize(USD, PAN, CARD, **FULL)),  # type: ignore[arg-type]
    ("POST /orders/authorize", 2): ops.authorize(
        Authorize(USD, PAN, CARD, location_ip="6.6.6.6", options=OrderOptions(force3d=True))
    ),
    ("PUT /orders/:id/charge", 0): ops.charge("23014806312026412", TWO),
    ("PUT /orders/:id/refund", 0): ops.refund("23014806312026412", TWO),
    ("POST /orders/:id/rebill", 0): ops.rebill("23014808614292147", Rebill(USD, Secret("123"))),
    ("POST /orders/credit", 0): ops.credit_pan(PAN, Credit(Money(9999, "USD"))),
    ("POST /orders/:id/complete", 0): ops.complete("43809080318125930", Secret("YAED53A345D")),
}
#: Printed bodies that are not JSON (see the module docstring), or an endpoint we do not call.
NOT_COMPARED = {("POST /orders/:id/credit", 0), ("POST /orders/token_pay", 0)}


def _indexed_requests() -> dict[tuple[str, int], Block]:
    indexed: dict[tuple[str, int], Block] = {}
    for block in REQUESTS:
        n = sum(1 for heading, _ in indexed if heading == block.heading)
        indexed[(block.heading, n)] = block
    return indexed


def _same(ours: Any, theirs: Any, path: str = "body") -> None:
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), path
        extra = set(ours) - set(theirs)
        assert extra <= {"currency"}, f"{path}: we add {extra}"
        for key, value in theirs.items():
            assert key in ours, f"{path}.{key} missing"
            _same(ours[key], value, f"{path}.{key}")
    elif isinstance(theirs, float) or path.endswith(".amount"):
        # The text writes 9.99 (a number); we send "9.99": the same exact amount.
        assert Decimal(str(ours)) == Decimal(str(theirs)), path
    else:
        assert ours == theirs, path


def test_every_request_body_is_what_our_builders_send() -> None:
    indexed = _indexed_requests()
    assert set(indexed) == set(BUILT) | NOT_COMPARED
    for key, call in BUILT.items():
        theirs = stdjson.loads(indexed[key].text)
        assert call.body is not None
        _same(call.body, theirs)
        method, path = key[0].split(" ")
        assert call.method == method
        assert (
            "/"
            + call.path.replace("23014806312026412", ":id")
            .replace("23014808614292147", ":id")
            .replace("43809080318125930", ":id")
            == path
        )
    for key in NOT_COMPARED:
        with pytest.raises(ValueError, match=r"Expecting|Unterminated|Invalid"):
            stdjson.loads(indexed[key].text)
