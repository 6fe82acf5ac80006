"""Payouts as real processes: ``billing scheduler`` and ``dramatiq`` workers on one real Redis,
with the sandbox over HTTP. The sandbox ledger is the oracle: every credit's description is
``{payout_id} credit #{attempt}``, so "paid exactly once" is one credit per payout there.

A payout is the charge pipeline's fenced state machine with the payout flow, so the same
crashes, lost responses and restarts are survived the same way; a run takes its payouts in
one script and is idempotent by id, so a run killed half way and started again sends only
what is left.
"""

from __future__ import annotations

import re
import signal
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.logs import LogCapture
from tests.fixtures.pipeline import Pipeline, WorkerProcess, holds
from worker import keys, runtime
from worker.clock import SYSTEM, Clock, OffsetClock
from worker.deadletters import DeadLetter, DeadLetterReason, DeadLetterStatus
from worker.money import Money, parse_amount
from worker.payouts import service
from worker.payouts.config import parse_schedules
from worker.payouts.model import Payout, PayoutStatus
from worker.payouts.report import FORMATS, build_report, render
from worker.payouts.runs import RunLimits, RunState, RunStatus
from worker.sensitive import Secret
from worker.store import deadletters
from worker.store import payouts as store

pytestmark = pytest.mark.slow

#: Destination tokens of the sandbox's cards.json: approves; PMO 64 (soft); PMO 29 (hard).
OK = "26AB0DACE700EF1180EB005056954BCC"
LIMIT_64 = "4D0C64A1E700EF1180EB005056954BCC"
CLOSED_29 = "4D0C29A1E700EF1180EB005056954BCC"
#: A test PAN the session's log scan also looks for (tests.fixtures.logs.TEST_PANS).
PAN = "4169741330151778"
MASKED_PAN = "416974******1778"

BAKU = ZoneInfo("Asia/Baku")
SCHEDULES = """
[[schedule]]
name = "sellers"
cron = "0 18 * * mon-fri"
timezone = "Asia/Baku"
tag = "sellers"
"""


# -- helpers ---------------------------------------------------------------------------------------


def add(
    p: Pipeline,
    payout_id: str,
    at_ms: int,
    *,
    amount: str = "10.00",
    currency: str = "AZN",
    token: str = OK,
    tag: str = "",
) -> Payout:
    """A scheduled payout, pending, created at ``at_ms`` (runs take them in that order)."""
    payout = Payout.create(
        id=payout_id, amount=amount, currency=currency, token=token, tag=tag, now_ms=at_ms
    )
    stored, new = store.add(p.r, payout)
    assert new
    return stored


def job(payout_id: str) -> str:
    """A payout's job key: its events' ``key``, its member of ``bw:pwork``."""
    return keys.work_member(payout_id, keys.PAYOUT_ITEM)


def statuses(p: Pipeline, ids: Iterable[str]) -> dict[str, str]:
    return {payout.id: payout.status.value for payout in store.load(p.r, list(ids))}


def wait_final(
    p: Pipeline,
    clock: Clock,
    run_id: str,
    timeout: float = 30,
    *,
    alive: Sequence[WorkerProcess] = (),
) -> RunState:
    """Until the run is final, refreshing it as its process (or the scheduler) does."""

    def final() -> RunState | None:
        state = service.refresh(p.r, clock, run_id)
        return state if state is not None and state.final else None

    state = p.wait_for(f"run {run_id} to finish", final, timeout, interval=0.1, alive=alive)
    assert state is not None
    return state


def no_ring(ids: list[str]) -> None:
    raise AssertionError(f"rang for {ids}")


