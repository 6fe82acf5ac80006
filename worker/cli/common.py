"""What every ``billing`` command shares: the Redis connection, clear errors, JSON output."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import redis
import typer
from rich.console import Console

from worker.broker import redis_url
from worker.errors import BillingError
from worker.sensitive import scrub
from worker.store import connect

console = Console()
err_console = Console(stderr=True)

RedisUrlOption = typer.Option(
    None,
    "--redis-url",
    envvar="BILLING_REDIS_URL",
    help="Redis URL shared with the worker and the scheduler (env BILLING_REDIS_URL).",
    show_default=False,
)


def die(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit: nothing was changed."""
    err_console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def resolve_redis_url(url: str | None) -> str:
    """``--redis-url`` or ``BILLING_REDIS_URL``, or a clear error when neither is set."""
    try:
        return redis_url({"BILLING_REDIS_URL": url} if url else dict(os.environ))
    except BillingError as exc:
        die(str(exc))


def doorbell(url: str) -> Callable[[str, str], None]:
    """A function that sends the charge message for a (subscription, period) at once."""
    from worker import broker

    broker.setup(url)
    from worker.actors import ring

    return ring


def open_redis(url: str | None) -> redis.Redis:
    """A Redis client for the command, or a clear error when none is configured."""
    chosen = resolve_redis_url(url)
    client = connect(chosen)
    try:
        client.ping()
    except redis.RedisError as exc:
        die(f"cannot reach Redis at {chosen.split('@')[-1]}: {type(exc).__name__}")
    return client


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@contextmanager
def refusals() -> Iterator[None]:
    """Billing errors become ``error: ...`` (scrubbed of anything like a card number), exit 2."""
    try:
        yield
    except BillingError as exc:
        die(scrub(str(exc)))


@contextmanager
def redis_session(url: str | None) -> Iterator[redis.Redis]:
    """A connected client, closed after the command; failures become ``error: ...``."""
    client = open_redis(url)
    try:
        with refusals():
            yield client
    except redis.RedisError as exc:
        die(scrub(f"Redis failed: {type(exc).__name__}: {exc}"))
    finally:
        client.close()
