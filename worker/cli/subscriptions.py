"""``billing subscriptions``: register, inspect and change subscriptions.

Thin over ``worker.store.subscriptions``: every check lives in the model and the store, so
this module only turns arguments into calls and results into words. A refused command
prints ``error: ...`` and exits 2 with nothing changed.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import redis
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Column, Table
from rich.text import Text

from worker import ingest
from worker.cli import app
from worker.cli.common import (
    RedisUrlOption,
    console,
    die,
    err_console,
    print_json,
    redis_session,
    refusals,
)
from worker.clock import SYSTEM
from worker.errors import InvalidInput
from worker.periods import (
    DEFAULT_TIMEZONE,
    CadenceKind,
    cancel_at_period_end,
    parse_cadence,
    period_at,
)
from worker.store import subscriptions as store
from worker.subscriptions import GATEWAYS, Subscription, SubscriptionStatus

subs_app = typer.Typer(
    name="subscriptions",
    help="Register, inspect, change, pause, resume, cancel and import subscriptions.",
    no_args_is_help=True,
)
app.add_typer(subs_app, name="subscriptions")

JsonOption = typer.Option(False, "--json", help="Print JSON instead of text.")

# The schedule: first-class options for the fields of the cadence mapping (worker.periods).
_KINDS = ", ".join(kind.value for kind in CadenceKind)
_PANEL = "Schedule (see worker/periods.py)"
EveryOption = typer.Option(
    None,
    "--every",
    help=f"Cadence kind: {_KINDS}.",
    rich_help_panel=_PANEL,
    show_default=False,
)
IntervalOption = typer.Option(
    None,
    "--interval",
    help="For --every months (1-120) or days (1-3660): how many between periods.",
    rich_help_panel=_PANEL,
    show_default=False,
)
AnchorDayOption = typer.Option(
    None,
    "--anchor-day",
    help="For monthly and months: day of the month, 1-31 (31: the last day of short months).",
    rich_help_panel=_PANEL,
    show_default=False,
)
AnchorOption = typer.Option(
    None,
    "--anchor",
    help="For yearly: MM-DD (02-29 is Feb 28 in other years).",
    rich_help_panel=_PANEL,
    show_default=False,
)
WeekdayOption = typer.Option(
    None,
    "--weekday",
    help="For weekly: mon, tue, wed, thu, fri, sat or sun.",
    rich_help_panel=_PANEL,
    show_default=False,
)
CronOption = typer.Option(
    None,
    "--cron",
    help="A crontab expression, at most once a day, days of week by name: '0 9 1 * *'. "
    "Implies --every cron.",
    rich_help_panel=_PANEL,
    show_default=False,
)
ChargeTimeOption = typer.Option(
    None,
    "--charge-time",
    help="Local time of day a period falls due, HH:MM (default 00:00; not with cron).",
    rich_help_panel=_PANEL,
    show_default=False,
)
ZoneOption = typer.Option(
    None,
    "--zone",
    help=f"IANA time zone of the schedule (default {DEFAULT_TIMEZONE}).",
    rich_help_panel=_PANEL,
    show_default=False,
)
TrialEndOption = typer.Option(
    None,
    "--trial-end",
    help="YYYY-MM-DD: the first charged period starts on or after it.",
    rich_help_panel=_PANEL,
    show_default=False,
)
EndOption = typer.Option(
    None,
    "--end",
    help="YYYY-MM-DD: no period starts on or after it.",
    rich_help_panel=_PANEL,
    show_default=False,
)


_GATEWAYS = "|".join(GATEWAYS)
_CARD_PANEL = "Card (see docs/gateways.md)"


F = TypeVar("F", bound=Callable[..., Any])


def unwrap_doc(command: F) -> F:
    """Join the lines of each paragraph of a command's docstring, which typer shows as is."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    command.__doc__ = "\n\n".join(" ".join(p.split("\n")) for p in paragraphs)
    return command


_refusals = refusals
_store = redis_session


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