def last_attempts(p: Pipeline, ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Each payout's last attempt as stored (what ``build_report`` may be given)."""
    out: dict[str, dict[str, str]] = {}
    for payout_id in ids:
        n = int(p.r.hget(keys.payout_job(payout_id), "attempt") or 0)
        raw: Any = p.r.hgetall(keys.payout_attempt(payout_id, keys.PAYOUT_ITEM, n))
        out[payout_id] = dict(raw)
    return out


def payout_dead_letters(p: Pipeline, payout_id: str) -> list[DeadLetter]:
    """The payout's dead letters, oldest first."""
    entries = deadletters.list_entries(p.r, limit=None, oldest_first=True)
    return [e for e in entries if e.kind == "payout" and e.subscription_id == payout_id]


def credit_totals(credits: Iterable[Mapping[str, Any]]) -> dict[str, Money]:
    sums: dict[str, Money] = {}
    for entry in credits:
        money = parse_amount(entry["amount"], entry["currency"])
        sums[money.currency] = sums.get(money.currency, Money(0, money.currency)) + money
    return sums


def before_fire(lead_ms: int) -> tuple[int, int]:
    """(clock offset, fire instant): "now" becomes ``lead_ms`` before 18:00 Baku on the next
    weekday after today's real date, so ``0 18 * * mon-fri`` fires ``lead_ms`` from now.
    """
    real = SYSTEM.now_ms()
    day = datetime.fromtimestamp(real / 1000, BAKU).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    fire_ms = int(datetime(day.year, day.month, day.day, 18, tzinfo=BAKU).timestamp() * 1000)
    return fire_ms - lead_ms - real, fire_ms


# -- 1. a schedule fires its run -------------------------------------------------------------------


def test_a_schedule_fires_its_run_at_the_cron_time_of_the_test_clock(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    p = pipeline
    offset, fire_ms = before_fire(lead_ms=10_000)
    clock = OffsetClock(offset)
    (schedule,) = parse_schedules(SCHEDULES)
    run_id = schedule.run_id(fire_ms)
    assert re.fullmatch(r"sellers-\d{8}T1400Z", run_id)  # 18:00 in Baku is 14:00 UTC
    now = clock.now_ms()
    sellers = [add(p, f"seller-{n:02d}", now + n, tag="sellers").id for n in range(20)]
    others = [add(p, f"driver-{n}", now + 20 + n, tag="drivers").id for n in range(2)]
    config = tmp_path / "payout-schedules.toml"
    config.write_text(SCHEDULES)

    scheduler = p.start_scheduler(
        clock_offset_ms=offset, extra={"BILLING_PAYOUT_SCHEDULES": str(config)}
    )
    worker = p.start_worker(extra={"BILLING_CLOCK_OFFSET_MS": str(offset)})
    seen = p.wait_for(
        "the leader to record its first sight of the schedule",
        lambda: p.r.get(keys.payout_schedule(schedule.name)),
        timeout=20,
        alive=[scheduler],
    )
    assert int(str(seen)) < fire_ms, "the scheduler saw the schedule only after its fire time"

    # the scheduler finishes the run itself (its payout_runs job refreshes open runs)
    def finished() -> RunState | None:
        state = store.get_run(p.r, run_id)
        return state if state is not None and state.final else None

    state = p.wait_for(
        f"run {run_id} to complete", finished, 40, interval=0.2, alive=[scheduler, worker]
    )
    assert state is not None
    assert state.status is RunStatus.COMPLETED
    assert (state.schedule, state.tag, state.fire_at, state.selected) == (
        "sellers",
        "sellers",
        fire_ms,
        20,
    )
    assert state.created_at >= fire_ms, "the run started before its fire time"
    assert int(p.r.get(keys.payout_schedule(schedule.name)) or 0) == fire_ms
    assert store.open_runs(p.r) == []

    assert p.credits_per_payout() == Counter(dict.fromkeys(sellers, 1))
    assert set(statuses(p, sellers).values()) == {"paid"}
    assert statuses(p, others) == dict.fromkeys(others, "pending")  # another tag: not taken
    assert [x.id for x in store.pending(p.r)] == others
    assert p.event_types(run_id) == ["payout_run.started", "payout_run.completed"]
    (completed,) = [e for e in p.events(run_id) if e["type"] == "payout_run.completed"]
    assert completed["data"]["paid"] == 20
    for payout_id in sellers:
        assert p.event_types(job(payout_id)) == ["payout.succeeded"]
    assert [rec for rec in scheduler.records() if rec.get("run_id") == run_id]


# -- 2. a run killed half way, and started again ---------------------------------------------------

#: The process that runs a run: takes the payouts, rings for the first half of them, and is
#: SIGKILLed before it rings for the rest.
RUN_THEN_DIE = """
import os, signal, sys
from worker import broker
from worker.clock import SYSTEM
from worker.store import connect

url = os.environ["BILLING_REDIS_URL"]
broker.setup(url)
from worker import actors
from worker.payouts import service

def ring(ids):
    half = ids[: len(ids) // 2]
    actors.ring_payouts(half)
    print(f"rang for {len(half)} of {len(ids)} payouts; dying", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

service.start_run(connect(url), SYSTEM, ring, run_id=sys.argv[1], grace_ms=int(sys.argv[2]))
"""


def test_a_run_killed_half_way_and_started_again_pays_each_payout_once(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    run_id = "manual-killed"
    now = SYSTEM.now_ms()
    ids = [add(p, f"po-{n:02d}", now + n).id for n in range(40)]
    # exec-tran answers slowly, after the money moved: a worker killed now leaves payouts
    # whose credit is in the ledger but whose result was never stored
    slow = p.add_fault(
        {"kind": "slow-body", "endpoint": "exec-tran", "latencyMs": 150, "chunkBytes": 16}
    )
    first = p.start_worker("worker-1")

    runner = WorkerProcess(
        "run-process",
        [sys.executable, "-c", RUN_THEN_DIE, run_id, "3000"],
        p.worker_env(),
        p.log_dir / "run-process.log",
    )
    p.workers.append(runner)
    assert runner.wait_exit(60) == -signal.SIGKILL, runner.tail()
    taken = store.run_payouts(p.r, run_id)
    assert [x.id for x in taken] == ids
    assert {x.status for x in taken} == {PayoutStatus.SENDING}
    assert list(store.pending(p.r)) == []

    def unrecorded() -> list[str]:
        """Payouts credited in the ledger whose result is not stored (yet)."""
        credited = set(p.credits_per_payout())
        stored = statuses(p, credited)
        return sorted(x for x in credited if stored[x] != "paid")

    p.wait_for(
        "8 credits, one of them still answering",
        lambda: len(p.credits()) >= 8 and unrecorded(),
        timeout=30,
        alive=[first],
    )
    first.kill()
    credited = set(p.credits_per_payout())
    in_flight = unrecorded()  # their response was on its way: it never will be
    assert 8 <= len(credited) < 20, "the kill came after the run was done"
    assert in_flight, "no payout was caught between its credit and its stored result"
    for payout_id in in_flight:
        attempt: Any = p.r.hgetall(keys.payout_attempt(payout_id, keys.PAYOUT_ITEM, 1))
        assert attempt["state"] == "exec_sent", (payout_id, attempt["state"])
    run = store.get_run(p.r, run_id)
    assert run is not None and run.status is RunStatus.SENDING

    p.remove_fault(slow)
    second = p.start_worker("worker-2")
    again = service.start_run(p.r, SYSTEM, p.actors.ring_payouts, run_id=run_id)
    assert not again.created
    assert again.taken == ()
    state = wait_final(p, SYSTEM, run_id, timeout=45, alive=[second])

    assert state.status is RunStatus.COMPLETED
    assert state.selected == 40
    assert p.credits_per_payout() == Counter(dict.fromkeys(ids, 1))
    assert set(statuses(p, ids).values()) == {"paid"}
    for payout_id in ids:
        types = p.event_types(job(payout_id))
        assert types.count("payout.succeeded") == 1, (payout_id, types)
        assert "payout.failed" not in types
    for payout_id in in_flight:  # found exec_sent: asked the gateway, which said paid
        assert p.event_types(job(payout_id)) == [
            "payout.unknown",
            "payout.reconciled",
            "payout.succeeded",
        ]
        reconciled = [e for e in p.events(job(payout_id)) if e["type"] == "payout.reconciled"]
        assert reconciled[0]["data"]["outcome"] == "paid"
    assert p.event_types(run_id) == ["payout_run.started", "payout_run.completed"]


# -- 3. a lost response ----------------------------------------------------------------------------


def test_a_payout_whose_response_was_lost_is_reconciled_as_paid_once(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    worker = p.start_worker()
    rule = p.add_fault({"kind": "commit-then-drop", "endpoint": "exec-tran", "times": 1})
    add(p, "po-lost", SYSTEM.now_ms())
    service.start_run(p.r, SYSTEM, p.actors.ring_payouts, run_id="manual-lost")
    state = wait_final(p, SYSTEM, "manual-lost", alive=[worker])

    assert state.status is RunStatus.COMPLETED
    assert p.fault_fired(rule) == 1
    (credit,) = p.credits()
    assert credit["description"] == "po-lost credit #1"
    order_id = str(credit["order_id"])
    payout = store.get(p.r, "po-lost")
    assert payout is not None and payout.status is PayoutStatus.PAID
    assert payout.order_id == order_id
    pjob: Any = p.r.hgetall(keys.payout_job("po-lost"))
    assert (pjob["status"], pjob["attempt"], pjob["paid_order"]) == ("paid", "1", order_id)
    assert p.event_types(job("po-lost")) == [
        "payout.unknown",
        "payout.reconciled",
        "payout.succeeded",
    ]
    unknown, reconciled, succeeded = p.events(job("po-lost"))
    assert reconciled["data"]["outcome"] == "paid"
    assert unknown["data"]["order_id"] == reconciled["data"]["order_id"] == order_id
    assert succeeded["data"]["order_id"] == order_id
    assert [o["id"] for o in p.orders()] == [credit["order_id"]]  # the same order, no other


# -- 4. limits, and a dry run ----------------------------------------------------------------------


def test_limits_stop_a_run_at_the_first_payout_over_them_and_a_dry_run_changes_nothing(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    now = SYSTEM.now_ms()
    specs = [
        ("p01", "10.00", "AZN"),
        ("p02", "5.00", "USD"),
        ("p03", "15.00", "AZN"),
        ("p04", "10.00", "AZN"),  # 35.00 AZN: over the run's 30.00, so the run stops here
        ("p05", "1.00", "AZN"),  # would fit, but a run never skips ahead
        ("p06", "1.00", "USD"),
        ("p07", "1.00", "AZN"),
        ("p08", "2.00", "USD"),
    ]
    for n, (payout_id, amount, currency) in enumerate(specs):
        add(p, payout_id, now + n, amount=amount, currency=currency)
    by_total = RunLimits(max_total={"AZN": Money(3000, "AZN"), "USD": Money(10000, "USD")})

    before = p.dump()
    dry = service.start_run(
        p.r, SYSTEM, no_ring, run_id="manual-limits-1", limits=by_total, dry_run=True
    )
    assert p.dump() == before
    assert dry.dry_run and not dry.created and dry.taken == ()
    assert dry.plan is not None
    assert [x.id for x in dry.plan.selected] == ["p01", "p02", "p03"]
    assert [x.id for x, _ in dry.plan.held] == ["p04", "p05", "p06", "p07", "p08"]
    assert dry.plan.limit_reached == "max_total 30.00 AZN"

    worker = p.start_worker()
    assert p.credits() == []
    ring = p.actors.ring_payouts
    first = service.start_run(p.r, SYSTEM, ring, run_id="manual-limits-1", limits=by_total)
    assert first.created and first.taken == ("p01", "p02", "p03")
    # started again (its limits are the stored ones): what is left of them takes nothing
    assert service.start_run(p.r, SYSTEM, ring, run_id="manual-limits-1").taken == ()
    one = wait_final(p, SYSTEM, "manual-limits-1", alive=[worker])
    assert (one.status, one.held, one.limit_reached) == (
        RunStatus.LIMIT_REACHED,
        5,
        "max_total 30.00 AZN",
    )
    assert one.totals == {"AZN": Money(2500, "AZN"), "USD": Money(500, "USD")}
    assert [x.id for x in store.pending(p.r)] == ["p04", "p05", "p06", "p07", "p08"]

    second = service.start_run(
        p.r, SYSTEM, ring, run_id="manual-limits-2", limits=RunLimits(max_count=2)
    )
    assert second.taken == ("p04", "p05")
    two = wait_final(p, SYSTEM, "manual-limits-2", alive=[worker])
    assert (two.status, two.held, two.limit_reached) == (RunStatus.LIMIT_REACHED, 3, "max_count 2")
    assert service.start_run(p.r, SYSTEM, ring, run_id="manual-limits-1").taken == ()

    assert statuses(p, ["p06", "p07", "p08"]) == dict.fromkeys(["p06", "p07", "p08"], "pending")
    assert p.credits_per_payout() == Counter(dict.fromkeys(["p01", "p02", "p03", "p04", "p05"], 1))
    assert credit_totals(p.credits()) == {"AZN": Money(3600, "AZN"), "USD": Money(500, "USD")}
    limited = [e for e in p.events() if e["type"] == "payout_run.limit_reached"]
    assert [(e["key"], e["data"]["limit"], e["data"]["held"]) for e in limited] == [
        ("manual-limits-1", "max_total 30.00 AZN", 5),
        ("manual-limits-2", "max_count 2", 3),
    ]
    for run_id in ("manual-limits-1", "manual-limits-2"):
        assert p.event_types(run_id) == [
            "payout_run.started",
            "payout_run.limit_reached",
            "payout_run.completed",
        ]


# -- 5. declines -----------------------------------------------------------------------------------


def test_a_declined_payout_fails_into_the_dead_letters_and_a_replay_sends_it_again(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    worker = p.start_worker()
    now = SYSTEM.now_ms()
    add(p, "po-soft", now, token=LIMIT_64)
    add(p, "po-hard", now + 1, token=CLOSED_29)
    add(p, "po-fine", now + 2)
    service.start_run(p.r, SYSTEM, p.actors.ring_payouts, run_id="manual-declines")
    state = wait_final(p, SYSTEM, "manual-declines", alive=[worker])

    assert state.status is RunStatus.COMPLETED
    assert statuses(p, ["po-soft", "po-hard", "po-fine"]) == {
        "po-soft": "failed",
        "po-hard": "failed",
        "po-fine": "paid",
    }
    for payout_id, code, title in (
        ("po-soft", "64", "Credit amount limit"),
        ("po-hard", "29", "Closed account"),
    ):
        (entry,) = payout_dead_letters(p, payout_id)
        assert (entry.reason, entry.status, entry.period) == (
            DeadLetterReason.DECLINED,
            DeadLetterStatus.OPEN,
            keys.PAYOUT_ITEM,
        )
        assert (entry.attempts[-1]["result_code"], entry.attempts[-1]["result_title"]) == (
            code,
            title,
        )
        payout = store.get(p.r, payout_id)
        assert payout is not None
        assert (payout.failure_code, payout.failure_title) == (code, title)
        (failed,) = [e for e in p.events(job(payout_id)) if e["type"] == "payout.failed"]
        assert (failed["data"]["result_code"], failed["data"]["dlq_id"]) == (code, entry.id)
    assert p.credits_per_payout() == Counter({"po-fine": 1})

    (first,) = payout_dead_letters(p, "po-soft")
    replayed = deadletters.replay(p.r, first.id, SYSTEM, actor="ops@example.com")
    assert replayed.outcome is deadletters.ReplayOutcome.REOPENED

    def two_entries() -> list[DeadLetter] | None:
        entries = payout_dead_letters(p, "po-soft")
        return entries if len(entries) == 2 else None

    entries = p.wait_for("the replayed payout to fail again", two_entries, alive=[worker])
    assert entries is not None
    assert [e.status for e in entries] == [DeadLetterStatus.REPLAYED, DeadLetterStatus.OPEN]
    again = entries[1]
    assert again.id != first.id
    assert [a["n"] for a in again.attempts] == ["1", "2"]  # one attempt more
    assert again.attempts[-1]["result_code"] == "64"
    assert statuses(p, ["po-soft"]) == {"po-soft": "failed"}
    assert p.r.hget(keys.payout_job("po-soft"), "attempt") == "2"
    assert p.event_types(job("po-soft")) == ["payout.failed", "dlq.replayed", "payout.failed"]
    assert p.credits_per_payout() == Counter({"po-fine": 1})  # nothing credited
    softs = [o for o in p.orders() if o["description"].startswith("po-soft credit #")]
    assert sorted(o["description"] for o in softs) == ["po-soft credit #1", "po-soft credit #2"]


# -- 6. no PAN in clear ----------------------------------------------------------------------------


def _holds_pan(value: Any) -> bool:
    return holds(value, PAN)


def test_no_pan_in_clear_anywhere_after_an_immediate_pan_payout(
    pipeline: Pipeline, log_capture: LogCapture
) -> None:
    p = pipeline
    lines_before = len(log_capture.lines)
    now = SYSTEM.now_ms()
    payout = Payout.create(
        id="po-pan", amount="12.34", currency="AZN", pan=Secret(PAN), mode="immediate", now_ms=now
    )
    ref = payout.destination.ref()
    assert ref == f"pan:{MASKED_PAN}"
    # What `billing payouts send` does: this process holds the PAN in memory and drives the
    # payout itself. No worker runs yet: one that took the job would not have the PAN.
    rt = runtime.build(p.worker_env())
    try:
        sent = service.send_now(rt, payout)
    finally:
        rt.close()
    assert sent.created and sent.final
    assert sent.payout.status is PayoutStatus.PAID
    assert statuses(p, ["po-pan"]) == {"po-pan": "paid"}
    (credit,) = p.credits()
    assert (credit["description"], credit["card"], credit["amount"]) == (
        "po-pan credit #1",
        MASKED_PAN,
        "12.34",
    )
    assert sent.order_id == sent.payout.order_id == str(credit["order_id"])
    assert sent.payout.approval_code

    # A worker and the scheduler, and a PAN payout whose PAN is no longer in any memory (its
    # process died): the worker must end it unsent, and say so without the number.
    worker = p.start_worker()
    scheduler = p.start_scheduler()
    lost = Payout.create(
        id="po-pan-lost", amount="1.00", currency="AZN", pan=PAN, mode="immediate", now_ms=now
    ).with_status(PayoutStatus.SENDING, now)
    store.add(p.r, lost)
    p.actors.ring_payouts(["po-pan-lost"])
    p.wait_for(
        "the payout without its PAN to fail",
        lambda: statuses(p, ["po-pan-lost"]) == {"po-pan-lost": "failed"},
        alive=[worker, scheduler],
    )
    (entry,) = payout_dead_letters(p, "po-pan-lost")
    assert entry.reason is DeadLetterReason.REJECTED
    assert "no longer in memory" in entry.detail
    failed = store.get(p.r, "po-pan-lost")
    assert failed is not None and failed.failure_code == "PanNotInMemory"
    assert len(p.credits()) == 1

    dump = p.dump()
    assert any(MASKED_PAN.encode() in str(v).encode() for v in dump.values())
    leaks = sorted(key for key, (_, value) in dump.items() if PAN in key or _holds_pan(value))
    assert leaks == [], f"the PAN in clear in Redis: {leaks}"
    assert not _holds_pan(p.events())
    assert not _holds_pan(p.ledger()) and not _holds_pan(p.orders())  # the sandbox's own
    for proc in (worker, scheduler):
        assert PAN not in proc.text(), proc.name
    assert not any(PAN in line for line in log_capture.lines[lines_before:])
    paid = store.get(p.r, "po-pan")
    assert paid is not None
    for payouts in ([paid], store.load(p.r, ["po-pan", "po-pan-lost"])):
        report = build_report(None, payouts, last_attempts(p, [x.id for x in payouts]))
        for fmt in FORMATS:
            text = render(report, fmt)
            assert PAN not in text, fmt
            assert MASKED_PAN in text, fmt


# -- 7. the report and the ledger ------------------------------------------------------------------


def test_the_report_of_a_completed_run_matches_the_ledger(pipeline: Pipeline) -> None:
    p = pipeline
    worker = p.start_worker()
    now = SYSTEM.now_ms()
    specs = [
        ("r1", "10.00", "AZN", OK),
        ("r2", "2.50", "AZN", OK),
        ("r3", "7.00", "USD", OK),
        ("r4", "1.25", "USD", OK),
        ("r5", "4.00", "AZN", CLOSED_29),
        ("r6", "0.01", "EUR", OK),
    ]
    for n, (payout_id, amount, currency, token) in enumerate(specs):
        add(p, payout_id, now + n, amount=amount, currency=currency, token=token)
    service.start_run(p.r, SYSTEM, p.actors.ring_payouts, run_id="manual-report")
    state = wait_final(p, SYSTEM, "manual-report", alive=[worker])
    assert state.status is RunStatus.COMPLETED

    payouts = store.run_payouts(p.r, "manual-report")
    report = build_report(state, payouts, last_attempts(p, [x.id for x in payouts]))
    credits = p.credits()
    paid = {g.currency: g.total for g in report.groups if g.status is PayoutStatus.PAID}
    assert paid == credit_totals(credits)
    assert paid == {
        "AZN": Money(1250, "AZN"),
        "EUR": Money(1, "EUR"),
        "USD": Money(825, "USD"),
    }
    failed = [
        (g.currency, g.count, g.total) for g in report.groups if g.status is PayoutStatus.FAILED
    ]
    assert failed == [("AZN", 1, Money(400, "AZN"))]
    by_description = {c["description"]: c for c in credits}
    assert len(by_description) == len(credits) == 5
    for row in report.rows:
        if row.status is PayoutStatus.PAID:
            credit = by_description[f"{row.payout_id} credit #1"]
            assert row.order_id == str(credit["order_id"])
            assert row.amount == parse_amount(credit["amount"], credit["currency"])
        else:
            assert (row.payout_id, row.failure_code) == ("r5", "29")
    rendered = {fmt: render(report, fmt) for fmt in FORMATS}
    assert '"total": "12.50"' in rendered["json"]
    assert "r5,failed,4.00,AZN" in rendered["csv"]
    assert "manual-report: completed" in rendered["table"]
