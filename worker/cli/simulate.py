"""``billing simulate``: the real pipeline over virtual time (see :mod:`schedules.simulate`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from schedules import simulate as sim
from worker import ingest, logs
from worker.cli import app
from worker.cli.common import console, die, err_console, print_json
from worker.cli.subscriptions import unwrap_doc
from worker.errors import BillingError, InvalidInput
from worker.money import Money
from worker.periods import CatchUp
from worker.subscriptions import Subscription

#: Bad rows listed before the error line; the rest are counted.
MAX_LISTED = 50
#: Paid periods shown in the table (the first ones and the last); --json has them all.
SHOWN_PERIODS = 3
#: Width of the tables when stdout is not a terminal (a file, a pipe): one line per row.
OUTPUT_WIDTH = 160


@app.command("simulate")
@unwrap_doc
def simulate_command(
    from_date: str = typer.Option(
        ...,
        "--from",
        metavar="YYYY-MM-DD",
        help="First day, YYYY-MM-DD: the virtual clock starts at 00:00 UTC.",
        show_default=False,
    ),
    until: str = typer.Option(
        ...,
        "--until",
        metavar="YYYY-MM-DD",
        help=(
            f"Stop at 00:00 UTC of this day, YYYY-MM-DD (not included); at most "
            f"{sim.MAX_YEARS} years after --from."
        ),
        show_default=False,
    ),
    subscriptions: Annotated[
        Path | None,
        typer.Option(
            "--subscriptions",
            metavar="FILE",
            help=(
                "Subscriptions to simulate: a .csv or .jsonl file in the format of `billing "
                "subscriptions import`. Default: a built-in sample set."
            ),
            show_default=False,
        ),
    ] = None,
    catch_up: str = typer.Option(
        "all",
        "--catch-up",
        metavar="all|latest",
        help=(
            "Periods that fell due before a subscription was seen (a start before --from): "
            "'all' bills each, 'latest' bills the newest and records the others as skipped."
        ),
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Run the real billing pipeline over virtual time, at full speed, and report what it did.

    Starts a private Redis, the TXPG sandbox and in-process Dramatiq workers, stores the
    subscriptions, then moves a virtual clock from --from to --until through every instant
    something is due: the due sweep opens periods, the actors charge them through the
    sandbox, declines go through dunning (BILLING_DUNNING, default 1d,3d,5d,7d, in virtual
    time) to dead letters. Nothing real is touched and everything is stopped at the end,
    also on Ctrl-C or an error.

    Prints a table per subscription: the periods paid, declined attempts, retries (attempts
    after a period's first), dead-lettered, skipped and still open periods, and the money
    charged per currency, read from the sandbox's ledger and cross-checked against the
    periods (a mismatch is printed as a warning).

    The sample set (without --subscriptions) shows the calendar rules: monthly on the 31st
    (Jan 31, Feb 28, Mar 31), yearly on Feb 29, weekly at 02:30 in New York (across the DST
    change), every 10 days, a 14-day trial, an end date, a start three months back (catch-up),
    and cards that decline: 5159 (no funds: soft, retried, then dead-lettered) and 5141
    (stolen: hard, dead-lettered at once). In a file, a stored_id the sandbox does not know
    is an approving card; its own cards (5125, 5159, 5141...) behave as in `billing sandbox`.
    """
    try:
        start = sim.parse_day(from_date, "--from")
        end = sim.parse_day(until, "--until")
        sim.check_window(start, end)
    except InvalidInput as exc:
        die(str(exc))
    if catch_up not in {policy.value for policy in CatchUp}:
        die(f"--catch-up must be all or latest, got {catch_up!r}")
    subs = _load(subscriptions) if subscriptions is not None else sim.sample(start)
    options = sim.Options(start, end, CatchUp(catch_up), settings=dict(os.environ))
    with _quiet_logs(), _terminate_as_interrupt(), _progress() as progress:
        task = progress.add_task(f"simulating from {start}", total=(end - start).days)

        def advance(done_ms: int, total_ms: int) -> None:
            day = sim.instant(sim.midnight_ms(start) + done_ms).date()
            progress.update(task, completed=done_ms / sim.DAY_MS, description=f"virtual {day}")

        try:
            report = sim.run(subs, options, progress=advance)
        except KeyboardInterrupt:
            progress.stop()
            err_console.print("interrupted: everything the simulation started was stopped")
            raise typer.Exit(130) from None
        except BillingError as exc:
            progress.stop()
            die(f"the simulation stopped: {exc}")
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", highlight=False, markup=False)
    if as_json:
        print_json(report.to_json())
    else:
        _print(report)


