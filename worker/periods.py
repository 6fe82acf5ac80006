"""Billing periods: when a subscription's cadence comes due, in its own time zone. Pure: no I/O.

A subscription's ``cadence`` is a mapping of strings (stored as given); :func:`parse_cadence`
gives it meaning and rejects anything wrong with :class:`~worker.errors.InvalidInput` naming
the field. The shape::

    {"cadence": "monthly", "anchor_day": "31"}            # day 1-31, clamped in short months
    {"cadence": "months", "interval": "3", "anchor_day": "31"}
    {"cadence": "yearly", "anchor": "02-29"}              # MM-DD; Feb 29 -> Feb 28 off leap years
    {"cadence": "weekly", "weekday": "mon"}               # mon .. sun
    {"cadence": "daily"}
    {"cadence": "days", "interval": "10"}
    {"cadence": "cron", "expr": "0 9 1 * *"}              # once a day at most; see below

plus, for every cadence: ``start`` (YYYY-MM-DD, required), ``timezone`` (IANA, default
``Asia/Baku``), ``trial_end`` and ``end`` (YYYY-MM-DD, optional) and, except for cron,
``charge_time`` (HH:MM local, default 00:00). Anchors left out are taken from the first charged
date (``trial_end``, else ``start``). Unknown fields are rejected, so a typo is not ignored.

The rules, chosen so a period is billed exactly once whatever the clock and calendar do:

* **Period.** A period starts on a schedule date and ends (exclusive) on the next one. Its key
  is its start date, ``YYYY-MM-DD``: the idempotency key. Month cadences compute the n-th
  start from the anchor directly (never from the previous period), so an anchor of 31 gives
  Jan 31, Feb 28, Mar 31: it never drifts.
* **First period.** The first schedule date on or after ``trial_end`` (or ``start`` when there
  is no trial). Days before it belong to no period and are never charged; with a trial, the
  first charged period starts at ``trial_end`` unless an explicit anchor says otherwise.
* **End.** No period starts on or after ``end``. The last period keeps its natural end: it is
  charged in full, so it runs in full. :func:`cancel_at_period_end` gives the date to store.
* **Due instant.** The period's start date at ``charge_time`` in its zone, converted to UTC.
  A local time that does not exist (spring forward) is due at the first instant after the gap,
  the moment the clocks jump: 02:30 in New York on the spring-forward day is due at 03:00. A
  local time that occurs twice (fall back) is due at the first occurrence (``fold=0``).
  Due instants never decrease; two are equal only when a zone skips a whole day (Samoa skipped
  2011-12-30): both periods still exist and are billed once each.
* **Time.** A period is current from its due instant until the next period's due instant.
  ``due_periods`` treats a period as due when ``due_at_ms <= now``.
* **Pause.** A period whose due instant falls inside a pause ``[paused_at, resumed_at)`` is
  skipped and reported (:class:`Skip`), never dropped.
* **Cron.** APScheduler 3 picks the *days*: the trigger runs on a floating (UTC) calendar so it
  never meets a DST change (in a zone it fires at 03:30 on a spring-forward day and twice on a
  fall-back day). The expression's single hour and minute are the charge time, placed in the
  zone by the rule above. A period key is a date, so the expression may fire at most once a
  day. The day-of-week field takes names only (``mon-fri``): APScheduler 3 numbers days from
  Monday and cron from Sunday, and a number would silently mean the wrong day. When both day
  fields are restricted, a day must match both (APScheduler's rule, not cron's "either").
"""

from __future__ import annotations

import calendar
import enum
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from worker.errors import InvalidInput
from worker.subscriptions import validate_period

DEFAULT_TIMEZONE = "Asia/Baku"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DAY = timedelta(days=1)
#: No period starts on or after this date: keeps every step clear of ``date.max``.
_HORIZON = date(9000, 1, 1)
_EARLIEST = date(1900, 1, 1)
_MIN_MS = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // _MS
_MAX_MS = (datetime(9000, 1, 1, tzinfo=UTC) - _EPOCH) // _MS

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})", re.ASCII)
_MMDD = re.compile(r"([0-9]{2})-([0-9]{2})", re.ASCII)
_NUMBER = re.compile(r"[0-9]{1,4}", re.ASCII)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS = 3660  #: ten years: longer intervals are a typo, not a plan
_MAX_MONTHS = 120


