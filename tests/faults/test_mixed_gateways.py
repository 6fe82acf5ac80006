"""One scheduler run over subscriptions on both gateways: ``billing scheduler``, two
``billing worker`` processes (one SIGKILLed mid-charge), a real Redis, the TXPG sandbox and
the Bizon sandbox as child processes over HTTP. Each sandbox's ledger is the oracle for its
own subscriptions: a TXPG debit's description is ``{sub} {period} #{attempt}``; a Bizon
debit is on a rebill of the subscription's parent order.

The clock is test_scheduler.py's: every process runs at 12:00 UTC of today, and the daily
subscriptions fell due at 00:00.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest

from tests.faults.test_scheduler import (
    clock_env,
    logged,
    midnight_ms,
    noon_offset_ms,
    subscribe,
    swept,
    virtual_date,
)
from tests.fixtures.pipeline import Pipeline
from worker import keys
from worker.clock import OffsetClock
from worker.store import subscriptions as store
from worker.subscriptions import Subscription

pytestmark = pytest.mark.slow

COUNT = 30  #: subscriptions per gateway
TXPG_AMOUNT = "1.00"  # test_scheduler.subscribe's
BIZON_AMOUNT = "2.50"


def subscribe_bizon(
    p: Pipeline, sub_ids: Sequence[str], parents: Sequence[str], offset_ms: int
) -> date:
    """Daily Bizon subscriptions at 00:00 UTC starting today (the test clock's), each
    rebilling a parent order of its own. Returns today.
    """
    clock = OffsetClock(offset_ms)
    today = virtual_date(offset_ms)
    cadence = {
        "cadence": "daily",
        "start": today.isoformat(),
        "timezone": "UTC",
        "charge_time": "00:00",
    }
    for sub_id, parent in zip(sub_ids, parents, strict=True):
        sub = Subscription.create(
            id=sub_id,
            customer=f"cust_{sub_id}",
            amount=BIZON_AMOUNT,
            currency="AZN",
            gateway="bizon",
            parent_order=parent,
            cadence=cadence,
        )
        store.create(p.r, sub, clock)
    return today


def held(p: Pipeline, sub_ids: Sequence[str], period: str, pid: int) -> dict[str, str]:
    """The open periods whose lease worker process ``pid`` took, each with its attempt 1's
    state (``due``: a note was written ahead and the order is being opened).
    """
    pipe = p.r.pipeline(transaction=False)
    for sub_id in sub_ids:
        pipe.hmget(keys.period(sub_id, period), ["status", "lease_owner"])
        pipe.hget(keys.attempt(sub_id, period, 1), "state")
    replies: list[Any] = pipe.execute()
    out = {}
    for sub_id, (status, owner), state in zip(sub_ids, replies[::2], replies[1::2], strict=True):
        if status == "open" and owner and str(owner).rsplit(":", 1)[1] == str(pid):
            out[sub_id] = str(state or "")
    return out


def test_one_scheduler_run_charges_txpg_and_bizon_subscriptions_each_on_its_gateway_once(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    offset = noon_offset_ms()
    env = clock_env(offset)
    p.start_bizon()
    # names that interleave in the due index (equal scores sort by name), so that each batch
    # the sweep rings, and each worker's prefetch, holds both gateways' charges
    txpg = [f"sub_{n:02d}_txpg" for n in range(COUNT)]
    bizon = [f"sub_{n:02d}_bizon" for n in range(COUNT)]
    parents = dict(zip(bizon, p.bizon_parents(COUNT), strict=True))
    today = subscribe(p, txpg, p.add_cards(COUNT), offset)
    assert subscribe_bizon(p, bizon, list(parents.values()), offset) == today
    period = today.isoformat()
    everyone = txpg + bizon
    # Slow every money call a little, so that charges are in flight when a worker dies; the
    # rebill most, so that the kill below lands inside one (not as its answer comes back).
    p.add_fault({"kind": "latency", "endpoint": "exec-tran", "latencyMs": 150})
    p.add_bizon_fault({"kind": "latency", "endpoint": "charge", "latencyMs": 150})
    p.add_bizon_fault({"kind": "latency", "endpoint": "rebill", "latencyMs": 400})

    doomed = p.start_worker("worker-1", threads=8, extra=env)
    survivor = p.start_worker("worker-2", threads=8, extra=env)
    (doomed_pid,) = doomed.children()
    # A message worker-1 had fetched and not started dies with it; its period is in bw:work,
    # and the janitor rings for it again after the grace (30 s by default; 3 s here).
    scheduler = p.start_scheduler(grace_ms=3_000, extra=env)

    # SIGKILL worker-1 a few charges into the run, while a Bizon rebill of its is in flight
    # (the attempt is ``due`` with a note written ahead): the survivor must find that order
    # by the search, or know there is none, and never rebill twice.
    def mid_rebill() -> dict[str, str]:
        paid = sum(p.status(sub, period) == "paid" for sub in everyone)
        now = held(p, everyone, period, doomed_pid)
        rebilling = any(sub in parents and state == "due" for sub, state in now.items())
        return now if paid >= 4 and rebilling else {}

    p.wait_for("worker-1 mid-rebill", mid_rebill, interval=0.01, alive=[doomed])
    assert doomed.kill() == -signal.SIGKILL
    interrupted = held(p, everyone, period, doomed_pid)  # what it died holding
    assert any(sub in parents for sub in interrupted), interrupted

    def all_paid() -> bool:
        return all(p.status(sub, period) == "paid" for sub in everyone)

    p.wait_for("every period paid", all_paid, timeout=60, interval=0.2, alive=[survivor, scheduler])
    tomorrow_ms = midnight_ms(today + timedelta(days=1))
    p.wait_for(
        "nothing left to do",
        lambda: p.r.zcard(keys.WORK) == 0 and p.r.zcount(keys.DUE, "-inf", f"({tomorrow_ms}") == 0,
        alive=[survivor, scheduler],
    )
    assert swept(scheduler) == swept(scheduler, "opened") == 2 * COUNT
    assert logged(scheduler, "scheduler_leader")

    # -- TXPG: one debit per TXPG period, none for a Bizon subscription ----------------------
    txpg_ledger = p.ledger()
    txpg_debits = [e for e in txpg_ledger if e["direction"] == "debit"]
    per_period = Counter(e["description"].rsplit(" #", 1)[0] for e in txpg_debits)
    assert per_period == Counter(f"{sub} {period}" for sub in txpg)
    assert {e["amount"] for e in txpg_debits} == {TXPG_AMOUNT}

    # -- Bizon: one rebill and one debit per Bizon period, none for a TXPG subscription ------
    bizon_ledger = p.bizon_ledger()
    rebill_debits = [
        e for e in bizon_ledger if e["direction"] == "debit" and e["order_type"] == "rebill"
    ]
    by_parent = Counter(str(e["parent_order_id"]) for e in rebill_debits)
    assert by_parent == Counter(parents.values()), "one debit per Bizon subscription"
    assert {e["amount"] for e in rebill_debits} == {BIZON_AMOUNT}
    others = [e for e in bizon_ledger if e["direction"] == "debit" and e["order_type"] != "rebill"]
    assert len(others) == COUNT  # the parent orders' own charges, made before the run
    rebills = Counter(
        str(o["parent_order_id"]) for o in p.bizon_orders() if o["origin"] == "rebill"
    )
    assert rebills == Counter(parents.values()), "an orphan rebill (a lost one not found)"

    # -- each period names its gateway, and was paid by that gateway's order ----------------
    txpg_order = {e["description"].rsplit(" #", 1)[0]: str(e["order_id"]) for e in txpg_debits}
    bizon_order = {str(e["parent_order_id"]): str(e["order_id"]) for e in rebill_debits}
    for sub in everyone:
        on_bizon = sub in parents
        gateway = "bizon" if on_bizon else "txpg"
        order_id = bizon_order[parents[sub]] if on_bizon else txpg_order[f"{sub} {period}"]
        fields = p.period(sub, period)
        assert (fields["status"], fields["gateway"]) == ("paid", gateway), sub
        assert fields["paid_order"] == order_id, sub
        n = int(fields["attempt"])
        assert n == 1, f"{sub}: a crash or a lost answer never starts a new attempt"
        attempt = p.attempt(sub, n, period)
        assert (attempt["gateway"], attempt["order_id"]) == (gateway, order_id), sub
        key = keys.work_member(sub, period)
        succeeded = [e for e in p.events(key) if e["type"] == "charge.succeeded"]
        assert len(succeeded) == 1, (sub, p.event_types(key))
        # charge.succeeded carries no gateway field: its order is the gateway's order
        assert succeeded[0]["data"]["order_id"] == order_id, sub
        assert succeeded[0]["data"]["subscription_id"] == sub

    # the periods worker-1 died holding were finished by worker-2
    finished_by = Counter(
        str(rec["idempotency_key"]).split("|")[0]
        for rec in survivor.runs()
        if rec.get("outcome") == "paid"
    )
    assert all(finished_by[sub] == 1 for sub in interrupted), (interrupted, finished_by)
    # a rebill worker-1 died in was looked for before any new one (one search each)
    lost = [sub for sub, state in interrupted.items() if sub in parents and state == "due"]
    searches = [
        rec
        for rec in survivor.records()
        if rec.get("event") == "gateway_call_completed" and rec.get("op") == "list_orders"
    ]
    assert lost and len(searches) >= len(lost), (lost, len(searches))
    assert p.dead_letters() == []
