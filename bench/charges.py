"""Charges per second through the real pipeline, against a bare baseline in the same run.

Pipeline: a private redis-server, the gateway's sandbox as a child process with
``--latency-ms`` injected on every request, and ``billing worker`` processes (Dramatiq, the
fenced state machine, the janitor). N subscriptions are created, N periods requested (each a
message), and the clock runs until every period is paid.

Baseline: the same gateway calls per charge as the adapter makes, with the same client, from
as many threads as the pipeline has worker threads in all, with no queue and no state. The
ratio pipeline / baseline is the cost of exactly-once.

* ``--gateway txpg`` (the default): three calls (create order, set-src-token, exec-tran), one
  sandbox card per subscription.
* ``--gateway bizon``: two calls (``POST /orders/{parent}/rebill``, ``PUT /orders/{id}/charge``);
  the adapter GETs the parent order only when it searches for a rebill whose answer was lost,
  and GETs the order before charging only with ``BILLING_BIZON_AUTO_CHARGE``, neither of which
  happens here. Each subscription rebills a parent order of its own, made (authorized and
  charged) on a card of its own before anything is timed. The pipeline also writes the
  attempt's write-ahead note before each rebill.

    .venv/bin/python bench/charges.py [--gateway txpg|bizon] [--charges 2000] [--processes 2]
                                      [--threads 16] [--latency-ms 20]

Worker CPU is the user+system time of the worker processes (and their children) over the
run, divided by the charges: what one charge costs the workers, whatever else the machine
is doing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

from worker import keys, logs
from worker.clock import SYSTEM
from worker.embedded_redis import EmbeddedRedis
from worker.gateway.bizon.client import BizonClient
from worker.gateway.bizon.models import Authorize, CardDetails, Pan, Rebill
from worker.gateway.bizon.settings import BizonSettings
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.models import OrderRequest, OrderType, StoredCard, TranRequest
from worker.money import Money, parse_amount
from worker.sandbox import SandboxProcess
from worker.sandbox.bizon import BizonProcess
from worker.sensitive import Secret
from worker.settings import TxpgSettings
from worker.store import connect
from worker.store.charges import ChargeStore
from worker.subscriptions import Subscription

PERIOD = "2026-11-01"
AMOUNT = parse_amount("9.99", "AZN")
#: One sandbox card per subscription: the per-card network caps (10 per day) apply.
CARD_BASE = 700_000

#: One charge of the baseline: the gateway calls for charge number ``i``.
BareCharge = Callable[[int], None]


class Target(Protocol):
    """What differs between the gateways; the rest of the benchmark is shared."""

    name: str
    calls: int  #: gateway calls per charge, the baseline's and the adapter's

    def card(self, i: int) -> dict[str, Any]:
        """Subscription ``i``'s card fields for ``Subscription.create``."""

    def worker_env(self) -> dict[str, str]:
        """How the workers reach this gateway's sandbox."""

    def bare_charges(self, threads: int) -> contextlib.AbstractContextManager[BareCharge]:
        """The baseline's charge, with one client shared by ``threads`` threads."""

    def pipeline_debits(self) -> list[str]:
        """From the sandbox's ledger: one card reference per debit the pipeline made."""


class Txpg:
    """TXPG: Order_REC, set-src-token, exec-tran on a sandbox card of the subscription's own."""

    name = "txpg"
    calls = 3

    def __init__(self, sandbox: SandboxProcess, charges: int) -> None:
        self.sandbox = sandbox
        cards = [
            {"storedId": CARD_BASE + i, "displayName": "416974******1778", "expiry": "1130",
             "brand": "Visa", "behaviour": "approve"}
            for i in range(charges)
        ]  # fmt: skip
        httpx.post(
            f"{sandbox.admin_url}/cards", json={"cards": cards}, timeout=60
        ).raise_for_status()

    def card(self, i: int) -> dict[str, Any]:
        return {"stored_id": CARD_BASE + i}

    def worker_env(self) -> dict[str, str]:
        return {"BILLING_TXPG_BASE_URL": self.sandbox.base_url}

    @contextlib.contextmanager
    def bare_charges(self, threads: int) -> Iterator[BareCharge]:
        settings = TxpgSettings(base_url=self.sandbox.base_url, max_connections=threads * 2)
        with TxpgClient(settings) as client:

            def one(i: int) -> None:
                order = client.create_order(OrderRequest(OrderType.RECURRING, AMOUNT, f"base {i}"))
                client.set_src_token(order.ref, StoredCard(5125))
                client.exec_tran(order.ref, TranRequest.purchase(AMOUNT))

            yield one

    def pipeline_debits(self) -> list[str]:
        ledger = httpx.get(f"{self.sandbox.admin_url}/ledger", timeout=30).json()["entries"]
        return [
            e["description"].split()[0]
            for e in ledger
            if e["tran_type"] == "Purchase" and e["description"].startswith("bench_")
        ]


def luhn_pan(i: int) -> str:
    """A Luhn-valid card number of its own for subscription ``i``: BIN ``4000xx`` and the
    last four digits both from ``i``, so that masked numbers (how the sandbox finds a card)
    differ too.
    """
    body = f"4000{i // 1000:02d}{i % 1000:09d}"
    total = 0
    for pos, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if pos % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


