"""``billing payouts``: OCT payouts to cards. Add, import, list, show, cancel; run, approve, report.

A payout names its gateway (``--gateway txpg``, the default, or ``bizon``): TXPG pays out to a
``--token``, Bizon to the card of an earlier order (``--order``); both to a card number, for
an immediate payout only. A run may mix gateways: each payout is sent on its own.

Thin over :mod:`worker.payouts.service` and :mod:`worker.store.payouts`: every check lives in
the model and the store. A refused command prints ``error: ...`` and exits 2 with nothing
changed.

A card number (PAN) is never taken as a command-line argument, where shell history and
``ps`` would keep it: ``add --pan-stdin --now`` reads it from stdin, or asks for it with
hidden input on a terminal. It is held in this process's memory only, for the immediate
payout that this process sends itself; Redis, events, logs and this command's output only
ever show it masked.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import redis
import structlog
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from worker import keys, logs
from worker.cli import app
from worker.cli.common import (
    RedisUrlOption,
    console,
    die,
    err_console,
    open_redis,
    print_json,
    redis_session,
    refusals,
    resolve_redis_url,
)
from worker.cli.events import format_ms
from worker.cli.subscriptions import unwrap_doc
from worker.clock import SYSTEM
from worker.errors import InvalidInput
from worker.money import Money, parse_amount
from worker.payouts import service
from worker.payouts.config import PayoutSchedule, load_schedules
from worker.payouts.model import (
    FileRefused,
    Payout,
    PayoutMode,
    PayoutStatus,
    parse_payout_file,
)
from worker.payouts.report import Report, render_csv, render_json, report_tables, report_title
from worker.payouts.runs import RunLimits, RunPlan, RunState, RunStatus, manual_run_id
from worker.payouts.runs import validate_run_id as _validate_run_id
from worker.sensitive import Secret, scrub
from worker.store import audit
from worker.store import payouts as store
from worker.subscriptions import validate_id

payouts_app = typer.Typer(
    name="payouts",
    help="OCT payouts to cards: add, import, list, show, cancel; run, approve, report.",
    no_args_is_help=True,
)
app.add_typer(payouts_app, name="payouts")

JsonOption = typer.Option(False, "--json", help="Print JSON instead of text.")
_FINAL = frozenset({PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELLED})
#: How long `run --wait` looks between two polls of the run's payouts.
_POLL_S = 0.25
#: At most this many characters are read from stdin for a card number.
_PAN_READ = 256
_LINE = re.compile(r"line ([0-9]+): (.*)", re.DOTALL)


def fail(message: str) -> NoReturn:
    """``error: message`` (scrubbed of anything like a card number) and exit 2."""
    die(scrub(message))


_refusals = refusals
_store = redis_session


def _ring(url: str | None) -> service.Ring:
    """The doorbell of the payout actor, on the broker at ``url``."""
    from worker import broker

    broker.setup(resolve_redis_url(url))
    from worker.actors import ring_payouts

    return ring_payouts


def _progress(*columns: Any) -> Progress:
    """A progress bar on stderr (stdout stays clean for pipes), shown only on a terminal."""
    chosen = columns or (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(
        *chosen, console=err_console, transient=True, disable=not err_console.is_terminal
    )


def _run_id(value: str) -> str:
    with _refusals():
        return _validate_run_id(value)


def _payout_id(value: str) -> str:
    with _refusals():
        return validate_id(value, "payout id")


# -- add ---------------------------------------------------------------------------------------


class Gateway(enum.StrEnum):
    """The gateways a payout may name (``worker.payouts.model.GATEWAYS``)."""

    TXPG = "txpg"
    BIZON = "bizon"


@payouts_app.command("add")
@unwrap_doc
def add(
    payout_id: str = typer.Option(
        ...,
        "--id",
        help="Payout id, its idempotency key: 1-64 of A-Z a-z 0-9 _ . - (never a card number).",
    ),
    amount: str = typer.Option(..., "--amount", help="Amount as a plain decimal, e.g. 25.00."),
    currency: str = typer.Option(..., "--currency", help="ISO 4217 code, e.g. AZN."),
    gateway: Annotated[
        Gateway,
        typer.Option(
            "--gateway",
            help="Where it is sent: txpg (to a --token or a card number) or bizon (to an "
            "--order or a card number).",
        ),
    ] = Gateway.TXPG,
    token: str | None = typer.Option(
        None,
        "--token",
        metavar="RID",
        help="Destination on txpg: a TWO card-on-file token (ridByCofp, 16-64 hex characters).",
        show_default=False,
    ),
    order: str | None = typer.Option(
        None,
        "--order",
        metavar="ID",
        help="Destination on bizon (--gateway bizon): the card of an earlier Bizon order, by "
        "its id (digits); paid with POST /orders/ID/credit.",
        show_default=False,
    ),
    pan_stdin: bool = typer.Option(
        False,
        "--pan-stdin",
        help="Destination on either gateway: a card number, read from stdin (asked for, "
        "hidden, on a terminal). Only with --now. Never give a card number as an argument.",
    ),
    description: str = typer.Option("", "--description", help="Shown on the gateway order."),
    tag: str = typer.Option(
        "", "--tag", help="A batch tag that runs and schedules can select on (--tag)."
    ),
    now: bool = typer.Option(
        False,
        "--now",
        help="An immediate payout: this command sends it at once instead of waiting for a run.",
    ),
    timeout: float = typer.Option(
        service.SEND_TIMEOUT_S,
        "--timeout",
        min=1,
        help="With --now: seconds to drive it here before leaving an unknown outcome to the "
        "workers.",
    ),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Add one payout.

    It is sent on --gateway: txpg (the default) or bizon. A scheduled payout (the default)
    needs a --token (txpg) or an --order (bizon) and waits, pending, for a run (billing payouts
    run, or a schedule). With --now it is an immediate payout, sent at once by this command,
    to a --token, an --order or a card number given with --pan-stdin (on either gateway); the
    command waits up to --timeout seconds for the gateway's answer and prints it (exit 1 if
    it failed). An answer still unknown then is reconciled by the workers, which need no card
    number for that.

    The card number is kept in this process's memory only: Redis, events, logs and this
    output only show it masked (first 6 and last 4 digits).

    Running the same command again is a no-op (an immediate payout still sending is driven
    again); reusing an id with other values is refused.
    """
    chosen = {"--token": token is not None, "--order": order is not None, "--pan-stdin": pan_stdin}
    given = [name for name, on in chosen.items() if on]
    if len(given) != 1:
        fail(
            "give exactly one destination: --token RID (txpg), --order ID (bizon), or "
            "--pan-stdin (with --now)" + (f"; got {' and '.join(given)}" if given else "")
        )
    if pan_stdin and not now:
        fail(
            "scheduled payouts need a token (txpg) or an order (bizon): a card number "
            "(--pan-stdin) is only for an immediate payout (--now)"
        )
    if token is not None and gateway is not Gateway.TXPG:
        fail(f"--token is a txpg destination; on --gateway {gateway.value} give --order ID")
    if order is not None and gateway is not Gateway.BIZON:
        fail("--order is a bizon destination: give --gateway bizon with it")
    pan = _read_pan() if pan_stdin else None
    with _refusals():  # bad input is refused before Redis is even asked
        payout = Payout.create(
            id=payout_id,
            amount=amount,
            currency=currency,
            token=token,
            pan=pan,
            order=order,
            gateway=gateway.value,
            description=description,
            tag=tag,
            mode=(PayoutMode.IMMEDIATE if now else PayoutMode.SCHEDULED).value,
            now_ms=SYSTEM.now_ms(),
        )
    if now:
        _send_now(payout, redis_url, timeout)
        return
    with _store(redis_url) as r:
        stored, created = store.add(r, payout)
    where = f"{stored.destination.masked()} on {stored.gateway}"
    if created:
        typer.echo(f"added {stored.id}: {stored.amount} to {where}, pending: it waits for a run")
    else:
        typer.echo(f"{stored.id} already exists with these values ({stored.status.value}); "
                   "nothing changed")  # fmt: skip


