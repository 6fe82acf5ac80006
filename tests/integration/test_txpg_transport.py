"""Transport failures over real loopback sockets, split by whether the request may have
reached the gateway: "not sent" may be retried as is, "outcome unknown" must be reconciled.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from worker import errors as base
from worker.gateway.txpg.client import AsyncTxpgClient, TxpgClient
from worker.gateway.txpg.models import OrderRef, TranRequest
from worker.money import parse_amount
from worker.sensitive import Secret
from worker.settings import TxpgSettings

REF = OrderRef(7, Secret("pw7secretpass"))
TRAN = TranRequest.purchase(parse_amount("9.99", "AZN"))
Behaviour = Callable[[socket.socket], None]


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return data


class RawServer:
    """A loopback TCP server that misbehaves on purpose, one behaviour per connection."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.release = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            self.behaviour(conn)

    def close(self) -> None:
        self.release.set()
        self.sock.close()
        for thread in self._threads:
            thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], RawServer]]:
    servers: list[RawServer] = []

    def start(behaviour: Behaviour) -> RawServer:
        server = RawServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _settings(url: str, **overrides: float) -> TxpgSettings:
    options = {"connect_timeout": 0.5, "read_timeout": 0.5, "deadline": 2.0, **overrides}
    return TxpgSettings(base_url=url, **options)  # type: ignore[arg-type]


def _exec(settings: TxpgSettings) -> None:
    with TxpgClient(settings) as client:
        client.exec_tran(REF, TRAN)


def test_connection_refused_is_not_sent() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(base.RequestNotSent, match="request not sent") as caught:
        _exec(_settings(f"http://127.0.0.1:{port}/api"))
    assert caught.value.should_retry


def test_reset_after_the_request_was_read_is_unknown(
    serve: Callable[[Behaviour], RawServer],
) -> None:
    def close_after_reading(conn: socket.socket) -> None:
        _read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    server = serve(close_after_reading)
    with pytest.raises(base.OutcomeUnknown, match="no complete answer") as caught:
        _exec(_settings(server.url))
    assert not caught.value.should_retry


def test_read_timeout_after_sending_is_unknown(serve: Callable[[Behaviour], RawServer]) -> None:
    def never_answer(conn: socket.socket) -> None:
        _read_request(conn)
        server.release.wait(10)

    server = serve(never_answer)
    with pytest.raises(base.OutcomeUnknown, match="ReadTimeout"):
        _exec(_settings(server.url, read_timeout=0.3))


def test_truncated_body_is_unknown(serve: Callable[[Behaviour], RawServer]) -> None:
    def half_a_body(conn: socket.socket) -> None:
        _read_request(conn)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n"
        conn.sendall(head + b'{"tran":')

    server = serve(half_a_body)
    with pytest.raises(base.OutcomeUnknown, match="RemoteProtocolError"):
        _exec(_settings(server.url))


def test_a_slow_body_hits_the_overall_deadline(serve: Callable[[Behaviour], RawServer]) -> None:
    def trickle(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n"
        )
        for _ in range(400):
            if server.release.wait(0.05):
                return
            conn.sendall(b" ")

    server = serve(trickle)
    started = time.monotonic()
    with pytest.raises(base.OutcomeUnknown, match=r"deadline of 0\.6s passed"):
        _exec(_settings(server.url, connect_timeout=0.3, read_timeout=0.5, deadline=0.6))
    assert time.monotonic() - started < 2.0, "the deadline bounds the whole request"


@pytest.mark.anyio
async def test_async_deadline_and_reset(serve: Callable[[Behaviour], RawServer]) -> None:
    def never_answer(conn: socket.socket) -> None:
        _read_request(conn)
        server.release.wait(10)

    server = serve(never_answer)
    async with AsyncTxpgClient(
        _settings(server.url, connect_timeout=0.2, read_timeout=5.0, deadline=0.4)
    ) as client:
        with pytest.raises(base.OutcomeUnknown, match="deadline"):
            await client.exec_tran(REF, TRAN)
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    async with AsyncTxpgClient(_settings(f"http://127.0.0.1:{port}/api")) as client:
        with pytest.raises(base.RequestNotSent):
            await client.exec_tran(REF, TRAN)


def test_pool_exhaustion_is_not_sent(serve: Callable[[Behaviour], RawServer]) -> None:
    arrived = threading.Event()

    def hold(conn: socket.socket) -> None:
        _read_request(conn)
        arrived.set()
        server.release.wait(10)

    server = serve(hold)
    settings = TxpgSettings(
        base_url=server.url, connect_timeout=0.2, read_timeout=5, deadline=5, max_connections=1
    )
    errors: list[Exception] = []
    with TxpgClient(settings) as client:

        def first() -> None:
            try:
                client.exec_tran(REF, TRAN)
            except Exception as exc:  # collected and checked below
                errors.append(exc)

        holder = threading.Thread(target=first)
        holder.start()
        assert arrived.wait(5), "the first request must occupy the only connection"
        with pytest.raises(base.RequestNotSent, match="PoolTimeout"):
            client.exec_tran(REF, TRAN)
        server.release.set()
        holder.join(10)
    assert len(errors) == 1 and isinstance(errors[0], base.OutcomeUnknown)


def test_transport_errors_never_carry_the_order_password(
    serve: Callable[[Behaviour], RawServer],
) -> None:
    def close_after_reading(conn: socket.socket) -> None:
        _read_request(conn)

    server = serve(close_after_reading)
    with pytest.raises(base.OutcomeUnknown) as caught:
        _exec(_settings(server.url))
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert len(chain) >= 2, "the httpx cause is kept for debugging"
    for link in chain:
        assert "pw7secretpass" not in f"{link!s} {link!r} {link.args!r}"
