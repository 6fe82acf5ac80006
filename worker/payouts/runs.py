"""Payout runs: which pending payouts a run takes, and the run's own state. Pure: no I/O.

A run is fired by a schedule for one instant (or by an operator) and has a deterministic id,
so firing it twice for the same instant is the same run (:func:`run_id`,
:func:`manual_run_id`). It takes the eligible payouts in a stable order (created, then id)
until the next one would break a limit (:func:`plan_run`):

* ``max_count``: how many payouts one run sends;
* ``max_total``: how much one run sends per currency (exact :class:`~worker.money.Money`). A
  currency without a limit is not limited.

At the first payout that would break a limit the run **stops**: it does not skip ahead to
smaller payouts. That payout and every later one are held (left pending for the next run),
and the plan says which limit. The selected payouts are always a prefix of the eligible
order.

A run is idempotent: opening the same run id again resumes it, and a run killed midway
and started again sends only what is left. Its limits are the whole run's, so a restart
counts what the run already took: it plans over what is still pending within
:func:`remaining_limits`, and :func:`left_to_send` lists the payouts it took and has not
sent yet (``queued``). The ones it left ``sending`` are the payout jobs' to resume or
reconcile. It is finished when :func:`run_done` says every payout it took has ended. The
store must take each planned payout only if it is still pending, atomically, since two runs
may plan over the same pending payouts.

Run statuses::

    awaiting_approval ──approve──► sending ──► completed
            │                                  limit_reached   (completed, some held)
            └──cancel──► cancelled   (its payouts go back to pending)

A run with nothing selected needs no approval: it is completed (or ``limit_reached``) as
soon as it is opened.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from worker.errors import InvalidInput
from worker.money import Money
from worker.payouts.model import Payout, PayoutMode, PayoutStatus
from worker.subscriptions import validate_id

#: A schedule name leaves room in a 64-character run id for ``-YYYYMMDDTHHMMZ``.
MAX_SCHEDULE_NAME = 48
MANUAL = "manual"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_MS = 60_000
#: The latest instant a run may be fired for (exclusive): 9000-01-01, far from datetime.max.
MAX_MS = (datetime(9000, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


# --- limits and plans -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How much one run may send: ``max_count`` payouts, ``max_total`` per currency."""

    max_count: int | None = None
    max_total: Mapping[str, Money] = field(default_factory=dict)

    def __post_init__(self) -> None:
        count = self.max_count
        if count is not None and (type(count) is not int or count < 1):
            raise InvalidInput(f"max_count {count!r} is invalid: use a whole number, 1 or more")
        totals = dict(self.max_total)
        for currency, money in totals.items():
            if not isinstance(money, Money) or money.currency != currency:
                raise InvalidInput(
                    f"max_total {currency}: {money!r} is not an amount in {currency}"
                )
            if money.minor <= 0:
                raise InvalidInput(f"max_total {currency} must be positive")
        object.__setattr__(self, "max_total", dict(sorted(totals.items())))

    @property
    def unlimited(self) -> bool:
        return self.max_count is None and not self.max_total

    def describe(self) -> str:
        parts = [] if self.max_count is None else [f"max_count {self.max_count}"]
        parts += [f"max_total {money}" for money in self.max_total.values()]
        return ", ".join(parts) or "no limits"

    def to_fields(self) -> dict[str, str]:
        """``max_count`` and ``max_total`` (JSON of minor units), left out when unset."""
        out: dict[str, str] = {}
        if self.max_count is not None:
            out["max_count"] = str(self.max_count)
        if self.max_total:
            out["max_total"] = _minor_json(self.max_total)
        return out

    @classmethod
    def from_fields(cls, data: Mapping[str, str]) -> RunLimits:
        count = data.get("max_count")
        return cls(
            int(count) if count else None,
            _from_minor_json(data.get("max_total", "")),
        )


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run takes (``selected``, in sending order) and leaves (``held``, with why)."""

    selected: tuple[Payout, ...]
    held: tuple[tuple[Payout, str], ...]
    limit_reached: str | None  #: the limit that stopped the run, or None

    @property
    def count(self) -> int:
        return len(self.selected)

    def totals(self) -> dict[str, Money]:
        """The selected amounts per currency."""
        return _totals(self.selected)


def eligible(pending: Iterable[Payout], tag: str | None = None) -> list[Payout]:
    """The payouts a run may take, in sending order: pending, scheduled, with ``tag`` if given.

    Sending order is creation time, then id: stable however the store lists them.
    """
    chosen = [
        payout
        for payout in pending
        if payout.status is PayoutStatus.PENDING
        and payout.mode is PayoutMode.SCHEDULED
        and (tag is None or payout.tag == tag)
    ]
    chosen.sort(key=lambda payout: (payout.created_at, payout.id))
    return chosen


def plan_run(pending: Sequence[Payout], tag: str | None, limits: RunLimits) -> RunPlan:
    """Take :func:`eligible` payouts in order until the next one would break a limit.

    Payouts that are not pending or not scheduled are ignored. The same id given twice is a
    caller's bug (it could be paid twice) and raises ``ValueError``.
    """
    seen: set[str] = set()
    for payout in pending:
        if payout.id in seen:
            raise ValueError(f"payout {payout.id} is given twice")
        seen.add(payout.id)
    order = eligible(pending, tag)
    totals: dict[str, int] = {}
    for index, payout in enumerate(order):
        breach = _breach(limits, index, totals, payout)
        if breach is not None:
            limit, reason = breach
            rest = tuple(
                (later, f"held: the run stopped at payout {payout.id} ({limit})")
                for later in order[index + 1 :]
            )
            return RunPlan(tuple(order[:index]), ((payout, reason), *rest), limit)
        currency = payout.currency
        totals[currency] = totals.get(currency, 0) + payout.amount.minor
    return RunPlan(tuple(order), (), None)


def remaining_limits(limits: RunLimits, taken: Iterable[Payout]) -> RunLimits | None:
    """What is left of a run's ``limits`` after the payouts it already ``taken``; None when
    a limit is used up (nothing more may be taken).
    """
    chosen = list(taken)
    count = None
    if limits.max_count is not None:
        count = limits.max_count - len(chosen)
        if count <= 0:
            return None
    used = _totals(chosen)
    left: dict[str, Money] = {}
    for currency, cap in limits.max_total.items():
        rest = cap.minor - used.get(currency, Money(0, currency)).minor
        if rest <= 0:
            return None
        left[currency] = Money(rest, currency)
    return RunLimits(count, left)


def left_to_send(run: str, payouts: Iterable[Payout]) -> tuple[Payout, ...]:
    """What a (re)started run still has to send: its ``queued`` payouts, in sending order."""
    left = [p for p in payouts if p.run_id == run and p.status is PayoutStatus.QUEUED]
    return tuple(sorted(left, key=lambda payout: (payout.created_at, payout.id)))


#: Statuses in which a run's payout needs nothing more from the run.
_ENDED = frozenset({PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELLED})


def run_done(run: str, payouts: Iterable[Payout]) -> bool:
    """True when every payout ``run`` took has ended: paid, failed or cancelled."""
    return all(p.status in _ENDED for p in payouts if p.run_id == run)


def _breach(
    limits: RunLimits, taken: int, totals: Mapping[str, int], payout: Payout
) -> tuple[str, str] | None:
    """(limit, reason) when taking ``payout`` next would break a limit."""
    if limits.max_count is not None and taken + 1 > limits.max_count:
        limit = f"max_count {limits.max_count}"
        return limit, f"would exceed {limit}: {taken} payouts already selected"
    cap = limits.max_total.get(payout.currency)
    so_far = totals.get(payout.currency, 0)
    if cap is not None and so_far + payout.amount.minor > cap.minor:
        limit = f"max_total {cap}"
        selected = Money(so_far, payout.currency)
        return limit, f"would exceed {limit}: {selected} selected + {payout.amount}"
    return None


def _totals(payouts: Iterable[Payout]) -> dict[str, Money]:
    sums: dict[str, int] = {}
    for payout in payouts:
        sums[payout.currency] = sums.get(payout.currency, 0) + payout.amount.minor
    return {currency: Money(minor, currency) for currency, minor in sorted(sums.items())}


# --- run ids ----------------------------------------------------------------------------------


def validate_schedule_name(value: object) -> str:
    """1-48 ASCII letters, digits, ``_``, ``.``, ``-`` (starting with a letter or digit); not
    ``manual`` nor ``manual-...``, which name operators' runs.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"schedule name {value!r} is invalid: use 1-{MAX_SCHEDULE_NAME} ASCII letters, "
            "digits, '_', '.' or '-', starting with a letter or digit"
        )
    if value == MANUAL or value.startswith(f"{MANUAL}-"):
        raise InvalidInput(f"schedule name {value!r} is reserved: 'manual-...' names manual runs")
    return value


