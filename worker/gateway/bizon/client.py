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

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Generic, TypeVar
from urllib.parse import urljoin

import httpx

from worker.errors import MalformedResponse
from worker.gateway import transport
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


class _Exchange(transport.Exchange):
    """Bizon's side of a request: the answer (with its headers and URL, for pagination)
    and each failure mapped in ``errors`` / ``operations`` (one place for both clients).
    Never the URL in a log: a listing's query may carry a customer's name or e-mail.
    """

    gateway = GATEWAY
    call: ops.Call[Any]

    def request_options(self) -> dict[str, Any]:
        call = self.call
        return {
            "content": call.content(),
            "headers": {"Content-Type": "application/json"} if call.body is not None else None,
        }

    def interpret(self, response: httpx.Response, body: bytes) -> Any:
        return ops.interpret(
            self.call, response.status_code, response.headers, str(response.request.url), body
        )

    def deadline_error(self, sent: bool, seconds: float) -> Exception:
        return errors.deadline_error(self.call.op, sent, seconds)

    def transport_error(self, exc: httpx.HTTPError, sent: bool) -> Exception:
        return errors.transport_error(self.call.op, exc, sent)

    def body_too_large(self, limit: int) -> Exception:
        return ops.body_too_large(self.call, self.status or 0, limit)


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


class BizonClient(transport.SyncClient):
    """Synchronous Bizon client. Thread-safe; one per process is enough."""

    exchange = _Exchange

    def __init__(
        self, settings: BizonSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        super().__init__(settings, settings.ssl_context(), transport)

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


class AsyncBizonClient(transport.AsyncClient):
    """Asynchronous Bizon client with the same calls as :class:`BizonClient`."""

    exchange = _Exchange

    def __init__(
        self, settings: BizonSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        super().__init__(settings, settings.ssl_context(), transport)

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
