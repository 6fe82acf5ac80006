"""Replay every curl example of the Bizon reference (docs/reference/orders-gateway-api.txt)
against the Bizon sandbox over real HTTP, and check each answer against the text's example.

The examples are read from the text itself: each ``curl`` command (it may span lines: a
body, a URL broken after ``?``, a header value broken after ``Basic``) gives the method, the
path and query, the headers and the body; the lines after it give the example's HTTP
status (``< HTTP/1.1 201 Created``, when shown) and its example response (the first JSON
document). The text has 23 of them, counted by hand:

 1 GET /ping                         13 PUT /orders/:id/charge {"amount": 1.99}
 2 GET /orders/:id?expand=...        14 PUT /orders/:id/refund
 3 GET /orders/                      15 PUT /orders/:id/refund {"amount": 1.99}
 4 GET /operations/                  16 PUT /orders/:id/cancel
 5 GET /operations/ (the exchange    17 POST /orders/:id/rebill
   rates section repeats it)         18 POST /orders/:id/credit
 6 POST /orders/create (amount)      19 POST /orders/credit (to a PAN)
 7 POST /orders/create (all fields)  20 POST /orders/token_pay
 8 POST /orders/authorize            21 POST /orders/:id/complete
 9 POST /orders/authorize (all)      22 POST /orders/:id/complete3d20
10 POST /orders/authorize (force3d)  23 POST /orders/:id/resume
11 PUT /orders/:id/reverse
12 PUT /orders/:id/charge

Ids chain as the text's do: an order id a later example names is the one an earlier
example answered with (the order #8 authorised is the one #12 charges and #14 refunds; #16
cancels, then #17 rebills and #18 credits the same order). An id no earlier example made is
made first, in the state the example needs (an authorised order to reverse, a 3-D Secure
one to complete), and the example's id is replaced with the sandbox's.

The check is on shapes, not values: every key of the example must be in the answer, with a
type the text uses for that key; the answer may hold a key the example lacks only if another
of the text's examples shows that key at the same place (so ``card.expiration``, which only
the newer examples show, may appear, and no key the text never shows may).

What the text gets wrong, and the replay therefore adapts (each asserted, not assumed):

* #18's body is not JSON (a comma is missing after ``"USD"``) and #20's neither (the token's
  closing quote is missing): sent verbatim they get a ``validation`` error; repaired, the
  example's shape.
* #21 sends ``Basic`` credentials of another merchant and #22, #23 of ``project:password123``
  where the others use ``project:password``: verbatim they get 401; with the text's own
  ``> Authorization:`` login (the sandbox's default) the example's shape.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.reference import REFERENCE
from worker.sandbox.bizon import PASSWORD, USERNAME, BizonServer

TEXT_PATH = REFERENCE / "orders-gateway-api.txt"
TEXT = TEXT_PATH.read_text(encoding="utf-8")
LINES = TEXT.splitlines()
#: counted by hand, see the module docstring
CURL_EXAMPLES = 23
#: the examples whose order id comes from an earlier example's answer
CHAINED = {12, 14, 15, 17, 18}
#: the text's ids no earlier example made, and what the sandbox makes first for each
SETUPS = {
    "65213580296542862": "charged",  # 2: GET with every expand
    "23014805692462630": "authorized",  # 11: reverse
    "23014806312026412": "authorized",  # 13: charge 1.99, then 15: refund 1.99
    "23014808614292147": "charged",  # 16: cancel, then 17: rebill, 18: credit
    "43809080318125930": "prepared-3ds1",  # 21: complete (its example ends charged)
    "57937457169525773": "prepared-3ds2",  # 22: complete3d20
    "60391976929806541": "prepared-3ds2",  # 23: resume
}
#: (text, replacement) making the text's two broken bodies JSON
REPAIRS = {
    18: ('"currency" : "USD"\n"location"', '"currency" : "USD",\n"location"'),
    20: ("RThDVG},", 'RThDVG"},'),
}
_WANTS_ARGUMENT = {"-X", "-H", "-d", "--data"}
_ID = re.compile(r"/orders/([0-9]{17})(?=/|$)")
_STATUS_LINE = re.compile(r"[<>] HTTP/1\.1 ([0-9]{3})")
_ECHOED_AUTH = re.compile(r"> Authorization: Basic (\S+)")
PAN_CARD = {"cvv": "333", "expiration_month": 12, "expiration_year": 2030, "holder": "John Smith"}
CLIENT = {
    "address": "Main ave. 1",
    "city": "San Francisco",
    "country": "USA",
    "email": "foo@bar.com",
    "name": "John Smith",
    "phone": "+1 456 890",
    "state": "CA",
    "zip": "123456",
}


@dataclass(frozen=True)
class Example:
    number: int
    line: int  #: where its curl command starts in the text (1-based)
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str | None
    status: int | None  #: the HTTP status the text shows, if it shows one
    response: Any  #: the text's example response


def _command(start: int) -> tuple[int, list[str]]:
    """The curl command starting at line ``start``, as shell words, and its last line."""
    for end in range(start, min(start + 80, len(LINES))):
        try:
            words = shlex.split("\n".join(LINES[start : end + 1]))
        except ValueError:  # a quote not closed yet: the command goes on
            continue
        if any(w.startswith("http") for w in words) and words[-1] not in _WANTS_ARGUMENT:
            return end, words
    raise AssertionError(f"the curl command at line {start + 1} never ends")


def _parse(number: int, start: int, end: int, words: list[str]) -> Example:
    method, url, body = "GET", "", None
    headers: dict[str, str] = {}
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip().lower()] = " ".join(value.split())
        elif word in ("-d", "--data"):
            body = next(rest)
        elif word.startswith("http"):
            url = "".join(word.split())  # a URL the text broke across lines
        else:
            assert word in ("-v", "-i"), f"example {number}: unexpected curl word {word!r}"
    parts = urlsplit(url)
    assert parts.hostname == "api.box", url
    status = response = None
    for index in range(end + 1, len(LINES)):
        line = LINES[index]
        if line.startswith("curl "):
            break
        if (found := _STATUS_LINE.match(line)) is not None:
            status = int(found.group(1))
        if line.startswith("{"):
            offset = sum(len(x) + 1 for x in LINES[:index])
            response, _ = json.JSONDecoder(strict=False).raw_decode(TEXT, offset)
            break
    return Example(
        number, start + 1, method, parts.path, parts.query, headers, body, status, response
    )


def load_examples() -> list[Example]:
    found: list[Example] = []
    index = 0
    while index < len(LINES):
        if LINES[index].startswith("curl "):
            end, words = _command(index)
            found.append(_parse(len(found) + 1, index, end, words))
            index = end + 1
        else:
            index += 1
    return found


EXAMPLES = load_examples()


def _exchange_rates_example() -> Any:
    at = TEXT.index('"exchange_rates": [')
    start = TEXT.rindex("\n{", 0, at) + 1
    return json.JSONDecoder(strict=False).raw_decode(TEXT, start)[0]


# -- shapes: what the text shows at each place ------------------------------------------------


@dataclass
class Shapes:
    types: dict[str, set[str]] = field(default_factory=dict)  #: path -> JSON types seen
    keys: dict[str, set[str]] = field(default_factory=dict)  #: path of an object -> its keys

    def learn(self, value: Any, path: str = "$") -> None:
        self.types.setdefault(path, set()).add(_kind(value))
        if isinstance(value, dict):
            self.keys.setdefault(path, set()).update(value)
            for key, item in value.items():
                self.learn(item, f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                self.learn(item, f"{path}[]")

    def problems(self, example: Any, actual: Any, path: str = "$") -> list[str]:
        """What in ``actual`` does not have the shape of ``example`` (see the docstring)."""
        kind = _kind(actual)
        if kind not in self.types.get(path, set()):
            return [f"{path}: a {kind}, the text shows {sorted(self.types.get(path, set()))}"]
        found: list[str] = []
        if isinstance(actual, dict):
            required = set(example) if isinstance(example, dict) else set()
            found += [f"{path}.{key}: missing" for key in sorted(required - set(actual))]
            unknown = set(actual) - self.keys.get(path, set())
            found += [f"{path}.{key}: no example shows it" for key in sorted(unknown)]
            for key in sorted(set(actual) - unknown):
                sub = example.get(key) if isinstance(example, dict) else None
                found += self.problems(sub, actual[key], f"{path}.{key}")
        elif isinstance(actual, list):
            items = example if isinstance(example, list) else []
            dicts = [item for item in items if isinstance(item, dict)]
            common: dict[str, Any] = {}
            if dicts:
                shared = set.intersection(*(set(item) for item in dicts))
                common = {key: dicts[0][key] for key in shared}
            for item in actual:
                found += self.problems(common or None, item, f"{path}[]")
        return found


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


SHAPES = Shapes()
for _example in EXAMPLES:
    SHAPES.learn(_example.response)
SHAPES.learn(_exchange_rates_example())


# -- the replay ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    example: Example
    sent_path: str
    response: httpx.Response
    chained: bool
    verbatim: httpx.Response | None = None  #: the answer to the text's request as written


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Replay:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.ids: dict[str, str] = {}  #: the text's order ids -> the sandbox's

    def setup(self, kind: str) -> str:
        """Make an order in the state ``kind`` with the sandbox's own requests."""
        body: dict[str, Any] = {
            "amount": "9.99",
            "pan": "4111111111111111",
            "card": PAN_CARD,
            "client": CLIENT,
            "location": {"ip": "6.6.6.6"},
            "merchant_order_id": "5678",
            "description": "Book sale #453",
            "segment": "987654321",
        }
        if kind == "prepared-3ds1":
            body["options"] = {"force3d": 1, "auto_charge": 1}
        elif kind == "prepared-3ds2":
            body["options"] = {"force3d": 1, "secure3d20_return_url": "http://shop.com/3ds"}
        login = (USERNAME, PASSWORD)
        response = self.http.post("/orders/authorize", json=body, auth=login)
        order = response.json()["orders"][0]
        expected = "prepared" if kind.startswith("prepared") else "authorized"
        assert order["status"] == expected, response.text
        if kind == "charged":
            charged = self.http.put(f"/orders/{order['id']}/charge", auth=login)
            assert charged.json()["orders"][0]["status"] == "charged", charged.text
        return str(order["id"])

    def send(self, example: Example) -> Outcome:
        chained = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal chained
            text_id = match.group(1)
            if text_id in self.ids:
                chained = True
            else:
                self.ids[text_id] = self.setup(SETUPS[text_id])
            return f"/orders/{self.ids[text_id]}"

        path = _ID.sub(substitute, example.path)
        url = f"{path}?{example.query}" if example.query else path
        headers = {k: v for k, v in example.headers.items() if k != "authorization"}
        headers["Authorization"] = self.login(example)
        verbatim = None
        given = example.headers.get("authorization")
        body = example.body
        if given is not None and given != headers["Authorization"]:
            verbatim = self.http.request(
                example.method, url, content=body, headers={**headers, "Authorization": given}
            )
        if example.number in REPAIRS:
            verbatim = self.http.request(example.method, url, content=body, headers=headers)
            broken, fixed = REPAIRS[example.number]
            assert body is not None
            assert broken in body, f"example {example.number}: the text changed"
            body = body.replace(broken, fixed)
            json.loads(body)  # the repair makes it JSON
        response = self.http.request(example.method, url, content=body, headers=headers)
        mine = _orders(response)
        theirs = _orders_of(example.response)
        if mine and theirs:
            self.ids[str(theirs[0]["id"])] = str(mine[0]["id"])
        return Outcome(example, path, response, chained, verbatim)

    @staticmethod
    def login(example: Example) -> str:
        """The text's own login: ``project:password``, as its ``> Authorization:`` lines
        echo it (the URL's ``project:***`` hides the password)."""
        echoed = {m.group(1) for m in _ECHOED_AUTH.finditer(TEXT)}
        assert echoed == {base64.b64encode(b"project:password").decode()}
        user = urlsplit(f"http://{USERNAME}:x@api.box").username
        assert user == USERNAME
        return _basic(USERNAME, PASSWORD)


