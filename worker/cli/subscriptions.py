"""``billing subscriptions``: register, inspect and change subscriptions.

Thin over ``worker.store.subscriptions``: every check lives in the model and the store, so
this module only turns arguments into calls and results into words. A refused command
prints ``error: ...`` and exits 2 with nothing changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import redis
import typer
from rich.table import Table
from rich.text import Text

from worker.cli import app
from worker.cli.common import RedisUrlOption, console, die, open_redis, print_json
from worker.clock import SYSTEM
from worker.errors import BillingError
from worker.store import subscriptions as store
from worker.subscriptions import Subscription

subs_app = typer.Typer(
    name="subscriptions",
    help="Register, inspect, change, pause, resume and cancel subscriptions.",
    no_args_is_help=True,
)
app.add_typer(subs_app, name="subscriptions")

JsonOption = typer.Option(False, "--json", help="Print JSON instead of text.")


@contextmanager
def _refusals() -> Iterator[None]:
    """Billing errors become ``error: ...`` and exit 2."""
    try:
        yield
    except BillingError as exc:
        die(str(exc))


@contextmanager
def _store(url: str | None) -> Iterator[redis.Redis]:
    """A connected client, closed after the command; failures become ``error: ...``."""
    client = open_redis(url)
    try:
        with _refusals():
            yield client
    except redis.RedisError as exc:
        die(f"Redis failed: {type(exc).__name__}: {exc}")
    finally:
        client.close()


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``key=value`` options as a dict; a missing ``=`` or a repeated key is an error."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            die(f"{option} {item!r} must look like key=value")
        if key in out:
            die(f"{option} {key} is given twice")
        out[key] = value
    return out


@subs_app.command("create")
def create(
    sub_id: str = typer.Option(..., "--id", help="Subscription id: 1-64 of A-Z a-z 0-9 _ . -"),
    customer: str = typer.Option(..., "--customer", help="Customer id, same alphabet as --id."),
    stored_id: str = typer.Option(
        ..., "--stored-id", help="TXPG storedId of the saved card (a positive integer)."
    ),
    amount: str = typer.Option(
        ..., "--amount", help="Amount per period as a plain decimal, e.g. 9.99."
    ),
    currency: str = typer.Option(..., "--currency", help="ISO 4217 code, e.g. AZN."),
    description: str = typer.Option("", "--description", help="Shown on the gateway order."),
    language: str = typer.Option("az", "--language", help="Gateway page language: az, en, ru."),
    cadence: Annotated[
        list[str] | None,
        typer.Option(
            "--cadence", help="Schedule field key=value (repeat: --cadence interval=month)."
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", help="Your own key=value, kept as is (repeatable)."),
    ] = None,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Register a subscription.

    Running the same command again is a no-op; reusing an id with other values is refused.
    """
    cadence_map = _pairs(cadence, "--cadence")
    metadata_map = _pairs(metadata, "--metadata")
    with _refusals():  # bad input is refused before Redis is even asked
        sub = Subscription.create(
            id=sub_id,
            customer=customer,
            stored_id=stored_id,
            amount=amount,
            currency=currency,
            description=description,
            language=language,
            cadence=cadence_map,
            metadata=metadata_map,
        )
    with _store(redis_url) as r:
        before = store.get(r, sub.id)
        stored = store.create(r, sub, SYSTEM)
        if before is None:
            typer.echo(f"created {stored.id}: {stored.amount} from card {stored.stored_id}")
        else:
            typer.echo(f"{stored.id} already exists with these values; nothing changed")


