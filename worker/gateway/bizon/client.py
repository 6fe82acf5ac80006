"""Bizon clients over httpx: :class:`BizonClient` (sync) and :class:`AsyncBizonClient`.

Both are thin: they send the :class:`~worker.gateway.bizon.operations.Call` the core builds,
read the body under a size cap and an overall deadline, and hand it back to the core to
interpret. Connection safety is fixed here: Basic auth, explicit timeouts, no redirects, no
proxies from the environment, TLS verified (optionally against a CA bundle, optionally with a
client certificate for mutual TLS).

    client = BizonClient(BizonSettings.from_env())
    first = client.authorize(Authorize(parse_amount("9.99", "USD"), Pan.parse(number)))
    again = client.rebill(first.id, Rebill(parse_amount("9.99", "USD")))  # a new order
    for order in client.list_orders(OrderFilter(status=(OrderStatus.CHARGED,))):
        ...
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import urljoin

import httpx
import structlog

from worker import metrics
from worker.errors import MalformedResponse
from worker.gateway.bizon import errors
from worker.gateway.bizon import operations as ops
from worker.gateway.bizon.errors import GATEWAY
from worker.gateway.bizon.models import (
    Authorize,
    CreatedOrder,
    CreateOrder,
    Credit,
    ExchangeRate,
    Expand,
    Operation,
    OperationFilter,
    Order,
    OrderFilter,
    Page,
    Pan,
    Pong,
    Rebill,
)
from worker.gateway.bizon.settings import BizonSettings
from worker.money import Money
from worker.sensitive import Secret

T = TypeVar("T")
log = structlog.get_logger("worker.gateway.bizon")


class _DeadlinePassed(Exception):
    pass


def _timeout(settings: BizonSettings, remaining: float) -> httpx.Timeout:
    remaining = max(remaining, 0.001)
    return httpx.Timeout(
        connect=min(settings.connect_timeout, remaining),
        read=min(settings.read_timeout, remaining),
        write=min(settings.read_timeout, remaining),
        pool=min(settings.connect_timeout, remaining),
    )


def _client_options(settings: BizonSettings) -> dict[str, Any]:
    return {
        "base_url": settings.base_url + "/",
        "auth": httpx.BasicAuth(settings.username, settings.password.reveal()),
        "timeout": _timeout(settings, settings.deadline),
        "follow_redirects": False,
        "trust_env": False,
        "verify": settings.ssl_context(),
        "limits": httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        "headers": {"Accept": "application/json", "User-Agent": "billing-worker"},
    }


def _logged(call: ops.Call[Any], started: float, outcome: str, status: int | None) -> None:
    endpoint = call.op
    metrics.GATEWAY_LATENCY.labels(GATEWAY, endpoint).observe(time.monotonic() - started)
    # Never the URL: a listing's query may carry a customer's name or e-mail.
    log.debug(
        "gateway_call_completed",
        gateway=GATEWAY,
        op=endpoint,
        order_id=call.order_id,
        http_status=status,
        outcome=outcome,
        duration_ms=round((time.monotonic() - started) * 1000, 2),
    )


class _Exchange:
    """One request's bookkeeping, shared by both clients: the send tracker, the body under
    its size cap and deadline, and how it ended (mapped in ``errors``, for both).
    """

    def __init__(self, call: ops.Call[Any], settings: BizonSettings) -> None:
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
        return errors.deadline_error(self.call.op, self.tracker.sent, self.settings.deadline)

    def transport_failed(self, exc: httpx.HTTPError) -> Exception:
        _logged(self.call, self.started, type(exc).__name__, self.status)
        return errors.transport_error(self.call.op, exc, self.tracker.sent)

    def finish(self, response: httpx.Response) -> Any:
        try:
            result = ops.interpret(
                self.call,
                response.status_code,
                response.headers,
                str(response.request.url),
                bytes(self.body),
            )
        except Exception as exc:
            _logged(self.call, self.started, type(exc).__name__, self.status)
            raise
        _logged(self.call, self.started, "ok", self.status)
        return result


class _Pages(Generic[T]):
    """The walk over a listing's pages: at most ``max_pages``, never the same URL twice."""

    def __init__(self, call: ops.Call[Page[T]], settings: BizonSettings) -> None:
        self.call: ops.Call[Page[T]] | None = call
        self.settings = settings
        self.seen = {urljoin(settings.base_url + "/", call.path)}

    def advance(self, page: Page[T]) -> None:
        assert self.call is not None
        url = page.next_url
        if url is None:
            self.call = None
            return
        if url in self.seen or len(self.seen) >= self.settings.max_pages:
            raise MalformedResponse(
                f"{self.call.op}: pagination does not end (a loop, or over "
                f"{self.settings.max_pages} pages)",
                gateway=GATEWAY,
            )
        self.seen.add(url)
        self.call = ops.next_page(self.call, url, self.settings.base_url)