def run_id(schedule_name: str, fire_time_ms: int) -> str:
    """``{name}-{YYYYMMDDTHHMMZ}``: the run of a schedule for one fire instant (UTC).

    Cron fires on whole minutes; any other instant raises ``ValueError`` (it is not a fire
    time, and rounding it would merge runs silently).
    """
    name = validate_schedule_name(schedule_name)
    _check_ms(fire_time_ms, "fire time")
    if fire_time_ms % _MINUTE_MS:
        raise ValueError(f"fire time {fire_time_ms} is not on a whole minute")
    return f"{name}-{_utc(fire_time_ms):%Y%m%dT%H%MZ}"


def manual_run_id(at_ms: int, label: str | None = None) -> str:
    """An operator's run: ``manual-{label}`` (the same label is the same run) or, without a
    label, ``manual-{YYYYMMDDTHHMMSS.fffZ}`` of ``at_ms``.
    """
    if label is not None:
        validate_id(label, "run label")
        run = f"{MANUAL}-{label}"
        if len(run) > 64:
            raise InvalidInput(f"run label {label!r} is too long: at most {64 - 7} characters")
        return run
    _check_ms(at_ms, "time")
    moment = _utc(at_ms)
    return f"{MANUAL}-{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z"


def validate_run_id(value: object) -> str:
    """A run id as typed by an operator (``billing payouts approve RUN``): key-safe."""
    return validate_id(value, "run id")