@subs_app.command("show")
def show(
    sub_id: str = typer.Argument(..., metavar="ID", help="Subscription id."),
    as_json: bool = JsonOption,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Show one subscription."""
    with _store(redis_url) as r:
        sub = store.require(r, sub_id)
    if as_json:
        print_json(_view(sub))
        return
    lines = {
        "id": sub.id,
        "status": sub.status.value,
        "customer": sub.customer,
        "amount": str(sub.amount),
        "stored id": str(sub.stored_id),
        "gateway": sub.gateway,
        "description": sub.description,
        "language": sub.language,
        "cadence": _kv(sub.cadence),
        "metadata": _kv(sub.metadata),
        "created": _time(sub.created_at),
        "updated": _time(sub.updated_at),
    }
    for name, value in lines.items():
        typer.echo(f"{name + ':':<13}{value}".rstrip())


@subs_app.command("list")
def list_(
    status: str | None = typer.Option(
        None, "--status", help="Only this status: active, paused, past_due, needs_new_card..."
    ),
    limit: int = typer.Option(100, "--limit", help="At most this many (1-1000)."),
    offset: int = typer.Option(0, "--offset", help="Skip this many matches first."),
    as_json: bool = JsonOption,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """List subscriptions, oldest first."""
    with _store(redis_url) as r:
        subs = store.list_subscriptions(r, status=status, offset=offset, limit=limit)
    if as_json:
        print_json([_view(s) for s in subs])
        return
    if not subs:
        typer.echo("no subscriptions" + (f" with status {status}" if status else ""))
        return
    table = Table("id", "customer", "status", "amount", "stored id", "description")
    for s in subs:
        cells = (s.id, s.customer, s.status.value, str(s.amount), str(s.stored_id), s.description)
        table.add_row(*(Text(c) for c in cells))  # Text: a description is never markup
    console.print(table)


@subs_app.command("update")
def update(
    sub_id: str = typer.Argument(..., metavar="ID", help="Subscription id."),
    stored_id: str | None = typer.Option(
        None, "--stored-id", help="A new card; reactivates a needs_new_card subscription."
    ),
    amount: str | None = typer.Option(None, "--amount", help="New amount, e.g. 12.50."),
    currency: str | None = typer.Option(
        None, "--currency", help="New currency; needs --amount in that currency too."
    ),
    description: str | None = typer.Option(None, "--description", help="New description."),
    language: str | None = typer.Option(None, "--language", help="az, en or ru."),
    cadence: Annotated[
        list[str] | None,
        typer.Option("--cadence", help="Set key=value, or remove with key= (repeatable)."),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", help="Set key=value, or remove with key= (repeatable)."),
    ] = None,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Change a subscription's card, amount, description, language, cadence or metadata.

    Only what is given changes; the result is validated as a whole. Cancelled subscriptions
    cannot be changed.
    """
    given = (stored_id, amount, currency, description, language, cadence, metadata)
    if all(v is None or v == [] for v in given):
        die("nothing to update: give at least one option (see --help)")
    cadence_map = {k: v or None for k, v in _pairs(cadence, "--cadence").items()}
    metadata_map = {k: v or None for k, v in _pairs(metadata, "--metadata").items()}
    with _store(redis_url) as r:
        before = store.require(r, sub_id)
        after = store.update(
            r,
            sub_id,
            SYSTEM,
            amount=amount,
            currency=currency,
            stored_id=stored_id,
            description=description,
            language=language,
            cadence=cadence_map or None,
            metadata=metadata_map or None,
        )
    changes = _changes(before, after)
    if not changes:
        typer.echo(f"{sub_id} unchanged: it already has these values")
        return
    typer.echo(f"updated {sub_id}: " + "; ".join(changes))


def _status_command(
    name: str, done: str, transition: store.Transition
) -> Callable[[str, str | None], None]:
    def command(
        sub_id: str = typer.Argument(..., metavar="ID", help="Subscription id."),
        redis_url: str | None = RedisUrlOption,
    ) -> None:
        with _store(redis_url) as r:
            store.set_status(r, sub_id, transition, SYSTEM)
        typer.echo(f"{done} {sub_id}")

    command.__name__ = name
    return command


subs_app.command(
    "pause", help="Pause a subscription: periods falling due while paused are skipped."
)(_status_command("pause", "paused", store.PAUSE))
subs_app.command("resume", help="Resume a paused subscription.")(
    _status_command("resume", "resumed", store.RESUME)
)
subs_app.command(
    "cancel", help="Cancel a subscription for good: it is never charged again (final)."
)(_status_command("cancel", "cancelled", store.CANCEL))


def _kv(values: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(values.items())) or "(none)"


def _time(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms // 1000, dt.UTC) + dt.timedelta(milliseconds=ms % 1000)
    return when.isoformat(timespec="milliseconds")


def _view(sub: Subscription) -> dict[str, Any]:
    return {**sub.summary(), "created_at": sub.created_at, "updated_at": sub.updated_at}


def _changes(before: Subscription, after: Subscription) -> list[str]:
    """What changed, in words: ``amount 9.99 AZN -> 12.50 AZN``."""
    pairs = [
        ("card", before.stored_id, after.stored_id),
        ("amount", before.amount, after.amount),
        ("description", repr(before.description), repr(after.description)),
        ("language", before.language, after.language),
        ("cadence", _kv(before.cadence), _kv(after.cadence)),
        ("metadata", _kv(before.metadata), _kv(after.metadata)),
        ("status", before.status.value, after.status.value),
    ]
    return [f"{name} {old} -> {new}" for name, old, new in pairs if old != new]