def _orders(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        return _orders_of(response.json())
    except ValueError:
        return []


def _orders_of(body: Any) -> list[dict[str, Any]]:
    orders = body.get("orders") if isinstance(body, dict) else None
    return orders if isinstance(orders, list) else []


@pytest.fixture(scope="module")
def bizon() -> Iterator[BizonServer]:
    with BizonServer() as server:
        yield server


@pytest.fixture(scope="module")
def replayed(bizon: BizonServer) -> dict[int, Outcome]:
    with httpx.Client(base_url=bizon.base_url, timeout=10) as http:
        replay = Replay(http)
        return {example.number: replay.send(example) for example in EXAMPLES}


# -- the tests -----------------------------------------------------------------------------------


def test_the_text_has_as_many_curl_examples_as_counted_by_hand() -> None:
    assert len(EXAMPLES) == CURL_EXAMPLES
    assert TEXT.count("\ncurl ") + TEXT.startswith("curl ") == CURL_EXAMPLES
    assert all(example.response is not None for example in EXAMPLES)
    assert [(e.method, e.path) for e in EXAMPLES[:6]] == [
        ("GET", "/ping"),
        ("GET", "/orders/65213580296542862"),
        ("GET", "/orders/"),
        ("GET", "/operations/"),
        ("GET", "/operations/"),
        ("POST", "/orders/create"),
    ]
    assert EXAMPLES[1].query == (
        "expand=card,client,location,custom_fields,issuer,secure3d,operations.cashflow"
    )


@pytest.mark.parametrize("number", range(1, CURL_EXAMPLES + 1))
def test_example_answers_with_the_texts_shape(replayed: dict[int, Outcome], number: int) -> None:
    outcome = replayed[number]
    example, response = outcome.example, outcome.response
    where = f"example {number} (line {example.line}: {example.method} {outcome.sent_path})"
    assert response.headers["Content-Type"].startswith("application/json"), where
    expected = example.status or (201 if example.path == "/orders/create" else 200)
    assert response.status_code == expected, f"{where}: {response.text}"
    assert SHAPES.problems(example.response, response.json()) == [], where


def test_ids_chain_as_the_texts_do(replayed: dict[int, Outcome]) -> None:
    assert {n for n, outcome in replayed.items() if outcome.chained} == CHAINED
    charged = replayed[12].response.json()["orders"][0]
    assert charged["id"] == replayed[8].response.json()["orders"][0]["id"]
    assert (charged["status"], replayed[14].response.json()["orders"][0]["status"]) == (
        "charged",
        "refunded",
    )
    rebilled = replayed[17].response.json()["orders"][0]
    credited = replayed[18].response.json()["orders"][0]
    cancelled = replayed[16].response.json()["orders"][0]
    assert cancelled["status"] == "refunded"  # cancel of a charged order refunds it
    assert rebilled["id"] != cancelled["id"]  # rebill and credit make new orders
    assert (rebilled["status"], credited["status"]) == ("authorized", "credited")
    assert replayed[15].response.json()["orders"][0]["amount_refunded"] == "1.99"


def test_statuses_and_headers_the_text_describes(replayed: dict[int, Outcome]) -> None:
    for number in (6, 7):  # "201 ... HTTP-header Location contents a URL of a payment page"
        response = replayed[number].response
        order_id = response.json()["orders"][0]["id"]
        assert response.headers["Location"].endswith(f"/pay/{order_id}")
    prepared = replayed[10].response.json()["orders"][0]
    assert (prepared["status"], prepared["form3d"]["method"]) == ("prepared", "GET")
    assert replayed[21].response.json()["orders"][0]["status"] == "charged"
    assert replayed[22].response.json()["orders"][0]["status"] == "authorized"
    assert replayed[23].response.json()["orders"][0]["status"] == "prepared"


def test_the_texts_broken_bodies_are_refused_as_written(replayed: dict[int, Outcome]) -> None:
    for number in REPAIRS:
        verbatim = replayed[number].verbatim
        assert verbatim is not None
        assert verbatim.status_code == 400
        assert verbatim.json()["failure_type"] == "validation"


def test_other_logins_in_the_text_are_refused(replayed: dict[int, Outcome]) -> None:
    refused = {n for n, outcome in replayed.items() if outcome.verbatim is not None}
    assert refused - set(REPAIRS) == {21, 22, 23}
    for number in (21, 22, 23):
        verbatim = replayed[number].verbatim
        assert verbatim is not None
        assert verbatim.status_code == 401
        assert verbatim.headers["WWW-Authenticate"].startswith("Basic")
        assert verbatim.json()["failure_type"] == "access"


def test_exchange_rates_answer_with_the_texts_shape(bizon: BizonServer) -> None:
    # the section's curl example calls /operations/ (a copy of the one before); its title
    # names GET /exchange_rates/, and its second JSON document is that call's example
    response = httpx.get(f"{bizon.base_url}/exchange_rates/", auth=bizon.auth)
    assert response.status_code == 200
    assert SHAPES.problems(_exchange_rates_example(), response.json()) == []


def test_the_shape_check_catches_what_it_should() -> None:
    example = EXAMPLES[7].response  # authorize
    order = json.loads(json.dumps(example, default=str))
    assert SHAPES.problems(example, order) == []
    del order["orders"][0]["auth_code"]
    order["orders"][0]["amount"] = 9.99
    order["orders"][0]["invented"] = 1
    assert sorted(SHAPES.problems(example, order)) == [
        "$.orders[].amount: a number, the text shows ['string']",
        "$.orders[].auth_code: missing",
        "$.orders[].invented: no example shows it",
    ]