def _read_pan() -> Secret[str]:
    """The card number: asked for with hidden input on a terminal, else one line of stdin."""
    if sys.stdin is None:
        fail("--pan-stdin: there is no stdin to read the card number from")
    if sys.stdin.isatty():
        typed = typer.prompt("Card number", hide_input=True, err=True)
        return Secret(str(typed).strip())
    text = sys.stdin.read(_PAN_READ)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        fail(f"--pan-stdin: give one card number on stdin, on one line (got {len(lines)} lines)")
    return Secret(lines[0])


def _send_now(payout: Payout, redis_url: str | None, timeout: float) -> None:
    """Send ``payout`` from this process and print the outcome."""
    from worker import runtime

    env = {**os.environ, "BILLING_REDIS_URL": resolve_redis_url(redis_url)}
    open_redis(env["BILLING_REDIS_URL"]).close()  # a clear error when Redis is unreachable
    with _refusals():
        rt = runtime.build(env)
    try:
        with _store_errors(), _refusals(), _quiet_logs():
            result = service.send_now(rt, payout, timeout_s=timeout)
    finally:
        rt.close()
    _print_sent(result)
    if result.payout.status is PayoutStatus.FAILED:
        raise typer.Exit(1)


@contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        fail(f"Redis failed: {type(exc).__name__}: {exc}")


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The state machine logs each run: warnings only (or BILLING_LOG_LEVEL) on stderr,
    unless the host configured logging already; put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    if not handlers:
        logs.configure(os.environ.get("BILLING_LOG_LEVEL", "WARNING"))
    try:
        yield
    finally:
        if not handlers:
            root.handlers[:] = handlers
            root.setLevel(level)
            structlog.configure(**config)


