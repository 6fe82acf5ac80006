"""Charges per second through the real pipeline, against a bare baseline in the same run.

Pipeline: a private redis-server, the sandbox gateway as a child process with ``--latency-ms``
injected on every request, and ``billing worker`` processes (Dramatiq, the fenced state
machine, the janitor). N subscriptions are created, N periods requested (each a message), and
the clock runs until every period is paid.

Baseline: the same three TXPG calls per charge (create order, set-src-token, exec-tran) with
the same client, from as many threads as the pipeline has worker threads in all, with no
queue and no state. The ratio pipeline / baseline is the cost of exactly-once.

    .venv/bin/python bench/charges.py [--charges 2000] [--processes 2] [--threads 16]
                                      [--latency-ms 20]

Worker CPU is the user+system time of the worker processes (and their children) over the
run, divided by the charges: what one charge costs the workers, whatever else the machine
is doing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from worker import keys, logs
from worker.clock import SYSTEM
from worker.embedded_redis import EmbeddedRedis
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.models import OrderRequest, OrderType, StoredCard, TranRequest
from worker.money import parse_amount
from worker.sandbox import SandboxProcess
from worker.settings import TxpgSettings
from worker.store import connect
from worker.store.charges import ChargeStore
from worker.subscriptions import Subscription

PERIOD = "2026-11-01"
#: One sandbox card per subscription: the per-card network caps (10 per day) apply.
CARD_BASE = 700_000


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def baseline(base_url: str, charges: int, threads: int) -> float:
    settings = TxpgSettings(base_url=base_url, max_connections=threads * 2)
    amount = parse_amount("9.99", "AZN")
    with TxpgClient(settings) as client:

        def one(i: int) -> None:
            order = client.create_order(OrderRequest(OrderType.RECURRING, amount, f"base {i}"))
            client.set_src_token(order.ref, StoredCard(5125))
            client.exec_tran(order.ref, TranRequest.purchase(amount))

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(charges)))
        return charges / (time.monotonic() - started)


def pipeline(
    base_url: str, charges: int, processes: int, threads: int, log_path: Path
) -> tuple[float, float]:
    with EmbeddedRedis() as redis_server:
        r = connect(redis_server.url)
        now = SYSTEM.now_ms()
        pipe = r.pipeline(transaction=False)
        for i in range(charges):
            sub = Subscription.create(
                id=f"bench_{i}",
                customer=f"c{i}",
                stored_id=CARD_BASE + i,
                amount="9.99",
                currency="AZN",
                now_ms=now,
            )
            pipe.hset(keys.sub(sub.id), mapping=dict(sub.to_hash()))  # type: ignore[arg-type]
        pipe.execute()
        env = {
            **os.environ,
            "BILLING_REDIS_URL": redis_server.url,
            "BILLING_TXPG_BASE_URL": base_url,
            "BILLING_LOG_LEVEL": "INFO",  # production level: one line per charge
            "BILLING_METRICS_PORT": "0",
            "BILLING_GATEWAY_CONCURRENCY": str(processes * threads),
        }
        with log_path.open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "worker.broker", "--processes",
                 str(processes), "--threads", str(threads)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 60
                while log_path.read_text().count("ready for action") < processes:
                    if time.monotonic() > deadline or worker.poll() is not None:
                        raise SystemExit(f"workers did not start; see {log_path}")
                    time.sleep(0.05)
                procs = _tree(worker.pid)
                cpu0 = _cpu(procs)
                from worker import broker

                broker.setup(redis_server.url)
                from worker.actors import charge

                store = ChargeStore(r)
                limit_s = float(os.environ.get("BENCH_LIMIT_S", "600"))
                started = time.monotonic()
                for i in range(charges):
                    store.open_period(
                        f"bench_{i}", PERIOD, SYSTEM.now_ms(), amount_minor=999,
                        currency="AZN", card=str(CARD_BASE + i), gateway="txpg",
                    )  # fmt: skip
                    charge.send(f"bench_{i}", PERIOD)
                while r.zcard(keys.WORK):
                    if time.monotonic() - started > limit_s:
                        stuck = r.zrange(keys.WORK, 0, 4)
                        detail = [
                            (m, r.hgetall(keys.period(*keys.parse_work_member(str(m)))))
                            for m in stuck
                        ]
                        raise SystemExit(f"the pipeline did not finish in time: {detail}")
                    time.sleep(0.02)
                elapsed = time.monotonic() - started
                cpu = _cpu(procs) - cpu0
            finally:
                worker.terminate()
                worker.wait(30)
        paid = sum(
            1
            for i in range(charges)
            if r.hget(keys.period(f"bench_{i}", PERIOD), "status") == "paid"
        )
        r.close()
    if paid != charges:
        raise SystemExit(f"only {paid} of {charges} periods were paid")
    return charges / elapsed, cpu / charges * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    logs.configure("WARNING")
    total_threads = args.processes * args.threads
    print(
        f"{args.charges} charges, sandbox latency {args.latency_ms} ms per request, "
        f"{args.processes} worker processes x {args.threads} threads ({os.cpu_count()} CPUs)"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        SandboxProcess(latency_ms=args.latency_ms) as sandbox,
    ):
        cards = [
            {"storedId": CARD_BASE + i, "displayName": "416974******1778", "expiry": "1130",
             "brand": "Visa", "behaviour": "approve"}
            for i in range(args.charges)
        ]  # fmt: skip
        httpx.post(
            f"{sandbox.admin_url}/cards", json={"cards": cards}, timeout=60
        ).raise_for_status()
        base = baseline(sandbox.base_url, args.charges, total_threads)
        label = f"baseline (3 calls, {total_threads} threads, no queue, no state):"
        print(f"  {label:<59}{base:8.1f} charges/s")
        rate, cpu_ms = pipeline(
            sandbox.base_url, args.charges, args.processes, args.threads, Path(tmp) / "worker.log"
        )
        print(f"  pipeline (Redis, Dramatiq, fenced state machine):          {rate:8.1f} charges/s")
        print(f"  ratio pipeline / baseline:                                 {rate / base:8.2f}")
        print(f"  worker CPU per charge:                                     {cpu_ms:8.2f} ms")
        ledger = httpx.get(f"{sandbox.admin_url}/ledger", timeout=30).json()["entries"]
        purchases = [e for e in ledger if e["tran_type"] == "Purchase"]
        bench = [e for e in purchases if e["description"].startswith("bench_")]
        per_sub = {e["description"].split()[0] for e in bench}
        ok = len(bench) == args.charges == len(per_sub)
        verdict = "ok" if ok else "MISMATCH"
        print(f"  ledger: {len(bench)} pipeline debits for {args.charges} periods: {verdict}")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
