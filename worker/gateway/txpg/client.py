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

import asyncio
import ssl
import time
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import structlog

from worker import metrics
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

T = TypeVar("T")
log = structlog.get_logger("worker.gateway.txpg")


class _DeadlinePassed(Exception):
    pass


def _verify(settings: TxpgSettings) -> ssl.SSLContext | bool:
    if settings.ca_bundle:
        return ssl.create_default_context(cafile=settings.ca_bundle)
    return True


def _timeout(settings: TxpgSettings, remaining: float) -> httpx.Timeout:
    remaining = max(remaining, 0.001)
    return httpx.Timeout(
        connect=min(settings.connect_timeout, remaining),
        read=min(settings.read_timeout, remaining),
        write=min(settings.read_timeout, remaining),
        pool=min(settings.connect_timeout, remaining),
    )


def _client_options(settings: TxpgSettings) -> dict[str, Any]:
    return {
        "base_url": settings.base_url + "/",
        "auth": httpx.BasicAuth(settings.username, settings.password.reveal()),
        "timeout": _timeout(settings, settings.deadline),
        "follow_redirects": False,
        "trust_env": False,
        "verify": _verify(settings),
        "limits": httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        "headers": {"Accept": "application/json", "User-Agent": "billing-worker"},
    }


def _logged(call: ops.Call[Any], started: float, outcome: str, status: int | None) -> None:
    metrics.GATEWAY_LATENCY.labels("txpg", call.op).observe(time.monotonic() - started)
    log.debug(
        "gateway_call_completed",
        gateway="txpg",
        op=call.op,
        order_id=call.order_id,
        http_status=status,
        outcome=outcome,
        duration_ms=round((time.monotonic() - started) * 1000, 2),
    )


class TxpgClient:
    """Synchronous TXPG client. Thread-safe; one per process is enough."""

    def __init__(
        self, settings: TxpgSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._http = httpx.Client(transport=transport, **_client_options(settings))

    def send(self, call: ops.Call[T]) -> T:
        """Send ``call``; return its parsed answer or raise a ``worker.errors`` error."""
        settings = self.settings
        started = time.monotonic()
        deadline = started + settings.deadline
        tracker = ops.SendTracker()
        status: int | None = None
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params(),
            content=call.content(),
            headers={"Content-Type": "application/json"} if call.body is not None else None,
            timeout=_timeout(settings, settings.deadline),
            extensions={"trace": tracker.sync_trace},
        )
        try:
            response = self._http.send(request, stream=True)
            status = response.status_code
            try:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > settings.max_body_bytes:
                        raise ops.body_too_large(call, status, settings.max_body_bytes)
                    if time.monotonic() > deadline:
                        raise _DeadlinePassed
            finally:
                response.close()
        except _DeadlinePassed:
            _logged(call, started, "deadline", status)
            raise ops.deadline_error(call, tracker.sent, settings.deadline) from None
        except httpx.HTTPError as exc:
            _logged(call, started, type(exc).__name__, status)
            raise ops.transport_error(call, exc, tracker.sent) from exc
        try:
            result = ops.interpret(
                call, response.status_code, response.headers.get("content-type"), bytes(body)
            )
        except Exception as exc:
            _logged(call, started, type(exc).__name__, status)
            raise
        _logged(call, started, "ok", status)
        return result

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

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncTxpgClient:
    """Asynchronous TXPG client with the same calls as :class:`TxpgClient`."""

    def __init__(
        self, settings: TxpgSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(transport=transport, **_client_options(settings))

    async def send(self, call: ops.Call[T]) -> T:
        """Send ``call``; return its parsed answer or raise a ``worker.errors`` error."""
        settings = self.settings
        started = time.monotonic()
        tracker = ops.SendTracker()
        status: int | None = None
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params(),
            content=call.content(),
            headers={"Content-Type": "application/json"} if call.body is not None else None,
            extensions={"trace": tracker.async_trace},
        )
        try:
            async with asyncio.timeout(settings.deadline):
                response = await self._http.send(request, stream=True)
                status = response.status_code
                try:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > settings.max_body_bytes:
                            raise ops.body_too_large(call, status, settings.max_body_bytes)
                finally:
                    await response.aclose()
        except TimeoutError:
            _logged(call, started, "deadline", status)
            raise ops.deadline_error(call, tracker.sent, settings.deadline) from None
        except httpx.HTTPError as exc:
            _logged(call, started, type(exc).__name__, status)
            raise ops.transport_error(call, exc, tracker.sent) from exc
        try:
            result = ops.interpret(
                call, response.status_code, response.headers.get("content-type"), bytes(body)
            )
        except Exception as exc:
            _logged(call, started, type(exc).__name__, status)
            raise
        _logged(call, started, "ok", status)
        return result

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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
