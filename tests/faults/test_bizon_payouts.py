"""Payouts on the second gateway, Bizon, as real processes: ``dramatiq`` workers (and the
scheduler) on one real Redis, with the TXPG sandbox and the Bizon sandbox over HTTP.

A payout names its gateway; a run may mix gateways, each payout sent on its own. On Bizon a
scheduled payout goes to the card of an earlier order (``POST /orders/{id}/credit``,
destination ``order:<id>``) and an immediate one may go to a card number
(``POST /orders/credit``). Each credit carries the attempt's key as ``merchant_order_id``
(``{payout_id} credit #{n}``), so the Bizon sandbox's ledger is the oracle: "paid exactly
once" is one credit per payout there, and a credit whose response was lost is found by that
key, never sent again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.faults.test_payouts import credit_totals, job, last_attempts, statuses, wait_final
from tests.fixtures.logs import LogCapture
from tests.fixtures.pipeline import Pipeline, holds
from worker import keys, runtime
from worker.clock import SYSTEM
from worker.deadletters import DeadLetter, DeadLetterReason
from worker.money import Money
from worker.payouts import service
from worker.payouts.model import Payout, PayoutStatus
from worker.payouts.report import FORMATS, build_report, render
from worker.payouts.runs import RunStatus
from worker.sandbox.bizon import BizonEndpoint
from worker.sandbox.faults import Endpoint, FaultKind
from worker.sensitive import Secret
from worker.store import deadletters
from worker.store import payouts as store

pytestmark = pytest.mark.slow

#: A TXPG destination token of the sandbox's cards.json that approves credits.
OK = "26AB0DACE700EF1180EB005056954BCC"
#: A test PAN the session's log scan also looks for (tests.fixtures.logs.TEST_PANS).
PAN = "4169741330151778"
MASKED_PAN = "416974******1778"

# -- helpers ---------------------------------------------------------------------------------------


def add_bizon(p: Pipeline, payout_id: str, parent: str, at_ms: int, amount: str = "5.00") -> None:
    """A scheduled Bizon payout to the card of the earlier order ``parent``, pending."""
    payout = Payout.create(
        id=payout_id,
        amount=amount,
        currency="AZN",
        gateway="bizon",
        order=parent,
        now_ms=at_ms,
    )
    _, new = store.add(p.r, payout)
    assert new


def add_txpg(p: Pipeline, payout_id: str, at_ms: int, amount: str = "5.00") -> None:
    """A scheduled TXPG payout to a token, pending."""
    payout = Payout.create(id=payout_id, amount=amount, currency="AZN", token=OK, now_ms=at_ms)
    _, new = store.add(p.r, payout)
    assert new


def bizon_credits(p: Pipeline) -> list[dict[str, Any]]:
    """Money the Bizon sandbox paid out (both credit endpoints)."""
    return [e for e in p.bizon_ledger() if e["direction"] == "credit"]


def bizon_credits_per_payout(p: Pipeline) -> Counter[str]:
    """``payout_id`` -> Bizon credits, by the credit's ``merchant_order_id`` (the attempt key)."""
    return Counter(e["merchant_order_id"].rsplit(" credit #", 1)[0] for e in bizon_credits(p))


def _holds_pan(value: Any) -> bool:
    return holds(value, PAN)


# -- 1. a run mixing gateways, with lost credit responses on both ---------------------------------


