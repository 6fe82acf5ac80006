"""Payout schedules: when runs fire, what they take, how much they may send. Pure, but for
:func:`load_schedules`, which reads the file ``BILLING_PAYOUT_SCHEDULES`` names (unset or
empty: no schedules).

The file is TOML, one ``[[schedule]]`` table per schedule::

    [[schedule]]
    name = "sellers-weekdays"
    cron = "0 18 * * mon-fri"      # minute hour day month day-of-week (names for weekdays)
    timezone = "Asia/Baku"
    tag = "sellers"                # optional: only payouts with this tag
    max_count = 500                # optional
    max_total = { AZN = "10000.00", USD = "2000.00" }   # optional, exact decimals as strings
    approval = false               # optional: wait for `billing payouts approve RUN`

Rules, all checked when the file is read (:class:`~worker.errors.ConfigurationError` names the
schedule and the field):

* unknown keys are refused, at the top and in a schedule, so a typo is not ignored;
* ``name``: unique, 1-48 letters, digits, ``_ . -`` (it starts every run id); not ``manual``;
* ``cron``: five fields, parsed by APScheduler 3 in ``timezone``. The day-of-week field takes
  names only (``mon-fri``): APScheduler 3 counts days from Monday and cron from Sunday, so a
  number would silently mean the wrong day. When both day fields are restricted a day must
  match both (APScheduler's rule, not cron's "either"). An expression that never fires is
  refused;
* ``timezone``: an IANA name (required: a payout run's hour is always somewhere);
* ``max_total``: amounts as strings (``"10000.00"``), parsed exactly; a TOML number is
  refused, as a float may not be exact. A currency not listed is not limited.

Fire instants (:func:`fire_times`) are what APScheduler gives, with one rule added: a local
time fires once. On a fall-back night the repeated hour's second pass does not fire again
(``30 1 * * *`` in New York fires at 01:30 EDT, not again at 01:30 EST). A local time that
does not exist (spring forward) fires as APScheduler places it, once.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from worker.errors import ConfigurationError, InvalidInput
from worker.money import Money, currency_exponent, parse_amount
from worker.payouts.runs import MAX_MS, RunLimits, run_id, validate_schedule_name
from worker.subscriptions import validate_id

ENV = "BILLING_PAYOUT_SCHEDULES"
KEYS = ("name", "cron", "timezone", "tag", "max_count", "max_total", "approval")
REQUIRED = ("name", "cron", "timezone")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: Where "does it ever fire?" is asked from.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)
#: How many minutes past a stuck answer :func:`fire_times` looks (see ``_next_after``).
_MAX_NUDGES = 240


@dataclass(frozen=True, slots=True)
class PayoutSchedule:
    name: str
    cron: str
    timezone: str
    tag: str | None = None  #: only payouts with this tag; None: every pending payout
    limits: RunLimits = field(default_factory=RunLimits)
    approval: bool = False  #: its runs wait for `billing payouts approve RUN`

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def trigger(self) -> Any:
        """APScheduler 3's ``CronTrigger`` for ``cron`` in ``timezone``."""
        return CronTrigger.from_crontab(self.cron, timezone=self.zone())

    def run_id(self, fire_time_ms: int) -> str:
        """The id of this schedule's run for one fire instant."""
        return run_id(self.name, fire_time_ms)


def load_schedules(environ: Mapping[str, str] | None = None) -> tuple[PayoutSchedule, ...]:
    """The schedules of the file ``BILLING_PAYOUT_SCHEDULES`` names; none when it is unset."""
    env = os.environ if environ is None else environ
    location = env.get(ENV, "")
    if not location:
        return ()
    path = Path(location)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{ENV}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return parse_schedules(text, str(path))