def _print_sent(result: service.SendResult) -> None:
    payout = result.payout
    status = payout.status
    if not result.created:
        typer.echo(f"{payout.id} was submitted before with these values: not stored again")
    typer.echo(f"payout {payout.id}: {status.value}")
    rows = [
        ("amount", str(payout.amount)),
        ("gateway", payout.gateway),
        ("destination", payout.destination.masked()),
        ("order", result.order_id or "-"),
        ("approval", result.approval_code or "-"),
    ]
    if result.attempt.get("reference"):  # the gateway's own id, when the order is our key
        rows.append(("gateway ref", result.attempt["reference"]))
    if status is PayoutStatus.FAILED:
        rows.append(("failure", _failure(result.attempt) or "-"))
    for name, value in rows:
        typer.echo(f"  {name:<12} {value}")
    if status is PayoutStatus.SENDING:
        typer.echo(
            "the outcome is not known yet: the workers reconcile it with the gateway by its "
            f"order (they need no card number); see `billing payouts show {payout.id}`"
        )


def _failure(attempt: dict[str, str] | Any) -> str:
    code = attempt.get("result_code") or attempt.get("error_code", "")
    parts = [code, attempt.get("result_title", ""), attempt.get("decline_reason", "")]
    text = " ".join(part for part in parts if part)
    return scrub(text or attempt.get("error", ""))


# -- import ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bad:
    line: int
    reason: str
    id: str = ""


@payouts_app.command("import")
@unwrap_doc
def import_(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A .csv (with a header row) or .jsonl file."),
    ],
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Import the valid rows and list the others, instead of importing nothing.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Add scheduled payouts from a CSV or JSON Lines file, one per row.

    Columns (CSV) or keys (JSONL): id, amount, currency, and a destination: token (on txpg)
    or order (an earlier Bizon order's id, with gateway bizon); optionally gateway (txpg, the
    default, or bizon), description, tag. Amounts are text, "25.00". A file holds scheduled
    payouts only: a card number, or an immediate payout, is refused (use billing payouts add
    --now). Runs send them in file order, each on its own gateway.

    Every row is checked first, against the file and against Redis. By default, when any row
    is invalid or conflicts with a stored payout of the same id, nothing is written and each
    is listed as "line N: reason" (exit 2). With --skip-invalid the valid rows are written and
    the others listed (exit 0).

    Safe to run again: a row equal to a stored payout counts as unchanged.
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    now = SYSTEM.now_ms()
    try:
        rows, errors = parse_payout_file(file.name, data, now_ms=now)
    except FileRefused as exc:
        fail(f"{file}: {exc}")
    invalid = [_bad(error) for error in errors]
    total = len(rows) + len(invalid)
    # file order is sending order: a run sends by creation time, then id
    payouts = [
        (row.line, replace(row.payout, created_at=now + n, updated_at=now + n))
        for n, row in enumerate(rows)
    ]
    unchanged = created = 0
    with _store(redis_url) as r:
        new: list[tuple[int, Payout]] = []
        stored_now = _existing(r, [p.id for _, p in payouts])
        for line, payout in payouts:
            stored = stored_now.get(payout.id)
            if stored is None:
                new.append((line, payout))
                continue
            differing = _differences(stored, payout)
            if differing:
                reason = f"conflict: {payout.id} already exists with a different "
                invalid.append(_Bad(line, reason + ", ".join(differing), payout.id))
            else:
                unchanged += 1
        if invalid and not skip_invalid:
            _refuse(file, total, invalid, as_json)
        added, same, raced = _write(r, new)
    created, unchanged = added, unchanged + same
    invalid += raced
    invalid.sort(key=lambda bad: bad.line)
    for bad in invalid:
        err_console.print(f"line {bad.line}: {bad.reason}", highlight=False, markup=False)
    if as_json:
        print_json(_summary(file, total, created, unchanged, invalid, written=True))
    else:
        typer.echo(f"created {created}, unchanged {unchanged}, invalid {len(invalid)}")
    if raced and not skip_invalid:
        fail(
            f"{len(raced)} rows conflicted with payouts stored while this import ran; "
            f"the other {created + unchanged} rows were imported"
        )