class CadenceKind(enum.StrEnum):
    MONTHLY = "monthly"  #: every month on ``anchor_day``
    MONTHS = "months"  #: every ``interval`` months on ``anchor_day``
    YEARLY = "yearly"  #: every year on ``anchor`` (MM-DD)
    WEEKLY = "weekly"  #: every week on ``weekday``
    DAILY = "daily"  #: every day
    DAYS = "days"  #: every ``interval`` days from the first period
    CRON = "cron"  #: the days a crontab ``expr`` matches, at its hour and minute


_COMMON = frozenset({"cadence", "timezone", "start", "trial_end", "end"})
_FIELDS: dict[CadenceKind, frozenset[str]] = {
    CadenceKind.MONTHLY: frozenset({"anchor_day", "charge_time"}),
    CadenceKind.MONTHS: frozenset({"interval", "anchor_day", "charge_time"}),
    CadenceKind.YEARLY: frozenset({"anchor", "charge_time"}),
    CadenceKind.WEEKLY: frozenset({"weekday", "charge_time"}),
    CadenceKind.DAILY: frozenset({"charge_time"}),
    CadenceKind.DAYS: frozenset({"interval", "charge_time"}),
    CadenceKind.CRON: frozenset({"expr"}),
}


@dataclass(frozen=True, slots=True)
class Period:
    key: str  #: the start date, YYYY-MM-DD: the idempotency key of the charge
    start: date  #: local date in the subscription's zone
    end: date  #: exclusive: the next period's start
    due_at_ms: int  #: when it may be charged: ``start`` at the charge time, in UTC ms


# --- local time -------------------------------------------------------------------------------


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _local_date(instant_ms: int, zone: ZoneInfo) -> date:
    """The date on the wall clock in ``zone`` at an instant (clamped to the supported range)."""
    clamped = min(max(instant_ms, _MIN_MS), _MAX_MS)
    return (_EPOCH + clamped * _MS).astimezone(zone).date()


def _wall(seconds: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(seconds=seconds)).astimezone(zone).replace(tzinfo=None)


@functools.lru_cache(maxsize=4096)
def local_instant_ms(day: date, at: time, zone: ZoneInfo) -> int:
    """The instant ``day`` at ``at`` on the wall clock in ``zone``, by the module's DST rule.

    An ambiguous time is read with ``fold=0`` (its first occurrence). A nonexistent one falls
    in a gap; the answer is the transition itself, found by bisecting the seconds between the
    two readings PEP 495 gives (about 17 steps), because zoneinfo exposes no transition list.

    Cached: a sweep asks for the same few instants (today, tomorrow, the next anchor day, at
    the default time and zone) for most of the subscriptions it looks at.
    """
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return _to_ms(first)
    before = _to_ms(wall.replace(tzinfo=zone, fold=1)) // 1000  # read with the later offset
    after = _to_ms(first) // 1000  # read with the earlier offset: past the jump
    while after - before > 1:
        middle = (before + after) // 2
        if _wall(middle, zone) >= wall:
            after = middle
        else:
            before = middle
    return after * 1000


# --- schedule dates ---------------------------------------------------------------------------


