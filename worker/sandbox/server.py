"""Running the sandbox: in a background thread (tests, the demo) or in the foreground (CLI).

::

    with SandboxServer() as sandbox:            # a free loopback port, demo cards
        httpx.post(f"{sandbox.base_url}/order/", auth=sandbox.auth, json=...)
        sandbox.state.ledger.entries()          # money moved, read in-process
        sandbox.state.top_up(5159, Money(1000, "AZN"))
        sandbox.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN))

The thread owns its own event loop, so the caller may be synchronous or run another loop.
``state`` is shared with that thread; all its methods lock, and reads return copies.

:class:`ThreadedServer` is the runner both sandboxes share; :class:`SandboxServer` serves
TXPG's app, ``worker.sandbox.bizon.BizonServer`` the Bizon one.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from aiohttp import web

from worker.sandbox.app import create_app
from worker.sandbox.config import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.sandbox.core import SandboxCore
from worker.sandbox.engine import SandboxState

S = TypeVar("S", bound=SandboxCore)

#: Seconds aiohttp waits for calls in flight when it stops (a slow-body fault may be one).
SHUTDOWN_TIMEOUT = 2.0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: a free port); returns the runner and the real port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    address = runner.addresses[0]
    return runner, int(address[1])


async def serve_forever(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    *,
    api_path: str = "/api",
) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly. ``on_ready`` gets the base URL
    (the origin and ``api_path``: TXPG's calls are under ``/api``, Bizon's at the root)."""
    runner, real_port = await start_site(app, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        on_ready(f"http://{_url_host(host)}:{real_port}{api_path}")
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()


class Endpoints:
    """The URLs and login of a running sandbox, from its ``origin`` (``http://host:port``)."""

    username: str
    password: str
    #: where the gateway's calls are: TXPG's under ``/api``, Bizon's at the root
    api_path: ClassVar[str] = "/api"

    @property
    def origin(self) -> str:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """What a gateway client is configured with."""
        return f"{self.origin}{self.api_path}"

    @property
    def admin_url(self) -> str:
        return f"{self.origin}/_admin"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)


class ThreadedServer(Endpoints, Generic[S]):
    """A sandbox app on a loopback port in a background thread; a context manager.

    Attributes once started: ``base_url``, ``admin_url``, ``port``, ``state``,
    ``username``/``password`` and ``auth``.
    """

    thread_name: ClassVar[str] = "sandbox"

    def __init__(
        self,
        app: web.Application,
        state: S,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str,
        password: str,
    ) -> None:
        self.state = state
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    @property
    def origin(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("the sandbox is already started")
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the sandbox did not start in time")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("the sandbox could not start") from self._error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        self._thread = None
        self.state.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        runner = None
        try:
            runner, self.port = loop.run_until_complete(start_site(self._app, self.host, self.port))
        except BaseException as exc:  # reported to start() in the caller's thread
            self._error = exc
        self._ready.set()
        try:
            if runner is not None:
                loop.run_forever()
                loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


class SandboxServer(ThreadedServer[SandboxState]):
    """The TXPG sandbox on a loopback port in a background thread; a context manager.

    Attributes once started: ``base_url`` (``http://127.0.0.1:PORT/api``, what a TXPG client
    is configured with), ``admin_url``, ``port``, ``state`` (the
    :class:`~worker.sandbox.engine.SandboxState`), ``username``/``password`` and ``auth``.
    """

    thread_name = "txpg-sandbox"

    def __init__(
        self,
        state: SandboxState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        latency_ms: int = 0,
        log_requests: bool = False,
    ) -> None:
        state = state if state is not None else SandboxState()
        app = create_app(
            state,
            username=username,
            password=password,
            latency_ms=latency_ms,
            log_requests=log_requests,
        )
        super().__init__(app, state, host=host, port=port, username=username, password=password)
