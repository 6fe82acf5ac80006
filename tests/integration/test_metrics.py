"""``billing worker`` serves Prometheus metrics for all its processes on one port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from worker import keys
from worker.charges.entry import request_charge
from worker.clock import SYSTEM
from worker.sandbox import SandboxServer
from worker.subscriptions import Subscription

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_worker_metrics_count_charges_and_gateway_calls(
    r: redis.Redis, redis_url: str, sandbox: SandboxServer, log_dir: Path
) -> None:
    sub = Subscription.create(
        id="m-1", customer="c", stored_id=5125, amount="9.99", currency="AZN", now_ms=1
    )
    r.hset(keys.sub(sub.id), mapping=dict(sub.to_hash()))  # type: ignore[arg-type]
    port = _free_port()
    env = {
        **os.environ,
        "BILLING_REDIS_URL": redis_url,
        "BILLING_TXPG_BASE_URL": sandbox.base_url,
        "BILLING_JANITOR_INTERVAL_MS": "100",
    }
    billing = Path(sys.executable).parent / "billing"
    with (log_dir / "metrics-worker.log").open("w") as log:
        worker = subprocess.Popen(
            [str(billing), "worker", "--processes", "2", "--threads", "2",
             "--metrics-port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        request_charge(r, sub.id, "2026-11-01", SYSTEM)  # no doorbell: the janitor finds it
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
            except httpx.TransportError:
                text = ""
            if 'billing_charges_total{outcome="paid"} 1.0' in text:
                break
            time.sleep(0.2)
        assert 'billing_charges_total{outcome="paid"} 1.0' in text
        for endpoint in ("create_order", "set_src_token", "exec_tran"):
            assert (
                f'billing_gateway_request_seconds_count{{endpoint="{endpoint}",gateway="txpg"}}'
                in text
            )
        assert "billing_work_pending" in text
        assert "dramatiq_messages_total" in text  # Dramatiq's own, from the same endpoint
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