def _check_ms(value: int, what: str) -> None:
    if type(value) is not int or not 0 <= value < MAX_MS:
        raise ValueError(f"{what} {value!r} is not an instant in ms from 1970 to 9000")


def _utc(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


# --- run state --------------------------------------------------------------------------------


class RunStatus(enum.StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  #: waits for `billing payouts approve RUN`
    SENDING = "sending"  #: its payouts are being sent
    COMPLETED = "completed"  #: every selected payout was sent and ended (paid or failed)
    LIMIT_REACHED = "limit_reached"  #: completed, and a limit held some payouts back
    CANCELLED = "cancelled"  #: not approved: nothing was sent, its payouts are pending again


FINAL_RUN_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.LIMIT_REACHED, RunStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class RunState:
    """A run as stored (``bw:run:{id}``); the payouts it took are listed elsewhere."""

    id: str
    status: RunStatus
    schedule: str = ""  #: the schedule that fired it; "" for a manual run
    tag: str = ""  #: only payouts with this tag; "" for all
    fire_at: int = 0  #: the instant it was fired for (ms)
    created_at: int = 0
    updated_at: int = 0
    limits: RunLimits = field(default_factory=RunLimits)
    approval: bool = False  #: it waited (or waits) for an operator
    selected: int = 0  #: how many payouts it took
    totals: Mapping[str, Money] = field(default_factory=dict)  #: what it took, per currency
    held: int = 0  #: how many eligible payouts a limit held back
    limit_reached: str = ""  #: the limit that stopped it, or ""
    approved_by: str = ""
    approved_at: int = 0
    cancelled_by: str = ""
    finished_at: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL_RUN_STATUSES

    @classmethod
    def open(
        cls,
        run: str,
        plan: RunPlan,
        *,
        limits: RunLimits,
        now_ms: int,
        fire_at_ms: int | None = None,
        schedule: str = "",
        tag: str | None = None,
        approval: bool = False,
    ) -> RunState:
        """A new run for ``plan``: awaiting approval, or sending. With nothing selected it
        is finished at once (completed, or limit_reached).
        """
        state = cls(
            id=validate_run_id(run),
            status=RunStatus.AWAITING_APPROVAL if approval else RunStatus.SENDING,
            schedule=validate_schedule_name(schedule) if schedule else "",
            tag=validate_id(tag, "tag") if tag else "",
            fire_at=now_ms if fire_at_ms is None else fire_at_ms,
            created_at=now_ms,
            updated_at=now_ms,
            limits=limits,
            approval=approval,
            selected=plan.count,
            totals=plan.totals(),
            held=len(plan.held),
            limit_reached=plan.limit_reached or "",
        )
        if plan.count == 0:
            return replace(state, status=state._ended(), finished_at=now_ms)
        return state

    def approve(self, actor: str, now_ms: int) -> RunState:
        """Approved by ``actor``: it may send. Only a run awaiting approval can be approved."""
        if self.status is not RunStatus.AWAITING_APPROVAL:
            raise InvalidInput(f"run {self.id} is {self.status}; only a run awaiting approval")
        return replace(
            self,
            status=RunStatus.SENDING,
            approved_by=_actor(actor),
            approved_at=now_ms,
            updated_at=now_ms,
        )

    def cancel(self, actor: str, now_ms: int) -> RunState:
        """Not approved: nothing of it is sent. Only a run awaiting approval can be cancelled."""
        if self.status is not RunStatus.AWAITING_APPROVAL:
            raise InvalidInput(
                f"run {self.id} is {self.status}; only a run awaiting approval can be cancelled"
            )
        return replace(
            self,
            status=RunStatus.CANCELLED,
            cancelled_by=_actor(actor),
            updated_at=now_ms,
            finished_at=now_ms,
        )

    def finish(self, now_ms: int) -> RunState:
        """Every selected payout has ended: completed, or limit_reached if some were held."""
        if self.status is not RunStatus.SENDING:
            raise InvalidInput(f"run {self.id} is {self.status}; only a sending run can finish")
        return replace(self, status=self._ended(), updated_at=now_ms, finished_at=now_ms)

    def _ended(self) -> RunStatus:
        return RunStatus.LIMIT_REACHED if self.limit_reached else RunStatus.COMPLETED

    def to_hash(self) -> dict[str, str]:
        """The stored hash: no ``id`` (the key holds it), no empty optional field."""
        out = {
            "status": self.status.value,
            "fire_at": str(self.fire_at),
            "created_at": str(self.created_at),
            "updated_at": str(self.updated_at),
            "approval": "1" if self.approval else "0",
            "selected": str(self.selected),
            "held": str(self.held),
        }
        optional = {
            "schedule": self.schedule,
            "tag": self.tag,
            "totals": _minor_json(self.totals) if self.totals else "",
            "limit_reached": self.limit_reached,
            "approved_by": self.approved_by,
            "approved_at": str(self.approved_at) if self.approved_at else "",
            "cancelled_by": self.cancelled_by,
            "finished_at": str(self.finished_at) if self.finished_at else "",
            **self.limits.to_fields(),
        }
        out.update({name: value for name, value in optional.items() if value})
        return out

    @classmethod
    def from_hash(cls, data: Mapping[str, str], run: str) -> RunState:
        return cls(
            id=run,
            status=RunStatus(data["status"]),
            schedule=data.get("schedule", ""),
            tag=data.get("tag", ""),
            fire_at=int(data.get("fire_at", "0")),
            created_at=int(data.get("created_at", "0")),
            updated_at=int(data.get("updated_at", "0")),
            limits=RunLimits.from_fields(data),
            approval=data.get("approval") == "1",
            selected=int(data.get("selected", "0")),
            totals=_from_minor_json(data.get("totals", "")),
            held=int(data.get("held", "0")),
            limit_reached=data.get("limit_reached", ""),
            approved_by=data.get("approved_by", ""),
            approved_at=int(data.get("approved_at") or "0"),
            cancelled_by=data.get("cancelled_by", ""),
            finished_at=int(data.get("finished_at") or "0"),
        )

    def summary(self) -> dict[str, object]:
        """A JSON-able view: amounts as decimal strings."""
        return {
            "id": self.id,
            "status": self.status.value,
            "schedule": self.schedule,
            "tag": self.tag,
            "fire_at": self.fire_at,
            "approval": self.approval,
            "approved_by": self.approved_by,
            "cancelled_by": self.cancelled_by,
            "selected": self.selected,
            "totals": {currency: money.to_gateway() for currency, money in self.totals.items()},
            "held": self.held,
            "limit_reached": self.limit_reached,
            "limits": self.limits.describe(),
        }


def _actor(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise InvalidInput("actor must be text of 1-128 characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidInput("actor contains control characters or invalid unicode")
    return value


def _minor_json(amounts: Mapping[str, Money]) -> str:
    body = {currency: money.minor for currency, money in sorted(amounts.items())}
    return json.dumps(body, separators=(",", ":"))


def _from_minor_json(text: str) -> dict[str, Money]:
    if not text:
        return {}
    return {currency: Money(int(minor), currency) for currency, minor in json.loads(text).items()}