def _schedule(
    *,
    every: str | None,
    interval: str | None,
    anchor_day: str | None,
    anchor: str | None,
    weekday: str | None,
    cron: str | None,
    charge_time: str | None,
    zone: str | None,
    start: str | None,
    trial_end: str | None,
    end: str | None,
) -> dict[str, str]:
    """The schedule options given, as cadence fields. ``--cron`` alone implies ``cron``."""
    fields = {
        "cadence": every,
        "interval": interval,
        "anchor_day": anchor_day,
        "anchor": anchor,
        "weekday": weekday,
        "expr": cron,
        "charge_time": charge_time,
        "timezone": zone,
        "start": start,
        "trial_end": trial_end,
        "end": end,
    }
    given = {name: value for name, value in fields.items() if value is not None}
    if cron is not None and every is None:
        given["cadence"] = CadenceKind.CRON.value
    return given


def _option(field: str) -> str:
    """The first-class option that sets a cadence field."""
    names = {"cadence": "--every", "expr": "--cron", "timezone": "--zone"}
    return names.get(field, "--" + field.replace("_", "-"))


def _combine(pairs: Mapping[str, str], schedule: Mapping[str, str]) -> dict[str, str]:
    """``--cadence key=value`` and the schedule options; one field given both ways is refused."""
    both = sorted(set(pairs) & set(schedule))
    if both:
        field = both[0]
        die(f"cadence {field} is given twice: by {_option(field)} and by --cadence {field}=")
    return {**pairs, **schedule}


def _check_cadence(cadence: Mapping[str, str]) -> None:
    """Refuse a cadence :func:`parse_cadence` refuses, before anything is written.

    An empty cadence is fine: the subscription is then charged only when asked.
    """
    if not cadence:
        return
    if "cadence" not in cadence:
        die(f"a schedule needs --every ({_KINDS}); got only {', '.join(sorted(cadence))}")
    try:
        parse_cadence(cadence)
    except InvalidInput as exc:
        die(str(exc))


def _today(zone: str) -> str:
    """Today's date in ``zone`` (an invalid zone is left for parse_cadence to name)."""
    try:
        tz = ZoneInfo(zone)
    except (KeyError, ValueError, OSError):
        return dt.datetime.now(dt.UTC).date().isoformat()
    return dt.datetime.now(tz).date().isoformat()