class Bizon:
    """Bizon: rebill then charge, each subscription on a parent order of its own."""

    name = "bizon"
    calls = 2

    def __init__(self, sandbox: BizonProcess, charges: int, threads: int) -> None:
        if charges > 100_000:
            raise SystemExit("--gateway bizon makes distinct card numbers for 100,000 at most")
        self.sandbox = sandbox
        self.baseline_orders: set[str] = set()
        pans = [luhn_pan(i) for i in range(charges)]
        cards = [{"pan": pan, "expiry": "1230", "behaviour": "approve"} for pan in pans]
        httpx.post(
            f"{sandbox.admin_url}/cards", json={"cards": cards}, timeout=60
        ).raise_for_status()
        # As tests/fixtures/pipeline.py bizon_parents: a customer-present payment per card,
        # authorized and charged; its id is what the subscription rebills.
        with self.client(threads) as client:

            def parent(pan: str) -> str:
                card = CardDetails(expiration_month=12, expiration_year=2030)
                order = client.authorize(Authorize(Money(100, "AZN"), Pan.parse(pan), card))
                client.charge(order.id)
                return order.id

            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                self.parents = list(pool.map(parent, pans))

    def client(self, threads: int) -> BizonClient:
        settings = BizonSettings(
            base_url=self.sandbox.base_url,
            username=self.sandbox.username,
            password=Secret(self.sandbox.password),
            max_connections=threads * 2,
        )
        return BizonClient(settings)

    def card(self, i: int) -> dict[str, Any]:
        return {"gateway": "bizon", "parent_order": self.parents[i]}

    def worker_env(self) -> dict[str, str]:
        return {
            "BILLING_BIZON_BASE_URL": self.sandbox.base_url,
            "BILLING_BIZON_USERNAME": self.sandbox.username,
            "BILLING_BIZON_PASSWORD": self.sandbox.password,
        }

    @contextlib.contextmanager
    def bare_charges(self, threads: int) -> Iterator[BareCharge]:
        with self.client(threads) as client:

            def one(i: int) -> None:
                # The adapter's request on a first try (BizonChargeGateway.open_order/execute).
                order = client.rebill(self.parents[i], Rebill(AMOUNT, recurring=True))
                client.charge(order.id)
                self.baseline_orders.add(order.id)

            yield one

    def pipeline_debits(self) -> list[str]:
        ledger = httpx.get(f"{self.sandbox.admin_url}/ledger", timeout=30).json()["entries"]
        return [
            str(e["parent_order_id"])
            for e in ledger
            if e["direction"] == "debit"
            and e["order_type"] == "rebill"
            and str(e["order_id"]) not in self.baseline_orders
        ]


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


def baseline(target: Target, charges: int, threads: int) -> float:
    with target.bare_charges(threads) as one:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(charges)))
        return charges / (time.monotonic() - started)


def pipeline(
    target: Target, charges: int, processes: int, threads: int, log_path: Path
) -> tuple[float, float]:
    with EmbeddedRedis() as redis_server:
        r = connect(redis_server.url)
        now = SYSTEM.now_ms()
        subs = [
            Subscription.create(
                id=f"bench_{i}",
                customer=f"c{i}",
                amount="9.99",
                currency="AZN",
                now_ms=now,
                **target.card(i),
            )
            for i in range(charges)
        ]
        pipe = r.pipeline(transaction=False)
        for sub in subs:
            pipe.hset(keys.sub(sub.id), mapping=dict(sub.to_hash()))  # type: ignore[arg-type]
        pipe.execute()
        env = {
            **os.environ,
            **target.worker_env(),
            "BILLING_REDIS_URL": redis_server.url,
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
                for sub in subs:
                    store.open_period(
                        sub.id, PERIOD, SYSTEM.now_ms(), amount_minor=999,
                        currency="AZN", card=sub.card_ref(), gateway=sub.gateway,
                    )  # fmt: skip
                    charge.send(sub.id, PERIOD)
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
        paid = sum(1 for sub in subs if r.hget(keys.period(sub.id, PERIOD), "status") == "paid")
        r.close()
    if paid != charges:
        raise SystemExit(f"only {paid} of {charges} periods were paid")
    return charges / elapsed, cpu / charges * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", choices=("txpg", "bizon"), default="txpg")
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    logs.configure("WARNING")
    total_threads = args.processes * args.threads
    print(
        f"{args.charges} charges on {args.gateway}, sandbox latency {args.latency_ms} ms per "
        f"request, {args.processes} worker processes x {args.threads} threads "
        f"({os.cpu_count()} CPUs)"
    )
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        target: Target
        if args.gateway == "bizon":
            bizon = stack.enter_context(BizonProcess(latency_ms=args.latency_ms))
            target = Bizon(bizon, args.charges, total_threads)
        else:
            sandbox = stack.enter_context(SandboxProcess(latency_ms=args.latency_ms))
            target = Txpg(sandbox, args.charges)
        base = baseline(target, args.charges, total_threads)
        label = f"baseline ({target.calls} calls, {total_threads} threads, no queue, no state):"
        print(f"  {label:<59}{base:8.1f} charges/s")
        rate, cpu_ms = pipeline(
            target, args.charges, args.processes, args.threads, Path(tmp) / "worker.log"
        )
        print(f"  pipeline (Redis, Dramatiq, fenced state machine):          {rate:8.1f} charges/s")
        print(f"  ratio pipeline / baseline:                                 {rate / base:8.2f}")
        print(f"  worker CPU per charge:                                     {cpu_ms:8.2f} ms")
        debits = target.pipeline_debits()
        ok = len(debits) == args.charges == len(set(debits))
        verdict = "ok" if ok else "MISMATCH"
        print(f"  ledger: {len(debits)} pipeline debits for {args.charges} periods: {verdict}")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