class _Grid(Protocol):
    """The dates on which periods start, with no upper bound (``end`` is applied above)."""

    @property
    def first(self) -> date: ...

    def first_on_or_after(self, day: date) -> date:
        """The earliest start on or after ``day`` (``first`` for earlier days)."""
        ...

    def last_on_or_before(self, day: date) -> date | None:
        """The latest start on or before ``day``; None before ``first``."""
        ...


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class _DaySteps:
    """Every ``interval`` days from ``first``: daily, weekly and every-N-days."""

    first: date
    interval: int

    def first_on_or_after(self, day: date) -> date:
        if day <= self.first:
            return self.first
        steps = _ceil_div((day - self.first).days, self.interval)
        return self.first + timedelta(days=steps * self.interval)

    def last_on_or_before(self, day: date) -> date | None:
        if day < self.first:
            return None
        steps = (day - self.first).days // self.interval
        return self.first + timedelta(days=steps * self.interval)


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _clamped(month_index: int, anchor_day: int) -> date:
    year, month = divmod(month_index, 12)
    return date(year, month + 1, min(anchor_day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True, slots=True)
class _MonthSteps:
    """Every ``interval`` months on ``anchor_day``: monthly, every-N-months and yearly.

    The k-th start is computed from the first month and the anchor, in O(1), so a clamped
    month (Feb 28) never becomes the anchor of the next one.
    """

    first_month: int  #: year * 12 + month - 1 of the first period
    interval: int
    anchor_day: int

    @classmethod
    def monthly(cls, origin: date, interval: int, anchor_day: int) -> _MonthSteps:
        """First start: the anchor day of the origin's month, or of the next if already past."""
        first_month = _month_index(origin)
        if _clamped(first_month, anchor_day) < origin:
            first_month += 1
        return cls(first_month, interval, anchor_day)

    @classmethod
    def yearly(cls, origin: date, month: int, day: int) -> _MonthSteps:
        """First start: the anchor in the origin's year, or in the next if already past."""
        first_month = origin.year * 12 + month - 1
        if _clamped(first_month, day) < origin:
            first_month += 12
        return cls(first_month, 12, day)

    @property
    def first(self) -> date:
        return _clamped(self.first_month, self.anchor_day)

    def _start(self, step: int) -> date:
        return _clamped(self.first_month + step * self.interval, self.anchor_day)

    def first_on_or_after(self, day: date) -> date:
        if day <= self.first:
            return self.first
        step = _ceil_div(_month_index(day) - self.first_month, self.interval)
        start = self._start(step)
        return start if start >= day else self._start(step + 1)

    def last_on_or_before(self, day: date) -> date | None:
        if day < self.first:
            return None
        step = (_month_index(day) - self.first_month) // self.interval
        start = self._start(step)
        return start if start <= day else self._start(step - 1)


@dataclass(frozen=True, slots=True)
class _CronSteps:
    """The days a crontab expression matches, found by APScheduler on a floating calendar."""

    expr: str
    first: date
    trigger: Any = field(compare=False, repr=False)

    @classmethod
    def build(cls, expr: str, origin: date) -> _CronSteps:
        trigger = CronTrigger.from_crontab(expr, timezone=UTC)
        probe = cls(expr, origin, trigger)
        return cls(expr, probe.first_on_or_after(origin), trigger)

    def first_on_or_after(self, day: date) -> date:
        since = datetime.combine(max(day, self.first), time(), tzinfo=UTC)
        fire: datetime | None = self.trigger.get_next_fire_time(None, since)
        return _HORIZON if fire is None else min(fire.date(), _HORIZON)

    def last_on_or_before(self, day: date) -> date | None:
        """Search back in doubling windows, then walk forward: cron cannot step backwards."""
        if day < self.first:
            return None
        span = 1
        while True:
            start = self.first_on_or_after(max(self.first, day - timedelta(days=span - 1)))
            if start <= day:
                while (following := self.first_on_or_after(start + _DAY)) <= day:
                    start = following
                return start
            span *= 2


# --- cadence ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cadence:
    """A parsed cadence. Build it with :func:`parse_cadence`."""

    kind: CadenceKind
    zone: ZoneInfo
    start: date
    trial_end: date | None
    end: date | None
    charge_time: time
    grid: _Grid = field(repr=False)

    @property
    def first_start(self) -> date:
        """The start of the first charged period (it may lie on or after ``end``)."""
        return self.grid.first

    @property
    def _stop(self) -> date:
        return _HORIZON if self.end is None else min(self.end, _HORIZON)


def parse_cadence(fields: Mapping[str, str]) -> Cadence:
    """Read a subscription's cadence fields; raise :class:`InvalidInput` naming a bad one."""
    if not isinstance(fields, Mapping):
        raise InvalidInput("cadence must be a mapping of field to text")
    kind = _kind(fields.get("cadence"))
    for name in fields:
        if name not in _COMMON and name not in _FIELDS[kind]:
            raise InvalidInput(f"cadence field {name!r} is not used by a {kind} cadence")
    zone = _zone(fields.get("timezone", DEFAULT_TIMEZONE))
    start = _date(fields, "start")
    if start is None:
        raise InvalidInput("cadence start is missing: give the first period's date, YYYY-MM-DD")
    trial_end = _date(fields, "trial_end")
    end = _date(fields, "end")
    if trial_end is not None and trial_end < start:
        raise InvalidInput(f"cadence trial_end {trial_end} is before start {start}")
    if end is not None and end < start:
        raise InvalidInput(f"cadence end {end} is before start {start}")
    origin = trial_end or start
    grid: _Grid
    if kind is CadenceKind.CRON:
        grid, charge_time = _cron(fields, origin)
    else:
        grid, charge_time = _grid(kind, fields, origin), _charge_time(fields)
    return Cadence(kind, zone, start, trial_end, end, charge_time, grid)


def _kind(value: object) -> CadenceKind:
    for kind in CadenceKind:
        if value == kind.value:
            return kind
    allowed = ", ".join(kind.value for kind in CadenceKind)
    raise InvalidInput(f"cadence {value!r} is not one of {allowed}")


def _zone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"cadence timezone {value!r} is not an IANA time zone name")
    try:
        return ZoneInfo(value)
    except (KeyError, ValueError, OSError):  # not found, a path, an unreadable file
        raise InvalidInput(f"cadence timezone {value!r} is not an IANA time zone name") from None