def _bad(error: str) -> _Bad:
    match = _LINE.fullmatch(error)
    if match is None:
        return _Bad(0, error)
    return _Bad(int(match.group(1)), match.group(2))


def _existing(r: redis.Redis, ids: Sequence[str], chunk: int = 500) -> dict[str, Payout]:
    """What Redis holds now under these ids, read before anything is written."""
    found: dict[str, Payout] = {}
    with _progress() as progress:
        task = progress.add_task("checking", total=len(ids))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            found.update((p.id, p) for p in store.load(r, part))
            progress.advance(task, len(part))
    return found


def _differences(stored: Payout, new: Payout) -> list[str]:
    """What says what a payout is and differs (not its status, times or run)."""
    fields = {
        "amount": (stored.amount, new.amount),
        "gateway": (stored.gateway, new.gateway),
        "destination": (stored.destination.masked(), new.destination.masked()),
        "description": (stored.description, new.description),
        "tag": (stored.tag, new.tag),
        "mode": (stored.mode, new.mode),
    }
    return [name for name, (old, given) in fields.items() if old != given]


def _write(r: redis.Redis, rows: Sequence[tuple[int, Payout]]) -> tuple[int, int, list[_Bad]]:
    """Store each row's payout: (created, unchanged, refused because stored meanwhile)."""
    created = unchanged = 0
    refused: list[_Bad] = []
    with _progress() as progress:
        task = progress.add_task("importing", total=len(rows))
        for line, payout in rows:
            try:
                _, new = store.add(r, payout)
            except InvalidInput as exc:
                refused.append(_Bad(line, f"conflict: {exc}", payout.id))
            else:
                created += new
                unchanged += not new
            progress.advance(task)
    return created, unchanged, refused


def _summary(
    file: Path, rows: int, created: int, unchanged: int, invalid: Sequence[_Bad], *, written: bool
) -> dict[str, Any]:
    return {
        "file": str(file),
        "rows": rows,
        "written": written,
        "created": created,
        "unchanged": unchanged,
        "invalid": len(invalid),
        "errors": [{"line": b.line, "id": b.id, "reason": b.reason} for b in invalid],
    }


def _refuse(file: Path, rows: int, invalid: list[_Bad], as_json: bool) -> None:
    """All or nothing: list the bad rows and exit 2 before anything is written."""
    invalid.sort(key=lambda bad: bad.line)
    for bad in invalid:
        err_console.print(f"line {bad.line}: {bad.reason}", highlight=False, markup=False)
    if as_json:
        print_json(_summary(file, rows, 0, 0, invalid, written=False))
    fail(
        f"{len(invalid)} of {rows} rows are invalid or conflict: nothing was imported "
        "(--skip-invalid imports the valid rows)"
    )


# -- list, show, cancel ------------------------------------------------------------------------


def _view(payout: Payout) -> dict[str, Any]:
    return {**payout.summary(), "created_at": payout.created_at, "updated_at": payout.updated_at}