def _load(path: Path) -> list[Subscription]:
    """The file's subscriptions, or ``error:`` listing every bad row (exit 2)."""
    try:
        parsed = ingest.read_file(path)
    except InvalidInput as exc:
        die(str(exc))
    if parsed.invalid:
        bad = sorted(parsed.invalid, key=lambda row: row.line)
        for row in bad[:MAX_LISTED]:
            err_console.print(f"line {row.line}: {row.reason}", highlight=False, markup=False)
        if len(bad) > MAX_LISTED:
            err_console.print(f"... and {len(bad) - MAX_LISTED} more", highlight=False)
        die(f"{len(bad)} of {parsed.total} rows of {path} are invalid: nothing was simulated")
    if not parsed.rows:
        die(f"{path} holds no subscriptions")
    return [row.subscription for row in parsed.rows]


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Warnings only (or BILLING_LOG_LEVEL), unless the host configured logging already; the
    configuration is put back afterwards.
    """
    with sim.preserved_logging():
        if not logging.getLogger().handlers:
            logs.configure(os.environ.get("BILLING_LOG_LEVEL", "WARNING"))
        yield


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the simulation like Ctrl-C: cleanly, leaving nothing running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress() -> Progress:
    """A bar over virtual days on stderr, only on a terminal (so output stays clean)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} days"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


# --- output -----------------------------------------------------------------------------------


def _money(amounts: Sequence[Money]) -> str:
    return "\n".join(str(m) for m in amounts) or "-"


def _periods(paid: Sequence[str]) -> str:
    """The first paid periods and the last, the year left out where it repeats:
    ``2026-01-31 02-28 03-31 … 2027-02-28``.
    """
    shown = list(paid) if len(paid) <= SHOWN_PERIODS + 1 else [*paid[:SHOWN_PERIODS], paid[-1]]
    out: list[str] = []
    year = ""
    for n, period in enumerate(shown):
        if n == SHOWN_PERIODS and len(paid) > len(shown):
            out.append("…")
        out.append(period if period[:4] != year else period[5:])
        year = period[:4]
    return " ".join(out) or "-"


def _print(report: sim.Report) -> None:
    out = console if console.is_terminal else Console(width=OUTPUT_WIDTH)
    table = Table(
        title=(
            f"Simulated {report.start} to {report.until} (until excluded), "
            f"catch-up {report.catch_up.value}"
        ),
        title_justify="left",
    )
    table.add_column("subscription")
    table.add_column("paid", justify="right")
    table.add_column("periods paid")
    for name in ("declined", "retries", "dead", "skipped", "open"):
        table.add_column(name, justify="right")
    table.add_column("charged", justify="right")
    table.add_column("status")
    for s in report.subscriptions:
        who = Text(s.id)
        who.append(f"\n{s.schedule}, {s.amount}", style="dim")
        table.add_row(
            who,
            str(s.count("paid")),
            _periods(s.paid),
            str(s.declined),
            str(s.retries),
            _red(s.count("dead")),
            str(s.count("skipped")),
            str(s.count("open")),
            _money(s.charged),
            s.status,
        )
    table.add_section()
    table.add_row(
        Text(f"total ({len(report.subscriptions)})", style="bold"),
        str(report.total("paid")),
        "",
        str(report.declined),
        str(report.retries),
        _red(report.total("dead")),
        str(report.total("skipped")),
        str(report.total("open")),
        _money(report.charged),
        "",
    )
    out.print(table)
    dead = [(s.id, p) for s in report.subscriptions for p in s.periods if p.status == "dead"]
    if dead:
        letters = Table(title="Dead letters", title_justify="left")
        for name in ("subscription", "period", "reason", "attempts", "declined"):
            letters.add_column(name)
        for sub_id, p in dead:
            letters.add_row(sub_id, p.period, p.reason, str(p.attempts), str(p.declined))
        out.print(letters)
    out.print(
        f"{report.instants} virtual instants in {report.seconds:.1f} s; "
        f"{report.ledger_debits} debits in the sandbox's ledger, "
        f"{report.dead_letters} dead letters in bw:dlq",
        highlight=False,
    )


def _red(count: int) -> Text:
    return Text(str(count), style="red" if count else "")
