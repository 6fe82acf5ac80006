"""Throughput of the sandbox gateway over loopback HTTP, with a same-run baseline.

The sandbox runs as its own process (``python -m worker.sandbox``), the load comes from
another process (aiohttp client, ``--concurrency`` requests in flight), both on 127.0.0.1.
Each measurement is bounded by a request count and a time limit. The baseline is a trivial
aiohttp handler served the same way (same runner, access log off, its own process), so the
sandbox's figures can be read against what this machine does at all right now: on a noisy
shared machine, compare the ratio, not the absolute numbers.

Measured: GET order (simple) and the recurring chain (create order, set-src-token, exec-tran;
each chain is 3 requests), once without latency and once with ``--latency-ms`` injected into
every call of both servers (the pipeline's target: 600+ requests/s with 20 ms).

    .venv/bin/python bench/sandbox.py [--requests 6000] [--seconds 15] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web

HOST = "127.0.0.1"
#: The collection's public test login, as a ready header (aiohttp's BasicAuth is deprecated).
AUTH = {"Authorization": "Basic " + base64.b64encode(b"TerminalSys/kapital:kapital123").decode()}
_URL = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/api")


# -- the baseline server: a trivial handler, served as the sandbox is ----------------------


def serve_baseline(latency_ms: int) -> None:
    from worker.sandbox.server import serve_forever

    body = json.dumps({"order": {"id": 1, "status": "FullyPaid", "amount": 1}}).encode()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/api/{tail:.*}", handler)
    asyncio.run(
        serve_forever(app, HOST, 0, lambda url: print(f"baseline listening on {url}", flush=True))
    )


@contextmanager
def server(args: list[str]) -> Iterator[str]:
    """Start a server process that prints "listening on URL/api"; yield its origin."""
    popen = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert popen.stdout is not None
        deadline = time.monotonic() + 20
        origin = None
        while origin is None and time.monotonic() < deadline:
            line = popen.stdout.readline()
            if not line:
                break
            match = _URL.search(line)
            origin = match.group(1) if match else None
        if origin is None:
            raise RuntimeError(f"server did not start: {' '.join(args)}")
        yield origin
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        if popen.stdout is not None:
            popen.stdout.close()


# -- the load process ------------------------------------------------------------------------

Step = Callable[[aiohttp.ClientSession], Awaitable[int]]


async def _json(response: aiohttp.ClientResponse) -> Any:
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:200]}")
    return await response.json()


def _steps(origin: str, scenario: str, order_id: int) -> Step:
    api = f"{origin}/api"

    async def get(session: aiohttp.ClientSession) -> int:
        async with session.get(f"{api}/order/{order_id}") as response:
            await _json(response)
        return 1

    async def chain(session: aiohttp.ClientSession) -> int:
        order = {"typeRid": "Order_REC", "amount": "9.99", "currency": "AZN", "description": "b"}
        async with session.post(f"{api}/order/", json={"order": order}) as response:
            created = (await _json(response))["order"]
        params = {"password": created["password"]}
        base = f"{api}/order/{created['id']}"
        token = {"order": {"initiationEnvKind": "Server"}, "token": {"storedId": 5125}}
        async with session.post(f"{base}/set-src-token", params=params, json=token) as response:
            await _json(response)
        tran = {"phase": "Single", "amount": "9.99", "conditions": {"cofUsage": "UnspecifiedMit"}}
        async with session.post(f"{base}/exec-tran", params=params, json={"tran": tran}) as resp:
            assert (await _json(resp))["tran"]["pmoResultCode"] == "1"
        return 3

    return chain if scenario == "chain" else get


async def load(
    origin: str, scenario: str, requests: int, seconds: float, concurrency: int
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:
        order_id = 0
        if scenario == "get":
            body = {"order": {"typeRid": "Order_REC", "amount": "1", "currency": "AZN"}}
            async with session.post(f"{origin}/api/order/", json=body) as response:
                order_id = (await _json(response)).get("order", {}).get("id", 1)
        step = _steps(origin, scenario, order_id)
        done, errors, durations = 0, 0, []
        started = time.monotonic()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal done, errors
            while done < requests and time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    count = await step(session)  # not `done += await ...`: that loses updates
                    done += count
                    durations.append(time.monotonic() - t0)
                except Exception:  # counted and reported, never hidden
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    durations.sort()

    def p(q: float) -> float:
        return (
            durations[min(len(durations) - 1, int(q * len(durations)))] * 1000 if durations else 0.0
        )

    return {
        "requests": done,
        "errors": errors,
        "seconds": elapsed,
        "rps": done / elapsed,
        "p50_ms": p(0.5),
        "p99_ms": p(0.99),
    }


def run_load(origin: str, scenario: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Run the load in a separate process and read its one-line JSON result."""
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            origin,
            "--scenario",
            scenario,
            "--requests",
            str(opts.requests),
            "--seconds",
            str(opts.seconds),
            "--concurrency",
            str(opts.concurrency),
        ],
        capture_output=True,
        text=True,
        timeout=opts.seconds + 60,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _line(label: str, result: dict[str, Any], baseline: dict[str, Any] | None = None) -> None:
    ratio = f"  {result['rps'] / baseline['rps']:5.2f} x baseline" if baseline else ""
    print(
        f"  {label:<38} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
        f"p99 {result['p99_ms']:6.1f} ms  ({result['requests']} req, {result['errors']} errors)"
        f"{ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=6000, help="requests per measurement (max)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per measurement (max)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--latency-ms", type=int, default=20, help="latency for the second round")
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="ORIGIN", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", default="get", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve_baseline:
        serve_baseline(opts.latency_ms)
        return
    if opts.load:
        if not opts.load.startswith(f"http://{HOST}:"):
            parser.error("load only 127.0.0.1")
        result = asyncio.run(
            load(opts.load, opts.scenario, opts.requests, opts.seconds, opts.concurrency)
        )
        print(json.dumps(result))
        return

    here = str(Path(__file__).resolve())
    print(
        f"sandbox throughput on loopback ({os.cpu_count()} CPUs), concurrency {opts.concurrency},"
        f" at most {opts.requests} requests / {opts.seconds:.0f} s each"
    )
    for latency in (0, opts.latency_ms):
        print(f"latency injected: {latency} ms")
        with server([here, "--serve-baseline", "--latency-ms", str(latency)]) as origin:
            baseline = run_load(origin, "get", opts)
        _line("baseline: trivial aiohttp handler", baseline)
        sandbox_args = [
            "-m",
            "worker.sandbox",
            "--host",
            HOST,
            "--port",
            "0",
            "--latency-ms",
            str(latency),
        ]
        with server(sandbox_args) as origin:
            get = run_load(origin, "get", opts)
            chain = run_load(origin, "chain", opts)
            ledger = httpx.get(f"{origin}/_admin/ledger", timeout=30).json()["entries"]
        _line("sandbox: GET order", get, baseline)
        _line("sandbox: recurring chain (3 req each)", chain, baseline)
        print(f"  {'':<38} {chain['rps'] / 3:8.0f} charges/s")
        charges = chain["requests"] // 3
        purchases = sum(1 for entry in ledger if entry["tran_type"] == "Purchase")
        check = "ok" if purchases == charges else "MISMATCH"
        print(f"  ledger check: {purchases} purchases for {charges} approved chains: {check}")


if __name__ == "__main__":
    main()
