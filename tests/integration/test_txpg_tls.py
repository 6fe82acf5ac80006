"""TLS is verified: a server with a certificate we do not trust is refused before anything is
sent, and the same server is accepted once its CA is configured as ``ca_bundle``.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from worker import errors as base
from worker.gateway.txpg.client import TxpgClient
from worker.settings import TxpgSettings

BODY = b'{"order": {"id": 1, "status": "Preparing", "amount": 1, "currency": "AZN"}}'


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/api", ca_file
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_an_untrusted_certificate_is_refused_as_not_sent(tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    with (
        TxpgClient(TxpgSettings(base_url=url)) as client,
        pytest.raises(base.RequestNotSent, match="ConnectError"),
    ):
        client.get_order(1)


def test_a_configured_ca_bundle_is_trusted(tls_server: tuple[str, Path]) -> None:
    url, ca_file = tls_server
    with TxpgClient(TxpgSettings(base_url=url, ca_bundle=str(ca_file))) as client:
        assert client.get_order(1).id == 1
