"""``billing demo``: the end-to-end demo on embedded defaults."""

from __future__ import annotations

import typer
from rich.console import Console

from worker import logs
from worker.cli import app


@app.command("demo")
def demo() -> None:
    """Run the end-to-end demo on its own Redis and sandbox gateway.

    A recurring charge, a soft decline recovered after a top-up, and an OCT payout, then the
    sandbox's ledger. Needs nothing running and leaves nothing running.
    """
    from worker.demo import run

    logs.configure("WARNING")
    console = Console()
    if not console.is_terminal:
        console = Console(width=110)
    raise typer.Exit(run(console))
