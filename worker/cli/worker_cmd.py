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
def scheduler(
    metrics_port: int = typer.Option(
        9192,
        min=0,
        max=65535,
        envvar="BILLING_SCHEDULER_METRICS_PORT",
        help="Serve the scheduler's Prometheus metrics on this port (0: off).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", envvar="BILLING_METRICS_HOST", help="Address for the metrics server."
    ),
) -> None:
    """Run the scheduler: the due sweep, payout runs, the janitor and metrics, on APScheduler.

    Needs BILLING_REDIS_URL. Run two for availability: they share a leader lease in Redis
    and only the holder sweeps; a standby takes over within BILLING_SCHEDULER_LEASE_MS
    (10 s) of the leader's death, at once after a clean stop. Settings: BILLING_SWEEP_*,
    BILLING_CATCH_UP (all | latest), BILLING_SCHEDULER_LEASE_MS; see schedules/process.py.
    Payout schedules: BILLING_PAYOUT_SCHEDULES names a TOML file (docs/payouts.md).
    Stops on SIGINT or SIGTERM, giving the lease up.
    """
    import signal
    from datetime import UTC, datetime

    from apscheduler.schedulers.blocking import BlockingScheduler

    from schedules.process import JOB_DEFAULTS, Jobs, SchedulerSettings
    from worker import broker
    from worker.clock import from_env
    from worker.payouts.config import load_schedules
    from worker.store import connect

    url = _require_redis()
    level = os.environ.get("BILLING_LOG_LEVEL", "INFO")
    logs.configure(level)
    if level.upper() != "DEBUG":  # APScheduler logs every run of every job at INFO
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        settings = SchedulerSettings.from_env()
        clock = from_env(os.environ)
    except ConfigurationError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    broker.setup(url)
    from worker import actors

    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
    try:
        payout_schedules = load_schedules()
    except ConfigurationError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    jobs = Jobs(
        connect(url),
        actors.send_charges,
        clock,
        settings,
        send_payouts=actors.send_payouts,
        payout_schedules=payout_schedules,
    )
    sched = BlockingScheduler(timezone="UTC", job_defaults=JOB_DEFAULTS)
    jobs.install(sched)
    # The first sweep at once, not one interval after start; on the scheduler's threads like
    # every later one, so that a SIGTERM during it stops the scheduler cleanly.
    sched.modify_job("sweep", next_run_time=datetime.now(UTC))

    def stop(signum: int, frame: object) -> None:
        sched.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log = logging.getLogger("worker.scheduler")
    log.info("scheduler_started jobs=%s", ",".join(job.id for job in sched.get_jobs()))
    try:
        sched.start()
    finally:
        jobs.stop()
        log.info("scheduler_stopped")
