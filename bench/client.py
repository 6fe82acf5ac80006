"""CPU cost of the TXPG client per request, in microseconds, with a same-run baseline.

The gateway is replaced by httpx's in-memory MockTransport returning the reference's own
example bodies, so what is measured is the client alone: building the request, the httpx
machinery, the streaming read with its size cap and deadline, strict JSON and the typed
parse. The baseline, measured in the same run, is a bare ``httpx.Client`` doing the same
requests through the same transport and a plain ``json.loads``: the floor any httpx-based
client pays. CPU time is process time, so other load on the machine does not inflate it.

    .venv/bin/python bench/client.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from worker import logs
from worker.gateway.txpg import operations as ops
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.models import OrderRef, OrderRequest, OrderType, StoredCard, TranRequest
from worker.money import parse_amount
from worker.sensitive import Secret
from worker.settings import TxpgSettings

CREATED = {
    "order": {
        "id": 4600,
        "hppUrl": "https://txpgtst.kapitalbank.az/flex",
        "password": "z3fc5v4n5ey7",
        "status": "Preparing",
        "cvv2AuthStatus": "IneligibleOrder",
    }
}
TOKEN = {
    "order": {
        "status": "Preparing",
        "cvv2AuthStatus": "IneligibleOrder",
        "srcToken": {
            "id": 4101,
            "paymentMethod": "Card",
            "role": "Src",
            "status": "Active",
            "regTime": "2024-04-22 16:49:20",
            "displayName": "416974******1778",
            "card": {"expiration": "1126", "brand": "Visa"},
        },
    }
}
TRAN = {
    "tran": {
        "approvalCode": "053703",
        "match": {"tranActionId": "240422-13060545-000oed=", "ridByPmo": "17302955"},
        "pmoResultCode": "1",
    }
}
BODIES = {"order/": CREATED, "set-src-token": TOKEN, "exec-tran": TRAN}


def _handler(request: httpx.Request) -> httpx.Response:
    body = next(v for k, v in BODIES.items() if request.url.path.endswith(k))
    return httpx.Response(
        200, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def measure(label: str, n: int, step: Callable[[], Any]) -> float:
    for _ in range(min(500, n)):  # warm up
        step()
    cpu0 = time.process_time()
    for _ in range(n):
        step()
    per_call = (time.process_time() - cpu0) / n * 1e6
    print(f"  {label:<44} {per_call:8.1f} µs CPU / request")
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000, help="requests per measurement")
    n = parser.parse_args().requests
    logs.configure("WARNING")

    transport = httpx.MockTransport(_handler)
    amount = parse_amount("9.99", "AZN")
    ref = OrderRef(4600, Secret("z3fc5v4n5ey7"))
    order_req = OrderRequest(OrderType.RECURRING, amount, "bench")
    print(f"TXPG client CPU cost, {n} requests each (in-memory transport, reference bodies)")

    with httpx.Client(transport=transport, base_url="http://127.0.0.1:1/api/") as bare:

        def bare_step() -> None:
            response = bare.post(
                "order/4600/exec-tran",
                params={"password": "z3fc5v4n5ey7"},
                content=b'{"tran":{"phase":"Single","amount":"9.99"}}',
            )
            json.loads(response.content)

        baseline = measure("baseline: bare httpx.Client + json.loads", n, bare_step)

    with TxpgClient(TxpgSettings(), transport=transport) as client:
        create = measure("create_order (Order_REC)", n, lambda: client.create_order(order_req))
        token = measure(
            "set_src_token (storedId)", n, lambda: client.set_src_token(ref, StoredCard(5125))
        )
        execute = measure(
            "exec_tran (Single, UnspecifiedMit)",
            n,
            lambda: client.exec_tran(ref, TranRequest.purchase(amount)),
        )
        build = measure(
            "request building only (no I/O)",
            n,
            lambda: ops.exec_tran(ref, TranRequest.purchase(amount)).content(),
        )
    chain = create + token + execute
    print(f"  {'recurring chain, 3 requests':<44} {chain:8.1f} µs CPU / charge")
    print(f"  {'client over baseline, per request':<44} {chain / 3 / baseline:8.2f} x")
    print(f"  (request building alone: {build:.1f} µs)")


if __name__ == "__main__":
    main()
