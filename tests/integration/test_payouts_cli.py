"""``billing payouts`` against a real Redis (and, for what sends, the sandbox and a real worker
process): each command says what happened; a refused one prints ``error: ...``, exits 2 and
changes nothing; a card number never shows up anywhere but in the gateway's request.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from typer.testing import CliRunner, Result

from tests.fixtures.logs import LogCapture
from tests.fixtures.pipeline import Pipeline
from worker import keys
from worker.cli import app, registered_commands
from worker.clock import SYSTEM
from worker.payouts import service
from worker.payouts.model import Payout, PayoutStatus
from worker.payouts.runs import RunStatus
from worker.store import connect
from worker.store import payouts as store

OK = "26AB0DACE700EF1180EB005056954BCC"  # the sandbox approves credits to it
LIMIT = "4D0C64A1E700EF1180EB005056954BCC"  # the sandbox declines credits to it (PMO 64)
#: A card number of this module's own (not one of the log scan's known test PANs): it is
#: registered with the log scan, which fails the session if it shows up in any log.
PAN = "4000057712345638"
MASKED = "400005******5638"
COMMANDS = ["add", "import", "list", "show", "cancel", "run", "approve", "report"]

Billing = Callable[..., Result]


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    yield client
    client.close()


def invoke(env: Mapping[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["payouts", *args], input=stdin, env={"COLUMNS": "200", **env})


@pytest.fixture
def billing(redis_url: str) -> Billing:
    """``billing(*args)``: ``billing payouts ARGS`` against the test's Redis, wide."""

    def run(*args: str, stdin: str | None = None, **env: str) -> Result:
        return invoke({"BILLING_REDIS_URL": redis_url, **env}, *args, stdin=stdin)

    return run


def error(result: Result) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "error: " in error(result), result.stderr  # after any "line N: reason"
    assert message in error(result), error(result)


def dump(r: redis.Redis) -> dict[str, Any]:
    """Every key with its type and full value, whatever the type."""
    out: dict[str, Any] = {}
    for key in sorted(cast("list[str]", r.keys("*"))):
        kind = r.type(key)
        value: Any
        if kind == "hash":
            value = r.hgetall(key)
        elif kind == "zset":
            value = r.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(cast("set[str]", r.smembers(key)))
        elif kind == "list":
            value = r.lrange(key, 0, -1)
        elif kind == "stream":
            value = r.xrange(key, "-", "+")
        else:
            value = r.get(key)
        out[key] = (kind, value)
    return out


def everything(r: redis.Redis) -> str:
    """Every key and value in Redis as one text, to look for a secret in."""
    return json.dumps(dump(r), default=str)


def add(billing: Billing, payout_id: str, amount: str = "10.00", *more: str) -> None:
    result = billing(
        "add", "--id", payout_id, "--amount", amount, "--currency", "AZN", "--token", OK, *more
    )
    assert result.exit_code == 0, result.output


def statuses(r: redis.Redis) -> dict[str, str]:
    return {p.id: p.status.value for p in store.every(r)}


# -- help ------------------------------------------------------------------------------------


