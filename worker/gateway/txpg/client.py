"""TXPG clients over httpx: :class:`TxpgClient` (sync) and :class:`AsyncTxpgClient`.

Both are thin: they send the :class:`~worker.gateway.txpg.operations.Call` the core builds,
read the body under a size cap and an overall deadline, and hand it back to the core to
interpret. Connection safety is fixed here: explicit timeouts, no redirects, no proxies from
the environment, TLS verified (optionally against a given CA bundle).

    client = TxpgClient(TxpgSettings.from_env())
    order = client.create_order(OrderRequest(OrderType.RECURRING, parse_amount("9.99", "AZN")))
    client.set_src_token(order.ref, StoredCard(5125))
    result = client.exec_tran(order.ref, TranRequest.purchase(order_amount))
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from worker.gateway import transport
from worker.gateway.txpg import operations as ops
from worker.gateway.txpg.models import (
    CreatedOrder,
    DestinationToken,
    OrderInfo,
    OrderRef,
    OrderRequest,
    SourceToken,
    TokenResult,
    TranRequest,
    TranResult,
)
from worker.settings import TxpgSettings


def _verify(settings: TxpgSettings) -> ssl.SSLContext | bool:
    if settings.ca_bundle:
        return ssl.create_default_context(cafile=settings.ca_bundle)
    return True


class _Exchange(transport.Exchange):
    """TXPG's side of a request: the order password in the query, the answer and each
    failure mapped in ``operations`` (one place for both clients).
    """

    gateway = "txpg"
    call: ops.Call[Any]

    def request_options(self) -> dict[str, Any]:
        call = self.call
        return {
            "params": call.params(),
            "content": call.content(),
            "headers": {"Content-Type": "application/json"} if call.body is not None else None,
        }

    def interpret(self, response: httpx.Response, body: bytes) -> Any:
        return ops.interpret(
            self.call, response.status_code, response.headers.get("content-type"), body
        )

    def deadline_error(self, sent: bool, seconds: float) -> Exception:
        return ops.deadline_error(self.call, sent, seconds)

    def transport_error(self, exc: httpx.HTTPError, sent: bool) -> Exception:
        return ops.transport_error(self.call, exc, sent)

    def body_too_large(self, limit: int) -> Exception:
        return ops.body_too_large(self.call, self.status or 0, limit)


class TxpgClient(transport.SyncClient):
    """Synchronous TXPG client. Thread-safe; one per process is enough."""

    exchange = _Exchange

    def __init__(
        self, settings: TxpgSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        super().__init__(settings, _verify(settings), transport)

    # One line each: the logic lives in ``operations``.
    def create_order(self, request: OrderRequest) -> CreatedOrder:
        return self.send(ops.create_order(request))

    def set_src_token(self, order: OrderRef, token: SourceToken) -> TokenResult:
        return self.send(ops.set_src_token(order, token))

    def set_dst_token(self, order: OrderRef, token: DestinationToken) -> TokenResult:
        return self.send(ops.set_dst_token(order, token))

    def exec_tran(self, order: OrderRef, tran: TranRequest) -> TranResult:
        return self.send(ops.exec_tran(order, tran))

    def get_order(self, order_id: int, *, detailed: bool = False) -> OrderInfo:
        return self.send(ops.get_order(order_id, detailed=detailed))


class AsyncTxpgClient(transport.AsyncClient):
    """Asynchronous TXPG client with the same calls as :class:`TxpgClient`."""

    exchange = _Exchange

    def __init__(
        self, settings: TxpgSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        super().__init__(settings, _verify(settings), transport)

    async def create_order(self, request: OrderRequest) -> CreatedOrder:
        return await self.send(ops.create_order(request))

    async def set_src_token(self, order: OrderRef, token: SourceToken) -> TokenResult:
        return await self.send(ops.set_src_token(order, token))

    async def set_dst_token(self, order: OrderRef, token: DestinationToken) -> TokenResult:
        return await self.send(ops.set_dst_token(order, token))

    async def exec_tran(self, order: OrderRef, tran: TranRequest) -> TranResult:
        return await self.send(ops.exec_tran(order, tran))

    async def get_order(self, order_id: int, *, detailed: bool = False) -> OrderInfo:
        return await self.send(ops.get_order(order_id, detailed=detailed))
