"""``billing simulate``: the real pipeline over virtual time, at full speed.

Nothing is special-cased: a private Redis (:class:`~worker.embedded_redis.EmbeddedRedis`),
the TXPG sandbox in a thread, the Dramatiq actors in an in-process worker, the due sweep and
the janitor, the dunning policy. Only the clock is virtual: one
:class:`~worker.clock.FixedClock` is handed to everything that reads the time (the runtime the
actors use, the sweep, the janitor, the sandbox's card expiry and ledger), and this module
moves it.

The event loop, at virtual instant *t*:

1. set the clock to *t*;
2. run the due sweep (``schedules.process.Jobs.sweep``) and a janitor tick;
3. wait until the charge queue is empty (``dramatiq:charges.msgs`` holds each message until
   a worker acknowledges it), with a real-time deadline that fails loudly;
4. if something is still due at *t* (a period in ``bw:work``, a subscription in ``bw:due``
   with a score <= *t*), go back to 2 at the same *t*; else move *t* to the earliest score in
   ``bw:due`` or ``bw:work``, or to the end.

The clock never moves while a charge runs, so a charge's lease (``BILLING_LEASE_MS`` of
virtual time) cannot run out under it. The janitor thread that the broker's middleware starts
in the worker is given an interval longer than any run, so the loop alone ticks the janitor:
two janitors would race for the janitor lock, and a tick the loop cannot see would let time
move under a message about to be sent.

Outcomes are read from Redis (``bw:periods:{sub}``, ``bw:period:{sub}:{p}``, the attempts)
and the money from the sandbox's ledger, the truth: every paid period must have exactly one
debit there, and every other period none; a mismatch is reported as a warning.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker

from schedules.process import Jobs, SchedulerSettings
from schedules.sweep import SweepSettings
from worker import broker as broker_module
from worker import keys, runtime
from worker.clock import FixedClock
from worker.embedded_redis import EmbeddedRedis
from worker.errors import BillingError, InvalidInput
from worker.money import Money, parse_amount
from worker.periods import CatchUp
from worker.sandbox import LedgerEntry, SandboxServer, SandboxState, card_from_json
from worker.store import subscriptions as store
from worker.subscriptions import Subscription

log = structlog.get_logger("schedules.simulate")

DAY_MS = 86_400_000
#: The longest simulation: ten years (in days, counting leap days).
MAX_YEARS = 10
#: How long the loop waits, in real seconds, for the charges of one instant to finish.
STEP_TIMEOUT_S = 60.0
#: Sweep-and-tick rounds at one instant before the loop calls itself stuck.
MAX_ROUNDS = 100
#: The middleware's janitor thread waits this long (real ms) before its first tick: longer
#: than any simulation, so the loop is the only janitor.
JANITOR_IDLE_MS = 7 * DAY_MS
#: How often (real seconds) the loop looks at the queue while charges run.
POLL_S = 0.002
#: The consumer's idle poll (real ms): Dramatiq's default (1 s) would cost up to a second
#: per instant.
WORKER_TIMEOUT_MS = 20
#: Charge settings taken from the caller's environment, so a policy can be tried out
#: (``BILLING_DUNNING=2d,2d billing simulate ...``). Connections are always the private ones.
POLICY_SETTINGS = (
    "BILLING_DUNNING",
    "BILLING_LEASE_MS",
    "BILLING_RETRY_BASE_MS",
    "BILLING_RETRY_MAX_MS",
    "BILLING_RECONCILE_BASE_MS",
    "BILLING_RECONCILE_MAX_MS",
    "BILLING_RECONCILE_LIMIT_MS",
    "BILLING_GATEWAY_CONCURRENCY",
    "BILLING_BREAKER_THRESHOLD",
    "BILLING_BREAKER_COOLDOWN_MS",
)
#: Cards the sandbox does not know are registered as approving cards with this expiry.
APPROVING_EXPIRY = "1299"
#: Decline classes that count as a declined attempt (not "abandoned" or "rejected").
DECLINES = frozenset({"soft", "hard", "needs_customer"})
STATUSES = ("paid", "dead", "skipped", "open")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimulationError(BillingError):
    """The simulation could not go on (charges that never finish, a loop that stands still)."""


# --- input ------------------------------------------------------------------------------------


def parse_day(text: str, option: str) -> date:
    """A ``YYYY-MM-DD`` date, or :class:`InvalidInput` naming the option."""
    try:
        if len(text) != 10 or not text.isascii():
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date: use YYYY-MM-DD") from None


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later (Feb 29 becomes Feb 28 off leap years)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def check_window(start: date, until: date) -> None:
    """``until`` after ``start``, at most :data:`MAX_YEARS` later; :class:`InvalidInput`."""
    if until <= start:
        raise InvalidInput(f"--until {until} must be after --from {start}")
    limit = add_years(start, MAX_YEARS)
    if until > limit:
        raise InvalidInput(
            f"--from {start} --until {until} spans more than {MAX_YEARS} years: "
            f"give --until {limit} or earlier"
        )


def midnight_ms(day: date) -> int:
    """00:00 UTC of ``day``, in ms since the epoch."""
    return (datetime.combine(day, datetime.min.time(), tzinfo=UTC) - _EPOCH) // timedelta(
        milliseconds=1
    )


def instant(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def show_instant(ms: int) -> str:
    return instant(ms).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class Options:
    start: date  #: the clock starts at 00:00 UTC of this date
    until: date  #: and stops at 00:00 UTC of this one (exclusive)
    catch_up: CatchUp = CatchUp.ALL
    threads: int = 8
    step_timeout_s: float = STEP_TIMEOUT_S
    #: charge settings (see :data:`POLICY_SETTINGS`); others are ignored
    settings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_window(self.start, self.until)


# --- the sample set ---------------------------------------------------------------------------

#: storedIds of the sample's approving cards: one card each, so card-network caps (10
#: attempts a day, 15 in 30 days per card) never mix subscriptions up.
SAMPLE_CARDS = 71_001
SOFT_DECLINE_CARD = 5159  #: the sandbox's card without funds: PMO 59, a soft decline
HARD_DECLINE_CARD = 5141  #: the sandbox's stolen card: PMO 41, a hard decline


def sample(start: date) -> list[Subscription]:
    """Subscriptions that show the calendar rules, declines, retries and dead letters.

    Every schedule starts on ``start`` except ``catch-up-1st``, which starts three months
    earlier: its missed periods are billed (``--catch-up all``) or skipped (``latest``).
    """
    iso = start.isoformat()
    back = start.month - 1 - 3
    catch_up_start = date(start.year + back // 12, back % 12 + 1, 1)
    rows: list[tuple[str, int, str, str, dict[str, str]]] = [
        ("monthly-31st", SAMPLE_CARDS, "9.99", "AZN", {"cadence": "monthly", "anchor_day": "31"}),
        (
            "yearly-feb-29",
            SAMPLE_CARDS + 1,
            "99.00",
            "AZN",
            {"cadence": "yearly", "anchor": "02-29"},
        ),
        (
            "weekly-new-york",
            SAMPLE_CARDS + 2,
            "4.50",
            "USD",
            {
                "cadence": "weekly",
                "weekday": "sun",
                "charge_time": "02:30",  # does not exist on the spring-forward Sunday
                "timezone": "America/New_York",
            },
        ),
        ("every-10-days", SAMPLE_CARDS + 3, "2.00", "AZN", {"cadence": "days", "interval": "10"}),
        (
            "trial-14-days",
            SAMPLE_CARDS + 4,
            "19.90",
            "AZN",
            {"cadence": "monthly", "trial_end": (start + timedelta(days=14)).isoformat()},
        ),
        (
            "ends-after-3",
            SAMPLE_CARDS + 5,
            "5.00",
            "EUR",
            {"cadence": "monthly", "end": (start + timedelta(days=80)).isoformat()},
        ),
        (
            "catch-up-1st",
            SAMPLE_CARDS + 6,
            "7.00",
            "AZN",
            {"cadence": "monthly", "anchor_day": "1", "start": catch_up_start.isoformat()},
        ),
        ("soft-decline", SOFT_DECLINE_CARD, "9.99", "AZN", {"cadence": "monthly"}),
        ("hard-decline", HARD_DECLINE_CARD, "9.99", "AZN", {"cadence": "monthly"}),
    ]
    return [
        Subscription.create(
            id=sub_id,
            customer=f"cust-{sub_id}",
            stored_id=card,
            amount=amount,
            currency=currency,
            description=f"sample: {sub_id}",
            cadence={"start": iso, **cadence},
        )
        for sub_id, card, amount, currency, cadence in rows
    ]


def describe(cadence: Mapping[str, str], start: date | None = None) -> str:
    """A schedule in one line: ``monthly, anchor_day 31`` (the start left out if ``start``)."""
    if not cadence:
        return "no schedule: charged only when asked"
    rest = [
        f"{name} {value}"
        for name, value in cadence.items()
        if name != "cadence" and not (name == "start" and start and value == start.isoformat())
    ]
    return ", ".join([cadence.get("cadence", "?"), *rest])


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeriodResult:
    period: str  #: the period key, YYYY-MM-DD
    status: str  #: paid, dead, skipped or open (still in dunning or in flight at the end)
    attempts: int  #: attempts made (each with its own order)
    declined: int  #: of which declined by the card's bank
    reason: str  #: why it was dead-lettered or skipped
    debits: int  #: money movements in the sandbox's ledger (debits less refunds/reversals)
    opened_at: int  #: virtual ms when the sweep opened it: its due instant, or the catch-up

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "opened_at": instant(self.opened_at).isoformat().replace("+00:00", "Z"),
            "status": self.status,
            "attempts": self.attempts,
            "declined": self.declined,
            "reason": self.reason,
            "ledger_debits": self.debits,
        }


def _money_json(amounts: Iterable[Money]) -> dict[str, str]:
    return {m.currency: m.to_gateway() for m in amounts}


@dataclass(frozen=True, slots=True)
class SubscriptionResult:
    id: str
    schedule: str
    amount: Money
    status: str  #: the subscription's status at the end
    periods: tuple[PeriodResult, ...]
    charged: tuple[Money, ...]  #: net, per currency, from the ledger

    def count(self, status: str) -> int:
        return sum(1 for p in self.periods if p.status == status)

    @property
    def paid(self) -> list[str]:
        return [p.period for p in self.periods if p.status == "paid"]

    @property
    def declined(self) -> int:
        return sum(p.declined for p in self.periods)

    @property
    def retries(self) -> int:
        """Attempts after a period's first: dunning (and attempts abandoned and redone)."""
        return sum(max(p.attempts - 1, 0) for p in self.periods)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "schedule": self.schedule,
            "amount": str(self.amount),
            "status": self.status,
            **{status: self.count(status) for status in STATUSES},
            "paid_periods": self.paid,
            "declined": self.declined,
            "retries": self.retries,
            "charged": _money_json(self.charged),
            "periods": [p.to_json() for p in self.periods],
        }


