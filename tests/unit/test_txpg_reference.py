"""The client against the reference collection, with no network.

* every example response body in the collection parses into the typed models, sent through
  the client's real response path (httpx MockTransport), declines included;
* every request of the collection is something our request builders produce, with the same
  JSON (amounts compared as exact decimals: "1.0" and "1.00" are the same amount).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.reference import COLLECTION, REFERENCE, Example, examples
from worker.errors import DeclineClass
from worker.gateway.txpg import operations as ops
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.codes import OrderStatus
from worker.gateway.txpg.errors import PmoDecline
from worker.gateway.txpg.models import (
    CardNumber,
    CofUsage,
    CreatedOrder,
    OrderInfo,
    OrderRef,
    OrderRequest,
    OrderType,
    Phase,
    StoredCard,
    TokenResult,
    TranRequest,
    TranResult,
    TwoToken,
)
from worker.money import Money, parse_amount
from worker.sensitive import Secret
from worker.settings import TxpgSettings

REF = OrderRef(4600, Secret("z3fc5v4n5ey7"))
ONE = parse_amount("1", "AZN")


def _client(body: Any, status: int = 200) -> TxpgClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return TxpgClient(TxpgSettings(), transport=httpx.MockTransport(handler))


def _call_for(example: Example) -> ops.Call[Any]:
    """The call our builders make for each request of the collection."""
    amount = ONE
    calls: dict[str, ops.Call[Any]] = {
        "Purchase": ops.create_order(
            OrderRequest(
                OrderType.PURCHASE,
                amount,
                "Testdesc",
                hpp_redirect_url="http://txpgtst.kapitalbank.az",
                hpp_cof_capture_purposes=(CofUsage.CIT,),
            )
        ),
        "Prepurchase": ops.create_order(
            OrderRequest(
                OrderType.PREAUTH,
                amount,
                "Testdesc",
                hpp_redirect_url="http://txpgtst.kapitalbank.az",
                hpp_cof_capture_purposes=(CofUsage.CIT,),
            )
        ),
        "Recurring": ops.create_order(OrderRequest(OrderType.RECURRING, amount, "Testdesc")),
        "Order Credit Transaction": ops.create_order(
            OrderRequest(OrderType.CREDIT, amount, "Testdesc", language="ru", title="TestOrder")
        ),
        "İnstallment (Taksit)": ops.create_order(
            OrderRequest(
                OrderType.PURCHASE,
                amount,
                installments=6,
                hpp_redirect_url="http://txpgtst.kapitalbank.az",
            )
        ),
        "Standart token": ops.set_src_token(REF, StoredCard(5125)),
        "Clearing after Authorization": ops.exec_tran(REF, TranRequest.clearing(amount)),
        "Purchase with saved card": ops.exec_tran(REF, TranRequest.purchase(amount)),
        "Preauthorization with saved card": ops.exec_tran(REF, TranRequest.preauthorize(amount)),
        "Execute Credit Operation": ops.exec_tran(REF, TranRequest.credit(amount)),
        "Purchase Reversal": ops.exec_tran(REF, TranRequest.reversal()),
        "Purchase Partial Reversal": ops.exec_tran(REF, TranRequest.reversal(amount=amount)),
        "Prepurchase Auth Reversal": ops.exec_tran(REF, TranRequest.reversal(Phase.AUTH)),
        "Prepurchase Clearing Reversal": ops.exec_tran(REF, TranRequest.reversal(Phase.CLEARING)),
        "Refund": ops.exec_tran(REF, TranRequest.refund(parse_amount("2", "AZN"))),
        "Simple": ops.get_order(4600),
        "Detailed": ops.get_order(4600, detailed=True),
    }
    if example.folder == "Set Source Token" and example.name == "TWO token":
        return ops.set_src_token(REF, TwoToken("D91E8A152405EE1180E4005056954BCC"))
    if example.folder == "Set Destination Token":
        if example.name == "PAN":
            return ops.set_dst_token(REF, CardNumber.parse("4169741330151778"))
        return ops.set_dst_token(REF, TwoToken("26AB0DACE700EF1180EB005056954BCC"))
    return calls[example.name]


def _normalise(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if key == "amount" and isinstance(value, str):
        return Decimal(value)
    return value


EXAMPLES = list(examples())
IDS = [f"{e.folder}/{e.name}/{e.response_name}" for e in EXAMPLES]


def test_the_vendored_reference_matches_the_shared_one() -> None:
    shared = REFERENCE.parents[2].parent / "shared" / "reference" / COLLECTION.name
    vendored = json.loads(COLLECTION.read_text(encoding="utf-8"))
    assert len(EXAMPLES) >= 20
    if shared.exists():  # beside a checkout on the developers' machines and in CI
        assert json.loads(shared.read_text(encoding="utf-8")) == vendored


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_every_collection_request_is_what_our_builders_send(example: Example) -> None:
    call = _call_for(example)
    assert call.method == example.method
    path = example.url.split("/api/", 1)[1]
    assert call.path == path.split("?", 1)[0].replace("{id}", "4600")
    sends_password = "password={password}" in example.url
    assert (
        ("password", "z3fc5v4n5ey7") in call.params()
        if sends_password
        else all(k != "password" for k, _ in call.params())
    )
    if "?" in path and "password" not in path:
        assert [f"{k}={v}" for k, v in call.params()] == path.split("?", 1)[1].split("&")
    if example.body is None:
        assert call.body is None
    else:
        assert _normalise(call.body) == _normalise(example.body)


PARSERS: dict[str, type] = {
    "Create Order": CreatedOrder,
    "Set Source Token": TokenResult,
    "Execution Transaction": TranResult,
    "Refund": TranResult,
    "Get Order Status": OrderInfo,
}


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e.response_body is not None],
    ids=lambda e: f"{e.name}/{e.response_name}",
)
def test_every_example_response_parses_into_the_models(example: Example) -> None:
    with _client(example.response_body) as client:
        call = _call_for(example)
        if "errorCode" in example.response_body:
            with pytest.raises(PmoDecline) as caught:
                client.send(call)
            decline = caught.value
            assert decline.pmo_result_code == 52
            assert decline.pmo_title == "Invalid card"
            assert decline.decline_class is DeclineClass.HARD
            assert decline.decline_reason == "SrcCardInvalid"
            assert decline.rid_by_pmo == "17947770"
            assert (
                decline.pmo_decline_desc is not None
                and "416974******1778" in decline.pmo_decline_desc
            )
            return
        result = client.send(call)
    assert isinstance(result, PARSERS[example.folder])
    raw = next(iter(example.response_body.values()))
    if isinstance(result, CreatedOrder | OrderInfo):
        assert result.id == raw["id"]
        assert result.status_raw == raw["status"]
        assert result.status is not OrderStatus.UNKNOWN
    if isinstance(result, TranResult):
        assert result.pmo_result_code == 1
        assert result.approval_code == "053703"
        assert result.rid_by_pmo == "17302955"
        assert result.tran_action_id == "240422-13060545-000oed="
    if isinstance(result, TokenResult):
        assert result.src_token is not None
        assert result.src_token.display_name == "416974******1778"
        assert result.src_token.card_brand == "Visa"
    if isinstance(result, OrderInfo):
        assert result.amount == Money.from_gateway(raw["amount"], raw["currency"])
        assert len(result.trans) == len(raw.get("trans", []))
        for tran, raw_tran in zip(result.trans, raw.get("trans", []), strict=True):
            assert tran.amount.minor == raw_tran["amount"] * 100
            assert tran.clear_amount is not None
            assert tran.clear_amount.minor == raw_tran["clearAmount"] * 100
        if "password" in raw:
            assert result.password == Secret(raw["password"])
            assert raw["password"] not in repr(result)


def test_detailed_refunded_order_reads_purchase_and_refund() -> None:
    detailed = next(e for e in EXAMPLES if e.response_name == "Detailed")
    with _client(detailed.response_body) as client:
        order = client.get_order(5531, detailed=True)
    assert order.status is OrderStatus.REFUNDED
    assert [t.type for t in order.trans] == ["Purchase", "Refund"]
    assert order.trans[1].clear_amount == Money(-100, "AZN")
    assert order.cleared_refund_amount == Money(100, "AZN")
    assert order.src_token is not None and order.src_token.card_expiration == "1126"
    cof = next(e for e in EXAMPLES if e.response_name == "With COF data")
    with _client(cof.response_body) as client:
        order = client.get_order(10947, detailed=True)
    assert order.paid
    assert [t.rid_by_cofp for t in order.stored_tokens] == [
        None,
        "1B2B94F001F8EE1180EB005056954BCC",
    ]


def test_payment_page_url_is_built_from_the_created_order_and_kept_secret() -> None:
    created = next(e for e in EXAMPLES if e.name == "Purchase")
    with _client(created.response_body) as client:
        order = client.create_order(OrderRequest(OrderType.PURCHASE, ONE, "Testdesc"))
    url = order.payment_page_url()
    assert url.reveal() == "https://txpgtst.kapitalbank.az/flex?id=4595&password=8xjpd1ejxdma"
    assert "8xjpd1ejxdma" not in repr(url) and "8xjpd1ejxdma" not in repr(order)
    assert order.secret == Secret("312866")
