"""``billing demo``: the end-to-end demo on a private Redis and the sandbox gateway."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from worker import logs
from worker.cli import app

LogDirOption = typer.Option(
    None,
    "--log-dir",
    file_okay=False,
    help="Keep the logs of the worker, the scheduler and the sandbox here "
    "(default: a temporary directory, removed when the demo succeeds).",
    show_default=False,
)


@app.command("demo")
def demo(log_dir: Path | None = LogDirOption) -> None:
    """Run the end-to-end demo: its own Redis, the sandbox gateway, a worker and the scheduler.

    Imports sample subscriptions, lets them come due (dunning in seconds), and shows what
    happened: approvals, a soft decline recovered after a top-up, dunning that runs out, hard
    declines, the dead letters, a replay and the event stream. Then a payout run: sample
    payouts imported, a run whose limit holds one back, a declined payout in the dead
    letters, the run's report, and an immediate payout to a card number; and the sandbox's
    ledger. Takes well under a minute, needs nothing running and leaves nothing running.
    Exits 0 only if every outcome was the expected one.
    """
    from worker.demo import run

    logs.configure("WARNING")
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    raise typer.Exit(run(console, log_dir))