@dataclass(frozen=True, slots=True)
class Report:
    start: date
    until: date
    catch_up: CatchUp
    subscriptions: tuple[SubscriptionResult, ...]
    dead_letters: int  #: entries in ``bw:dlq``
    ledger_debits: int  #: debits in the sandbox's ledger
    warnings: tuple[str, ...]
    instants: int  #: virtual instants the loop stopped at
    seconds: float  #: real time the run took

    def total(self, status: str) -> int:
        return sum(s.count(status) for s in self.subscriptions)

    @property
    def declined(self) -> int:
        return sum(s.declined for s in self.subscriptions)

    @property
    def retries(self) -> int:
        return sum(s.retries for s in self.subscriptions)

    @property
    def charged(self) -> tuple[Money, ...]:
        return sum_money(m for s in self.subscriptions for m in s.charged)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "until": self.until.isoformat(),
            "catch_up": self.catch_up.value,
            "subscriptions": [s.to_json() for s in self.subscriptions],
            "totals": {
                "subscriptions": len(self.subscriptions),
                **{status: self.total(status) for status in STATUSES},
                "declined": self.declined,
                "retries": self.retries,
                "charged": _money_json(self.charged),
                "dead_letters": self.dead_letters,
                "ledger_debits": self.ledger_debits,
            },
            "warnings": list(self.warnings),
            "run": {"virtual_instants": self.instants, "seconds": round(self.seconds, 2)},
        }