@payouts_app.command("list")
def list_(
    status: Annotated[
        PayoutStatus | None,
        typer.Option("--status", help="Only payouts with this status.", show_default=False),
    ] = None,
    run: str | None = typer.Option(
        None, "--run", metavar="RUN", help="Only the payouts this run took, in sending order."
    ),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many."),
    as_json: bool = JsonOption,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """List payouts, oldest first (or a run's, in sending order)."""
    run_id = _run_id(run) if run is not None else None
    with _store(redis_url) as r:
        source: Iterator[Payout]
        if run_id is not None:
            source = iter(store.run_payouts(r, run_id))
        elif status is PayoutStatus.PENDING:
            source = store.pending(r)
        else:
            source = store.every(r)
        chosen: list[Payout] = []
        more = False
        for payout in source:
            if status is not None and payout.status is not status:
                continue
            if len(chosen) == limit:
                more = True
                break
            chosen.append(payout)
    if as_json:
        print_json([_view(p) for p in chosen])
        return
    if not chosen:
        where = f" with status {status.value}" if status else ""
        typer.echo("no payouts" + where + (f" in run {run_id}" if run_id else ""))
        return
    columns = ("id", "status", "amount", "gateway", "destination", "mode", "tag", "run")
    table = Table(*columns, "created (UTC)")
    for p in chosen:
        cells = (
            p.id,
            p.status.value,
            str(p.amount),
            p.gateway,
            p.destination.masked(),
            p.mode.value,
            p.tag,
            p.run_id,
            format_ms(p.created_at),
        )
        table.add_row(*(Text(c) for c in cells))  # Text: a description is never markup
    console.print(table)
    if more:
        typer.echo(f"(more than {limit}: raise --limit to see them)")


@payouts_app.command("show")
def show(
    payout_id: str = typer.Argument(..., metavar="ID", help="The payout's id."),
    as_json: bool = JsonOption,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Show one payout and every attempt to send it (order, approval, PMO code)."""
    payout_id = _payout_id(payout_id)
    with _store(redis_url) as r:
        payout = store.get(r, payout_id)
        if payout is None:
            fail(f"no payout {payout_id}")
        found = service.attempts(r, payout_id)
        dlq_id = str(r.hget(keys.payout_job(payout_id), "dlq_id") or "")
    if as_json:
        print_json({**_view(payout), "dlq_id": dlq_id, "attempts": found})
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows = [
        ("id", payout.id),
        ("status", payout.status.value),
        ("amount", str(payout.amount)),
        ("gateway", payout.gateway),
        ("destination", payout.destination.masked()),
        ("mode", payout.mode.value),
        ("description", payout.description),
        ("tag", payout.tag),
        ("run", payout.run_id),
        ("created", format_ms(payout.created_at)),
        ("updated", format_ms(payout.updated_at)),
        ("dead letter", dlq_id),
    ]
    for name, value in rows:
        if value:
            grid.add_row(name, Text(value))
    console.print(grid)
    if found:
        console.print(_attempts_table(found))
    else:
        typer.echo("no attempts yet")


def _attempts_table(attempts: Sequence[dict[str, str]]) -> Table:
    table = Table(title="attempts", title_justify="left")
    for name in ("#", "started (UTC)", "state", "order", "gateway ref", "approval", "failure"):
        table.add_column(name)
    for a in attempts:
        started = a.get("started_at", "")
        table.add_row(
            *(
                Text(value)
                for value in (
                    a.get("n", ""),
                    format_ms(int(started)) if started.isdigit() else started,
                    a.get("state", ""),
                    a.get("order_id", ""),
                    a.get("reference", ""),
                    a.get("approval_code", ""),
                    _failure(a),
                )
            )
        )
    return table


_NOT_CANCELLABLE = {
    PayoutStatus.SENDING.value: "it is being sent: the gateway may already have it",
    PayoutStatus.PAID.value: "it was paid",
    PayoutStatus.FAILED.value: "it failed and is in the dead letters (see billing dlq)",
}


@payouts_app.command("cancel")
def cancel(
    payout_id: str = typer.Argument(..., metavar="ID", help="The payout's id."),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Cancel a payout not sent yet (pending, or queued in a run awaiting approval)."""
    payout_id = _payout_id(payout_id)
    with _store(redis_url) as r:
        before = store.get(r, payout_id)
        if before is None:
            fail(f"no payout {payout_id}")
        if before.status is PayoutStatus.CANCELLED:
            typer.echo(f"{payout_id} is already cancelled; nothing changed")
            return
        result = store.cancel(r, payout_id, SYSTEM.now_ms())
    if result != PayoutStatus.CANCELLED.value:
        why = _NOT_CANCELLABLE.get(result, f"it is {result}")
        fail(f"payout {payout_id} is {result}; only a pending or queued payout can be "
             f"cancelled: {why}")  # fmt: skip
    typer.echo(
        f"cancelled {payout_id} ({before.amount} to {before.destination.masked()} on "
        f"{before.gateway})"
    )


# -- run, approve ------------------------------------------------------------------------------


def _join_pairs(args: list[str], option: str) -> list[str]:
    """``OPTION AMOUNT CURRENCY`` as ``OPTION "AMOUNT CURRENCY"``: typer has no repeatable
    options of two values, so the two words are joined before parsing."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:]
        takes = 2 if arg == option else 1 if arg.startswith(option + "=") else 0
        follow = args[i + 1 : i + 1 + takes]
        if takes and len(follow) == takes and not any(w.startswith("-") for w in follow):
            if takes == 2:
                out += [arg, " ".join(follow)]
            else:
                out.append(f"{arg} {follow[0]}")
            i += 1 + takes
            continue
        out.append(arg)
        i += 1
    return out


class _PairsCommand(TyperCommand):
    """A command whose ``--max-total`` takes two words, AMOUNT and CURRENCY."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _join_pairs(list(args), "--max-total"))


def _totals(values: Sequence[str]) -> dict[str, Money]:
    out: dict[str, Money] = {}
    for value in values:
        words = value.split()
        if len(words) != 2:
            fail(f"--max-total {value!r}: give an amount and a currency, --max-total 10000.00 AZN")
        amount, currency = words
        if currency in out:
            fail(f"--max-total {currency} is given twice")
        with _refusals():
            out[currency] = parse_amount(amount, currency)
    return out


def _schedule(name: str) -> PayoutSchedule:
    with _refusals():
        schedules = load_schedules()
    for schedule in schedules:
        if schedule.name == name:
            return schedule
    known = ", ".join(s.name for s in schedules) or "none: BILLING_PAYOUT_SCHEDULES names no file"
    fail(f"no payout schedule {name!r} (known: {known})")


def _no_ring(payout_ids: list[str]) -> None:
    raise AssertionError("a dry run rings for nothing")  # pragma: no cover


@payouts_app.command("run", cls=_PairsCommand)
@unwrap_doc
def run(
    schedule_name: str | None = typer.Option(
        None,
        "--schedule",
        metavar="NAME",
        help="Run this schedule now (of BILLING_PAYOUT_SCHEDULES): its tag, limits and approval.",
        show_default=False,
    ),
    run_id: str | None = typer.Option(
        None,
        "--run-id",
        metavar="ID",
        help="The run's id: the same id resumes the same run (default: manual-<UTC time>, or "
        "<schedule>-<UTC minute> with --schedule).",
        show_default=False,
    ),
    tag: str | None = typer.Option(
        None, "--tag", help="Only pending payouts with this tag.", show_default=False
    ),
    max_count: int | None = typer.Option(
        None, "--max-count", min=1, help="Send at most this many payouts.", show_default=False
    ),
    max_total: Annotated[
        list[str] | None,
        typer.Option(
            "--max-total",
            metavar="AMOUNT CURRENCY",
            help="Send at most AMOUNT in CURRENCY, e.g. --max-total 10000.00 AZN (repeatable, "
            "once per currency; other currencies are not limited).",
            show_default=False,
        ),
    ] = None,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only print what the run would take and hold: change nothing."
    ),
    approval: bool = typer.Option(
        False,
        "--approval",
        help="Take the payouts but send nothing until `billing payouts approve RUN`.",
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Follow the run until every payout is final, then report."
    ),
    timeout: float = typer.Option(
        600.0, "--timeout", min=1, help="With --wait: stop following after this many seconds."
    ),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Start (or resume) a payout run over the pending scheduled payouts.

    A run takes the pending payouts, oldest first (or with --tag, those with that tag), until
    the next one would break a limit: it stops there, and that payout and the later ones stay
    pending for the next run. The workers send what it took, each exactly once.

    Without --schedule this is a manual run with the options given; with --schedule, the
    schedule's tag, limits and approval apply (the options --tag, --max-count, --max-total
    and --approval are then refused). A run is named: the same --run-id resumes the same run,
    taking only what is still pending within what is left of its own limits.

    --dry-run prints the plan (what would be taken, what held and why, totals per currency,
    the limit that would stop it) and changes nothing.
    """
    schedule: PayoutSchedule | None = None
    if schedule_name is not None:
        given = [
            name
            for name, value in (
                ("--tag", tag),
                ("--max-count", max_count),
                ("--max-total", max_total),
                ("--approval", approval or None),
            )
            if value is not None
        ]
        if given:
            fail(
                f"--schedule takes its tag, limits and approval from the schedule: "
                f"do not give {', '.join(given)}"
            )
        schedule = _schedule(schedule_name)
        tag, limits, approval = schedule.tag, schedule.limits, schedule.approval
    else:
        with _refusals():
            limits = RunLimits(max_count, _totals(max_total or []))
            tag = validate_id(tag, "tag") if tag is not None else None
    now = SYSTEM.now_ms()
    if run_id is not None:
        chosen = _run_id(run_id)
    elif schedule is not None:
        chosen = schedule.run_id(now - now % 60_000)
    else:
        chosen = manual_run_id(now)
    options: dict[str, Any] = {
        "run_id": chosen,
        "schedule": schedule.name if schedule else "",
        "tag": tag,
        "limits": limits,
        "approval": approval,
    }
    if dry_run:
        with _store(redis_url) as r:
            result = service.start_run(r, SYSTEM, _no_ring, dry_run=True, **options)
        _print_plan(result)
        return
    ring = _ring(redis_url)
    with _store(redis_url) as r:
        result = service.start_run(r, SYSTEM, ring, **options)
        state = _print_started(result)
        if state.status is not RunStatus.SENDING:
            if state.final:
                _print_report(r, state.id)
            return
        if not wait:
            typer.echo(f"the workers send it: follow it with `billing payouts report {state.id}`")
            return
        done = _follow(r, state.id, timeout)
        _print_report(r, state.id)
    if not done:
        err_console.print(
            f"run {state.id} is still sending after {timeout:g} s: the workers carry on; see "
            f"`billing payouts report {state.id}`",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _money(totals: dict[str, Money] | Any) -> str:
    return ", ".join(str(money) for money in totals.values()) or "nothing"


def _print_plan(result: service.RunResult) -> None:
    state, plan = result.state, result.plan
    typer.echo(f"dry run of run {state.id}: nothing was changed")
    if plan is None:
        typer.echo(f"run {state.id} is {state.status.value}: it would take nothing more")
        return
    limits = state.limits.describe()
    scope = f"tag {state.tag}" if state.tag else "every tag"
    typer.echo(f"limits: {limits}; {scope}{'; waits for approval' if state.approval else ''}")
    typer.echo(f"would take {_n(plan.count, 'payout')}: {_money(plan.totals())}")
    if plan.selected:
        console.print(_plan_table(plan, held=False))
    if plan.held:
        typer.echo(f"would hold {_n(len(plan.held), 'payout')} (left pending for the next run):")
        console.print(_plan_table(plan, held=True))
    if plan.limit_reached:
        typer.echo(f"the limit that would stop it: {plan.limit_reached}")
    else:
        typer.echo("no limit would stop it")


def _plan_table(plan: RunPlan, *, held: bool) -> Table:
    table = Table("payout", "amount", "gateway", "destination", "tag", "created (UTC)")
    if held:
        table.add_column("why")
    pairs = plan.held if held else [(p, "") for p in plan.selected]
    for payout, why in pairs:
        cells = [
            payout.id,
            str(payout.amount),
            payout.gateway,
            payout.destination.masked(),
            payout.tag,
            format_ms(payout.created_at),
        ]
        table.add_row(*(Text(c) for c in [*cells, *([why] if held else [])]))
    return table


def _print_started(result: service.RunResult) -> RunState:
    state, plan = result.state, result.plan
    if plan is None:  # final, or awaiting approval: nothing was planned
        typer.echo(f"run {state.id} is already {state.status.value}: nothing more to take")
    else:
        verb = "started" if result.created else "resumed"
        taken = set(result.taken)
        chosen = [p for p in plan.selected if p.id in taken]
        totals: dict[str, Money] = {}
        for p in chosen:
            totals[p.currency] = totals.get(p.currency, Money(0, p.currency)) + p.amount
        typer.echo(
            f"{verb} run {state.id}: took {_n(len(chosen), 'payout')} ({_money(totals)})"
            + (f", schedule {state.schedule}" if state.schedule else "")
            + (f", tag {state.tag}" if state.tag else "")
        )
        if plan.limit_reached:
            typer.echo(
                f"limit reached: {plan.limit_reached}; {_n(len(plan.held), 'payout')} held, "
                "pending, for the next run"
            )
        elif not chosen:
            typer.echo("no pending payouts to take")
    if state.status is RunStatus.AWAITING_APPROVAL:
        typer.echo(
            f"run {state.id} awaits approval: {_n(state.selected, 'payout')} queued; send "
            f"them with `billing payouts approve {state.id}` (cancel one with `billing payouts "
            "cancel ID`)"
        )
    return state


def _follow(r: redis.Redis, run_id: str, timeout: float) -> bool:
    """Poll until the run is final (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with _progress(*columns) as progress:
        task = progress.add_task(f"run {run_id}: payouts final", total=None)
        while True:
            payouts = store.run_payouts(r, run_id)
            done = sum(1 for p in payouts if p.status in _FINAL)
            progress.update(task, total=len(payouts), completed=done)
            state = service.refresh(r, SYSTEM, run_id)
            if state is None or state.final:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)


def _print_report(r: redis.Redis, run_id: str) -> None:
    _print_tables(service.run_report(r, run_id))


def _print_tables(report: Report) -> None:
    console.print(Text(report_title(report), style="bold"))
    for table in report_tables(report):
        console.print(table)


def _actor(actor: str | None) -> str:
    with _refusals():
        chosen = actor if actor is not None else os.environ.get("USER") or audit.default_actor()
        return audit.validate_actor(chosen)


@payouts_app.command("approve")
def approve(
    run_id: str = typer.Argument(..., metavar="RUN", help="The run awaiting approval."),
    actor: str | None = typer.Option(
        None,
        "--actor",
        help="Who approves, recorded on the run (default: the OS user, $USER).",
        show_default=False,
    ),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Approve a run awaiting approval: the workers send the payouts it queued."""
    chosen = _run_id(run_id)
    who = _actor(actor)
    ring = _ring(redis_url)
    with _store(redis_url) as r:
        before = store.get_run(r, chosen)
        if before is None:
            fail(f"no payout run {chosen}")
        if before.status is not RunStatus.AWAITING_APPROVAL:
            by = f" by {before.approved_by}" if before.approved_by else ""
            fail(
                f"run {chosen} is {before.status.value}: only a run awaiting approval can be "
                f"approved" + (f" (it was approved{by})" if before.approved_at else "")
            )
        state = service.approve(r, SYSTEM, ring, chosen, who)
        sending = sum(1 for p in store.run_payouts(r, chosen) if p.status is PayoutStatus.SENDING)
    typer.echo(
        f"approved run {chosen} (by {who}): sending {_n(sending, 'payout')}; "
        f"follow it with `billing payouts report {chosen}`"
        + (f" (run {state.status.value})" if state.final else "")
    )


# -- report ------------------------------------------------------------------------------------


class ReportFormat(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@payouts_app.command("report")
@unwrap_doc
def report(
    run_id: str = typer.Argument(..., metavar="RUN", help="The run to report on."),
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="table (for people), csv or json (clean on stdout, for pipes).",
        ),
    ] = ReportFormat.TABLE,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Report what a run did, as a table, CSV or JSON.

    Counts and totals per status and currency, and each payout with its gateway (txpg or
    bizon), the gateway's order id, approval code, masked destination and, when it failed,
    the PMO (or error) code, title and reason. CSV and JSON go to stdout alone, ready for a
    pipe.
    """
    chosen = _run_id(run_id)
    with _store(redis_url) as r:
        result = service.run_report(r, chosen)
    if fmt is ReportFormat.CSV:
        typer.echo(render_csv(result), nl=False)
    elif fmt is ReportFormat.JSON:
        typer.echo(render_json(result), nl=False)
    else:
        _print_tables(result)
