"""The Bizon client without a network: settings, code tables, request building, the error map,
pagination and secrets.

Responses are served by httpx's MockTransport, so the client's whole response path runs
(streaming read, size cap, content type, strict JSON, the error map) for the sync and the
async client alike.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from structlog.testing import capture_logs

from worker import errors as base
from worker.errors import DeclineClass
from worker.gateway.bizon import errors as bz
from worker.gateway.bizon import operations as ops
from worker.gateway.bizon.client import AsyncBizonClient, BizonClient
from worker.gateway.bizon.codes import (
    ALLOWED,
    ISO_CODES,
    Action,
    OperationStatus,
    OperationType,
    OrderStatus,
    allows,
    iso_code,
)
from worker.gateway.bizon.models import (
    Authorize,
    CardDetails,
    CreateOrder,
    Credit,
    Expand,
    OperationExpand,
    OperationFilter,
    OrderFilter,
    OrderOptions,
    Pan,
    Rebill,
    RecurringDetails,
)
from worker.gateway.bizon.settings import BizonSettings
from worker.gateway.transport import SendTracker
from worker.money import Money
from worker.sensitive import Secret

PAN_TEXT = "4111111111111111"
USD = Money(999, "USD")
JSON = {"content-type": "application/json"}
ID = "23014806643308174"


def _op(
    status: str = "success", code: str = "00", type_: str = "authorize", message: str = "Approved"
) -> dict[str, Any]:
    return {
        "amount": "9.99",
        "currency": "USD",
        "type": type_,
        "status": status,
        "iso_response_code": code,
        "iso_message": message,
        "created": "2016-08-22 15:39:48",
    }


def _order(
    status: str = "authorized",
    operations: list[dict[str, Any]] | None = None,
    card_type: str = "visa",
    order_id: str = ID,
) -> dict[str, Any]:
    return {
        "orders": [
            {
                "id": order_id,
                "status": status,
                "amount": "9.99",
                "amount_charged": "0.00",
                "amount_refunded": "0.00",
                "currency": "USD",
                "pan": "411111****1111",
                "card": {"type": card_type, "subtype": "classic", "holder": "John Smith"},
                "client": {"email": "foo@bar.com", "name": "John Smith"},
                "operations": [_op()] if operations is None else operations,
            }
        ]
    }


def _fresh(template: httpx.Response) -> httpx.Response:
    """A new response like ``template``: a client consumes (and rewraps) what it receives."""
    return httpx.Response(template.status_code, headers=template.headers, content=template.read())


def _sync(response: httpx.Response, call: Callable[[BizonClient], Any] | None = None) -> Any:
    transport = httpx.MockTransport(lambda request: _fresh(response))
    with BizonClient(BizonSettings(), transport=transport) as client:
        return (call or (lambda c: c.charge(ID)))(client)


def _async(response: httpx.Response) -> Any:
    async def handler(request: httpx.Request) -> httpx.Response:
        return _fresh(response)

    async def run() -> Any:
        async with AsyncBizonClient(
            BizonSettings(), transport=httpx.MockTransport(handler)
        ) as client:
            return await client.charge(ID)

    return asyncio.run(run())


SENDERS = [pytest.param(_sync, id="sync"), pytest.param(_async, id="async")]


# --- settings ---------------------------------------------------------------------------


def test_settings_default_to_the_local_sandbox_and_hide_the_password() -> None:
    settings = BizonSettings.from_env({})
    assert settings.base_url == "http://127.0.0.1:8090"
    assert settings.is_sandbox
    assert settings.username == "project"
    assert "password" not in repr(settings).replace("password=Secret('***')", "")
    assert "Secret('***')" in repr(settings)


def test_settings_from_env() -> None:
    settings = BizonSettings.from_env(
        {
            "BILLING_BIZON_BASE_URL": "https://pay.example.com/api/",
            "BILLING_BIZON_USERNAME": "shop",
            "BILLING_BIZON_PASSWORD": "s3cret-Pass",
            "BILLING_BIZON_CLIENT_CERT": "/etc/bizon/client.pem",
            "BILLING_BIZON_CLIENT_KEY": "/etc/bizon/client.key",
            "BILLING_BIZON_CA_BUNDLE": "/etc/bizon/ca.pem",
            "BILLING_BIZON_CONNECT_TIMEOUT": "2",
            "BILLING_BIZON_READ_TIMEOUT": "7.5",
            "BILLING_BIZON_DEADLINE": "12",
        }
    )
    assert settings.base_url == "https://pay.example.com/api"
    assert settings.password.reveal() == "s3cret-Pass"
    assert (settings.client_cert, settings.client_key) == (
        "/etc/bizon/client.pem",
        "/etc/bizon/client.key",
    )
    assert (settings.connect_timeout, settings.read_timeout, settings.deadline) == (2, 7.5, 12)
    assert "s3cret-Pass" not in repr(settings)
    assert "shop" not in repr(settings)


CREDS = {"BILLING_BIZON_USERNAME": "shop", "BILLING_BIZON_PASSWORD": "pw"}


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"BILLING_BIZON_BASE_URL": "http://pay.example.com", **CREDS}, "plain http"),
        ({"BILLING_BIZON_BASE_URL": "https://pay.example.com"}, "USERNAME and"),
        ({"BILLING_BIZON_BASE_URL": "ftp://x", **CREDS}, "must be http"),
        ({"BILLING_BIZON_CLIENT_KEY": "/k.pem"}, "without a client cert"),
        ({"BILLING_BIZON_DEADLINE": "0"}, "positive"),
        ({"BILLING_BIZON_READ_TIMEOUT": "soon"}, "number of seconds"),
    ],
)
def test_bad_settings_are_configuration_errors(env: dict[str, str], match: str) -> None:
    with pytest.raises(base.ConfigurationError, match=match):
        BizonSettings.from_env(env)


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    authority = trustme.CA()
    leaf = authority.issue_cert("billing-worker.client")
    cert, key, ca = tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    settings = BizonSettings(client_cert=str(cert), client_key=str(key), ca_bundle=str(ca))
    context = settings.ssl_context()
    assert context.verify_mode.name == "CERT_REQUIRED"
    assert context.get_ca_certs()  # our CA, not the system's
    BizonClient(settings).close()
    missing = BizonSettings(client_cert=str(tmp_path / "missing.pem"))
    with pytest.raises(base.ConfigurationError, match="TLS setup failed: FileNotFoundError"):
        BizonClient(missing)


# --- code tables -------------------------------------------------------------------------


def test_every_status_has_a_row_and_the_table_matches_the_reference() -> None:
    assert set(ALLOWED) == set(OrderStatus)
    assert allows(OrderStatus.AUTHORIZED, Action.CHARGE)
    assert allows(OrderStatus.AUTHORIZED, Action.REVERSE)
    assert not allows(OrderStatus.AUTHORIZED, Action.REFUND)
    assert allows(OrderStatus.CHARGED, Action.REFUND)
    assert allows(OrderStatus.CHARGED, Action.CREDIT)
    assert not allows(OrderStatus.CHARGED, Action.CHARGE)
    assert not allows(OrderStatus.NEW, Action.REBILL)
    for status in (OrderStatus.DECLINED, OrderStatus.FRAUD, OrderStatus.CREDITED):
        assert ALLOWED[status] == {Action.REBILL}
    assert ALLOWED[OrderStatus.UNKNOWN] == frozenset()
    assert OrderStatus.parse("shipped") is OrderStatus.UNKNOWN
    assert OperationStatus.parse("failure") is OperationStatus.FAILURE
    assert OperationType.parse("payout") is OperationType.UNKNOWN


@pytest.mark.parametrize(
    ("code", "card", "expected"),
    [
        ("05", None, DeclineClass.SOFT),
        ("51", None, DeclineClass.SOFT),
        ("61", None, DeclineClass.SOFT),
        ("91", None, DeclineClass.SOFT),
        ("96", None, DeclineClass.SOFT),
        ("54", None, DeclineClass.HARD),
        ("14", None, DeclineClass.HARD),
        ("41", None, DeclineClass.HARD),
        ("43", None, DeclineClass.HARD),
        ("57", None, DeclineClass.HARD),
        ("R1", None, DeclineClass.HARD),
        ("1a", None, DeclineClass.NEEDS_CUSTOMER),
        ("01", None, DeclineClass.NEEDS_CUSTOMER),
        ("65", "mastercard", DeclineClass.NEEDS_CUSTOMER),
        ("65", None, DeclineClass.NEEDS_CUSTOMER),
        ("65", "visa", DeclineClass.SOFT),
        ("94", None, DeclineClass.UNKNOWN),
        ("5", None, DeclineClass.SOFT),
        ("Q9", None, DeclineClass.UNKNOWN),
    ],
)
def test_iso_codes_have_a_class(code: str, card: str | None, expected: DeclineClass) -> None:
    assert iso_code(code, card).decline_class is expected


def test_judgement_calls_carry_their_reason() -> None:
    for code in ("05", "03", "59", "65", "91", "94", "1A", "R0"):
        assert ISO_CODES[code].reason, code


# --- request building ----------------------------------------------------------------------


def test_paths_methods_and_bodies_of_every_endpoint() -> None:
    pan = Pan.parse(PAN_TEXT)
    cases: list[tuple[ops.Call[Any], str, str, dict[str, Any] | None]] = [
        (ops.ping(), "GET", "ping", None),
        (ops.get_order(ID), "GET", f"orders/{ID}", None),
        (ops.exchange_rates(), "GET", "exchange_rates/", None),
        (ops.reverse(ID), "PUT", f"orders/{ID}/reverse", None),
        (ops.charge(ID), "PUT", f"orders/{ID}/charge", None),
        (ops.charge(ID, USD), "PUT", f"orders/{ID}/charge", {"amount": "9.99"}),
        (ops.refund(ID, USD), "PUT", f"orders/{ID}/refund", {"amount": "9.99"}),
        (ops.cancel(ID), "PUT", f"orders/{ID}/cancel", None),
        (ops.resume(ID), "POST", f"orders/{ID}/resume", None),
        (ops.complete(ID, Secret("PR")), "POST", f"orders/{ID}/complete", {"PaRes": "PR"}),
        (ops.complete3d20(ID, Secret("CR")), "POST", f"orders/{ID}/complete3d20", {"cres": "CR"}),
        (
            ops.rebill(
                ID,
                Rebill(USD, Secret("123"), "8.8.8.8", True, "MCC8454300719", "m101"),
            ),
            "POST",
            f"orders/{ID}/rebill",
            {
                "amount": "9.99",
                "cvv": "123",
                "location": {"ip": "8.8.8.8"},
                "options": {"recurring": 1},
                "recurring_details": {"trace_id": "MCC8454300719", "indicator": "m101"},
            },
        ),
        (
            ops.credit(ID, Credit(USD, location_ip="8.8.8.8")),
            "POST",
            f"orders/{ID}/credit",
            {"amount": "9.99", "currency": "USD", "location": {"ip": "8.8.8.8"}},
        ),
        (
            ops.credit_pan(pan, Credit(USD)),
            "POST",
            "orders/credit",
            {"amount": "9.99", "currency": "USD", "pan": PAN_TEXT},
        ),
        (
            ops.create_order(
                CreateOrder(
                    USD,
                    custom_fields={"plan": "gold"},
                    options=OrderOptions(expiration_timeout="30m", auto_charge=True),
                )
            ),
            "POST",
            "orders/create",
            {
                "amount": "9.99",
                "currency": "USD",
                "custom_fields": {"plan": "gold"},
                "options": {"expiration_timeout": "30m", "auto_charge": 1},
            },
        ),
        (
            ops.authorize(
                Authorize(
                    USD,
                    pan,
                    CardDetails(expiration_month=6, expiration_year=2030),
                    recurring_details=RecurringDetails(parent_order_id="74615664219665657"),
                    options=OrderOptions(recurring=True, exemption_mit=True),
                )
            ),
            "POST",
            "orders/authorize",
            {
                "amount": "9.99",
                "currency": "USD",
                "pan": PAN_TEXT,
                "card": {"expiration_month": 6, "expiration_year": 2030},
                "options": {"recurring": 1, "exemption_mit": 1},
                "recurring_details": {"parent_order_id": "74615664219665657"},
            },
        ),
    ]
    for call, method, path, body in cases:
        assert (call.method, call.path, call.body) == (method, path, body), call.op
        content = call.content()
        assert (None if content is None else json.loads(content)) == body


def test_query_strings_keep_the_references_commas() -> None:
    call = ops.get_order(ID, [Expand.CARD, Expand.CLIENT, Expand.OPERATIONS_CASHFLOW])
    assert call.path == f"orders/{ID}?expand=card,client,operations.cashflow"
    listing = ops.list_orders(
        OrderFilter(
            status=(OrderStatus.CHARGED, OrderStatus.REFUNDED),
            created_from=datetime(2016, 1, 1),
            created_to=datetime(2016, 1, 31, 23, 59, 59),
            card_type=("visa", "mastercard"),
            client_email="@yahoo.com",
            issuer_bin=("555555", "411111"),
        )
    )
    assert listing.path == (
        "orders/?status=charged,refunded&created_from=2016-01-01%2000%3A00%3A00"
        "&created_to=2016-01-31%2023%3A59%3A59&card.type=visa,mastercard"
        "&client.email=%40yahoo.com&issuer.bin=555555,411111"
    )
    assert "yahoo" not in repr(OrderFilter(client_email="@yahoo.com"))
    operations = ops.list_operations(
        OperationFilter(
            expand=(OperationExpand.CASHFLOW,),
            status=(OperationStatus.ERROR,),
            type=(OperationType.CHARGE, OperationType.REFUND),
        )
    )
    assert operations.path == "operations/?expand=cashflow&status=error&type=charge,refund"
    assert ops.list_orders().path == "orders/"


def test_requests_refuse_what_the_reference_does_not_allow() -> None:
    with pytest.raises(base.InvalidInput, match=r"options.static_link is not a parameter"):
        ops.authorize(Authorize(USD, Pan.parse(PAN_TEXT), options=OrderOptions(static_link=True)))
    with pytest.raises(base.InvalidInput, match="order id"):
        ops.charge("../admin")
    with pytest.raises(base.InvalidInput, match="positive"):
        ops.refund(ID, Money(0, "USD"))
    with pytest.raises(base.InvalidInput, match="positive"):
        CreateOrder(Money(-1, "USD"))
    with pytest.raises(base.InvalidInput, match="at most 10"):
        CreateOrder(USD, custom_fields={str(i): "x" for i in range(11)})
    with pytest.raises(base.InvalidInput, match="no card details"):
        ops.credit(ID, Credit(USD, card=CardDetails(holder="John Smith")))
    with pytest.raises(base.InvalidInput, match="Luhn"):
        Pan.parse("4111111111111112")
    with pytest.raises(base.InvalidInput, match="CVV"):
        CardDetails(cvv=Secret("12a"))
    with pytest.raises(base.InvalidInput, match="unknown status"):
        OrderFilter(status=(OrderStatus.UNKNOWN,))


def test_a_pan_a_cvv_and_the_password_never_show() -> None:
    pan = Pan.parse("4111 1111 1111 1111")
    request = Authorize(USD, pan, CardDetails(cvv=Secret("333"), holder="John Smith"))
    call = ops.authorize(request)
    for text in (repr(pan), repr(request), repr(call), str(call)):
        assert PAN_TEXT not in text
        assert "333" not in text
        assert "John Smith" not in text
    assert pan.masked == "411111******1111"
    assert "password" not in repr(BizonSettings()).replace("password=Secret('***')", "")

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = _order(operations=[_op("failure", "05", message=f"Card {PAN_TEXT} refused")])
        return httpx.Response(200, headers=JSON, json=body)

    with (
        capture_logs() as logs,
        BizonClient(BizonSettings(), transport=httpx.MockTransport(handler)) as client,
        pytest.raises(bz.BizonDecline) as caught,
    ):
        client.authorize(request)
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert json.loads(seen[0].content)["pan"] == PAN_TEXT  # revealed in the body only
    error = caught.value
    for text in (str(error), repr(error), error.reason or "", repr(logs)):
        assert PAN_TEXT not in text
        assert "cHJvamVjdDpwYXNzd29yZA" not in text
    assert "411111******1111" in (error.reason or "")
    assert logs == [
        {
            "event": "gateway_call_completed",
            "gateway": "bizon",
            "op": "authorize",
            "order_id": None,
            "http_status": 200,
            "outcome": "BizonDecline",
            "duration_ms": logs[0]["duration_ms"],
            "log_level": "debug",
        }
    ]


def test_a_full_pan_in_a_response_is_masked_and_customer_data_stays_out_of_repr() -> None:
    body = _order()
    body["orders"][0]["pan"] = PAN_TEXT
    order = _sync(httpx.Response(200, headers=JSON, json=body))
    assert order.pan == "411111******1111"
    assert "foo@bar.com" not in repr(order)
    assert "John Smith" not in repr(order)
    assert order.client is not None
    assert order.client.email == "foo@bar.com"


# --- the error map -------------------------------------------------------------------------


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize(
    ("response", "expected", "match"),
    [
        (httpx.Response(401, text="Unauthorized"), bz.BizonCredentialsRejected, "401"),
        (httpx.Response(403, headers=JSON, json={}), bz.BizonCredentialsRejected, "403"),
        (httpx.Response(500, headers=JSON, json={"error": "boom"}), bz.BizonOutcomeUnknown, "boom"),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), bz.BizonOutcomeUnknown, "text/"),
        (httpx.Response(200, text="<html>ok</html>"), base.MalformedResponse, "expected JSON"),
        (httpx.Response(200, headers=JSON, content=b"{"), base.MalformedResponse, "invalid JSON"),
        (
            httpx.Response(200, headers=JSON, content=b'{"orders": [], "orders": []}'),
            base.MalformedResponse,
            "invalid JSON",
        ),
        (
            httpx.Response(200, headers=JSON, content=b'{"orders": NaN}'),
            base.MalformedResponse,
            "invalid JSON",
        ),
        (httpx.Response(200, headers=JSON, json=[]), base.MalformedResponse, "object"),
        (httpx.Response(200, headers=JSON, json={}), base.MalformedResponse, "orders is missing"),
        (
            httpx.Response(200, headers=JSON, json={"orders": []}),
            base.MalformedResponse,
            "exactly one",
        ),
        (httpx.Response(302, headers=JSON, json={}), base.MalformedResponse, "unexpected HTTP"),
        (
            httpx.Response(400, headers=JSON, json={"message": "amount is invalid"}),
            bz.ValidationFailed,
            "amount is invalid",
        ),
        (
            httpx.Response(422, headers=JSON, json={"errors": ["a", "b"]}),
            bz.ValidationFailed,
            "a; b",
        ),
        (httpx.Response(404, headers=JSON, json={}), bz.OrderNotFound, "404"),
        (httpx.Response(418, headers=JSON, json={}), bz.BizonRejected, "418"),
        (httpx.Response(429, text="slow down"), bz.RateLimited, "429"),
        (httpx.Response(409, headers=JSON, json={}), bz.InvalidOrderState, "not allowed"),
        (
            httpx.Response(400, headers=JSON, json={"message": "Order already completed"}),
            bz.InvalidOrderState,
            "already completed",
        ),
        (
            httpx.Response(400, headers=JSON, json=_order(status="refunded")),
            bz.InvalidOrderState,
            "is refunded",
        ),
        (
            httpx.Response(200, headers=JSON, json=_order(operations=[_op("error", "96")])),
            bz.BizonOutcomeUnknown,
            "ended 'error'",
        ),
        (
            httpx.Response(200, headers=JSON, json=_order(operations=[_op("pending")])),
            bz.BizonOutcomeUnknown,
            "ended 'pending'",
        ),
        (
            httpx.Response(200, headers=JSON, json=_order(status="error", operations=[])),
            bz.BizonOutcomeUnknown,
            "status error",
        ),
    ],
)
def test_responses_map_to_the_error_tree(
    send: Callable[[httpx.Response], Any],
    response: httpx.Response,
    expected: type[Exception],
    match: str,
) -> None:
    with pytest.raises(expected, match=match) as caught:
        send(response)
    assert isinstance(caught.value, base.GatewayError)
    assert caught.value.http_status == response.status_code


def test_branches_say_what_the_caller_must_do() -> None:
    assert issubclass(bz.RateLimited, base.GatewayUnavailable)
    assert bz.RateLimited.should_retry
    assert issubclass(bz.BizonOutcomeUnknown, base.OutcomeUnknown)
    assert issubclass(bz.InvalidOrderState, base.InvalidOrderState)
    for cls in (bz.ValidationFailed, bz.OrderNotFound, bz.BizonRejected):
        assert issubclass(cls, base.RequestRejected)
        assert not cls.should_retry


@pytest.mark.parametrize("status", [200, 402])
@pytest.mark.parametrize(
    ("code", "card", "expected"),
    [
        ("51", "visa", DeclineClass.SOFT),
        ("54", "visa", DeclineClass.HARD),
        ("65", "mastercard", DeclineClass.NEEDS_CUSTOMER),
        ("65", "visa", DeclineClass.SOFT),
        ("1A", "visa", DeclineClass.NEEDS_CUSTOMER),
        ("ZZ", "visa", DeclineClass.UNKNOWN),
    ],
)
def test_a_failed_operation_is_a_decline_classed_by_its_iso_code(
    status: int, code: str, card: str, expected: DeclineClass
) -> None:
    body = _order(
        status="declined",
        card_type=card,
        operations=[_op("failure", code, message="Declined")],
        order_id="23014809139351770",
    )
    with pytest.raises(bz.BizonDecline) as caught:
        _sync(
            httpx.Response(status, headers=JSON, json=body),
            lambda c: c.rebill(ID, Rebill(USD)),
        )
    error = caught.value
    assert error.decline_class is expected
    assert error.result_code == code
    assert error.code == code
    assert error.reason == "Declined"
    assert error.request_id == "23014809139351770"  # the rebill's new order
    assert error.order is not None
    assert error.order.status is OrderStatus.DECLINED
    assert error.http_status == status


def test_a_decline_without_operations_is_classed_by_the_order_status() -> None:
    def declined(status: str) -> bz.BizonDecline:
        body = _order(status=status, operations=[])
        with pytest.raises(bz.BizonDecline) as caught:
            _sync(httpx.Response(200, headers=JSON, json=body))
        return caught.value

    assert declined("fraud").decline_class is DeclineClass.HARD
    assert declined("declined").decline_class is DeclineClass.UNKNOWN
    assert declined("rejected").decline_class is DeclineClass.UNKNOWN


def test_reading_an_order_never_raises_for_its_history() -> None:
    body = _order(status="declined", operations=[_op("failure", "51")])
    order = _sync(httpx.Response(200, headers=JSON, json=body), lambda c: c.get_order(ID))
    assert order.status is OrderStatus.DECLINED
    assert order.last_operation is not None
    assert order.last_operation.status is OperationStatus.FAILURE
    iso = order.last_operation.iso("visa")
    assert iso is not None
    assert iso.decline_class is DeclineClass.SOFT


def test_authorize_waiting_for_3ds_returns_the_prepared_order() -> None:
    body = _order(status="prepared", operations=[])
    body["orders"][0]["form3d"] = {"action": "https://acs", "method": "POST", "PaReq": "x"}
    order = _sync(
        httpx.Response(201, headers=JSON, json=body),
        lambda c: c.authorize(Authorize(USD, Pan.parse(PAN_TEXT))),
    )
    assert order.awaiting_customer
    assert order.allows(Action.COMPLETE)
    assert order.form3d.inputs == {"PaReq": "x"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "9.999"),
        ("amount", 9.99),
        ("amount", "9,99"),
        ("amount", True),
        ("currency", "XXX"),
    ],
)
def test_inexact_or_unreadable_amounts_are_malformed(field: str, value: Any) -> None:
    body = _order()
    body["orders"][0][field] = value
    content = json.dumps(body).encode()  # 9.99 goes out as a JSON number, read exactly
    if value == 9.99:
        order = _sync(httpx.Response(200, headers=JSON, content=content))
        assert order.amount == Money(999, "USD")
        return
    with pytest.raises(base.MalformedResponse, match=r"body\.orders\[0\]"):
        _sync(httpx.Response(200, headers=JSON, content=content))


def test_the_body_size_is_capped() -> None:
    big = json.dumps({"orders": [], "pad": "x" * 2048}).encode()
    transport = httpx.MockTransport(lambda r: httpx.Response(200, headers=JSON, content=big))
    with (
        BizonClient(BizonSettings(max_body_bytes=1024), transport=transport) as client,
        pytest.raises(base.MalformedResponse, match="over 1024 bytes"),
    ):
        client.ping()


def test_transport_failures_split_on_whether_a_byte_was_sent() -> None:
    # Over MockTransport the httpcore trace never fires, so nothing counts as sent.
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with (
        BizonClient(BizonSettings(), transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(base.RequestNotSent, match="ConnectError"),
    ):
        client.charge(ID)
    read = httpx.ReadTimeout("slow")
    assert isinstance(bz.transport_error("charge", read, sent=True), bz.BizonOutcomeUnknown)
    assert isinstance(bz.transport_error("charge", read, sent=False), base.RequestNotSent)
    assert isinstance(
        bz.transport_error("charge", httpx.UnsupportedProtocol("x"), sent=False),
        base.ConfigurationError,
    )
    assert isinstance(bz.deadline_error("charge", True, 40), bz.BizonOutcomeUnknown)
    assert isinstance(bz.deadline_error("charge", False, 40), base.RequestNotSent)
    tracker = SendTracker()
    tracker.sync_trace("http11.send_request_headers.started", {})
    assert tracker.sent


# --- create and pagination ---------------------------------------------------------------


def test_create_returns_the_order_and_the_payment_page() -> None:
    body = _order(status="new", operations=[])
    response = httpx.Response(
        201, headers={**JSON, "location": f"http://localhost:5002/pay/{ID}"}, json=body
    )
    created = _sync(response, lambda c: c.create_order(CreateOrder(USD)))
    assert created.id == ID
    assert created.payment_url == f"http://localhost:5002/pay/{ID}"
    assert created.order.status is OrderStatus.NEW


def _paged(pages: dict[str, httpx.Response]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return _fresh(pages[request.url.raw_path.decode()])

    return httpx.MockTransport(handler)


def _page(ids: list[str], link: str | None) -> httpx.Response:
    headers = dict(JSON)
    if link:
        headers["link"] = link
    orders = [_order(order_id=i)["orders"][0] for i in ids]
    return httpx.Response(200, headers=headers, json={"orders": orders})


def test_listing_follows_the_next_links_across_pages() -> None:
    pages = {
        "/orders/?status=charged": _page(
            ["1", "2"],
            '<http://127.0.0.1:8090/orders/?status=charged&page=2>; rel="next", '
            '<http://127.0.0.1:8090/orders/?status=charged&page=9>; rel="last"',
        ),
        "/orders/?status=charged&page=2": _page(
            ["3"], '</orders/?status=charged&page=3>; rel="next"'
        ),
        "/orders/?status=charged&page=3": _page(["4"], '<...?page=1>; rel="first prev"'),
    }
    flt = OrderFilter(status=(OrderStatus.CHARGED,))
    with BizonClient(BizonSettings(), transport=_paged(pages)) as client:
        assert [o.id for o in client.list_orders(flt)] == ["1", "2", "3", "4"]

    async def run() -> list[str]:
        async def handler(request: httpx.Request) -> httpx.Response:
            return _fresh(pages[request.url.raw_path.decode()])

        async with AsyncBizonClient(
            BizonSettings(), transport=httpx.MockTransport(handler)
        ) as client:
            return [o.id async for o in client.list_orders(flt)]

    assert asyncio.run(run()) == ["1", "2", "3", "4"]


def test_listing_operations_follows_links_too() -> None:
    ops_page = {"operations": [{**_op(), "order_id": "1"}]}
    pages = {
        "/operations/": httpx.Response(
            200, headers={**JSON, "link": '</operations/?page=2>; rel="next"'}, json=ops_page
        ),
        "/operations/?page=2": httpx.Response(200, headers=JSON, json={"operations": []}),
    }
    with BizonClient(BizonSettings(), transport=_paged(pages)) as client:
        assert [o.order_id for o in client.list_operations()] == ["1"]


@pytest.mark.parametrize(
    ("link", "match", "max_pages"),
    [
        ('</orders/>; rel="next"', "does not end", 10),
        ('<https://evil.example/orders/?page=2>; rel="next"', "points off the gateway", 10),
        ('<https://127.0.0.1:8090/orders/?page=2>; rel="next"', "points off the gateway", 10),
        ('</orders/?page=2>; rel="next"', "over 1 pages", 1),
    ],
)
def test_listing_refuses_loops_foreign_links_and_endless_pages(
    link: str, match: str, max_pages: int
) -> None:
    pages = {"/orders/": _page(["1"], link), "/orders/?page=2": _page(["2"], link)}
    settings = BizonSettings(max_pages=max_pages)
    with BizonClient(settings, transport=_paged(pages)) as client:
        walk = client.list_orders()
        assert next(walk).id == "1"
        with pytest.raises(base.MalformedResponse, match=match):
            list(walk)