def sum_money(amounts: Iterable[Money]) -> tuple[Money, ...]:
    """Amounts added up per currency, sorted by currency; zero sums are left out."""
    minor: dict[str, int] = defaultdict(int)
    for money in amounts:
        minor[money.currency] += money.minor
    return tuple(Money(v, c) for c, v in sorted(minor.items()) if v)


# --- the run ----------------------------------------------------------------------------------

Progress = Callable[[int, int], None]  #: (virtual ms done, virtual ms in all)


def run(
    subscriptions: Sequence[Subscription], options: Options, *, progress: Progress | None = None
) -> Report:
    """Simulate ``subscriptions`` from ``options.start`` to ``options.until``; see the module.

    Starts and stops its own Redis, sandbox and worker threads, even on an error or Ctrl-C,
    and leaves the process's broker and runtime as they were.
    """
    started = time.monotonic()
    start_ms, until_ms = midnight_ms(options.start), midnight_ms(options.until)
    clock = FixedClock(start_ms)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(EmbeddedRedis())
        state = SandboxState(clock=lambda: instant(clock.now_ms()))
        sandbox = stack.enter_context(SandboxServer(state))
        register_cards(state, subscriptions)
        broker = stack.enter_context(_private_broker(server.url))
        rt = runtime.build(_env(server.url, sandbox, options.settings), clock=clock)
        stack.callback(rt.close)
        stack.enter_context(_installed(rt))
        for sub in subscriptions:
            store.create(rt.redis, sub, clock)

        from worker import actors  # after the broker: the actors are declared on it

        settings = SchedulerSettings(sweep=SweepSettings(policy=options.catch_up))
        jobs = Jobs(rt.redis, actors.send_charges, clock, settings)
        stack.callback(jobs.stop)
        worker = _Worker(broker, options.threads)
        stack.callback(worker.stop)
        worker.start()
        loop = Loop(
            rt.redis, jobs, clock, f"dramatiq:{actors.CHARGES_QUEUE}.msgs", options.step_timeout_s
        )
        instants = loop.run(start_ms, until_ms, progress)
        worker.stop()  # nothing moves while the results are read
        return collect(
            rt.redis,
            state.ledger.entries(),
            subscriptions,
            options,
            instants=instants,
            seconds=time.monotonic() - started,
        )