def _date(fields: Mapping[str, str], name: str) -> date | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise InvalidInput(f"cadence {name} {value!r} is invalid: use YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"cadence {name} {value!r} is not a calendar date") from None
    if not _EARLIEST <= parsed < _HORIZON:  # keeps date arithmetic clear of date.min/max
        raise InvalidInput(f"cadence {name} {value!r} is out of range: use a year 1900-8999")
    return parsed


def _number(fields: Mapping[str, str], name: str, low: int, high: int, what: str) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _NUMBER.fullmatch(value) or not low <= int(value) <= high:
        raise InvalidInput(f"cadence {name} {value!r} is invalid: use {what}, {low}-{high}")
    return int(value)


def _charge_time(fields: Mapping[str, str]) -> time:
    value = fields.get("charge_time", "00:00")
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidInput(f"cadence charge_time {value!r} is invalid: use HH:MM, 00:00-23:59")
    return time(int(match[1]), int(match[2]))


def _grid(kind: CadenceKind, fields: Mapping[str, str], origin: date) -> _Grid:
    """The schedule of a calendar cadence (every kind but cron)."""
    if kind is CadenceKind.DAILY:
        return _DaySteps(origin, 1)
    if kind is CadenceKind.DAYS:
        return _DaySteps(origin, _required(_number(fields, "interval", 1, _MAX_DAYS, "days")))
    if kind is CadenceKind.WEEKLY:
        weekday = _weekday(fields.get("weekday", _WEEKDAYS[origin.weekday()]))
        return _DaySteps(origin + timedelta(days=(weekday - origin.weekday()) % 7), 7)
    if kind is CadenceKind.YEARLY:
        month, day = _anchor(fields.get("anchor", f"{origin.month:02}-{origin.day:02}"))
        return _MonthSteps.yearly(origin, month, day)
    anchor_day = _number(fields, "anchor_day", 1, 31, "a day of the month") or origin.day
    interval = 1
    if kind is CadenceKind.MONTHS:
        interval = _required(_number(fields, "interval", 1, _MAX_MONTHS, "months"))
    return _MonthSteps.monthly(origin, interval, anchor_day)


def _required(value: int | None) -> int:
    if value is None:
        raise InvalidInput("cadence interval is missing: give a whole number")
    return value


def _weekday(value: object) -> int:
    if not isinstance(value, str) or value.lower() not in _WEEKDAYS:
        raise InvalidInput(f"cadence weekday {value!r} is not one of {', '.join(_WEEKDAYS)}")
    return _WEEKDAYS.index(value.lower())


def _anchor(value: object) -> tuple[int, int]:
    """A yearly anchor, MM-DD. Feb 29 is allowed: it is Feb 28 in other years."""
    match = _MMDD.fullmatch(value) if isinstance(value, str) else None
    if match is not None and 1 <= int(match[1]) <= 12:
        month, day = int(match[1]), int(match[2])
        if 1 <= day <= calendar.monthrange(2000, month)[1]:  # 2000: a leap year
            return month, day
    raise InvalidInput(f"cadence anchor {value!r} is invalid: use MM-DD, a day of the year")


def _cron(fields: Mapping[str, str], origin: date) -> tuple[_CronSteps, time]:
    """A cron cadence: APScheduler parses the days; the hour and minute must be single values."""
    expr = fields.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidInput("cadence expr is missing: give a crontab expression")
    parts = expr.split()
    if len(parts) != 5:
        raise InvalidInput(f"cadence expr {expr!r} is invalid: it needs 5 fields, got {len(parts)}")
    minute, hour, _, _, weekday = parts
    if not re.fullmatch(r"[0-9]{1,2}", minute, re.ASCII) or int(minute) > 59:
        raise InvalidInput(f"cadence expr {expr!r}: the minute must be one number, 0-59")
    if not re.fullmatch(r"[0-9]{1,2}", hour, re.ASCII) or int(hour) > 23:
        raise InvalidInput(f"cadence expr {expr!r}: the hour must be one number, 0-23")
    if re.search(r"[0-9]", weekday):
        raise InvalidInput(
            f"cadence expr {expr!r}: name the days of the week (mon-sun), not numbers: "
            "APScheduler 3 counts from Monday, cron from Sunday"
        )
    try:
        steps = _CronSteps.build(expr, origin)
    except ValueError as exc:
        raise InvalidInput(f"cadence expr {expr!r} is invalid: {exc}") from None
    if steps.first >= _HORIZON:
        raise InvalidInput(f"cadence expr {expr!r} never matches a date")
    return steps, time(int(hour), int(minute))


# --- periods ----------------------------------------------------------------------------------


def _due(cadence: Cadence, start: date) -> int:
    return local_instant_ms(start, cadence.charge_time, cadence.zone)


def _period(cadence: Cadence, start: date) -> Period:
    end = cadence.grid.first_on_or_after(start + _DAY)
    return Period(start.isoformat(), start, end, _due(cadence, start))


def _first_due_from(cadence: Cadence, instant_ms: int) -> date:
    """The start of the earliest period (ignoring ``end``) due at or after ``instant_ms``.

    Starts from the local date of the instant and moves a step or two: O(1), never a scan.
    """
    if instant_ms > _MAX_MS:
        return _HORIZON
    grid = cadence.grid
    start = grid.last_on_or_before(_local_date(instant_ms, cadence.zone)) or grid.first
    while (before := grid.last_on_or_before(start - _DAY)) is not None:
        if _due(cadence, before) < instant_ms:
            break
        start = before  # only when a zone skipped a whole day
    while start < _HORIZON and _due(cadence, start) < instant_ms:
        start = grid.first_on_or_after(start + _DAY)
    return start


def periods_between(cadence: Cadence, from_ms: int, until_ms: int) -> Iterator[Period]:
    """Every period due in ``[from_ms, until_ms)``, oldest first.

    Half-open, so adjacent windows (two schedulers, a restart) neither lose nor repeat one.
    """
    if until_ms <= from_ms:
        return
    start = _first_due_from(cadence, from_ms)
    while start < cadence._stop:
        period = _period(cadence, start)
        if period.due_at_ms >= until_ms:
            return
        yield period
        start = period.end


def period_at(cadence: Cadence, instant_ms: int) -> Period | None:
    """The period current at an instant: from its due instant to the next period's."""
    following = _first_due_from(cadence, instant_ms + 1)
    start = cadence.grid.last_on_or_before(following - _DAY)
    if start is None or start >= cadence._stop:
        return None
    return _period(cadence, start)


def next_due(cadence: Cadence, after_ms: int) -> Period | None:
    """The first period due strictly after ``after_ms``: what the scheduler waits for."""
    start = _first_due_from(cadence, after_ms + 1)
    return _period(cadence, start) if start < cadence._stop else None


def due_periods(cadence: Cadence, last_billed_key: str | None, now_ms: int) -> list[Period]:
    """Every period due by ``now_ms`` (inclusive) whose key is after ``last_billed_key``.

    Keyed on the last recorded period, not on a time window, so a catch-up after any downtime
    returns each missed period exactly once, and a recorded one never again.
    """
    return _walk_due(cadence, last_billed_key, now_ms)[0]


def due_and_next(
    cadence: Cadence, last_billed_key: str | None, now_ms: int
) -> tuple[list[Period], Period | None]:
    """``due_periods(cadence, last_billed_key, now_ms)`` and ``next_due(cadence, now_ms)``,
    from one walk where it can (what the sweep asks for every subscription it looks at).

    When some period is due, the walk stops on the first period after it that is not: due
    instants never decrease, so that is the next period due. When none is, the walk started
    after *now* (the cursor may even lie ahead of it) and :func:`next_due` answers.
    """
    due, stopped_on = _walk_due(cadence, last_billed_key, now_ms)
    return due, (stopped_on if due else next_due(cadence, now_ms))


def _walk_due(
    cadence: Cadence, last_billed_key: str | None, now_ms: int
) -> tuple[list[Period], Period | None]:
    """The due periods after ``last_billed_key``, and the period the walk stopped on (the
    first one not due by ``now_ms``), or None when it ran into ``end``."""
    start = cadence.grid.first
    if last_billed_key is not None:
        last = date.fromisoformat(validate_period(last_billed_key))
        if last >= _HORIZON:
            return [], None
        start = cadence.grid.first_on_or_after(last + _DAY)
    due: list[Period] = []
    stop = cadence._stop
    while start < stop:
        period = _period(cadence, start)
        if period.due_at_ms > now_ms:
            return due, period
        due.append(period)
        start = period.end
    return due, None


def cancel_at_period_end(cadence: Cadence, now_ms: int) -> date:
    """The ``end`` to store so the current period is the last one charged.

    It is the start of the first period not yet due: the current period's end, or the first
    period's start when none is due yet (nothing will be charged).
    """
    return min(_first_due_from(cadence, now_ms + 1), cadence._stop)


# --- what to do with due periods --------------------------------------------------------------


class CatchUp(enum.StrEnum):
    ALL = "all"  #: charge every missed period, oldest first
    LATEST = "latest"  #: charge only the newest; record the others as skipped


class SkipReason(enum.StrEnum):
    PAUSED = "paused"  #: the period fell due while the subscription was paused
    MISSED = "missed"  #: the catch-up policy charged a newer period instead


@dataclass(frozen=True, slots=True)
class Skip:
    period: Period
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class Plan:
    """Due periods split into those to charge and those to record as skipped, oldest first."""

    charge: tuple[Period, ...] = ()
    skipped: tuple[Skip, ...] = ()


def apply_pauses(periods: Iterable[Period], pauses: Iterable[tuple[int, int | None]]) -> Plan:
    """Skip each period whose due instant is inside a pause ``[paused_at, resumed_at)``.

    ``resumed_at`` is None while a pause is still on. A period due at the instant of resuming
    is charged.
    """
    spans = [_pause(paused, resumed) for paused, resumed in pauses]
    if not spans:  # the common case, on the sweep's path
        return Plan(tuple(periods))
    charge: list[Period] = []
    skipped: list[Skip] = []
    for period in periods:
        if any(_inside(period.due_at_ms, low, high) for low, high in spans):
            skipped.append(Skip(period, SkipReason.PAUSED))
        else:
            charge.append(period)
    return Plan(tuple(charge), tuple(skipped))


def _pause(paused_at: int, resumed_at: int | None) -> tuple[int, int | None]:
    if resumed_at is not None and resumed_at < paused_at:
        raise InvalidInput(f"pause resumed_at {resumed_at} is before paused_at {paused_at}")
    return paused_at, resumed_at


def _inside(instant_ms: int, paused_at: int, resumed_at: int | None) -> bool:
    return paused_at <= instant_ms and (resumed_at is None or instant_ms < resumed_at)


def catch_up(periods: Iterable[Period], policy: CatchUp | str = CatchUp.ALL) -> Plan:
    """Apply a catch-up policy to the periods due after a downtime."""
    try:
        chosen = policy if isinstance(policy, CatchUp) else CatchUp(policy)
    except ValueError:
        raise InvalidInput(f"catch-up policy {policy!r} is not one of all, latest") from None
    due = sorted(periods, key=lambda period: period.start)
    if chosen is CatchUp.ALL or len(due) <= 1:
        return Plan(tuple(due))
    return Plan((due[-1],), tuple(Skip(period, SkipReason.MISSED) for period in due[:-1]))


def plan_due(
    cadence: Cadence,
    last_billed_key: str | None,
    now_ms: int,
    *,
    pauses: Iterable[tuple[int, int | None]] = (),
    policy: CatchUp | str = CatchUp.ALL,
) -> Plan:
    """Everything to do for a subscription now: pauses first, then the catch-up policy."""
    paused = apply_pauses(due_periods(cadence, last_billed_key, now_ms), pauses)
    chosen = catch_up(paused.charge, policy)
    skipped = sorted(paused.skipped + chosen.skipped, key=lambda skip: skip.period.start)
    return Plan(chosen.charge, tuple(skipped))