def test_the_group_is_registered() -> None:
    assert "payouts" in registered_commands()
    result = CliRunner().invoke(app, ["payouts", "--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str) -> None:
    result = CliRunner().invoke(app, ["payouts", command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"billing payouts {command}" in result.output
    assert "--redis-url" in result.output


# -- add ---------------------------------------------------------------------------------------


def test_add_a_scheduled_payout_is_idempotent(r: redis.Redis, billing: Billing) -> None:
    args = ["add", "--id", "po_1", "--amount", "25.00", "--currency", "AZN", "--token", OK]
    first = billing(*args, "--tag", "sellers", "--description", "May")
    assert first.exit_code == 0, first.output
    assert "added po_1: 25.00 AZN to TWO_COF:26AB0D…4BCC on txpg, pending" in first.stdout
    payout = store.get(r, "po_1")
    assert payout is not None
    assert (payout.status, payout.tag, payout.description) == (
        PayoutStatus.PENDING,
        "sellers",
        "May",
    )
    assert r.zrange(keys.PAYOUTS_PENDING, 0, -1) == ["po_1"]
    before = dump(r)
    again = billing(*args, "--tag", "sellers", "--description", "May")
    assert again.exit_code == 0
    assert "already exists with these values" in again.stdout
    assert dump(r) == before
    refused(billing(*args[:-1], LIMIT, "--tag", "sellers", "--description", "May"), "different")
    refused(billing(*args, "--tag", "buyers", "--description", "May"), "different tag")
    assert dump(r) == before


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--token", OK, "--pan-stdin", "--now"], PAN, "give exactly one destination"),
        ([], None, "give exactly one destination"),
        (["--pan-stdin"], PAN, "scheduled payouts need a token"),
        (["--token", "not-hex"], None, "token (ridByCofp) is invalid"),
        (["--token", OK, "--amount", "0"], None, "amount"),
        (["--token", OK, "--currency", "XXX"], None, "XXX"),
        (["--token", OK, "--tag", "bad tag"], None, "tag"),
        (["--token", OK, "--description", f"pay {PAN}"], None, "looks like a card number"),
        (["--pan-stdin", "--now"], "4000057712345639\n", "fails the Luhn check"),
        (["--pan-stdin", "--now"], "4000 0577 1234 5638\n", "pan is invalid"),
        (["--pan-stdin", "--now"], "", "give one card number on stdin"),
        (["--pan-stdin", "--now"], f"{PAN}\n{PAN}\n", "give one card number on stdin"),
    ],
)
def test_add_refuses_bad_input(
    r: redis.Redis, billing: Billing, args: list[str], stdin: str | None, message: str
) -> None:
    # an option given twice takes its last value
    result = billing("add", "--id", "po_1", "--amount", "10.00", "--currency", "AZN", *args,
                     stdin=stdin)  # fmt: skip
    refused(result, message)
    assert result.stdout == ""
    assert PAN not in result.output
    assert dump(r) == {}


def test_a_card_number_as_an_id_is_refused_and_not_echoed(r: redis.Redis, billing: Billing) -> None:
    result = billing("add", "--id", PAN, "--amount", "1.00", "--currency", "AZN", "--token", OK)
    refused(result, "looks like a card number")
    assert PAN not in result.output
    assert dump(r) == {}


# -- import ------------------------------------------------------------------------------------

CSV_OK = f"id,amount,currency,token,tag\npo_1,10.00,AZN,{OK},a\npo_2,2.50,AZN,{OK},b\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_import_is_all_or_nothing(r: redis.Redis, billing: Billing, tmp_path: Path) -> None:
    text = (
        f"id,amount,currency,token,pan\npo_1,10.00,AZN,{OK},\npo_2,abc,AZN,{{OK}},\n".replace(
            "{OK}", OK
        )
        + f"po_3,1.00,AZN,,{PAN}\n"
        + f"po_1,5.00,AZN,{OK},\n"
    )
    result = billing("import", write(tmp_path, "p.csv", text))
    refused(result, "3 of 4 rows are invalid or conflict: nothing was imported")
    assert "line 3: " in result.stderr
    assert "line 4: a PAN is only for an immediate payout" in error(result)
    assert "line 5: payout id po_1 is already on line 2" in error(result)
    assert PAN not in result.output
    assert dump(r) == {}
    as_json = billing("import", write(tmp_path, "p.csv", text), "--json")
    assert as_json.exit_code == 2
    summary = json.loads(as_json.stdout)
    assert (summary["written"], summary["created"], summary["invalid"]) == (False, 0, 3)
    assert [e["line"] for e in summary["errors"]] == [3, 4, 5]
    assert dump(r) == {}


def test_import_skip_invalid_then_again_is_idempotent(
    r: redis.Redis, billing: Billing, tmp_path: Path
) -> None:
    file = write(tmp_path, "p.jsonl", "\n".join([
        json.dumps({"id": "po_1", "amount": "10.00", "currency": "AZN", "token": OK}),
        json.dumps({"id": "po_2", "amount": 2.5, "currency": "AZN", "token": OK}),
        json.dumps({"id": "po_3", "amount": "3.00", "currency": "AZN", "token": OK, "tag": "t"}),
        json.dumps({"id": "po_4", "amount": "4.00", "currency": "AZN", "pan": PAN,
                    "mode": "immediate"}),
    ]) + "\n")  # fmt: skip
    result = billing("import", file, "--skip-invalid", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["created"], summary["unchanged"], summary["invalid"]) == (2, 0, 2)
    assert "line 2: amount must be text" in error(result)
    assert PAN not in result.output
    assert statuses(r) == {"po_1": "pending", "po_3": "pending"}
    # file order is sending order
    assert [p.id for p in store.pending(r)] == ["po_1", "po_3"]
    before = dump(r)
    again = billing("import", file, "--skip-invalid")
    assert again.exit_code == 0
    assert "created 0, unchanged 2, invalid 2" in again.stdout
    assert dump(r) == before


def test_import_refuses_a_conflict_with_a_stored_payout(
    r: redis.Redis, billing: Billing, tmp_path: Path
) -> None:
    add(billing, "po_1", "99.00")
    before = dump(r)
    result = billing("import", write(tmp_path, "p.csv", CSV_OK))
    refused(result, "1 of 2 rows are invalid or conflict")
    assert "line 2: conflict: po_1 already exists with a different amount" in error(result)
    assert dump(r) == before
    skipped = billing("import", write(tmp_path, "p.csv", CSV_OK), "--skip-invalid")
    assert skipped.exit_code == 0
    assert "created 1, unchanged 0, invalid 1" in skipped.stdout
    assert statuses(r) == {"po_1": "pending", "po_2": "pending"}


def test_import_refuses_a_bad_file(r: redis.Redis, billing: Billing, tmp_path: Path) -> None:
    refused(billing("import", write(tmp_path, "p.txt", CSV_OK)), "unknown file type")
    refused(billing("import", write(tmp_path, "p.csv", "id,amount,nope\n")), "unknown column")
    refused(billing("import", str(tmp_path / "missing.csv")), "cannot read")
    assert dump(r) == {}


# -- list, show, cancel ------------------------------------------------------------------------


def test_list_show_and_filters(r: redis.Redis, billing: Billing) -> None:
    for n in range(3):
        add(billing, f"po_{n}", f"{n + 1}.00")
    assert billing("cancel", "po_1").exit_code == 0
    table = billing("list")
    assert table.exit_code == 0
    for text in ("po_0", "po_1", "po_2", "cancelled", "TWO_COF:26AB0D…4BCC", "3.00 AZN"):
        assert text in table.stdout
    pending = json.loads(billing("list", "--status", "pending", "--json").stdout)
    assert [p["id"] for p in pending] == ["po_0", "po_2"]
    limited = billing("list", "--limit", "1")
    assert "po_0" in limited.stdout and "po_2" not in limited.stdout
    assert "raise --limit" in limited.stdout
    assert "no payouts with status paid" in billing("list", "--status", "paid").stdout
    refused(billing("list", "--run", "bad run"), "run id")
    shown = json.loads(billing("show", "po_2", "--json").stdout)
    assert (shown["amount"], shown["status"], shown["attempts"]) == ("3.00", "pending", [])
    plain = billing("show", "po_2")
    assert "no attempts yet" in plain.stdout and "TWO_COF:26AB0D…4BCC" in plain.stdout
    refused(billing("show", "po_9"), "no payout po_9")


def test_cancel_only_what_was_not_sent(r: redis.Redis, billing: Billing) -> None:
    add(billing, "po_1")
    add(billing, "po_2")
    done = billing("cancel", "po_1")
    assert done.exit_code == 0
    assert "cancelled po_1" in done.stdout
    assert r.zrange(keys.PAYOUTS_PENDING, 0, -1) == ["po_2"]
    assert "already cancelled; nothing changed" in billing("cancel", "po_1").stdout
    assert billing("run", "--no-wait", "--run-id", "manual-c").exit_code == 0
    before = dump(r)
    refused(billing("cancel", "po_2"), "po_2 is sending; only a pending or queued payout")
    refused(billing("cancel", "po_9"), "no payout po_9")
    assert dump(r) == before


# -- run ---------------------------------------------------------------------------------------


def test_a_dry_run_changes_nothing(r: redis.Redis, billing: Billing, tmp_path: Path) -> None:
    for n in range(5):
        add(billing, f"po_{n}", "10.00", "--tag", "sellers" if n != 2 else "buyers")
    before = dump(r)
    result = billing("run", "--dry-run", "--tag", "sellers", "--max-total", "25.00", "AZN")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "nothing was changed" in out
    assert "would take 2 payouts: 20.00 AZN" in out
    assert "would hold 2 payouts" in out
    assert "would exceed max_total 25.00 AZN: 20.00 AZN selected + 10.00 AZN" in out
    assert "held: the run stopped at payout po_3" in out
    assert "the limit that would stop it: max_total 25.00 AZN" in out
    assert "po_2" not in out  # another tag: neither taken nor held
    unlimited = billing("run", "--dry-run", "--run-id", "manual-x")
    assert "would take 5 payouts: 50.00 AZN" in unlimited.stdout
    assert "no limit would stop it" in unlimited.stdout
    schedules = write(
        tmp_path,
        "s.toml",
        '[[schedule]]\nname = "weekly"\ncron = "0 18 * * fri"\ntimezone = "Asia/Baku"\n'
        'tag = "sellers"\nmax_count = 3\napproval = true\n',
    )
    planned = billing(
        "run", "--dry-run", "--schedule", "weekly", BILLING_PAYOUT_SCHEDULES=schedules
    )
    assert planned.exit_code == 0, planned.output
    assert "dry run of run weekly-" in planned.stdout
    assert "would take 3 payouts" in planned.stdout and "waits for approval" in planned.stdout
    assert dump(r) == before
    # a real run, then a dry run of it: still nothing changed by the dry run
    assert billing("run", "--run-id", "manual-y", "--max-count", "1", "--no-wait").exit_code == 0
    after_run = dump(r)
    again = billing("run", "--dry-run", "--run-id", "manual-y")
    assert "the limit that would stop it: limit" in again.stdout
    assert dump(r) == after_run


def test_run_options_are_checked_first(r: redis.Redis, billing: Billing, tmp_path: Path) -> None:
    add(billing, "po_1")
    before = dump(r)
    refused(billing("run", "--max-total", "10.00"), "give an amount and a currency")
    refused(billing("run", "--max-total", "1", "AZN", "--max-total", "2", "AZN"), "given twice")
    refused(billing("run", "--max-total", "1.001", "AZN"), "AZN")
    refused(billing("run", "--run-id", "bad id"), "run id")
    refused(billing("run", "--tag", "bad tag"), "tag")
    refused(billing("run", "--schedule", "weekly"), "no payout schedule 'weekly'")
    schedules = write(
        tmp_path, "s.toml", '[[schedule]]\nname = "daily"\ncron = "0 9 * * *"\ntimezone = "UTC"\n'
    )
    env = {"BILLING_PAYOUT_SCHEDULES": schedules}
    refused(billing("run", "--schedule", "weekly", **env), "(known: daily)")
    refused(billing("run", "--schedule", "daily", "--max-count", "2", **env), "--max-count")
    assert dump(r) == before


def test_a_run_stops_at_its_limit_and_reports_it(r: redis.Redis, billing: Billing) -> None:
    for n in range(5):
        add(billing, f"po_{n}", f"{n + 1}.00")
    result = billing("run", "--run-id", "manual-limit", "--max-count", "3", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "started run manual-limit: took 3 payouts (6.00 AZN)" in result.stdout
    assert "limit reached: max_count 3; 2 payouts held, pending, for the next run" in result.stdout
    assert statuses(r) == {
        "po_0": "sending",
        "po_1": "sending",
        "po_2": "sending",
        "po_3": "pending",
        "po_4": "pending",
    }
    state = store.get_run(r, "manual-limit")
    assert state is not None
    assert (state.status, state.limit_reached, state.held) == (RunStatus.SENDING, "max_count 3", 2)
    listed = json.loads(billing("list", "--run", "manual-limit", "--json").stdout)
    assert [p["id"] for p in listed] == ["po_0", "po_1", "po_2"]
    # resuming the run takes nothing more: its limit is used up
    again = billing("run", "--run-id", "manual-limit", "--no-wait")
    assert "resumed run manual-limit: took 0 payouts" in again.stdout
    assert statuses(r)["po_3"] == "pending"


def test_approve_flow(r: redis.Redis, billing: Billing) -> None:
    for n in range(3):
        add(billing, f"po_{n}")
    started = billing("run", "--run-id", "manual-ok", "--approval")
    assert started.exit_code == 0, started.output
    assert "awaits approval: 3 payouts queued" in started.stdout
    assert "billing payouts approve manual-ok" in started.stdout
    assert set(statuses(r).values()) == {"queued"}
    assert r.zcard(keys.PAYOUT_WORK) == 0  # nothing is opened for sending yet
    assert billing("cancel", "po_1").exit_code == 0
    approved = billing("approve", "manual-ok", "--actor", "alice")
    assert approved.exit_code == 0, approved.output
    assert "approved run manual-ok (by alice): sending 2 payouts" in approved.stdout
    assert statuses(r) == {"po_0": "sending", "po_1": "cancelled", "po_2": "sending"}
    state = store.get_run(r, "manual-ok")
    assert state is not None
    assert (state.status, state.approved_by) == (RunStatus.SENDING, "alice")
    before = dump(r)
    refused(billing("approve", "manual-ok"), "only a run awaiting approval can be approved")
    refused(billing("approve", "manual-no"), "no payout run manual-no")
    refused(billing("approve", "manual-ok", "--actor", " x"), "actor")
    assert dump(r) == before


def test_approve_defaults_to_the_os_user(r: redis.Redis, billing: Billing) -> None:
    add(billing, "po_0")
    assert billing("run", "--run-id", "manual-u", "--approval").exit_code == 0
    result = billing("approve", "manual-u", USER="bob", LOGNAME="not-bob")
    assert result.exit_code == 0, result.output
    state = store.get_run(r, "manual-u")
    assert state is not None and state.approved_by == "bob"


def test_report_formats(r: redis.Redis, billing: Billing) -> None:
    for n, amount in enumerate(["10.00", "2.50", "0.05"]):
        add(billing, f"po_{n}", amount)
    assert billing("run", "--run-id", "manual-r", "--no-wait").exit_code == 0
    as_csv = billing("report", "manual-r", "--format", "csv")
    assert as_csv.exit_code == 0 and as_csv.stderr == ""
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["payout_id"] for row in rows] == ["po_0", "po_1", "po_2"]
    assert sum(Decimal(row["amount"]) for row in rows) == Decimal("12.55")
    as_json = json.loads(billing("report", "manual-r", "--format", "json").stdout)
    assert as_json["totals"] == {"AZN": {"count": 3, "total": "12.55"}}
    assert as_json["run"]["id"] == "manual-r"
    table = billing("report", "manual-r")
    assert "run manual-r: sending" in table.stdout and "12.55" in table.stdout
    refused(billing("report", "manual-zz"), "no payout run manual-zz")
    bad = billing("report", "manual-r", "--format", "xml")  # a usage error, typer's own
    assert bad.exit_code == 2 and "'xml' is not one of" in bad.stderr


# -- with the sandbox and a real worker process ------------------------------------------------


def pipeline_billing(pipeline: Pipeline) -> Billing:
    env = pipeline.worker_env()

    def run(*args: str, stdin: str | None = None, **more: str) -> Result:
        return invoke({**env, **more}, *args, stdin=stdin)

    return run


@pytest.mark.slow
def test_an_immediate_payout_to_a_card_number(pipeline: Pipeline, log_capture: LogCapture) -> None:
    log_capture.secrets.add(PAN)
    worker = pipeline.start_worker()
    billing = pipeline_billing(pipeline)
    args = ["add", "--id", "po_now", "--amount", "25.00", "--currency", "AZN", "--pan-stdin"]
    result = billing(*args, "--now", stdin=f"{PAN}\n")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "payout po_now: paid" in result.stdout
    assert MASKED in result.stdout
    credits = [e for e in pipeline.ledger() if e["direction"] == "credit"]
    assert len(credits) == 1, credits
    assert (credits[0]["amount"], credits[0]["card"]) == ("25.00", MASKED)
    assert f"order        {credits[0]['order_id']}" in result.stdout
    payout = store.get(pipeline.r, "po_now")
    assert payout is not None
    assert (payout.status, payout.destination.masked()) == (PayoutStatus.PAID, MASKED)
    assert pipeline.event_types("po_now|credit") == ["payout.succeeded"]
    # the same command again: nothing sent twice
    again = billing(*args, "--now", stdin=f"{PAN}\n")
    assert again.exit_code == 0
    assert "submitted before" in again.stdout and "payout po_now: paid" in again.stdout
    assert len([e for e in pipeline.ledger() if e["direction"] == "credit"]) == 1
    # the card number is nowhere: Redis (every key and value, events included), the output,
    # the worker's log (the session's log scan also looks for it everywhere)
    shown = billing("show", "po_now", "--json")
    assert json.loads(shown.stdout)["attempts"][0]["state"] == "paid"
    for text in (
        everything(pipeline.r),
        result.output,
        again.output,
        shown.output,
        json.dumps(pipeline.events()),
        worker.text(),
    ):
        assert PAN not in text
    assert PAN not in "".join(log_capture.lines)
    # a scheduled payout cannot take a card number
    refused(billing(*args, stdin=f"{PAN}\n"), "scheduled payouts need a token")


@pytest.mark.slow
def test_send_now_with_a_token_that_declines(pipeline: Pipeline) -> None:
    from worker import runtime

    rt = runtime.build(pipeline.worker_env())
    try:
        payout = Payout.create(
            id="po_lim", amount="5.00", currency="AZN", token=LIMIT, mode="immediate",
            now_ms=SYSTEM.now_ms(),
        )  # fmt: skip
        result = service.send_now(rt, payout, timeout_s=20)
    finally:
        rt.close()
    assert result.created and result.final
    assert result.payout.status is PayoutStatus.FAILED
    assert result.attempt["result_code"] == "64"
    assert "order_pw" not in result.attempt
    assert [e for e in pipeline.ledger() if e["direction"] == "credit"] == []


@pytest.mark.slow
def test_a_run_waits_and_reports(pipeline: Pipeline) -> None:
    billing = pipeline_billing(pipeline)
    for n in range(4):
        token = LIMIT if n == 3 else OK
        result = billing(
            "add", "--id", f"po_{n}", "--amount", f"{n + 1}.00", "--currency", "AZN",
            "--token", token,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    pipeline.start_worker()
    run = billing("run", "--run-id", "manual-w", "--timeout", "60")
    assert run.exit_code == 0, (run.stdout, run.stderr)
    assert "started run manual-w: took 4 payouts (10.00 AZN)" in run.stdout
    assert "run manual-w: completed" in run.stdout  # the report's title
    state = store.get_run(pipeline.r, "manual-w")
    assert state is not None and state.status is RunStatus.COMPLETED
    credits = [e for e in pipeline.ledger() if e["direction"] == "credit"]
    assert len(credits) == 3
    report = json.loads(billing("report", "manual-w", "--format", "json").stdout)
    by_id = {row["payout_id"]: row for row in report["payouts"]}
    assert {i: row["status"] for i, row in by_id.items()} == {
        "po_0": "paid",
        "po_1": "paid",
        "po_2": "paid",
        "po_3": "failed",
    }
    assert by_id["po_3"]["failure_code"] == "64"
    assert {row["order_id"] for i, row in by_id.items() if i != "po_3"} == {
        str(e["order_id"]) for e in credits
    }
    assert all(by_id[i]["approval_code"] for i in ("po_0", "po_1", "po_2"))
    assert report["totals"] == {"AZN": {"count": 4, "total": "10.00"}}
    paid = next(s for s in report["summary"] if s["status"] == "paid")
    assert paid == {"status": "paid", "currency": "AZN", "count": 3, "total": "6.00"}
    rows = list(
        csv.DictReader(io.StringIO(billing("report", "manual-w", "--format", "csv").stdout))
    )
    assert sum(Decimal(row["amount"]) for row in rows) == Decimal("10.00")


# -- two gateways: TXPG and Bizon --------------------------------------------------------------

ORDER = "23014808614292147"  # a Bizon order id (the reference's example)
#: Another card number of this module's own, paid out on Bizon.
BIZON_PAN = "4000057712345620"
BIZON_MASKED = "400005******5620"


def test_help_names_both_gateways() -> None:
    result = CliRunner().invoke(app, ["payouts", "add", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    for words in ("--gateway", "txpg|bizon", "--order", "Destination on bizon", "[default: txpg]"):
        assert words in text, words
    imported = CliRunner().invoke(app, ["payouts", "import", "--help"], env={"COLUMNS": "200"})
    assert "order (an earlier Bizon order's id, with gateway bizon)" in " ".join(
        imported.output.split()
    )


def test_add_a_bizon_payout_to_an_earlier_order(r: redis.Redis, billing: Billing) -> None:
    args = ["add", "--id", "po_b", "--amount", "7.50", "--currency", "USD"]
    first = billing(*args, "--gateway", "bizon", "--order", ORDER, "--tag", "sellers")
    assert first.exit_code == 0, first.output
    assert f"added po_b: 7.50 USD to order:{ORDER} on bizon, pending" in first.stdout
    payout = store.get(r, "po_b")
    assert payout is not None
    assert (payout.gateway, payout.destination.ref(), payout.status) == (
        "bizon",
        f"order:{ORDER}",
        PayoutStatus.PENDING,
    )
    stored = r.hgetall(keys.payout("po_b"))
    assert (stored["gateway"], stored["destination"]) == ("bizon", f"order:{ORDER}")
    before = dump(r)
    again = billing(*args, "--gateway", "bizon", "--order", ORDER, "--tag", "sellers")
    assert "already exists with these values" in again.stdout
    refused(billing(*args, "--gateway", "bizon", "--order", "42", "--tag", "sellers"),
            "different destination")  # fmt: skip
    refused(billing(*args, "--token", OK, "--tag", "sellers"), "different gateway, destination")
    assert dump(r) == before
    # a TXPG payout keeps the default gateway out of its stored hash
    add(billing, "po_t")
    assert "gateway" not in r.hgetall(keys.payout("po_t"))
    assert re.search(r"gateway\s+txpg", billing("show", "po_t").stdout)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--order", ORDER], None, "--order is a bizon destination: give --gateway bizon"),
        (["--gateway", "txpg", "--order", ORDER], None, "--order is a bizon destination"),
        (["--gateway", "bizon", "--token", OK], None, "--token is a txpg destination"),
        (["--gateway", "bizon", "--order", ORDER, "--token", OK], None,
         "give exactly one destination: --token RID (txpg), --order ID (bizon)"),
        (["--gateway", "bizon", "--order", ORDER, "--pan-stdin", "--now"], BIZON_PAN,
         "got --order and --pan-stdin"),
        (["--gateway", "bizon"], None, "give exactly one destination"),
        (["--gateway", "bizon", "--order", "abc"], None, "order is invalid"),
        (["--gateway", "bizon", "--order", "1 2"], None, "order is invalid"),
        (["--gateway", "bizon", "--pan-stdin"], BIZON_PAN, "scheduled payouts need a token"),
        (["--gateway", "bizon", "--pan-stdin", "--now"], "4000057712345621\n",
         "fails the Luhn check"),
    ],
)  # fmt: skip
def test_add_refuses_a_bad_gateway_and_destination(
    r: redis.Redis, billing: Billing, args: list[str], stdin: str | None, message: str
) -> None:
    result = billing("add", "--id", "po_1", "--amount", "10.00", "--currency", "AZN", *args,
                     stdin=stdin)  # fmt: skip
    refused(result, message)
    assert result.stdout == ""
    assert BIZON_PAN not in result.output
    assert dump(r) == {}


def test_add_refuses_an_unknown_gateway(r: redis.Redis, billing: Billing) -> None:
    result = billing("add", "--id", "po_1", "--amount", "1.00", "--currency", "AZN",
                     "--gateway", "paypal", "--token", OK)  # fmt: skip
    assert result.exit_code == 2
    assert "'paypal' is not one of 'txpg', 'bizon'" in error(result)
    assert dump(r) == {}


def test_import_list_show_and_a_dry_run_over_both_gateways(
    r: redis.Redis, billing: Billing, tmp_path: Path
) -> None:
    text = (
        "id,amount,currency,gateway,token,order,tag\n"
        f"po_1,10.00,AZN,,{OK},,s\n"
        f"po_2,2.50,AZN,bizon,,{ORDER},s\n"
        f"po_3,1.00,AZN,txpg,{OK},,s\n"
    )
    bad = text + f"po_4,1.00,AZN,,,{ORDER},s\npo_5,1.00,AZN,bizon,{OK},,s\n"
    result = billing("import", write(tmp_path, "p.csv", bad))
    refused(result, "2 of 5 rows are invalid or conflict: nothing was imported")
    assert "line 5: gateway txpg pays out to a token (ridByCofp) or a pan, not to an order" in (
        error(result)
    )
    assert "line 6: gateway bizon pays out to an order or a pan, not to a token" in error(result)
    assert dump(r) == {}
    done = billing("import", write(tmp_path, "p.csv", text))
    assert done.exit_code == 0, done.output
    assert "created 3, unchanged 0, invalid 0" in done.stdout
    listed = json.loads(billing("list", "--json").stdout)
    assert [(p["id"], p["gateway"], p["destination"]) for p in listed] == [
        ("po_1", "txpg", "TWO_COF:26AB0D…4BCC"),
        ("po_2", "bizon", f"order:{ORDER}"),
        ("po_3", "txpg", "TWO_COF:26AB0D…4BCC"),
    ]
    table = billing("list").stdout
    assert "gateway" in table and "bizon" in table and f"order:{ORDER}" in table
    shown = billing("show", "po_2")
    assert re.search(r"gateway\s+bizon", shown.stdout), shown.stdout
    assert json.loads(billing("show", "po_2", "--json").stdout)["gateway"] == "bizon"
    # the same file again: unchanged; the same id on the other gateway: a conflict
    assert "created 0, unchanged 3" in billing("import", write(tmp_path, "p.csv", text)).stdout
    other = f"id,amount,currency,token\npo_2,2.50,AZN,{OK}\n"
    refused(billing("import", write(tmp_path, "q.csv", other)),
            "conflict: po_2 already exists with a different gateway, destination")  # fmt: skip
    before = dump(r)
    dry = billing("run", "--dry-run", "--run-id", "manual-mixed")
    assert dry.exit_code == 0, dry.output
    assert "would take 3 payouts: 13.50 AZN" in dry.stdout
    assert re.search(rf"po_2\s+│\s+2\.50 AZN\s+│\s+bizon\s+│\s+order:{ORDER}", dry.stdout)
    assert dump(r) == before


def test_cancel_names_the_gateway(r: redis.Redis, billing: Billing) -> None:
    added = billing("add", "--id", "po_b", "--amount", "1.00", "--currency", "AZN",
                    "--gateway", "bizon", "--order", "77")  # fmt: skip
    assert added.exit_code == 0, added.output
    done = billing("cancel", "po_b")
    assert "cancelled po_b (1.00 AZN to order:77 on bizon)" in done.stdout


@pytest.mark.slow
def test_immediate_payouts_on_bizon_to_an_order_and_to_a_card_number(
    pipeline: Pipeline, log_capture: LogCapture
) -> None:
    log_capture.secrets.add(BIZON_PAN)
    pipeline.start_bizon()
    (parent,) = pipeline.bizon_parents(1)
    billing = pipeline_billing(pipeline)
    to_order = ["add", "--id", "po_bo", "--amount", "3.00", "--currency", "AZN",
                "--gateway", "bizon", "--order", parent, "--now"]  # fmt: skip
    result = billing(*to_order)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "payout po_bo: paid" in result.stdout
    assert re.search(r"gateway\s+bizon", result.stdout)
    assert f"order:{parent}" in result.stdout
    to_pan = ["add", "--id", "po_bp", "--amount", "4.00", "--currency", "AZN",
              "--gateway", "bizon", "--pan-stdin", "--now"]  # fmt: skip
    sent = billing(*to_pan, stdin=f"{BIZON_PAN}\n")
    assert sent.exit_code == 0, (sent.stdout, sent.stderr)
    assert "payout po_bp: paid" in sent.stdout and BIZON_MASKED in sent.stdout
    again = billing(*to_pan, stdin=f"{BIZON_PAN}\n")
    assert "submitted before" in again.stdout and "payout po_bp: paid" in again.stdout

    credits = [e for e in pipeline.bizon_ledger() if e["direction"] == "credit"]
    by_key = {e["merchant_order_id"]: e for e in credits}
    assert sorted(by_key) == ["po_bo credit #1", "po_bp credit #1"]
    assert len(credits) == 2
    assert (by_key["po_bo credit #1"]["order_type"], by_key["po_bo credit #1"]["amount"]) == (
        "credit",
        "3.00",
    )
    assert str(by_key["po_bo credit #1"]["parent_order_id"]) == parent
    assert (by_key["po_bp credit #1"]["order_type"], by_key["po_bp credit #1"]["card"]) == (
        "credit-pan",
        BIZON_MASKED,
    )
    assert pipeline.credits() == []  # nothing went through TXPG
    for payout_id in ("po_bo", "po_bp"):
        payout = store.get(pipeline.r, payout_id)
        assert payout is not None and payout.status is PayoutStatus.PAID
        assert payout.gateway == "bizon"
        # a Bizon payout's order is named by its key (merchant_order_id), which finds it;
        # the gateway's own order id is the attempt's reference
        assert payout.order_id == f"{payout_id} credit #1"
        attempt = pipeline.r.hgetall(keys.payout_attempt(payout_id, keys.PAYOUT_ITEM, 1))
        assert attempt["gateway"] == "bizon"
        assert attempt["reference"] == str(by_key[f"{payout_id} credit #1"]["order_id"])
    for text in (everything(pipeline.r), sent.output, again.output,
                 json.dumps(pipeline.events()), json.dumps(pipeline.bizon_orders())):  # fmt: skip
        assert BIZON_PAN not in text
