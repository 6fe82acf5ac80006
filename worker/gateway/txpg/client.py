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


class _Exchange:
    """One request's bookkeeping, shared by both clients: the send tracker, the body under
    its size cap and deadline, and the mapping of how it ended (one place for both).
    """

    def __init__(self, call: ops.Call[Any], settings: TxpgSettings) -> None:
        self.call = call
        self.settings = settings
        self.started = time.monotonic()
        self.deadline = self.started + settings.deadline
        self.tracker = ops.SendTracker()
        self.status: int | None = None
        self.body = bytearray()

    def request_options(self) -> dict[str, Any]:
        call = self.call
        return {
            "params": call.params(),
            "content": call.content(),
            "headers": {"Content-Type": "application/json"} if call.body is not None else None,
        }

    def add(self, chunk: bytes, *, check_deadline: bool) -> None:
        self.body += chunk
        if len(self.body) > self.settings.max_body_bytes:
            raise ops.body_too_large(self.call, self.status or 0, self.settings.max_body_bytes)
        if check_deadline and time.monotonic() > self.deadline:
            raise _DeadlinePassed

    def deadline_passed(self) -> Exception:
        _logged(self.call, self.started, "deadline", self.status)
        return ops.deadline_error(self.call, self.tracker.sent, self.settings.deadline)

    def transport_failed(self, exc: httpx.HTTPError) -> Exception:
        _logged(self.call, self.started, type(exc).__name__, self.status)
        return ops.transport_error(self.call, exc, self.tracker.sent)

    def finish(self, response: httpx.Response) -> Any:
        try:
            result = ops.interpret(
                self.call,
                response.status_code,
                response.headers.get("content-type"),
                bytes(self.body),
            )
        except Exception as exc:
            _logged(self.call, self.started, type(exc).__name__, self.status)
            raise
        _logged(self.call, self.started, "ok", self.status)
        return result


class TxpgClient:
    """Synchronous TXPG client. Thread-safe; one per process is enough."""

    def __init__(
        self, settings: TxpgSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._http = httpx.Client(transport=transport, **_client_options(settings))

    def send(self, call: ops.Call[T]) -> T:
        """Send ``call``; return its parsed answer or raise a ``worker.errors`` error."""
        ex = _Exchange(call, self.settings)
        request = self._http.build_request(
            call.method,
            call.path,
            timeout=_timeout(self.settings, self.settings.deadline),
            extensions={"trace": ex.tracker.sync_trace},
            **ex.request_options(),
        )
        try:
            response = self._http.send(request, stream=True)
            ex.status = response.status_code
            try:
                for chunk in response.iter_bytes():
                    ex.add(chunk, check_deadline=True)
            finally:
                response.close()
        except _DeadlinePassed:
            raise ex.deadline_passed() from None
        except httpx.HTTPError as exc:
            raise ex.transport_failed(exc) from exc
        result: T = ex.finish(response)
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
        ex = _Exchange(call, self.settings)
        request = self._http.build_request(
            call.method,
            call.path,
            extensions={"trace": ex.tracker.async_trace},
            **ex.request_options(),
        )
        try:
            async with asyncio.timeout(self.settings.deadline):
                response = await self._http.send(request, stream=True)
                ex.status = response.status_code
                try:
                    async for chunk in response.aiter_bytes():
                        ex.add(chunk, check_deadline=False)  # asyncio.timeout bounds it
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ex.deadline_passed() from None
        except httpx.HTTPError as exc:
            raise ex.transport_failed(exc) from exc
        result: T = ex.finish(response)
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
