"""How an answer reaches the client, or fails to: JSON, nginx error pages, a dropped
connection, a body trickled slowly. The faults of :mod:`worker.sandbox.faults` land here.

Shared by both sandboxes; a gateway's own headers (TXPG's request id, Bizon's ``Location``
and ``Link``) come in ``headers``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from worker.sandbox.faults import FaultKind, FaultRule

_PAGES = {
    FaultKind.HTTP_502: (502, "502 Bad Gateway"),
    FaultKind.HTTP_503: (503, "503 Service Temporarily Unavailable"),
}
_HEADERS = {"Server": "nginx", "X-Content-Type-Options": "nosniff"}


def json_response(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON answer, with the server's headers and the gateway's own ``headers``."""
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={**_HEADERS, **(headers or {})},
    )


def error_page(kind: FaultKind) -> web.Response:
    """nginx's own HTML error page, the kind a proxy in front of TXPG answers."""
    status, title = _PAGES[kind]
    html = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return web.Response(status=status, text=html, content_type="text/html", headers=_HEADERS)


def drop(request: web.Request) -> web.Response:
    """Close the TCP connection now; the client gets no response bytes at all.

    aiohttp discards the response returned after this: its transport is gone.
    """
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


async def trickle(
    request: web.Request,
    status: int,
    body: bytes,
    rule: FaultRule,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Send the headers at once, then ``rule.chunk_bytes`` of body every ``rule.latency_ms``."""
    response = web.StreamResponse(status=status, headers={**_HEADERS, **(headers or {})})
    response.content_type = "application/json"
    response.content_length = len(body)
    try:
        await response.prepare(request)
        for start in range(0, len(body), rule.chunk_bytes):
            if start:
                await asyncio.sleep(rule.latency_ms / 1000)
            await response.write(body[start : start + rule.chunk_bytes])
        await response.write_eof()
    except ConnectionError:
        pass  # the client gave up waiting: that is what this fault is for
    return response
