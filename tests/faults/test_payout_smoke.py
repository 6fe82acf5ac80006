"""Smoke: a manual payout run through a real worker process and the sandbox."""

from __future__ import annotations

from tests.fixtures.pipeline import Pipeline
from worker.clock import SYSTEM
from worker.payouts import service
from worker.payouts.model import Payout
from worker.store import payouts as store

OK = "26AB0DACE700EF1180EB005056954BCC"
LIMIT = "4D0C64A1E700EF1180EB005056954BCC"


def test_a_run_pays_each_payout_once(pipeline: Pipeline) -> None:
    for n in range(5):
        token = LIMIT if n == 4 else OK
        payout = Payout.create(
            id=f"po_{n}", amount="10.00", currency="AZN", token=token, now_ms=SYSTEM.now_ms() + n
        )
        store.add(pipeline.r, payout)
    pipeline.start_worker()
    result = service.start_run(
        pipeline.r, SYSTEM, pipeline.actors.ring_payouts, run_id="manual-smoke"
    )
    assert len(result.taken) == 5
    pipeline.wait_for(
        "run completed",
        lambda: (
            (s := store.get_run(pipeline.r, "manual-smoke")) is not None
            and (service.refresh(pipeline.r, SYSTEM, "manual-smoke") or s).final
        ),
        timeout=30,
    )
    credits = [e for e in pipeline.ledger() if e["direction"] == "credit"]
    print(credits)
    statuses = {p.id: p.status.value for p in store.run_payouts(pipeline.r, "manual-smoke")}
    print(statuses, pipeline.event_types())
    assert statuses == {
        "po_0": "paid",
        "po_1": "paid",
        "po_2": "paid",
        "po_3": "paid",
        "po_4": "failed",
    }
    assert len(credits) == 4
