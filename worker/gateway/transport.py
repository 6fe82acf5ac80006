"""The HTTP transport every gateway client shares: httpx with fixed safety settings, a body
read under a size cap and an overall deadline, and a note of whether the request went out.

A gateway's client supplies an :class:`Exchange` subclass with four hooks (how its calls are
encoded, how an answer is interpreted, and which error each failure becomes) and inherits
``send`` from :class:`SyncClient` or :class:`AsyncClient`. Everything that decides *what a
failure means for money* lives in the gateway's own ``errors`` / ``operations`` modules; this
module only decides *when* something failed and whether the request may have been sent.

Connection safety, for every gateway: explicit timeouts (each no longer than what is left of
the deadline), no redirects, no proxies from the environment, TLS verified (with the
gateway's CA bundle or client certificate when it has them), and Basic auth.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar

import httpx
import structlog

from worker import metrics
from worker.sensitive import Secret

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
log = structlog.get_logger("worker.gateway")


class Call(Protocol[T_co]):
    """What the transport needs of a gateway's call description; ``parse`` turns the
    answer into a ``T_co``.
    """

    @property
    def parse(self) -> Callable[..., T_co]: ...

    @property
    def op(self) -> str: ...

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def order_id(self) -> Any: ...


class Settings(Protocol):
    """The connection settings every gateway has (timeouts are seconds)."""

    @property
    def base_url(self) -> str: ...

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> Secret[str]: ...

    @property
    def connect_timeout(self) -> float: ...

    @property
    def read_timeout(self) -> float: ...

    @property
    def deadline(self) -> float: ...

    @property
    def max_connections(self) -> int: ...

    @property
    def max_body_bytes(self) -> int: ...


class DeadlinePassed(Exception):
    """Raised inside a sync read once the overall deadline is gone."""


class SendTracker:
    """An httpcore trace hook that notes when the request starts going out on the wire: a
    failure before that point cannot have reached the gateway.
    """

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False

    def note(self, event: str) -> None:
        if event.endswith("send_request_headers.started"):
            self.sent = True

    def sync_trace(self, event: str, info: dict[str, Any]) -> None:
        self.note(event)

    async def async_trace(self, event: str, info: dict[str, Any]) -> None:
        self.note(event)


def timeout(settings: Settings, remaining: float) -> httpx.Timeout:
    """Each phase's timeout, none longer than ``remaining`` seconds."""
    remaining = max(remaining, 0.001)
    return httpx.Timeout(
        connect=min(settings.connect_timeout, remaining),
        read=min(settings.read_timeout, remaining),
        write=min(settings.read_timeout, remaining),
        pool=min(settings.connect_timeout, remaining),
    )


def client_options(settings: Settings, verify: ssl.SSLContext | bool) -> dict[str, Any]:
    """The keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient`` for a gateway."""
    return {
        "base_url": settings.base_url + "/",
        "auth": httpx.BasicAuth(settings.username, settings.password.reveal()),
        "timeout": timeout(settings, settings.deadline),
        "follow_redirects": False,
        "trust_env": False,
        "verify": verify,
        "limits": httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        "headers": {"Accept": "application/json", "User-Agent": "billing-worker"},
    }


class Exchange:
    """One request's bookkeeping: the send tracker, the body under its size cap and the
    deadline, and how it ended. A gateway overrides the four hooks at the end.
    """

    gateway: ClassVar[str] = ""

    def __init__(self, call: Any, settings: Settings) -> None:
        self.call = call
        self.settings = settings
        self.started = time.monotonic()
        self.deadline = self.started + settings.deadline
        self.tracker = SendTracker()
        self.status: int | None = None
        self.body = bytearray()

    def add(self, chunk: bytes, *, check_deadline: bool) -> None:
        self.body += chunk
        if len(self.body) > self.settings.max_body_bytes:
            raise self.body_too_large(self.settings.max_body_bytes)
        if check_deadline and time.monotonic() > self.deadline:
            raise DeadlinePassed

    def deadline_passed(self) -> Exception:
        self.logged("deadline")
        return self.deadline_error(self.tracker.sent, self.settings.deadline)

    def transport_failed(self, exc: httpx.HTTPError) -> Exception:
        self.logged(type(exc).__name__)
        return self.transport_error(exc, self.tracker.sent)

    def finish(self, response: httpx.Response) -> Any:
        try:
            result = self.interpret(response, bytes(self.body))
        except Exception as exc:
            self.logged(type(exc).__name__)
            raise
        self.logged("ok")
        return result

    def logged(self, outcome: str) -> None:
        took = time.monotonic() - self.started
        metrics.GATEWAY_LATENCY.labels(self.gateway, self.call.op).observe(took)
        # Never the URL: a query may carry a customer's name or e-mail.
        log.debug(
            "gateway_call_completed",
            gateway=self.gateway,
            op=self.call.op,
            order_id=self.call.order_id,
            http_status=self.status,
            outcome=outcome,
            duration_ms=round(took * 1000, 2),
        )

    # -- the gateway's hooks -------------------------------------------------------------

    def request_options(self) -> dict[str, Any]:
        """``params``, ``content``, ``headers``... of ``httpx.Client.build_request``."""
        raise NotImplementedError

    def interpret(self, response: httpx.Response, body: bytes) -> Any:
        """The parsed answer, or raise the gateway's error for it."""
        raise NotImplementedError

    def deadline_error(self, sent: bool, seconds: float) -> Exception:
        raise NotImplementedError

    def transport_error(self, exc: httpx.HTTPError, sent: bool) -> Exception:
        raise NotImplementedError

    def body_too_large(self, limit: int) -> Exception:
        raise NotImplementedError


class SyncClient:
    """The synchronous half: ``send(call)``, ``close`` and the context manager. Thread-safe;
    one per process is enough.
    """

    exchange: ClassVar[type[Exchange]]

    def __init__(
        self,
        settings: Settings,
        verify: ssl.SSLContext | bool,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(transport=transport, **client_options(settings, verify))
        self._transport_settings = settings

    def send(self, call: Call[T]) -> T:
        """Send ``call``; return its parsed answer or raise a ``worker.errors`` error."""
        settings = self._transport_settings
        ex = self.exchange(call, settings)
        request = self._http.build_request(
            call.method,
            call.path,
            timeout=timeout(settings, settings.deadline),
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
        except DeadlinePassed:
            raise ex.deadline_passed() from None
        except httpx.HTTPError as exc:
            raise ex.transport_failed(exc) from exc
        result: T = ex.finish(response)
        return result

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


class AsyncClient:
    """The asynchronous half, with the same ``send`` (bounded by ``asyncio.timeout``)."""

    exchange: ClassVar[type[Exchange]]

    def __init__(
        self,
        settings: Settings,
        verify: ssl.SSLContext | bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(transport=transport, **client_options(settings, verify))
        self._transport_settings = settings

    async def send(self, call: Call[T]) -> T:
        """Send ``call``; return its parsed answer or raise a ``worker.errors`` error."""
        settings = self._transport_settings
        ex = self.exchange(call, settings)
        request = self._http.build_request(
            call.method,
            call.path,
            extensions={"trace": ex.tracker.async_trace},
            **ex.request_options(),
        )
        try:
            async with asyncio.timeout(settings.deadline):
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
