"""``billing events``: read the outcome event stream (``bw:events``) from a terminal."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Annotated, Any

import redis
import typer

from worker.cli import app
from worker.cli.common import RedisUrlOption, open_redis
from worker.events import EventType
from worker.store import events as stream
from worker.store.events import Entry

events_app = typer.Typer(
    name="events",
    help="The outcome event stream: charges, declines, dead letters, operator actions.",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")

_PAGE = 200


def format_ms(ms: int, *, millis: bool = False) -> str:
    """A stored time (ms since the epoch) as UTC: ``2026-11-01 09:30:00``."""
    when = dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{ms % 1000:03d}" if millis else text


@events_app.command("tail")
def tail(
    from_start: bool = typer.Option(
        False, "--from-start", help="Start at the oldest event instead of the newest ones."
    ),
    count: int | None = typer.Option(
        None,
        "--count",
        "-n",
        min=0,
        help="How many past events to print: the newest N (default 10), or with --from-start "
        "the oldest N (default: all of them).",
        show_default=False,
    ),
    follow: bool = typer.Option(
        True, "--follow/--no-follow", help="Keep printing new events until Ctrl-C."
    ),
    types: Annotated[
        list[EventType] | None,
        typer.Option("--type", "-t", help="Only events of this type (repeat for several)."),
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Print events (time, type, key, data), then follow the stream as new ones arrive."""
    wanted = {t.value for t in types} if types else None
    with open_redis(redis_url) as r:
        if from_start:
            cursor = _print_oldest(r, count, wanted, as_json)
        else:
            cursor = _print_newest(r, 10 if count is None else count, wanted, as_json)
        if not follow:
            return
        live = stream.follow(r, after=cursor)
        try:
            _print(_matching(live, wanted), as_json)
        except KeyboardInterrupt:
            pass
        finally:
            live.close()


def _print_newest(r: redis.Redis, count: int, wanted: set[str] | None, as_json: bool) -> str:
    """Print the newest ``count`` matching events; following resumes after the newest id."""
    cursor = stream.last_id(r)
    found: list[Entry] = []
    before = cursor
    while len(found) < count and before != "0-0":
        page = stream.latest(r, _PAGE, before=before)
        if not page:
            break
        found[:0] = [e for e in page if wanted is None or e[1]["type"] in wanted]
        before = f"({page[0][0]}"
    _print(found[max(0, len(found) - count) :] if count else [], as_json)
    return cursor


def _print_oldest(r: redis.Redis, count: int | None, wanted: set[str] | None, as_json: bool) -> str:
    """Print the oldest ``count`` matching events (all when ``None``); following resumes
    after the last event printed, or after the end of the stream when all were printed.
    """
    cursor = "0-0"
    left = count
    while left is None or left > 0:
        page = stream.read(r, after=cursor, count=_PAGE)
        if not page:
            break
        for entry in page:
            cursor = entry[0]
            if wanted is None or entry[1]["type"] in wanted:
                _print([entry], as_json)
                left = None if left is None else left - 1
                if left == 0:
                    break
    return cursor


def _matching(entries: Iterable[Entry], wanted: set[str] | None) -> Iterable[Entry]:
    return (e for e in entries if wanted is None or e[1]["type"] in wanted)


def _print(entries: Iterable[Entry], as_json: bool) -> None:
    for stream_id, event in entries:
        if as_json:
            typer.echo(json.dumps({"stream_id": stream_id, **event}, sort_keys=True))
        else:
            typer.echo(_line(event))


def _line(event: dict[str, Any]) -> str:
    data = json.dumps(event["data"], sort_keys=True, separators=(",", ":"))
    when = format_ms(event["time"], millis=True)
    return f"{when}  {event['type']:<30} {event['key']:<32} {data}"