class BizonClient:
    """Synchronous Bizon client. Thread-safe; one per process is enough."""

    def __init__(
        self, settings: BizonSettings, *, transport: httpx.BaseTransport | None = None
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

    def _walk(self, call: ops.Call[Page[T]]) -> Iterator[T]:
        pages = _Pages(call, self.settings)
        while pages.call is not None:
            page = self.send(pages.call)
            yield from page.items
            pages.advance(page)

    # One line each: the logic lives in ``operations``.
    def ping(self) -> Pong:
        return self.send(ops.ping())

    def get_order(self, order_id: str, expand: Iterable[Expand] = ()) -> Order:
        return self.send(ops.get_order(order_id, expand))

    def list_orders(self, flt: OrderFilter | None = None) -> Iterator[Order]:
        """Every order the filter matches, page after page (lazily)."""
        return self._walk(ops.list_orders(flt))

    def list_operations(self, flt: OperationFilter | None = None) -> Iterator[Operation]:
        return self._walk(ops.list_operations(flt))

    def exchange_rates(self) -> tuple[ExchangeRate, ...]:
        return self.send(ops.exchange_rates())

    def create_order(self, request: CreateOrder) -> CreatedOrder:
        return self.send(ops.create_order(request))

    def authorize(self, request: Authorize) -> Order:
        return self.send(ops.authorize(request))

    def charge(self, order_id: str, amount: Money | None = None) -> Order:
        return self.send(ops.charge(order_id, amount))

    def refund(self, order_id: str, amount: Money | None = None) -> Order:
        return self.send(ops.refund(order_id, amount))

    def reverse(self, order_id: str) -> Order:
        return self.send(ops.reverse(order_id))

    def cancel(self, order_id: str, amount: Money | None = None) -> Order:
        return self.send(ops.cancel(order_id, amount))

    def rebill(self, order_id: str, request: Rebill) -> Order:
        return self.send(ops.rebill(order_id, request))

    def credit(self, order_id: str, request: Credit) -> Order:
        return self.send(ops.credit(order_id, request))

    def credit_pan(self, pan: Pan, request: Credit) -> Order:
        return self.send(ops.credit_pan(pan, request))

    def complete(self, order_id: str, pares: Secret[str]) -> Order:
        return self.send(ops.complete(order_id, pares))

    def complete3d20(self, order_id: str, cres: Secret[str]) -> Order:
        return self.send(ops.complete3d20(order_id, cres))

    def resume(self, order_id: str) -> Order:
        return self.send(ops.resume(order_id))

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


class AsyncBizonClient:
    """Asynchronous Bizon client with the same calls as :class:`BizonClient`."""

    def __init__(
        self, settings: BizonSettings, *, transport: httpx.AsyncBaseTransport | None = None
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

    async def _walk(self, call: ops.Call[Page[T]]) -> AsyncIterator[T]:
        pages = _Pages(call, self.settings)
        while pages.call is not None:
            page = await self.send(pages.call)
            for item in page.items:
                yield item
            pages.advance(page)

    async def ping(self) -> Pong:
        return await self.send(ops.ping())

    async def get_order(self, order_id: str, expand: Iterable[Expand] = ()) -> Order:
        return await self.send(ops.get_order(order_id, expand))

    def list_orders(self, flt: OrderFilter | None = None) -> AsyncIterator[Order]:
        return self._walk(ops.list_orders(flt))

    def list_operations(self, flt: OperationFilter | None = None) -> AsyncIterator[Operation]:
        return self._walk(ops.list_operations(flt))

    async def exchange_rates(self) -> tuple[ExchangeRate, ...]:
        return await self.send(ops.exchange_rates())

    async def create_order(self, request: CreateOrder) -> CreatedOrder:
        return await self.send(ops.create_order(request))

    async def authorize(self, request: Authorize) -> Order:
        return await self.send(ops.authorize(request))

    async def charge(self, order_id: str, amount: Money | None = None) -> Order:
        return await self.send(ops.charge(order_id, amount))

    async def refund(self, order_id: str, amount: Money | None = None) -> Order:
        return await self.send(ops.refund(order_id, amount))

    async def reverse(self, order_id: str) -> Order:
        return await self.send(ops.reverse(order_id))

    async def cancel(self, order_id: str, amount: Money | None = None) -> Order:
        return await self.send(ops.cancel(order_id, amount))

    async def rebill(self, order_id: str, request: Rebill) -> Order:
        return await self.send(ops.rebill(order_id, request))

    async def credit(self, order_id: str, request: Credit) -> Order:
        return await self.send(ops.credit(order_id, request))

    async def credit_pan(self, pan: Pan, request: Credit) -> Order:
        return await self.send(ops.credit_pan(pan, request))

    async def complete(self, order_id: str, pares: Secret[str]) -> Order:
        return await self.send(ops.complete(order_id, pares))

    async def complete3d20(self, order_id: str, cres: Secret[str]) -> Order:
        return await self.send(ops.complete3d20(order_id, cres))

    async def resume(self, order_id: str) -> Order:
        return await self.send(ops.resume(order_id))

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