def register_cards(state: SandboxState, subscriptions: Iterable[Subscription]) -> list[int]:
    """Register an approving card for each storedId the sandbox does not know; returns them."""
    added = []
    for stored_id in sorted({sub.stored_id for sub in subscriptions}):
        if state.cards.by_stored_id(stored_id) is None:
            card = card_from_json(
                {
                    "storedId": stored_id,
                    "displayName": f"416974******{stored_id % 10_000:04d}",
                    "expiry": APPROVING_EXPIRY,
                    "behaviour": "approve",
                }
            )
            state.cards.register(card)
            added.append(stored_id)
    return added


def _env(url: str, sandbox: SandboxServer, settings: Mapping[str, str]) -> dict[str, str]:
    env = {name: settings[name] for name in POLICY_SETTINGS if settings.get(name)}
    return env | {
        "BILLING_REDIS_URL": url,
        "BILLING_TXPG_BASE_URL": sandbox.base_url,
        "BILLING_TXPG_USERNAME": sandbox.username,
        "BILLING_TXPG_PASSWORD": sandbox.password,
        "BILLING_METRICS_PORT": "0",
        "BILLING_JANITOR_INTERVAL_MS": str(JANITOR_IDLE_MS),
    }


@contextlib.contextmanager
def _private_broker(url: str) -> Iterator[RedisBroker]:
    """A new Dramatiq broker on ``url`` as the global one; the previous one is set up again
    afterwards (on its URL), so the process is left as it was found.

    ``BILLING_METRICS_PORT`` is 0 while it is built: the Prometheus middleware only works in
    the processes Dramatiq's CLI forks, not in an in-process worker.
    """
    previous = broker_module._configured
    saved = os.environ.get("BILLING_METRICS_PORT")
    os.environ["BILLING_METRICS_PORT"] = "0"
    try:
        broker_module._configured = None  # a fresh broker even if a URL comes round again
        broker = broker_module.setup(url)
    finally:
        if saved is None:
            del os.environ["BILLING_METRICS_PORT"]
        else:
            os.environ["BILLING_METRICS_PORT"] = saved
    try:
        yield broker
    finally:
        broker.client.close()
        broker_module._configured = None
        if previous is not None:
            broker_module.setup(previous)


