"""Every TXPG error class and every kind of bad response, through the sync and async clients.

Responses are served by httpx's MockTransport, so the whole response path runs (streaming
read, size cap, content type, strict JSON, error mapping) with no network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from worker import errors as base
from worker.errors import DeclineClass
from worker.gateway.txpg import errors as txpg
from worker.gateway.txpg.client import AsyncTxpgClient, TxpgClient
from worker.gateway.txpg.codes import ERROR_CODES, PMO_CODES, OrderStatus
from worker.gateway.txpg.models import OrderRef, TranRequest
from worker.money import parse_amount
from worker.sensitive import Secret
from worker.settings import TxpgSettings

REF = OrderRef(7, Secret("pw7secretpass"))
TRAN = TranRequest.purchase(parse_amount("9.99", "AZN"))
JSON = {"content-type": "application/json"}


def _decline(code: str, reason: str = "Whatever") -> dict[str, Any]:
    return {
        "errorCode": "PmoDecline",
        "errorDescription": "Transaction declined by PMO: PAN=4169741330151778",
        "errorDetails": {
            "declineReason": reason,
            "match": {"ridByPmo": "17947770"},
            "pmoResultCode": code,
            "pmoDeclineDesc": "Card 4169741330151778 refused",
        },
    }


def _send_sync(response: httpx.Response, settings: TxpgSettings | None = None) -> Any:
    transport = httpx.MockTransport(lambda request: response)
    with TxpgClient(settings or TxpgSettings(), transport=transport) as client:
        return client.exec_tran(REF, TRAN)


async def _send_async(response: httpx.Response, settings: TxpgSettings | None = None) -> Any:
    async def handler(request: httpx.Request) -> httpx.Response:
        return response

    async with AsyncTxpgClient(
        settings or TxpgSettings(), transport=httpx.MockTransport(handler)
    ) as client:
        return await client.exec_tran(REF, TRAN)


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_has_its_own_class_on_the_right_branch(code: str) -> None:
    body = _decline("59") if code == "PmoDecline" else {"errorCode": code, "errorDescription": "x"}
    with pytest.raises(txpg.ERROR_CLASSES[code]) as caught:
        _send_sync(httpx.Response(400, json=body))
    error = caught.value
    assert error.code == code
    assert error.http_status == 400
    branch = {
        "PmoUnreachable": base.GatewayUnavailable,
        "CofpUnreachable": base.GatewayUnavailable,
        "PmoIfaceNotFound": base.GatewayUnavailable,
        "ActionAppException": base.OutcomeUnknown,
        "InvalidLogin": base.CredentialsRejected,
        "InvalidCert": base.CredentialsRejected,
        "NeedChangePwd": base.CredentialsRejected,
        "PwdTryLimitExceeded": base.CredentialsRejected,
        "InvalidUserSession": base.CredentialsRejected,
        "UserSessionExpired": base.CredentialsRejected,
        "PmoDecline": base.Declined,
        "CofpDecline": base.Declined,
        "InvalidToken": base.Declined,
        "InvalidAutStatus": base.Declined,
        "InvalidOrderState": base.InvalidOrderState,
    }.get(code, base.RequestRejected)
    assert isinstance(error, branch)
    assert error.should_retry is (branch is base.GatewayUnavailable)


def test_invalid_token_is_a_hard_decline_and_aut_status_needs_the_customer() -> None:
    with pytest.raises(base.Declined) as token:
        _send_sync(httpx.Response(400, json={"errorCode": "InvalidToken"}))
    assert token.value.decline_class is DeclineClass.HARD
    with pytest.raises(base.Declined) as aut:
        _send_sync(httpx.Response(400, json={"errorCode": "InvalidAutStatus"}))
    assert aut.value.decline_class is DeclineClass.NEEDS_CUSTOMER


@pytest.mark.parametrize(
    ("code", "cls", "title"),
    [
        ("59", DeclineClass.SOFT, "Insufficient funds"),
        ("51", DeclineClass.HARD, "Expired card"),
        ("41", DeclineClass.HARD, "Stolen card"),
        ("6", DeclineClass.NEEDS_CUSTOMER, "Strong customer authentication required"),
        ("71", DeclineClass.NEEDS_CUSTOMER, "Contact card issuer"),
        ("54", DeclineClass.SOFT, "System error"),
        ("4", DeclineClass.UNKNOWN, "Postponed"),
        ("97", DeclineClass.UNKNOWN, "Unlisted PMO code 97"),
    ],
)
def test_pmo_decline_carries_code_title_reason_and_class(
    code: str, cls: DeclineClass, title: str
) -> None:
    with pytest.raises(txpg.PmoDecline) as caught:
        _send_sync(httpx.Response(400, json=_decline(code, "InsufficientFunds")))
    decline = caught.value
    assert decline.pmo_result_code == int(code)
    assert decline.pmo_title == title
    assert decline.decline_class is cls
    assert decline.decline_reason == "InsufficientFunds"
    assert decline.rid_by_pmo == "17947770"
    assert decline.pmo_decline_desc == "Card 416974******1778 refused"
    assert "4169741330151778" not in str(decline)


def test_architecture_decline_examples_are_classified_as_documented() -> None:
    hard = {29, 30, 40, 41, 49, 50, 51, 52, 56, 57, 58, 75, 98}
    soft = {59, 60, 61, 63, 64, 22, 23, 54, 72, 73}
    assert {c for c in hard if PMO_CODES[c].decline_class is not DeclineClass.HARD} == set()
    assert {c for c in soft if PMO_CODES[c].decline_class is not DeclineClass.SOFT} == set()
    assert PMO_CODES[6].decline_class is PMO_CODES[71].decline_class is DeclineClass.NEEDS_CUSTOMER


NGINX_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def _r(
    status: int, body: bytes, ctype: str | None = "application/json"
) -> Callable[[], httpx.Response]:
    headers = {"content-type": ctype} if ctype else {}
    return lambda: httpx.Response(status, content=body, headers=headers)


BAD_RESPONSES: list[tuple[str, Callable[[], httpx.Response], type[Exception], str]] = [
    (
        "nginx html 502",
        _r(502, NGINX_502, "text/html"),
        base.OutcomeUnknown,
        "HTTP 502 with a text/html body",
    ),
    ("html 200", _r(200, NGINX_502, "text/html"), base.MalformedResponse, "expected JSON"),
    (
        "truncated json",
        _r(200, b'{"tran": {"approvalCode": "05'),
        base.MalformedResponse,
        "invalid JSON",
    ),
    (
        "wrong content type",
        _r(200, b'{"tran": {}}', "text/plain"),
        base.MalformedResponse,
        "expected JSON",
    ),
    ("no content type", _r(200, b'{"tran": {}}', None), base.MalformedResponse, "expected JSON"),
    (
        "NaN",
        _r(200, b'{"tran": {"pmoResultCode": NaN}}'),
        base.MalformedResponse,
        "non-standard JSON constant NaN",
    ),
    (
        "Infinity",
        _r(200, b'{"tran": {"pmoResultCode": Infinity}}'),
        base.MalformedResponse,
        "Infinity",
    ),
    (
        "duplicate keys",
        _r(200, b'{"tran": {"pmoResultCode": "59", "pmoResultCode": "1"}}'),
        base.MalformedResponse,
        "duplicate JSON key",
    ),
    (
        "missing field",
        _r(200, b'{"tran": {"approvalCode": "1"}}'),
        base.MalformedResponse,
        "body.tran.pmoResultCode is missing",
    ),
    ("missing envelope", _r(200, b'{"order": {}}'), base.MalformedResponse, "body.tran is missing"),
    (
        "wrong type",
        _r(200, b'{"tran": {"pmoResultCode": "1", "match": []}}'),
        base.MalformedResponse,
        "body.tran.match must be an object",
    ),
    ("not an object", _r(200, b"[1, 2]"), base.MalformedResponse, "not an object"),
    ("not utf-8", _r(200, b'{"tran": "\xff"}'), base.MalformedResponse, "invalid JSON"),
    ("empty body", _r(200, b""), base.MalformedResponse, "invalid JSON"),
    ("json 500 without code", _r(500, b'{"message": "oops"}'), base.OutcomeUnknown, "HTTP 500"),
    (
        "json 404 without code",
        _r(404, b'{"message": "no"}'),
        base.MalformedResponse,
        "without an errorCode",
    ),
    (
        "unknown errorCode",
        _r(400, b'{"errorCode": "BrandNewThing"}'),
        txpg.UnknownTxpgError,
        "unknown TXPG errorCode",
    ),
    (
        "unreadable decline",
        _r(400, b'{"errorCode": "PmoDecline", "errorDetails": {}}'),
        base.MalformedResponse,
        "unreadable PmoDecline",
    ),
    (
        "approved code not a number",
        _r(200, b'{"tran": {"pmoResultCode": "one"}}'),
        base.MalformedResponse,
        "whole number",
    ),
    (
        "over the size cap",
        _r(200, b'{"tran": {"approvalCode": "' + b"x" * 5000 + b'"}}'),
        base.MalformedResponse,
        "over 4096 bytes",
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "error", "message"), BAD_RESPONSES, ids=[b[0] for b in BAD_RESPONSES]
)
def test_bad_responses_are_classified_never_raw(
    name: str, make: Callable[[], httpx.Response], error: type[Exception], message: str
) -> None:
    settings = TxpgSettings(max_body_bytes=4096)
    with pytest.raises(error, match=message) as caught:
        _send_sync(make(), settings)
    assert isinstance(caught.value, base.GatewayError)
    assert not isinstance(caught.value, base.GatewayUnavailable), (
        "a response arrived: never 'not sent'"
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "make", "error", "message"), BAD_RESPONSES, ids=[b[0] for b in BAD_RESPONSES]
)
async def test_async_client_classifies_the_same(
    name: str, make: Callable[[], httpx.Response], error: type[Exception], message: str
) -> None:
    settings = TxpgSettings(max_body_bytes=4096)
    with pytest.raises(error, match=message):
        await _send_async(make(), settings)


@pytest.mark.anyio
async def test_async_client_parses_and_declines_like_the_sync_one() -> None:
    ok = {"tran": {"approvalCode": "1", "match": {"ridByPmo": 5}, "pmoResultCode": "1"}}
    result = await _send_async(httpx.Response(200, json=ok))
    assert result == _send_sync(httpx.Response(200, json=ok))
    assert result.rid_by_pmo == "5"
    with pytest.raises(txpg.PmoDecline):
        await _send_async(httpx.Response(400, json=_decline("59")))


def test_unknown_order_status_is_kept_not_coerced() -> None:
    body = {"order": {"id": 1, "status": "Quarantined", "amount": 1, "currency": "AZN"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    with TxpgClient(TxpgSettings(), transport=transport) as client:
        order = client.get_order(1)
    assert order.status is OrderStatus.UNKNOWN
    assert order.status_raw == "Quarantined"
    assert not order.paid


def test_requests_carry_basic_auth_json_and_the_password_only_in_the_query() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"tran": {"pmoResultCode": "1"}})

    settings = TxpgSettings(base_url="https://txpgtst.kapitalbank.az/api")
    with TxpgClient(settings, transport=httpx.MockTransport(handler)) as client:
        client.exec_tran(REF, TRAN)
    request = seen[0]
    assert (
        str(request.url)
        == "https://txpgtst.kapitalbank.az/api/order/7/exec-tran?password=pw7secretpass"
    )
    assert (
        request.headers["authorization"]
        == httpx.BasicAuth("TerminalSys/kapital", "kapital123")._auth_header
    )
    assert request.headers["content-type"] == "application/json"
    assert b"pw7secretpass" not in request.content
    assert (
        request.content
        == b'{"tran":{"phase":"Single","amount":"9.99","conditions":{"cofUsage":"UnspecifiedMit"}}}'
    )


def test_redirects_are_not_followed() -> None:
    response = httpx.Response(302, headers={"location": "https://evil.example/steal"})
    with pytest.raises(base.MalformedResponse, match="HTTP 302"):
        _send_sync(response)
