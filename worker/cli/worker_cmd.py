"""``billing worker`` and ``billing scheduler``: the long-running processes."""

from __future__ import annotations

import logging
import os
import sys

import typer

from worker import logs
from worker.broker import redis_url
from worker.cli import app
from worker.errors import ConfigurationError


def _require_redis() -> str:
    try:
        return redis_url()
    except ConfigurationError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command("worker")
def worker(
    processes: int = typer.Option(2, min=1, max=64, help="Worker processes to fork."),
    threads: int = typer.Option(8, min=1, max=256, help="Threads per process (I/O bound)."),
) -> None:
    """Run Dramatiq worker processes for the billing actors.

    Needs BILLING_REDIS_URL. Equivalent to `dramatiq worker.broker --processes N --threads N`.
    """
    _require_redis()
    argv = [sys.executable, "-m", "dramatiq", "worker.broker"]
    argv += ["--processes", str(processes), "--threads", str(threads)]
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process, signals go to dramatiq


@app.command("scheduler")
def scheduler() -> None:
    """Run the APScheduler process (due sweep, payout runs, janitor).

    Needs BILLING_REDIS_URL. Its jobs arrive with the schedules issue; today it starts with
    the job defaults every job must have (no silent misfire skips) and runs until stopped.
    """
    from apscheduler.schedulers.blocking import BlockingScheduler

    _require_redis()
    logs.configure("INFO")
    sched = BlockingScheduler(
        timezone="UTC",
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
    logging.getLogger("worker.scheduler").info("scheduler_started jobs=%d", len(sched.get_jobs()))
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        sched.shutdown(wait=False)
