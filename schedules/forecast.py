"""The forecast: which charges fall due in a window, and what they add up to. Pure: no I/O.

It reads subscriptions and charges nothing. A subscription counts when its status is
chargeable (:data:`~worker.subscriptions.CHARGEABLE`) and it has a cadence; its periods are
those :func:`~worker.periods.periods_between` gives for ``[from_ms, until_ms)``, which stops
at the cadence's ``end``. Periods due before ``from_ms`` and not yet billed (a catch-up) are
not part of it. A cadence that cannot be read is a warning, not a failure.

Money stays exact: every total is a :class:`~worker.money.Money` sum of integer minor units,
one per currency (9.99 AZN and 9.99 USD never meet). Days are UTC dates of the due instants,
so a day's total does not depend on the zones of the subscriptions in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from worker.errors import InvalidInput
from worker.money import Money
from worker.periods import parse_cadence, periods_between
from worker.subscriptions import Subscription

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(instant_ms: int) -> datetime:
    """An instant in ms as an aware UTC datetime (exact: no float seconds)."""
    return _EPOCH + timedelta(milliseconds=instant_ms)


@dataclass(frozen=True, slots=True)
class Charge:
    """One period that falls due in the window."""

    subscription: str
    period: str  #: the period key, its start date
    due_at_ms: int
    due_local: datetime  #: the due instant on the subscription's wall clock (aware)
    timezone: str  #: the cadence's IANA zone
    amount: Money

    @property
    def due_at(self) -> datetime:
        return utc(self.due_at_ms)

    @property
    def day(self) -> date:
        """The UTC date it falls due: what :attr:`Forecast.per_day` groups by."""
        return self.due_at.date()


@dataclass(frozen=True, slots=True)
class Total:
    """Charges of one currency (on one UTC day, in :attr:`Forecast.per_day`)."""

    currency: str
    count: int
    amount: Money
    day: date | None = None


@dataclass(frozen=True, slots=True)
class CadenceWarning:
    """A subscription left out of the forecast because its cadence cannot be read."""

    subscription: str
    reason: str


@dataclass(frozen=True, slots=True)
class Forecast:
    from_ms: int
    until_ms: int
    charges: tuple[Charge, ...]  #: by due time, then subscription
    per_day: tuple[Total, ...]  #: by day, then currency
    totals: tuple[Total, ...]  #: by currency
    warnings: tuple[CadenceWarning, ...]  #: by subscription
    considered: int  #: chargeable subscriptions with a cadence
    skipped: int  #: subscriptions not chargeable or without a cadence


def forecast(subscriptions: Iterable[Subscription], from_ms: int, until_ms: int) -> Forecast:
    """Every charge due in ``[from_ms, until_ms)`` of the given subscriptions, with totals."""
    if until_ms < from_ms:
        raise InvalidInput("the forecast window ends before it starts")
    charges: list[Charge] = []
    warnings: list[CadenceWarning] = []
    considered = skipped = 0
    for sub in subscriptions:
        if not sub.chargeable or not sub.cadence:
            skipped += 1
            continue
        considered += 1
        try:
            cadence = parse_cadence(sub.cadence)
        except InvalidInput as exc:
            warnings.append(CadenceWarning(sub.id, str(exc)))
            continue
        zone = cadence.zone
        for period in periods_between(cadence, from_ms, until_ms):
            local = utc(period.due_at_ms).astimezone(zone)
            charges.append(
                Charge(sub.id, period.key, period.due_at_ms, local, zone.key, sub.amount)
            )
    charges.sort(key=lambda c: (c.due_at_ms, c.subscription, c.period))
    warnings.sort(key=lambda w: w.subscription)
    return Forecast(
        from_ms=from_ms,
        until_ms=until_ms,
        charges=tuple(charges),
        per_day=_totals(charges, by_day=True),
        totals=_totals(charges, by_day=False),
        warnings=tuple(warnings),
        considered=considered,
        skipped=skipped,
    )


def _totals(charges: Iterable[Charge], *, by_day: bool) -> tuple[Total, ...]:
    sums: dict[tuple[date | None, str], tuple[int, Money]] = {}
    for charge in charges:
        key = (charge.day if by_day else None, charge.amount.currency)
        count, amount = sums.get(key, (0, Money(0, charge.amount.currency)))
        sums[key] = (count + 1, amount + charge.amount)
    return tuple(
        Total(currency, count, amount, day)
        for (day, currency), (count, amount) in sorted(
            sums.items(), key=lambda item: (item[0][0] or date.min, item[0][1])
        )
    )
