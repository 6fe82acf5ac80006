"""Fault injection over real HTTP: what the client sees, and what moved (the ledger)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from worker.sandbox import Endpoint, FaultKind, FaultRule, SandboxServer

MIT = {"cofUsage": "UnspecifiedMit"}


def _ready_order(http: httpx.Client, stored_id: int = 5125) -> tuple[int, str]:
    body = http.post(
        "order/", json={"order": {"typeRid": "Order_REC", "amount": "9.99", "currency": "AZN"}}
    ).json()["order"]
    order = (body["id"], body["password"])
    response = http.post(
        f"order/{order[0]}/set-src-token",
        params={"password": order[1]},
        json={"token": {"storedId": stored_id}},
    )
    assert response.status_code == 200
    return order


def _purchase(http: httpx.Client, order: tuple[int, str]) -> httpx.Response:
    return http.post(
        f"order/{order[0]}/exec-tran",
        params={"password": order[1]},
        json={"tran": {"phase": "Single", "amount": "9.99", "conditions": MIT}},
    )


def test_commit_then_drop_moves_the_money_but_the_client_hears_nothing(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    order = _ready_order(sandbox_http)
    sandbox.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN, times=1))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        _purchase(sandbox_http, order)
    (entry,) = sandbox.state.ledger.entries()
    assert (entry.order_id, entry.tran_type) == (order[0], "Purchase")
    detail = sandbox_http.get(f"order/{order[0]}", params={"tranDetailLevel": 2}).json()["order"]
    assert detail["status"] == "FullyPaid"  # reconciliation can see it
    assert len(detail["trans"]) == 1
    assert _purchase(sandbox_http, order).json()["errorCode"] == "InvalidOrderState"
    assert len(sandbox.state.ledger) == 1


def test_drop_before_handling_moves_nothing(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    order = _ready_order(sandbox_http)
    sandbox.state.faults.add(FaultRule(FaultKind.DROP_BEFORE, Endpoint.EXEC_TRAN, times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        _purchase(sandbox_http, order)
    assert sandbox.state.ledger.entries() == []
    assert sandbox.state.order(order[0]).status == "Preparing"
    assert _purchase(sandbox_http, order).status_code == 200  # times=1: the next call is fine


@pytest.mark.parametrize(
    ("kind", "status", "title"),
    [
        (FaultKind.HTTP_502, 502, "502 Bad Gateway"),
        (FaultKind.HTTP_503, 503, "503 Service Temporarily Unavailable"),
    ],
)
def test_error_pages_are_nginx_html_and_nothing_is_handled(
    sandbox: SandboxServer, sandbox_http: httpx.Client, kind: FaultKind, status: int, title: str
) -> None:
    sandbox.state.faults.add(FaultRule(kind, Endpoint.CREATE_ORDER))
    response = sandbox_http.post(
        "order/", json={"order": {"typeRid": "Order_REC", "amount": "1", "currency": "AZN"}}
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{title}</title>" in response.text
    assert "<center>nginx</center>" in response.text
    assert sandbox.state.orders() == []
    assert sandbox_http.get("order/1").status_code == 404  # other endpoints unaffected


def test_slow_body_sends_headers_then_trickles_the_committed_answer(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    order = _ready_order(sandbox_http)
    rule = FaultRule(FaultKind.SLOW_BODY, Endpoint.EXEC_TRAN, latency_ms=25, chunk_bytes=40)
    sandbox.state.faults.add(rule)
    started = time.monotonic()
    with sandbox_http.stream(
        "POST",
        f"order/{order[0]}/exec-tran",
        params={"password": order[1]},
        json={"tran": {"phase": "Single", "conditions": MIT}},
    ) as response:
        headers_at = time.monotonic() - started
        chunks = list(response.iter_raw())
    total = time.monotonic() - started
    body = b"".join(chunks)
    assert response.status_code == 200
    assert b'"pmoResultCode":"1"' in body
    gaps = (len(body) - 1) // 40  # the number of pauses between chunks
    assert gaps >= 2
    assert total >= gaps * 0.025
    assert headers_at < total
    assert len(sandbox.state.ledger) == 1  # committed before the first byte


def test_slow_body_can_outlast_a_read_timeout(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    sandbox.state.faults.add(
        FaultRule(FaultKind.SLOW_BODY, Endpoint.GET_ORDER, latency_ms=400, chunk_bytes=8)
    )
    order = _ready_order(sandbox_http)
    with pytest.raises(httpx.ReadTimeout):
        sandbox_http.get(f"order/{order[0]}", timeout=httpx.Timeout(5, read=0.1))


def test_latency_rule_and_global_latency(
    sandbox: SandboxServer, sandbox_http: httpx.Client, make_sandbox: Any
) -> None:
    sandbox.state.faults.add(FaultRule(FaultKind.LATENCY, Endpoint.GET_ORDER, latency_ms=150))
    started = time.monotonic()
    assert sandbox_http.get("order/1").status_code == 404
    assert time.monotonic() - started >= 0.15
    slow = make_sandbox(latency_ms=100)
    with httpx.Client(base_url=f"{slow.base_url}/", auth=slow.auth) as client:
        started = time.monotonic()
        assert client.get("order/1").status_code == 404
        assert time.monotonic() - started >= 0.1
        started = time.monotonic()
        assert httpx.get(f"{slow.admin_url}/health").status_code == 200  # admin is not delayed
        assert time.monotonic() - started < 0.1


def test_rules_by_stored_id_hit_only_that_card(
    sandbox: SandboxServer, sandbox_http: httpx.Client
) -> None:
    sandbox.state.faults.add(FaultRule(FaultKind.HTTP_503, Endpoint.EXEC_TRAN, stored_id=5100))
    assert _purchase(sandbox_http, _ready_order(sandbox_http, 5125)).status_code == 200
    assert _purchase(sandbox_http, _ready_order(sandbox_http, 5100)).status_code == 503
    # and on set-src-token, the storedId in the body
    sandbox.state.faults.add(FaultRule(FaultKind.HTTP_502, Endpoint.SET_SRC_TOKEN, stored_id=5159))
    body = sandbox_http.post(
        "order/", json={"order": {"typeRid": "Order_REC", "amount": "1", "currency": "AZN"}}
    ).json()["order"]
    response = sandbox_http.post(
        f"order/{body['id']}/set-src-token",
        params={"password": body["password"]},
        json={"token": {"storedId": 5159}},
    )
    assert response.status_code == 502


def test_faults_through_the_admin_api(
    sandbox: SandboxServer, sandbox_http: httpx.Client, sandbox_admin: httpx.Client
) -> None:
    added = sandbox_admin.post(
        "faults", json={"faults": [{"kind": "http-502", "endpoint": "get-order", "times": 2}]}
    )
    assert added.status_code == 200
    rule_id = added.json()["faults"][0]["id"]
    assert sandbox_http.get("order/1").status_code == 502
    listed = sandbox_admin.get("faults").json()["faults"]
    assert [(r["id"], r["fired"], r["times"]) for r in listed] == [(rule_id, 1, 1)]
    assert sandbox_admin.delete(f"faults/{rule_id}").status_code == 200
    assert sandbox_admin.delete(f"faults/{rule_id}").status_code == 404
    assert sandbox_http.get("order/1").status_code == 404
    sandbox_admin.post("faults", json={"kind": "drop-before"})
    assert sandbox_admin.delete("faults").json() == {"faults": []}
    assert not sandbox.state.faults.active
    bad = sandbox_admin.post("faults", json={"kind": "explode"})
    assert bad.status_code == 400
    assert "explode" in bad.json()["error"]


def test_faults_file_at_startup_with_a_seed(make_sandbox: Any, tmp_path: Any) -> None:
    from worker.sandbox import SandboxState, load_faults

    path = tmp_path / "faults.json"
    path.write_text('{"seed": 3, "faults": [{"kind": "http-503", "probability": 0.5}]}')

    def outcomes() -> list[int]:
        rules, seed = load_faults(path)
        server = make_sandbox(SandboxState(faults=rules, seed=seed))
        with httpx.Client(base_url=f"{server.base_url}/", auth=server.auth) as client:
            return [client.get("order/1").status_code for _ in range(30)]

    first = outcomes()
    assert set(first) == {404, 503}
    assert outcomes() == first  # the same seed, the same faults