def test_an_approved_run_mixing_gateways_pays_each_payout_once_despite_lost_credits(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    p.start_bizon()  # before the workers: they are given its address
    parents = p.bizon_parents(3)
    now = SYSTEM.now_ms()
    bizon_ids = [f"bz-{n}" for n in range(6)]
    txpg_ids = [f"tx-{n}" for n in range(4)]
    # interleaved, so the run's order mixes the gateways; two payouts per parent order
    for n in range(6):
        add_bizon(p, bizon_ids[n], parents[n % 3], now + 2 * n, amount=f"{n + 1}.25")
        if n < 4:
            add_txpg(p, txpg_ids[n], now + 2 * n + 1, amount=f"{n + 1}.00")
    everyone = bizon_ids + txpg_ids
    stored = store.get(p.r, "bz-0")
    assert stored is not None
    assert (stored.gateway, stored.destination.ref()) == ("bizon", f"order:{parents[0]}")

    # Both gateways commit the credit and then drop the connection: the worker cannot know
    lost_bizon = p.add_bizon_fault(
        {"kind": FaultKind.COMMIT_THEN_DROP.value, "endpoint": BizonEndpoint.CREDIT.value,
         "times": 2}
    )  # fmt: skip
    lost_txpg = p.add_fault(
        {"kind": FaultKind.COMMIT_THEN_DROP.value, "endpoint": Endpoint.EXEC_TRAN.value,
         "times": 1}
    )  # fmt: skip
    worker = p.start_worker()

    def no_ring(ids: list[str]) -> None:
        raise AssertionError(f"a run awaiting approval rang for {ids}")

    started = service.start_run(p.r, SYSTEM, no_ring, run_id="manual-mixed", approval=True)
    assert started.state.status is RunStatus.AWAITING_APPROVAL
    assert sorted(started.taken) == sorted(everyone)
    assert set(statuses(p, everyone).values()) == {"queued"}
    assert bizon_credits(p) == [] and p.credits() == []

    approved = service.approve(p.r, SYSTEM, p.actors.ring_payouts, "manual-mixed", "ops")
    assert approved.approved_by == "ops"
    state = wait_final(p, SYSTEM, "manual-mixed", 45, alive=[worker])

    assert state.status is RunStatus.COMPLETED
    assert (p.bizon_fault_fired(lost_bizon), p.fault_fired(lost_txpg)) == (2, 1)
    assert set(statuses(p, everyone).values()) == {"paid"}
    # exactly one credit per payout, each on its own gateway
    assert bizon_credits_per_payout(p) == Counter(dict.fromkeys(bizon_ids, 1))
    assert p.credits_per_payout() == Counter(dict.fromkeys(txpg_ids, 1))
    for entry in bizon_credits(p):
        payout_id = entry["merchant_order_id"].rsplit(" credit #", 1)[0]
        n = bizon_ids.index(payout_id)
        assert entry["order_type"] == "credit"  # POST /orders/{parent}/credit
        assert str(entry["parent_order_id"]) == parents[n % 3]
        assert entry["amount"] == f"{n + 1}.25"
    assert credit_totals(bizon_credits(p)) == {"AZN": Money(2250, "AZN")}
    assert credit_totals(p.credits()) == {"AZN": Money(1000, "AZN")}

    # the lost ones: found unknown, reconciled (by merchant_order_id on Bizon), paid once
    reconciled = sorted(x for x in everyone if "payout.reconciled" in p.event_types(job(x)))
    assert len([x for x in reconciled if x.startswith("bz-")]) == 2, reconciled
    assert len([x for x in reconciled if x.startswith("tx-")]) == 1, reconciled
    for payout_id in reconciled:
        assert p.event_types(job(payout_id)) == [
            "payout.unknown",
            "payout.reconciled",
            "payout.succeeded",
        ]
        (event,) = [e for e in p.events(job(payout_id)) if e["type"] == "payout.reconciled"]
        assert event["data"]["outcome"] == "paid"
    for payout_id in everyone:
        types = p.event_types(job(payout_id))
        assert types.count("payout.succeeded") == 1, (payout_id, types)
        attempt: Any = p.r.hgetall(keys.payout_attempt(payout_id, keys.PAYOUT_ITEM, 1))
        assert attempt["gateway"] == ("bizon" if payout_id.startswith("bz-") else "txpg")
        assert p.r.hget(keys.payout_job(payout_id), "attempt") == "1"  # never a second try
        if payout_id.startswith("bz-"):  # the gateway's own order id, reconciled or not
            (credit,) = [
                e for e in p.bizon_ledger() if e["merchant_order_id"] == f"{payout_id} credit #1"
            ]
            assert attempt["reference"] == str(credit["order_id"])
    assert p.event_types("manual-mixed") == ["payout_run.started", "payout_run.completed"]

    # the report names each payout's gateway and matches both ledgers
    payouts = store.run_payouts(p.r, "manual-mixed")
    report = build_report(state, payouts, last_attempts(p, [x.id for x in payouts]))
    assert {row.payout_id: row.gateway for row in report.rows} == {
        **dict.fromkeys(bizon_ids, "bizon"),
        **dict.fromkeys(txpg_ids, "txpg"),
    }
    (paid,) = [g for g in report.groups if g.status is PayoutStatus.PAID]
    assert (paid.count, paid.total) == (10, Money(3250, "AZN"))
    for row in report.rows:
        if row.gateway == "bizon":
            assert row.order_id == f"{row.payout_id} credit #1"  # its merchant_order_id
    assert "bz-0,paid,1.25,AZN,bz-0 credit #1" in render(report, "csv")


# -- 2. an immediate payout to a card number on Bizon ---------------------------------------------


def test_an_immediate_bizon_pan_payout_credits_once_and_no_pan_is_in_clear_anywhere(
    pipeline: Pipeline, log_capture: LogCapture
) -> None:
    p = pipeline
    p.start_bizon()
    lines_before = len(log_capture.lines)
    now = SYSTEM.now_ms()
    payout = Payout.create(
        id="bz-pan",
        amount="12.34",
        currency="AZN",
        gateway="bizon",
        pan=Secret(PAN),
        mode="immediate",
        now_ms=now,
    )
    assert payout.destination.ref() == f"pan:{MASKED_PAN}"
    # The first POST /orders/credit is committed and its response lost: the process that
    # holds the PAN finds the credit by its merchant_order_id and never sends it again.
    lost = p.add_bizon_fault(
        {"kind": FaultKind.COMMIT_THEN_DROP.value, "endpoint": BizonEndpoint.CREDIT_PAN.value,
         "times": 1}
    )  # fmt: skip
    # What `billing payouts add --now --gateway bizon --pan-stdin` does: this process holds
    # the PAN in memory and drives the payout itself. No worker runs yet: one that took the
    # job would not have the PAN.
    rt = runtime.build(p.worker_env())
    try:
        sent = service.send_now(rt, payout)
    finally:
        rt.close()
    assert p.bizon_fault_fired(lost) == 1
    assert sent.created and sent.final
    assert sent.payout.status is PayoutStatus.PAID
    assert sent.payout.gateway == "bizon"
    (credit,) = bizon_credits(p)
    assert (credit["order_type"], credit["merchant_order_id"]) == ("credit-pan", "bz-pan credit #1")
    assert (credit["card"], credit["amount"], credit["currency"]) == (MASKED_PAN, "12.34", "AZN")
    assert p.credits() == []  # nothing through TXPG
    assert sent.payout.order_id == "bz-pan credit #1"
    assert p.event_types(job("bz-pan")) == [
        "payout.unknown",
        "payout.reconciled",
        "payout.succeeded",
    ]

    # A worker and the scheduler, and a Bizon PAN payout whose PAN is in no memory any more
    # (its process died): the worker ends it unsent, and says so without the number.
    worker = p.start_worker()
    scheduler = p.start_scheduler()
    gone = Payout.create(
        id="bz-pan-lost",
        amount="1.00",
        currency="AZN",
        gateway="bizon",
        pan=PAN,
        mode="immediate",
        now_ms=now,
    ).with_status(PayoutStatus.SENDING, now)
    store.add(p.r, gone)
    p.actors.ring_payouts(["bz-pan-lost"])
    p.wait_for(
        "the Bizon payout without its PAN to fail",
        lambda: statuses(p, ["bz-pan-lost"]) == {"bz-pan-lost": "failed"},
        alive=[worker, scheduler],
    )
    entries = deadletters.list_entries(p.r, limit=None, oldest_first=True)
    lost_entries: list[DeadLetter] = [
        e for e in entries if e.kind == "payout" and e.subscription_id == "bz-pan-lost"
    ]
    (entry,) = lost_entries
    assert entry.reason is DeadLetterReason.REJECTED
    assert "no longer in memory" in entry.detail
    failed = store.get(p.r, "bz-pan-lost")
    assert failed is not None and failed.failure_code == "PanNotInMemory"  # as on TXPG
    assert len(bizon_credits(p)) == 1

    dump = p.dump()
    assert any(MASKED_PAN.encode() in str(v).encode() for v in dump.values())
    leaks = sorted(key for key, (_, value) in dump.items() if PAN in key or _holds_pan(value))
    assert leaks == [], f"the PAN in clear in Redis: {leaks}"
    assert not _holds_pan(p.events())
    assert not _holds_pan(p.bizon_ledger()) and not _holds_pan(p.bizon_orders())
    assert p.bizon is not None and not _holds_pan(p.bizon.lines)  # the sandbox's own log
    for proc in (worker, scheduler):
        assert PAN not in proc.text(), proc.name
    assert not any(PAN in line for line in log_capture.lines[lines_before:])
    payouts = store.load(p.r, ["bz-pan", "bz-pan-lost"])
    assert {x.gateway for x in payouts} == {"bizon"}
    report = build_report(None, payouts, last_attempts(p, [x.id for x in payouts]))
    for fmt in FORMATS:
        text = render(report, fmt)
        assert PAN not in text, fmt
        assert MASKED_PAN in text and "bizon" in text, fmt