@contextlib.contextmanager
def _installed(rt: runtime.Runtime) -> Iterator[None]:
    """``rt`` as the process's runtime (what the actors and the janitor middleware use)."""
    with runtime._lock:
        previous, runtime._current = runtime._current, rt
    try:
        yield
    finally:
        with runtime._lock:
            runtime._current = previous


@contextlib.contextmanager
def preserved_logging() -> Iterator[None]:
    """Undo what happens to logging inside: the janitor middleware configures logging (INFO,
    stderr) when a worker boots, which is right for ``billing worker`` but not in a process
    that configured its own (the CLI at WARNING, a test session's capture).
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)


class _Worker:
    """An in-process ``dramatiq.Worker``, stopped once however often :meth:`stop` is called."""

    def __init__(self, broker: RedisBroker, threads: int) -> None:
        self.worker = dramatiq.Worker(
            broker, worker_threads=threads, worker_timeout=WORKER_TIMEOUT_MS
        )
        self.running = False

    def start(self) -> None:
        with preserved_logging():
            self.running = True
            self.worker.start()

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.worker.stop(timeout=10_000)


class Loop:
    """The event loop over virtual time (see the module docstring)."""

    def __init__(
        self, r: redis.Redis, jobs: Jobs, clock: FixedClock, queue: str, timeout_s: float
    ) -> None:
        self.r = r
        self.jobs = jobs
        self.clock = clock
        self.queue = queue
        self.timeout_s = timeout_s

    def run(self, start_ms: int, until_ms: int, progress: Progress | None = None) -> int:
        """Run from ``start_ms`` until ``until_ms`` (exclusive); returns the instants visited."""
        t, instants = start_ms, 0
        while t < until_ms:
            self.clock.set(t)
            instants += 1
            for rounds in itertools.count(1):
                self.jobs.sweep()
                self.jobs.tick_janitor()
                self.settle(t)
                following = self.next_event(until_ms)
                if following > t:
                    break
                if rounds >= MAX_ROUNDS:
                    raise SimulationError(
                        f"at {show_instant(t)} (virtual) work stays due after {rounds} sweeps "
                        "and janitor ticks: the pipeline does not move forward"
                    )
            if progress is not None:
                progress(min(following, until_ms) - start_ms, until_ms - start_ms)
            t = following
        return instants

    def settle(self, t: int) -> None:
        """Until every charge message sent so far was handled and acknowledged."""
        deadline = time.monotonic() + self.timeout_s
        while (left := int(self.r.hlen(self.queue))) > 0:
            if time.monotonic() >= deadline:
                raise SimulationError(
                    f"at {show_instant(t)} (virtual), {left} charge message(s) were still not "
                    f"handled after {self.timeout_s:g} s (real time)"
                )
            time.sleep(POLL_S)

    def next_event(self, until_ms: int) -> int:
        """The earliest score in ``bw:due`` or ``bw:work``, or ``until_ms``."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zrange(keys.DUE, 0, 0, withscores=True)
        pipe.zrange(keys.WORK, 0, 0, withscores=True)
        scores = [float(s) for found in pipe.execute() for _, s in found]
        finite = [int(s) for s in scores if s != float("inf")]
        return min([*finite, until_ms])