def parse_schedules(text: str, source: str = "payout schedules") -> tuple[PayoutSchedule, ...]:
    """Every ``[[schedule]]`` of TOML ``text``, validated (see the module's rules)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"schedule"})
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
            "only [[schedule]] tables belong here"
        )
    tables = document.get("schedule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigurationError(f"{source}: write each schedule as a [[schedule]] table")
    schedules: list[PayoutSchedule] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, start=1):
        schedule = _schedule(table, source, number)
        if schedule.name in seen:
            raise ConfigurationError(
                f"{source}: schedule {schedule.name!r}: name: given to two schedules"
            )
        seen.add(schedule.name)
        schedules.append(schedule)
    return tuple(schedules)


def _schedule(table: dict[str, Any], source: str, number: int) -> PayoutSchedule:
    raw_name = table.get("name")
    label = f"schedule {raw_name!r}" if isinstance(raw_name, str) else f"schedule #{number}"

    def fail(name: str, reason: str) -> ConfigurationError:
        return ConfigurationError(f"{source}: {label}: {name}: {reason}")

    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise fail(", ".join(unknown), f"unknown key (allowed: {', '.join(KEYS)})")
    for key in REQUIRED:
        if key not in table:
            raise fail(key, "missing")
    try:
        name = validate_schedule_name(table["name"])
    except InvalidInput as exc:
        raise fail("name", str(exc)) from None
    timezone = table["timezone"]
    zone = _zone(timezone)
    if zone is None:
        raise fail("timezone", f"{timezone!r} is not an IANA time zone name")
    cron = table["cron"]
    problem = _cron_problem(cron, zone)
    if problem is not None:
        raise fail("cron", problem)
    tag = table.get("tag")
    if tag is not None:
        try:
            validate_id(tag, "tag")
        except InvalidInput as exc:
            raise fail("tag", str(exc)) from None
    max_count = table.get("max_count")
    if max_count is not None and (type(max_count) is not int or max_count < 1):
        raise fail("max_count", f"{max_count!r} is not a whole number of 1 or more")
    max_total = _max_total(table.get("max_total"), fail)
    approval = table.get("approval", False)
    if not isinstance(approval, bool):
        raise fail("approval", f"{approval!r} is not true or false")
    return PayoutSchedule(
        name=name,
        cron=cron,
        timezone=timezone,
        tag=tag,
        limits=RunLimits(max_count, max_total),
        approval=approval,
    )


def _zone(value: object) -> ZoneInfo | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return ZoneInfo(value)
    except (KeyError, ValueError, OSError):  # not found, a path, an unreadable file
        return None


def _cron_problem(expr: object, zone: ZoneInfo) -> str | None:
    """Why ``expr`` is not a usable crontab expression in ``zone``, or None."""
    if not isinstance(expr, str) or not expr.strip():
        return "give a crontab expression like '0 18 * * mon-fri'"
    parts = expr.split()
    if len(parts) != 5:
        return f"{expr!r} needs 5 fields (minute hour day month day-of-week), got {len(parts)}"
    if re.search(r"[0-9]", parts[4]):
        return (
            f"{expr!r}: name the days of the week (mon-sun), not numbers: "
            "APScheduler 3 counts from Monday, cron from Sunday"
        )
    try:
        trigger = CronTrigger.from_crontab(expr, timezone=zone)
    except ValueError as exc:
        return f"{expr!r} is invalid: {exc}"
    if trigger.get_next_fire_time(None, _PROBE) is None:
        return f"{expr!r} never fires"
    return None


def _max_total(value: object, fail: Callable[[str, str], ConfigurationError]) -> dict[str, Money]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("max_total", 'write it as a table of amounts, { AZN = "10000.00" }')
    out: dict[str, Money] = {}
    for currency, amount in value.items():
        try:
            currency_exponent(currency)
        except InvalidInput as exc:
            raise fail(f"max_total.{currency}", str(exc)) from None
        if not isinstance(amount, str):
            raise fail(
                f"max_total.{currency}",
                f'write the amount as a string like "10000.00", not {amount!r}: '
                "a TOML number may not be exact",
            )
        try:
            out[currency] = parse_amount(amount, currency)
        except InvalidInput as exc:
            raise fail(f"max_total.{currency}", str(exc)) from None
    return out


# --- fire instants ----------------------------------------------------------------------------


def fire_times(
    schedule: PayoutSchedule, after_ms: int, until_ms: int, *, limit: int | None = None
) -> tuple[int, ...]:
    """The instants (ms) ``schedule`` fires in ``(after_ms, until_ms]``, oldest first.

    Half-open, so adjacent windows neither lose nor repeat one (a scheduler catching up after
    downtime asks from its last fire instant). With ``limit``, at most that many, the
    earliest: ask again from the last one for more.
    """
    for value, what in ((after_ms, "after_ms"), (until_ms, "until_ms")):
        if type(value) is not int or not 0 <= value < MAX_MS:
            raise ValueError(f"{what} {value!r} is not an instant in ms from 1970 to 9000")
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    trigger = schedule.trigger()
    zone = schedule.zone()
    out: list[int] = []
    cursor = after_ms
    while limit is None or len(out) < limit:
        fire = _next_after(trigger, cursor)
        if fire is None or fire > until_ms:
            break
        cursor = fire
        if not _repeated_local_time(fire, zone):
            out.append(fire)
    return tuple(out)


def _next_after(trigger: Any, cursor_ms: int) -> int | None:
    """The trigger's first fire instant after ``cursor_ms``.

    APScheduler 3 can answer an instant at or before the one it was asked from when that
    lies in a fall-back hour. Cron fires on whole minutes, so none is missed by asking again
    a minute later, and again, until the answer moves on.
    """
    probe = cursor_ms + 1
    for _ in range(_MAX_NUDGES):
        fire = trigger.get_next_fire_time(None, _EPOCH + probe * _MS)
        if fire is None:
            return None
        fire_ms: int = (fire - _EPOCH) // _MS
        if fire_ms > cursor_ms:
            return fire_ms
        probe = (probe // 60_000 + 1) * 60_000
    raise RuntimeError(f"the cron trigger does not move past {cursor_ms}")  # pragma: no cover


def _repeated_local_time(instant_ms: int, zone: ZoneInfo) -> bool:
    """True for the second pass of a local time a fall-back repeats."""
    local = (_EPOCH + instant_ms * _MS).astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
