"""``billing worker`` and ``billing scheduler``: the long-running processes."""

from __future__ import annotations

import logging
import os
import sys
import tempfile

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
    metrics_port: int = typer.Option(
        9191,
        min=0,
        max=65535,
        envvar="BILLING_METRICS_PORT",
        help="Serve Prometheus metrics of all processes on this port (0: off).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", envvar="BILLING_METRICS_HOST", help="Address for the metrics server."
    ),
) -> None:
    """Run Dramatiq worker processes for the billing actors, with the janitor.

    Needs BILLING_REDIS_URL. Equivalent to `dramatiq worker.broker --processes N --threads N`
    with BILLING_METRICS_PORT set.
    """
    _require_redis()
    if metrics_port:
        # Every process must see these before it imports prometheus_client.
        folder = tempfile.mkdtemp(prefix="billing-metrics-")
        os.environ.update(
            {
                "BILLING_METRICS_PORT": str(metrics_port),
                "PROMETHEUS_MULTIPROC_DIR": folder,
                "dramatiq_prom_db": folder,
                "dramatiq_prom_port": str(metrics_port),
                "dramatiq_prom_host": metrics_host,
            }
        )
    else:
        os.environ.pop("BILLING_METRICS_PORT", None)
    argv = [sys.executable, "-m", "dramatiq", "worker.broker"]
    argv += ["--processes", str(processes), "--threads", str(threads)]
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process, signals go to dramatiq


@app.command("scheduler")
def scheduler() -> None:
    """Run the APScheduler process (no jobs yet: the due sweep arrives next).

    Needs BILLING_REDIS_URL. It starts with the job defaults every job must have (no silent
    misfire skips) and runs until stopped. The janitor that resumes stalled charges already
    runs inside `billing worker`.
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
