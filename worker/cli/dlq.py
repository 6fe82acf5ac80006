"""``billing dlq``: dead letters for operators. List, show, replay (dry run unless ``--yes``),
discard (with a note). Every action is audited; see :mod:`worker.store.deadletters`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import redis
import typer
from rich.box import SIMPLE_HEAD
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from worker import keys
from worker.cli import app
from worker.cli.common import (
    RedisUrlOption,
    console,
    die,
    doorbell,
    open_redis,
    print_json,
    resolve_redis_url,
)
from worker.cli.events import format_ms
from worker.clock import SYSTEM
from worker.deadletters import DeadLetter, DeadLetterReason, DeadLetterStatus, describe
from worker.errors import BillingError, InvalidInput
from worker.gateway.txpg.codes import pmo_code
from worker.money import Money
from worker.store import audit
from worker.store import deadletters as dlq
from worker.store.deadletters import ReplayOutcome, ReplayResult

dlq_app = typer.Typer(
    name="dlq",
    help="Dead letters: periods that ended without a charge. List, inspect, replay, discard.",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")

ActorOption = typer.Option(
    None,
    "--actor",
    help="Who is acting, for the audit log (default: the OS user).",
    show_default=False,
)
_RELATIVE = re.compile(r"([0-9]+)([dhm])", re.ASCII)
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000}


def parse_since(text: str, now_ms: int) -> int:
    """``7d``, ``24h``, ``30m`` back from now, or a UTC date / ISO time (``2026-11-01``)."""
    match = _RELATIVE.fullmatch(text)
    if match:
        return now_ms - int(match.group(1)) * _UNIT_MS[match.group(2)]
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"--since {text!r} is invalid: use a date (2026-11-01) or a duration (7d, 24h, 30m)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1000


def amount_text(entry: DeadLetter) -> str:
    """``9.99 AZN``."""
    try:
        return str(Money(entry.amount_minor, entry.currency))
    except (InvalidInput, TypeError):
        return f"{entry.amount_minor} {entry.currency} (minor units)"


def code_text(attempt: Mapping[str, str]) -> str:
    """``51 Expired card``: the attempt's result code (TXPG's PMO code, Bizon's ISO code)
    with its title, else its error code.
    """
    code = attempt.get("result_code", "")
    if code:
        title = attempt.get("result_title", "")
        if not title and code.isdigit() and attempt.get("gateway", "txpg") == "txpg":
            title = pmo_code(int(code)).title  # an entry stored without its title
        return f"{code} {title}".strip()
    return attempt.get("error_code", "")


def last_code(entry: DeadLetter) -> str:
    for attempt in reversed(entry.attempts):
        if text := code_text(attempt):
            return text
    return "-"


@dlq_app.command("list")
def list_(
    reason: Annotated[
        DeadLetterReason | None, typer.Option("--reason", help="Only this reason.")
    ] = None,
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only entries created since a UTC date (2026-11-01) or a duration ago (7d, 24h).",
        show_default=False,
    ),
    status: Annotated[
        DeadLetterStatus | None,
        typer.Option("--status", help="Only this status (default: every status)."),
    ] = None,
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """List dead letters, newest first."""
    try:
        since_ms = None if since is None else parse_since(since, SYSTEM.now_ms())
    except InvalidInput as exc:
        die(str(exc))
    with open_redis(redis_url) as r:
        entries = dlq.list_entries(r, reason=reason, since_ms=since_ms, status=status, limit=limit)
    if as_json:
        print_json([{**describe(e), "amount": amount_text(e)} for e in entries])
        return
    table = Table(
        title="Dead letters", caption=f"{len(entries)} shown, newest first", box=SIMPLE_HEAD
    )
    table.add_column("ID", overflow="fold")  # ids are long: they give way first
    for name in ("When (UTC)", "Subscription", "Period", "Amount"):
        table.add_column(name, no_wrap=name != "Subscription")
    table.add_column("Reason", overflow="fold")
    if status is None:  # a filtered list need not repeat its status on every row
        table.add_column("Status")
    table.add_column("Last code", min_width=14)
    for e in entries:
        row = [e.id, format_ms(e.created_at)[:16], e.subscription_id, e.period, amount_text(e)]
        row += [e.reason.value, *([e.status.value] if status is None else []), last_code(e)]
        table.add_row(*row)
    console.print(table)


@dlq_app.command("show")
def show(
    dlq_id: str = typer.Argument(
        ..., metavar="ID", help="The dead letter's id (see `billing dlq list`)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Show one dead letter: why, the period's state now, and every attempt."""
    with open_redis(redis_url) as r:
        entry = dlq.get(r, dlq_id)
        if entry is None:
            die(f"dead letter {dlq_id!r} not found")
        resolved = dlq.resolution(r, dlq_id)
        period_status = r.hget(keys.period(entry.subscription_id, entry.period), "status")
    view: dict[str, Any] = {
        **describe(entry),
        **resolved,
        "amount": amount_text(entry),
        "period_status": period_status or "",
    }
    if as_json:
        print_json(view)
        return
    console.print(_summary(entry, view), _attempts(entry.attempts))


