"""``billing forecast``: the charges that fall due in the next days, and what they add up to.

Reads every subscription (a page of 1000 at a time) and computes with
:mod:`schedules.forecast`; it charges nothing and writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import redis
import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table
from rich.text import Text

from schedules.forecast import Charge, Forecast, Total, forecast, utc
from worker.cli import app
from worker.cli.common import RedisUrlOption, console, die, err_console, open_redis, print_json
from worker.cli.subscriptions import unwrap_doc
from worker.clock import SYSTEM
from worker.store import subscriptions as store
from worker.subscriptions import Subscription

#: Subscriptions read per round trip (the store's largest page).
PAGE = 1000
MAX_DAYS = 366
_DAY_MS = 86_400_000


@app.command("forecast")
@unwrap_doc
def forecast_command(
    days: int = typer.Option(30, "--days", help=f"How many days ahead, 1-{MAX_DAYS}."),
    from_date: str | None = typer.Option(
        None,
        "--from",
        help="Start at 00:00 UTC of this date, YYYY-MM-DD (default: now).",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """List the charges that fall due in [from, from + days), with totals per day and currency.

    Only active and past_due subscriptions with a schedule (cadence) count; paused,
    cancelled and needs_new_card ones are left out, and so are periods due before the window
    that are not billed yet (a catch-up). Days are UTC dates. A cadence that cannot be read
    is reported as a warning. Amounts are exact. Nothing is charged or written.
    """
    if not 1 <= days <= MAX_DAYS:
        die(f"--days {days} is out of range: give 1-{MAX_DAYS}")
    from_ms = SYSTEM.now_ms() if from_date is None else _midnight_ms(from_date)
    until_ms = from_ms + days * _DAY_MS
    r = open_redis(redis_url)
    try:
        result = forecast(_subscriptions(r), from_ms, until_ms)
    except redis.RedisError as exc:
        die(f"Redis failed: {type(exc).__name__}: {exc}")
    finally:
        r.close()
    for warning in result.warnings:
        err_console.print(
            f"warning: {warning.subscription} is left out: {warning.reason}",
            highlight=False,
            markup=False,
        )
    if as_json:
        print_json(_json(result))
    else:
        _print(result)


def _midnight_ms(text: str) -> int:
    try:
        if len(text) != 10:
            raise ValueError(text)
        day = dt.date.fromisoformat(text)
    except ValueError:
        die(f"--from {text!r} is invalid: use a date, YYYY-MM-DD")
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return (midnight - utc(0)) // dt.timedelta(milliseconds=1)


def _subscriptions(r: redis.Redis) -> Iterator[Subscription]:
    """Every subscription, each once, even while the scheduler reorders the due index."""
    yield from store.every(r, PAGE)


# --- output -----------------------------------------------------------------------------------


def _utc_text(instant_ms: int) -> str:
    return f"{utc(instant_ms):%Y-%m-%d %H:%M}"


def _local_text(charge: Charge) -> str:
    """The wall-clock time with its UTC offset; the date too when it is not the period's.

    A period falls due on its start date (its key) in the subscription's zone, so the date is
    shown only when a zone skipped that day. The zone's name is in the JSON output.
    """
    local = charge.due_local
    shown = f"{local:%H:%M %z}"
    return shown if local.date().isoformat() == charge.period else f"{local:%Y-%m-%d} {shown}"


def _print(result: Forecast) -> None:
    window = f"{_utc_text(result.from_ms)} to {_utc_text(result.until_ms)} UTC"
    if not result.charges:
        console.print(f"no charges due from {window}", highlight=False)
        return
    subscriptions = len({c.subscription for c in result.charges})
    table = Table(
        title=f"Charges due from {window}",
        caption=f"{len(result.charges)} charges of {subscriptions} subscriptions",
        box=SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("Due (UTC)", no_wrap=True)
    table.add_column("Local time", overflow="fold", min_width=11)
    table.add_column("Subscription", overflow="fold")
    table.add_column("Period", no_wrap=True)
    table.add_column("Amount", justify="right", no_wrap=True)
    table.add_column("Currency", no_wrap=True)
    for c in result.charges:
        cells = (
            _utc_text(c.due_at_ms),
            _local_text(c),
            c.subscription,
            c.period,
            c.amount.to_gateway(),
            c.amount.currency,
        )
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
    console.print(_totals_table("Totals per day (UTC)", result.per_day, by_day=True))
    console.print(_totals_table("Totals", result.totals, by_day=False))


def _totals_table(title: str, totals: tuple[Total, ...], *, by_day: bool) -> Table:
    table = Table(title=title, box=SIMPLE_HEAD, pad_edge=False)
    if by_day:
        table.add_column("Day", no_wrap=True)
    table.add_column("Currency", no_wrap=True)
    table.add_column("Charges", justify="right")
    table.add_column("Total", justify="right", no_wrap=True)
    for total in totals:
        cells = [total.currency, str(total.count), total.amount.to_gateway()]
        if by_day:
            cells.insert(0, str(total.day))
        table.add_row(*cells)
    return table


def _total_json(total: Total) -> dict[str, Any]:
    out: dict[str, Any] = {
        "currency": total.currency,
        "count": total.count,
        "total": total.amount.to_gateway(),
        "total_minor": total.amount.minor,
    }
    if total.day is not None:
        out["day"] = total.day.isoformat()
    return out


def _json(result: Forecast) -> dict[str, Any]:
    return {
        "from": utc(result.from_ms).isoformat(),
        "until": utc(result.until_ms).isoformat(),
        "from_ms": result.from_ms,
        "until_ms": result.until_ms,
        "charges": [
            {
                "due_at": c.due_at.isoformat(),
                "due_at_ms": c.due_at_ms,
                "due_local": c.due_local.isoformat(),
                "timezone": c.timezone,
                "subscription": c.subscription,
                "period": c.period,
                "amount": c.amount.to_gateway(),
                "amount_minor": c.amount.minor,
                "currency": c.amount.currency,
            }
            for c in result.charges
        ],
        "per_day": [_total_json(t) for t in result.per_day],
        "totals": [_total_json(t) for t in result.totals],
        "warnings": [{"subscription": w.subscription, "reason": w.reason} for w in result.warnings],
        "considered": result.considered,
        "skipped": result.skipped,
    }
