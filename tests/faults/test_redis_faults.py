"""Redis SIGKILLed in the middle of a batch and restarted on its data directory (AOF): what
it acknowledged survives, the workers carry on, and every period is paid exactly once.
"""

from __future__ import annotations

import pytest

from tests.fixtures.pipeline import PERIOD, Pipeline, WorkerProcess
from worker import keys

pytestmark = pytest.mark.slow

BATCH = 40


def _paid(p: Pipeline, subs: list[str]) -> set[str]:
    return {s for s in subs if p.status(s) == "paid"}


def _charge_broke(proc: WorkerProcess) -> bool:
    """A charge in flight in this worker hit the dead Redis (its next write failed)."""
    return "Failed to process message charge(" in proc.text()


def _exec_trans_answered(proc: WorkerProcess) -> int:
    """How many exec-tran answers this worker has read (logged before it writes them)."""
    return sum(1 for rec in proc.records() if rec.get("op") == "exec_tran" and "outcome" in rec)


def _consumer_broke(proc: WorkerProcess) -> bool:
    """The worker's Dramatiq consumer lost Redis."""
    return "Consumer encountered a connection error" in proc.text()


def test_redis_killed_mid_batch_loses_nothing_and_charges_each_period_once(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    subs = [f"sub-{i:02d}" for i in range(BATCH)]
    for sub_id, card in zip(subs, p.add_cards(BATCH), strict=True):
        p.add_subscription(sub_id, stored_id=card)
    # exec-tran takes 600 ms in the sandbox: Redis is killed while some are inside it, so
    # their money moves while their workers cannot store the result.
    slow_exec = p.add_fault({"kind": "latency", "endpoint": "exec-tran", "latencyMs": 600})
    workers = [p.start_worker("a"), p.start_worker("b")]
    for sub_id in subs:
        p.request(sub_id)

    def exec_trans_in_flight() -> int:
        arrived = p.fault_fired(slow_exec)  # read before the ledger: a lower bound
        return arrived - len(p.ledger())

    p.wait_for(
        "some charges paid and exec-trans in flight",
        lambda: len(_paid(p, subs)) >= 3 and exec_trans_in_flight() >= 2,
        alive=workers,
        interval=0.01,
    )

    paid_at_kill = _paid(p, subs)
    p.redis.kill()
    # Every exec-tran that reached the sandbox before the kill answers while Redis is down:
    # Redis stays down until each one's answer was read by its worker, whose write of the
    # result then fails (otherwise a quick restart could store it and nothing would need
    # reconciling).
    reached = p.fault_fired(slow_exec)
    p.wait_for(
        "both workers to lose Redis, with the answers of the exec-trans in flight read",
        lambda: (
            all(map(_consumer_broke, workers))
            and any(map(_charge_broke, workers))
            and sum(map(_exec_trans_answered, workers)) >= reached
        ),
    )
    p.redis.start()  # same port, same data directory: the AOF is replayed

    paid_after_restart = _paid(p, subs)
    assert paid_at_kill <= paid_after_restart, "an acknowledged write was lost"
    assert len(paid_after_restart) < BATCH, "killed mid-batch"
    assert all(p.status(s) is not None for s in subs), "every opened period survived"
    for proc in list(workers):
        if not proc.alive:  # a worker that died with Redis is started again
            workers.append(p.start_worker(f"{proc.name}-again"))
    live = [w for w in workers if w.alive]

    p.wait_paid(subs, timeout=90, alive=live)
    assert p.debits_per_period() == {f"{s} {PERIOD}": 1 for s in subs}
    for sub_id in subs:
        (debit,) = p.debits(sub_id)
        assert str(debit["order_id"]) == p.period(sub_id)["paid_order"]
    assert p.dead_letters() == []
    assert p.r.zcard(keys.WORK) == 0, "nothing left open"
    # Charges whose exec-tran went out but whose result could not be stored were settled
    # by asking the gateway, not by executing again.
    reconciled = [e for e in p.events() if e["type"] == "charge.reconciled"]
    assert reconciled, "no charge was caught between exec-tran and its result"
    assert {e["data"]["outcome"] for e in reconciled} == {"paid"}