def _summary(entry: DeadLetter, view: Mapping[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows = [
        ("id", entry.id),
        ("subscription", entry.subscription_id),
        ("period", f"{entry.period} (now {view['period_status'] or 'missing'})"),
        ("amount", view["amount"]),
        ("gateway", entry.gateway),
        ("reason", entry.reason.value),
        ("detail", entry.detail),
        ("created", format_ms(entry.created_at)),
        ("status", entry.status.value),
    ]
    for who, at in (("replayed_by", "replayed_at"), ("discarded_by", "discarded_at")):
        if view.get(who):
            rows.append((who.split("_")[0], f"by {view[who]} at {_when(view.get(at, ''))}"))
    if entry.note:
        rows.append(("note", entry.note))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _attempts(attempts: Sequence[Mapping[str, str]]) -> Table:
    table = Table(title="Attempts")
    names = ("#", "Time (UTC)", "Gateway", "State", "Order", "Code", "Decline reason", "Error")
    for name in names:
        table.add_column(name)
    for a in attempts:
        error = " ".join(x for x in (a.get("error_code", ""), a.get("error", "")) if x)
        table.add_row(
            a.get("n", ""),
            _when(a.get("started_at", "")),
            a.get("gateway", ""),
            a.get("state", ""),
            a.get("order_id", ""),
            code_text({k: v for k, v in a.items() if k != "error_code"}),
            a.get("decline_reason", ""),
            error,
        )
    return table


def _when(ms: str) -> str:
    return format_ms(int(ms)) if ms.isdigit() else ms


@dlq_app.command("replay")
def replay(
    dlq_id: str | None = typer.Argument(
        None, metavar="ID", help="The dead letter to replay.", show_default=False
    ),
    all_: bool = typer.Option(False, "--all", help="Replay every open dead letter."),
    reason: Annotated[
        DeadLetterReason | None,
        typer.Option("--reason", help="With --all: only entries with this reason."),
    ] = None,
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Act. Without it, only say what would happen."
    ),
    actor: str | None = ActorOption,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Reopen dead-lettered periods so that they are charged again.

    The period goes back to the same exactly-once state machine as any charge: an attempt
    whose outcome was unknown is reconciled, never re-sent, and a period paid meanwhile is
    left alone. A subscription that is past_due or needs_new_card becomes active again.

    Without --yes nothing changes: each entry says what would happen.
    """
    if (dlq_id is None) == (not all_):
        die("give one dead letter id, or --all")
    if reason is not None and not all_:
        die("--reason goes with --all")
    who = _actor(actor)
    ring = doorbell(resolve_redis_url(redis_url))
    with open_redis(redis_url) as r:
        if dlq_id is not None:
            _replay_one(r, dlq_id, who, yes, ring)
            return
        entries = dlq.list_entries(
            r, reason=reason, status=DeadLetterStatus.OPEN, limit=None, oldest_first=True
        )
        if not entries:
            console.print("no open dead letters match: nothing to do")
            return
        results = _replay_all(r, entries, who, ring) if yes else _plan_all(r, entries, who)
    _report(results, yes)


def _replay_one(
    r: redis.Redis, dlq_id: str, actor: str, yes: bool, ring: Callable[[str, str], None]
) -> None:
    try:
        result = dlq.replay(r, dlq_id, SYSTEM, actor=actor, dry_run=not yes, doorbell=ring)
    except BillingError as exc:
        die(str(exc))
    if result.outcome is ReplayOutcome.REFUSED:
        die(f"{dlq_id}: {result.message}")
    _echo(result)
    if not yes and result.outcome is ReplayOutcome.REOPENED:
        console.print("nothing changed: run again with --yes to replay", highlight=False)


def _plan_all(r: redis.Redis, entries: Sequence[DeadLetter], actor: str) -> list[ReplayResult]:
    results = [dlq.replay(r, e.id, SYSTEM, actor=actor, dry_run=True) for e in entries]
    for result in results:
        _echo(result)
    return results


def _replay_all(
    r: redis.Redis,
    entries: Sequence[DeadLetter],
    actor: str,
    ring: Callable[[str, str], None],
) -> list[ReplayResult]:
    results: list[ReplayResult] = []
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replay", total=len(entries))
        for entry in entries:
            try:
                results.append(dlq.replay(r, entry.id, SYSTEM, actor=actor, doorbell=ring))
            except BillingError as exc:  # deleted or churning meanwhile: say so, go on
                results.append(ReplayResult(entry, ReplayOutcome.REFUSED, str(exc), False))
            progress.advance(task)
    for result in results:
        if not result.changed:
            _echo(result)
    return results


def _report(results: Sequence[ReplayResult], yes: bool) -> None:
    counts = {o: sum(1 for r in results if r.outcome is o) for o in ReplayOutcome}
    reopened = counts[ReplayOutcome.REOPENED]
    nothing = counts[ReplayOutcome.ALREADY_PAID] + counts[ReplayOutcome.ALREADY_RESOLVED]
    refused = counts[ReplayOutcome.REFUSED]
    verb = "reopened" if yes else "would reopen"
    console.print(f"{verb} {reopened}, nothing to do {nothing}, refused {refused}", highlight=False)
    if not yes:
        console.print("nothing changed: run again with --yes to replay", highlight=False)
    elif refused:
        raise typer.Exit(1)


def _echo(result: ReplayResult) -> None:
    amount = f" ({amount_text(result.entry)})" if result.outcome is ReplayOutcome.REOPENED else ""
    console.print(f"{result.entry.id}: {result.message}{amount}", highlight=False, markup=False)


@dlq_app.command("discard")
def discard(
    dlq_id: str = typer.Argument(..., metavar="ID", help="The dead letter to discard."),
    note: str = typer.Option(..., "--note", help="Why it will not be charged (required)."),
    actor: str | None = ActorOption,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Close a dead letter without charging: the period stays dead. The note is audited."""
    who = _actor(actor)
    with open_redis(redis_url) as r:
        try:
            result = dlq.discard(r, dlq_id, SYSTEM, actor=who, note=note)
        except BillingError as exc:
            die(str(exc))
    console.print(f"{dlq_id}: {result.message}", highlight=False, markup=False)


def _actor(actor: str | None) -> str:
    try:
        return audit.validate_actor(audit.default_actor() if actor is None else actor)
    except InvalidInput as exc:
        die(str(exc))