@subs_app.command("create")
@unwrap_doc
def create(
    sub_id: str = typer.Option(..., "--id", help="Subscription id: 1-64 of A-Z a-z 0-9 _ . -"),
    customer: str = typer.Option(..., "--customer", help="Customer id, same alphabet as --id."),
    stored_id: str | None = typer.Option(
        None,
        "--stored-id",
        help="TXPG storedId of the saved card (a positive integer). Required on txpg.",
        rich_help_panel=_CARD_PANEL,
        show_default=False,
    ),
    gateway: str = typer.Option(
        "txpg",
        "--gateway",
        metavar=_GATEWAYS,
        help="The gateway that charges it.",
        rich_help_panel=_CARD_PANEL,
    ),
    parent_order: str | None = typer.Option(
        None,
        "--parent-order",
        help="Bizon: the id of an earlier (customer-present) order to rebill. Required on "
        "bizon; on txpg, a card for a fallback to bizon (BILLING_FALLBACK_GATEWAY).",
        rich_help_panel=_CARD_PANEL,
        show_default=False,
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
            "--cadence",
            help="Any cadence field as key=value, repeatable (--cadence anchor_day=31).",
            rich_help_panel=_PANEL,
        ),
    ] = None,
    every: str | None = EveryOption,
    interval: str | None = IntervalOption,
    anchor_day: str | None = AnchorDayOption,
    anchor: str | None = AnchorOption,
    weekday: str | None = WeekdayOption,
    cron: str | None = CronOption,
    charge_time: str | None = ChargeTimeOption,
    zone: str | None = ZoneOption,
    start: str | None = typer.Option(
        None,
        "--start",
        help="YYYY-MM-DD, the schedule's first day (default: today in --zone).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
    trial_end: str | None = TrialEndOption,
    end: str | None = EndOption,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", help="Your own key=value, kept as is (repeatable)."),
    ] = None,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Register a subscription.

    On txpg (the default) it needs --stored-id; on bizon, --parent-order. Either may also hold
    the other gateway's card, which a configured fallback gateway uses (docs/gateways.md).

    With no schedule it is charged only when asked (billing charge). A schedule needs --every;
    when --start is left out it is today's date in the schedule's zone, so the same command
    run on another day is then a conflict: give --start to make it repeatable.

    Running the same command again is a no-op; reusing an id with other values is refused.
    """
    schedule = _schedule(
        every=every, interval=interval, anchor_day=anchor_day, anchor=anchor, weekday=weekday,
        cron=cron, charge_time=charge_time, zone=zone, start=start, trial_end=trial_end, end=end,
    )  # fmt: skip
    _check_card(gateway, stored_id, parent_order)
    cadence_map = _combine(_pairs(cadence, "--cadence"), schedule)
    if cadence_map and "start" not in cadence_map:
        cadence_map["start"] = _today(cadence_map.get("timezone", DEFAULT_TIMEZONE))
    _check_cadence(cadence_map)
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
            gateway=gateway,
            cadence=cadence_map,
            metadata=metadata_map,
            parent_order=parent_order or "",
        )
    with _store(redis_url) as r:
        before = store.get(r, sub.id)
        stored = store.create(r, sub, SYSTEM)
        if before is None:
            typer.echo(f"created {stored.id}: {stored.amount} from {_card_words(stored)}")
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
        "gateway": sub.gateway,
        "stored id": _or_none(sub.stored_id),
        "parent order": _or_none(sub.parent_order),
        "description": sub.description,
        "language": sub.language,
        "cadence": _kv(sub.cadence),
        "metadata": _kv(sub.metadata),
        "created": _time(sub.created_at),
        "updated": _time(sub.updated_at),
    }
    for name, value in lines.items():
        typer.echo(f"{name + ':':<14}{value}".rstrip())


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
    table = Table("id", "customer", "status", "amount", Column("card", no_wrap=True), "description")
    for s in subs:
        cells = (s.id, s.customer, s.status.value, str(s.amount), _cards(s), s.description)
        table.add_row(*(Text(c) for c in cells))  # Text: a description is never markup
    console.print(table)


@subs_app.command("update")
@unwrap_doc
def update(
    sub_id: str = typer.Argument(..., metavar="ID", help="Subscription id."),
    stored_id: str | None = typer.Option(
        None,
        "--stored-id",
        help="A new TXPG card (storedId); reactivates a needs_new_card txpg subscription.",
        rich_help_panel=_CARD_PANEL,
        show_default=False,
    ),
    parent_order: str | None = typer.Option(
        None,
        "--parent-order",
        help="A new Bizon card (parent order id); reactivates a needs_new_card bizon "
        "subscription. '' removes it (not while on bizon).",
        rich_help_panel=_CARD_PANEL,
        show_default=False,
    ),
    gateway: str | None = typer.Option(
        None,
        "--gateway",
        metavar=_GATEWAYS,
        help="Move it to this gateway; it must hold a card there (give it in the same command).",
        rich_help_panel=_CARD_PANEL,
        show_default=False,
    ),
    amount: str | None = typer.Option(None, "--amount", help="New amount, e.g. 12.50."),
    currency: str | None = typer.Option(
        None, "--currency", help="New currency; needs --amount in that currency too."
    ),
    description: str | None = typer.Option(None, "--description", help="New description."),
    language: str | None = typer.Option(None, "--language", help="az, en or ru."),
    cadence: Annotated[
        list[str] | None,
        typer.Option(
            "--cadence",
            help="Set any cadence field key=value, or remove it with key= (repeatable).",
            rich_help_panel=_PANEL,
        ),
    ] = None,
    every: str | None = EveryOption,
    interval: str | None = IntervalOption,
    anchor_day: str | None = AnchorDayOption,
    anchor: str | None = AnchorOption,
    weekday: str | None = WeekdayOption,
    cron: str | None = CronOption,
    charge_time: str | None = ChargeTimeOption,
    zone: str | None = ZoneOption,
    start: str | None = typer.Option(
        None,
        "--start",
        help="YYYY-MM-DD, the schedule's first day.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
    trial_end: str | None = TrialEndOption,
    end: str | None = EndOption,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", help="Set key=value, or remove with key= (repeatable)."),
    ] = None,
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Change a subscription's card, gateway, amount, description, language, schedule or
    metadata.

    A new card on the subscription's gateway (--stored-id on txpg, --parent-order on bizon)
    makes a needs_new_card subscription active again. Periods already open keep the card and
    gateway they froze.

    Only what is given changes; the result is validated as a whole. A schedule option given
    as '' removes that field (as --cadence key= does); a schedule left with fields it does
    not use (a weekday on a monthly cadence) is refused, so remove them in the same command.
    Cancelled subscriptions cannot be changed.
    """
    schedule = _schedule(
        every=every, interval=interval, anchor_day=anchor_day, anchor=anchor, weekday=weekday,
        cron=cron, charge_time=charge_time, zone=zone, start=start, trial_end=trial_end, end=end,
    )  # fmt: skip
    given = (
        stored_id, parent_order, gateway, amount, currency, description, language, cadence,
        metadata,
    )  # fmt: skip
    if not schedule and all(v is None or v == [] for v in given):
        die("nothing to update: give at least one option (see --help)")
    cadence_changes = {
        k: v or None for k, v in _combine(_pairs(cadence, "--cadence"), schedule).items()
    }
    metadata_map = {k: v or None for k, v in _pairs(metadata, "--metadata").items()}
    with _refusals():  # a bad gateway is refused before Redis is asked
        if gateway is not None and gateway not in GATEWAYS:
            raise InvalidInput(f"--gateway {gateway!r} is not one of {', '.join(GATEWAYS)}")
    with _store(redis_url) as r:
        before = store.require(r, sub_id)
        if cadence_changes:
            _check_cadence(_merged(before.cadence, cadence_changes))
        after = store.update(
            r,
            sub_id,
            SYSTEM,
            amount=amount,
            currency=currency,
            stored_id=stored_id,
            description=description,
            language=language,
            cadence=cadence_changes or None,
            metadata=metadata_map or None,
            gateway=gateway,
            parent_order=parent_order,
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


@subs_app.command("cancel")
@unwrap_doc
def cancel(
    sub_id: str = typer.Argument(..., metavar="ID", help="Subscription id."),
    at_period_end: bool = typer.Option(
        False,
        "--at-period-end",
        help="Do not cancel now: end the schedule after the current period instead.",
    ),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Cancel a subscription for good: it is never charged again (final).

    With --at-period-end the status is left as it is and the schedule's end is set instead,
    so the period current now (due, and charged or being charged) is the last one; before the
    first period is due, nothing will be charged at all. It needs a schedule (a cadence).
    """
    if not at_period_end:
        _status_command("cancel", "cancelled", store.CANCEL)(sub_id, redis_url)
        return
    with _store(redis_url) as r:
        sub = store.require(r, sub_id)
        if sub.status is SubscriptionStatus.CANCELLED:
            die(f"{sub_id} is already cancelled")
        if not sub.cadence:
            die(
                f"{sub_id} has no schedule (cadence), so it has no period to end: "
                "cancel it now (without --at-period-end) or give it a schedule first"
            )
        try:
            cadence = parse_cadence(sub.cadence)
        except InvalidInput as exc:
            die(f"{sub_id} has a cadence that cannot be read ({exc}); fix it with update first")
        now = SYSTEM.now_ms()
        end = cancel_at_period_end(cadence, now).isoformat()
        current = period_at(cadence, now)
        after = store.update(r, sub_id, SYSTEM, cadence={"end": end})
    if after.cadence == sub.cadence:
        typer.echo(f"{sub_id} already ends on {end}: nothing changed")
    elif current is None:
        typer.echo(f"{sub_id} ends on {end}, before its first period: nothing will be charged")
    else:
        typer.echo(
            f"{sub_id} ends on {end}: its current period {current.key} is the last one "
            f"charged; it stays {after.status.value} until then"
        )


def _merged(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """``current`` with ``changes`` applied, as store.update merges them (None removes)."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _check_card(gateway: str, stored_id: str | None, parent_order: str | None) -> None:
    """The card options a gateway needs, named as options (before the model is asked)."""
    if gateway not in GATEWAYS:
        die(f"--gateway {gateway!r} is not one of {', '.join(GATEWAYS)}")
    if gateway == "txpg" and not stored_id:
        die("--gateway txpg needs --stored-id (the saved card's TXPG storedId)")
    if gateway == "bizon" and not parent_order:
        die("--gateway bizon needs --parent-order (the id of an earlier order to rebill)")


def _or_none(value: object, none: str = "(none)") -> str:
    return str(value) if value else none


def _cards(sub: Subscription) -> str:
    """The card references, the subscription's gateway first: ``txpg 5125, bizon 77``."""
    cards = sub.cards()
    return ", ".join(f"{name} {cards[name]}" for name in sorted(cards, key=sub.gateway.__ne__))


def _card_words(sub: Subscription) -> str:
    """``card 5125`` on txpg, ``bizon parent order 77`` on bizon, and the other card."""
    words = {"txpg": f"card {sub.stored_id}", "bizon": f"bizon parent order {sub.parent_order}"}
    other = [words[name] for name in sub.cards() if name != sub.gateway]
    return words[sub.gateway] + "".join(f" (and {w} for a fallback)" for w in other)


def _kv(values: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(values.items())) or "(none)"


def _time(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms // 1000, dt.UTC) + dt.timedelta(milliseconds=ms % 1000)
    return when.isoformat(timespec="milliseconds")


def _view(sub: Subscription) -> dict[str, Any]:
    times = {"created_at": sub.created_at, "updated_at": sub.updated_at}
    return {**sub.summary(), "cards": sub.cards(), **times}


def _changes(before: Subscription, after: Subscription) -> list[str]:
    """What changed, in words: ``amount 9.99 AZN -> 12.50 AZN``."""
    pairs = [
        ("gateway", before.gateway, after.gateway),
        ("card", _or_none(before.stored_id), _or_none(after.stored_id)),
        ("parent order", _or_none(before.parent_order), _or_none(after.parent_order)),
        ("amount", before.amount, after.amount),
        ("description", repr(before.description), repr(after.description)),
        ("language", before.language, after.language),
        ("cadence", _kv(before.cadence), _kv(after.cadence)),
        ("metadata", _kv(before.metadata), _kv(after.metadata)),
        ("status", before.status.value, after.status.value),
    ]
    return [f"{name} {old} -> {new}" for name, old, new in pairs if old != new]


# import


@subs_app.command("import")
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
    """Register subscriptions from a CSV or JSON Lines file, one per row.

    Columns (CSV) or keys (JSONL): id, customer, amount, currency, and the card: stored_id
    (txpg) or parent_order (bizon, with gateway=bizon); optionally gateway (txpg, the
    default, or bizon), the other gateway's card (for a fallback), description, language,
    the schedule fields cadence, interval, anchor_day, anchor,
    weekday, expr, charge_time, timezone, start, trial_end, end (as in --cadence; start is
    required with a schedule), and metadata (CSV: one column per key, metadata.KEY; JSONL:
    an object). Amounts are text, "9.99". An unknown column is refused.

    Every row is checked first, against the file and against Redis. By default, when any row
    is invalid or conflicts with a stored subscription of the same id, nothing is written and
    each is listed as "line N: reason" (exit 2). With --skip-invalid the valid rows are
    written and the others listed (exit 0).

    Safe to run again: a row equal to a stored subscription counts as unchanged.
    """
    try:
        parsed = ingest.read_file(file)
    except InvalidInput as exc:
        die(str(exc))
    invalid = list(parsed.invalid)
    unchanged = len(parsed.duplicates)
    created = 0
    with _store(redis_url) as r:
        new: list[ingest.Row] = []
        for row, stored in zip(parsed.rows, _existing(r, parsed.rows), strict=True):
            if stored is None:
                new.append(row)
                continue
            differing = _differences(stored, row.subscription)
            if differing:
                reason = f"conflict: {row.subscription.id} already exists with a different "
                invalid.append(ingest.BadRow(row.line, reason + ", ".join(differing), stored.id))
            else:
                unchanged += 1
        if invalid and not skip_invalid:
            _refuse(file, parsed.total, invalid, as_json)
        raced = _write(r, new)
        created = len(new) - len(raced)
        invalid += raced
    invalid.sort(key=lambda bad: bad.line)
    for bad in invalid:
        err_console.print(f"line {bad.line}: {bad.reason}", highlight=False, markup=False)
    summary = _summary(file, parsed.total, created, unchanged, invalid, written=True)
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"created {created}, unchanged {unchanged}, invalid {len(invalid)}")
    if raced and not skip_invalid:
        die(
            f"{len(raced)} rows conflicted with subscriptions stored while this import ran; "
            f"the other {created + unchanged} rows were imported"
        )


def _progress() -> Progress:
    """A progress bar on stderr (so --json output stays clean); plain text when not a TTY."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(
        *columns, console=err_console, transient=True, disable=not err_console.is_terminal
    )


def _existing(r: redis.Redis, rows: Sequence[ingest.Row]) -> list[Subscription | None]:
    """What Redis holds now under each row's id, read before anything is written."""
    found: list[Subscription | None] = []
    with _progress() as progress:
        task = progress.add_task("checking", total=len(rows))
        for row in rows:
            found.append(store.get(r, row.subscription.id))
            progress.advance(task)
    return found


def _write(r: redis.Redis, rows: Sequence[ingest.Row]) -> list[ingest.BadRow]:
    """Create each row's subscription; those refused (stored meanwhile) come back."""
    refused: list[ingest.BadRow] = []
    with _progress() as progress:
        task = progress.add_task("importing", total=len(rows))
        for row in rows:
            try:
                store.create(r, row.subscription, SYSTEM)
            except InvalidInput as exc:
                refused.append(ingest.BadRow(row.line, f"conflict: {exc}", row.subscription.id))
            progress.advance(task)
    return refused


def _differences(stored: Subscription, new: Subscription) -> list[str]:
    """The fields that say what a subscription is and differ (not status, times, cursor)."""
    fields = {
        "customer": (stored.customer, new.customer),
        "stored_id": (stored.stored_id, new.stored_id),
        "amount": (stored.amount, new.amount),
        "description": (stored.description, new.description),
        "language": (stored.language, new.language),
        "gateway": (stored.gateway, new.gateway),
        "parent_order": (stored.parent_order, new.parent_order),
        "cadence": (dict(stored.cadence), dict(new.cadence)),
        "metadata": (dict(stored.metadata), dict(new.metadata)),
    }
    return [name for name, (old, given) in fields.items() if old != given]


def _summary(
    file: Path,
    rows: int,
    created: int,
    unchanged: int,
    invalid: Sequence[ingest.BadRow],
    *,
    written: bool,
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


def _refuse(file: Path, rows: int, invalid: list[ingest.BadRow], as_json: bool) -> None:
    """All or nothing: list the bad rows and exit 2 before anything is written."""
    invalid.sort(key=lambda bad: bad.line)
    for bad in invalid:
        err_console.print(f"line {bad.line}: {bad.reason}", highlight=False, markup=False)
    if as_json:
        print_json(_summary(file, rows, 0, 0, invalid, written=False))
    die(
        f"{len(invalid)} of {rows} rows are invalid or conflict: nothing was imported "
        "(--skip-invalid imports the valid rows)"
    )