# --- reading the outcome ----------------------------------------------------------------------


def collect(
    r: redis.Redis,
    ledger: Sequence[LedgerEntry],
    subscriptions: Sequence[Subscription],
    options: Options,
    *,
    instants: int,
    seconds: float,
) -> Report:
    """The report: periods and attempts from Redis, money from the ledger, cross-checked."""
    warnings: list[str] = []
    moved, money = _ledger(ledger, {s.id for s in subscriptions}, warnings)
    results = []
    for sub in subscriptions:
        periods = _periods(r, sub.id, moved, warnings)
        seen = {p.period for p in periods}
        for (sub_id, period), count in sorted(moved.items()):
            if sub_id == sub.id and period not in seen and count:
                warnings.append(f"{sub_id} {period}: {count} debit(s) in the ledger, no period")
        status = r.hget(keys.sub(sub.id), "status")
        results.append(
            SubscriptionResult(
                id=sub.id,
                schedule=describe(sub.cadence, options.start),
                amount=sub.amount,
                status=str(status) if status is not None else "?",
                periods=tuple(periods),
                charged=sum_money(money.get(sub.id, [])),
            )
        )
    return Report(
        start=options.start,
        until=options.until,
        catch_up=options.catch_up,
        subscriptions=tuple(results),
        dead_letters=int(r.zcard(keys.DLQ)),
        ledger_debits=sum(1 for e in ledger if e.direction == "debit"),
        warnings=tuple(warnings),
        instants=instants,
        seconds=seconds,
    )


def _ledger(
    entries: Iterable[LedgerEntry], ids: set[str], warnings: list[str]
) -> tuple[dict[tuple[str, str], int], dict[str, list[Money]]]:
    """Net debits per (subscription, period) and the money per subscription. An order's
    description is ``{subscription} {period} #{attempt}`` (``worker.charges.pipeline``).
    """
    moved: dict[tuple[str, str], int] = defaultdict(int)
    money: dict[str, list[Money]] = defaultdict(list)
    for e in entries:
        head, _, attempt = e.description.rpartition(" #")
        sub_id, _, period = head.partition(" ")
        if sub_id not in ids or not period or not attempt.isdigit():
            warnings.append(f"ledger entry {e.seq} ({e.description!r}) is no charge of this run")
            continue
        amount = parse_amount(e.amount, e.currency)
        sign = 1 if e.direction == "debit" else -1
        moved[(sub_id, period)] += sign
        money[sub_id].append(Money(sign * amount.minor, amount.currency))
    return moved, money


def _periods(
    r: redis.Redis, sub_id: str, moved: Mapping[tuple[str, str], int], warnings: list[str]
) -> list[PeriodResult]:
    names = sorted(str(p) for p in r.zrange(keys.periods(sub_id), 0, -1))
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.period(sub_id, name))
    hashes: list[dict[str, str]] = pipe.execute()
    pipe = r.pipeline(transaction=False)
    for name, data in zip(names, hashes, strict=True):
        for n in range(1, int(data.get("attempt") or 0) + 1):
            pipe.hget(keys.attempt(sub_id, name, n), "decline_class")
    classes = iter(pipe.execute())
    out = []
    for name, data in zip(names, hashes, strict=True):
        attempts = int(data.get("attempt") or 0)
        declined = sum(1 for _ in range(attempts) if next(classes) in DECLINES)
        status = data.get("status", "?")
        debits = moved.get((sub_id, name), 0)
        if debits != (1 if status == "paid" else 0):
            warnings.append(
                f"{sub_id} {name}: the period is {status} but the ledger has {debits} debit(s)"
            )
        reason, opened_at = data.get("reason", ""), int(data.get("opened_at") or 0)
        out.append(PeriodResult(name, status, attempts, declined, reason, debits, opened_at))
    return out
