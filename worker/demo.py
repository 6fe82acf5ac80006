"""The end-to-end demo (``make demo``, ``billing demo``): the whole product on this machine.

1. It starts what production runs, privately: a Redis (:class:`EmbeddedRedis`), the sandbox
   gateway (a child process), one ``billing worker`` and one ``billing scheduler``, with
   dunning in seconds (``BILLING_DUNNING=3s,3s``) instead of days.
2. It imports the sample subscriptions (``worker/demo_subscriptions.csv``, its ``{today}``
   cells filled in) with ``billing subscriptions import``. They are monthly from today at
   00:00 UTC, so every first period is due at once. The ``metadata.story`` column says what
   each one is there to show: ``approve``, ``top_up`` (no funds; the demo tops the card up
   after the first decline and the dunning retry is paid), ``replay`` (still short after
   that top-up: dunning runs out and the period is dead-lettered; the demo tops up again
   and replays it) and ``hard_decline`` (stolen or expired card: dead-lettered at once).
3. It follows the event stream while the scheduler and the worker charge them, printing a
   line per event, and waits on conditions in Redis (never on fixed sleeps), with deadlines.
4. It prints the outcomes, then ``billing dlq list``, ``billing dlq replay ID --yes`` and
   ``billing events tail``, as an operator would type them.
5. A short payout run, through the product: ``billing payouts import`` of the sample payouts
   (``worker/demo_payouts.csv``, to the sandbox's OCT destination tokens), then ``billing
   payouts run --max-total`` whose limit holds the last one back. The worker sends the
   others (one is declined: 64 "Credit amount limit", a dead letter); the scheduler finishes
   the run. Then ``billing payouts report RUN``, ``billing dlq list`` (the failed payout
   among the failed charges) and an immediate payout to a card number given on stdin
   (``billing payouts add --now --pan-stdin``).
6. It checks the sandbox's ledger: one debit for each paid period, one credit for each paid
   payout, and none for the others.
7. It stops everything it started (process groups: SIGTERM, then SIGKILL) and checks that
   nothing is left.

It exits 0 only if every outcome was the expected one and nothing it started still runs;
otherwise it says what went wrong and exits 1. Nothing secret is printed: cards appear as
their masked numbers, and order passwords and the merchant password never leave the
processes that use them.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import enum
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import httpx
import redis
from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from worker import keys
from worker.charges.states import PeriodStatus
from worker.deadletters import DeadLetterStatus
from worker.embedded_redis import EmbeddedRedis
from worker.errors import BillingError
from worker.gateway.bizon.client import BizonClient
from worker.gateway.bizon.codes import iso_code
from worker.gateway.bizon.models import Authorize, CardDetails, Pan
from worker.gateway.bizon.settings import BizonSettings
from worker.gateway.txpg.codes import pmo_code
from worker.money import Money, parse_amount
from worker.payouts import service as payout_service
from worker.payouts.model import Payout, PayoutMode, PayoutStatus, TokenDestination
from worker.payouts.runs import RunStatus
from worker.periods import parse_cadence, period_at
from worker.sandbox import SandboxProcess
from worker.sandbox.bizon import BizonProcess
from worker.sensitive import Secret, mask_pan
from worker.store import connect
from worker.store import deadletters as dlq
from worker.store import events as stream
from worker.store import payouts as payout_store
from worker.store import subscriptions as subs
from worker.subscriptions import Subscription

T = TypeVar("T")

#: The sample subscriptions, shipped beside this module; ``{today}`` becomes today's UTC date.
SAMPLE_FILE = "demo_subscriptions.csv"
TODAY = "{today}"
#: Dunning in seconds: attempt 1, then 3 s later attempt 2, then 3 s later attempt 3.
DUNNING = "3s,3s"
DUNNING_ATTEMPTS = 1 + len(DUNNING.split(","))
#: The first top-up covers the 9.99 plan and leaves too little for the 49.00 one.
FIRST_TOP_UP = "20.00"
SECOND_TOP_UP = "50.00"
CURRENCY = "AZN"
#: The sample payouts (scheduled, to the sandbox's OCT destination tokens), beside this module.
PAYOUT_FILE = "demo_payouts.csv"
#: The run's limit: the first three payouts (245.50 AZN) fit, the fourth (300.00) is held.
PAYOUT_MAX_TOTAL = "250.00"
#: The immediate payout: to the reference's test card, given on stdin, shown only masked.
PAYOUT_PAN = "4169741330151778"
NOW_PAYOUT_ID = "po-prize-emil"
NOW_PAYOUT_AMOUNT = "25.00"

BOOT_TIMEOUT = 45.0  #: for the worker and the scheduler to come up (a cold, busy machine)
CHARGE_TIMEOUT = 60.0  #: for every first period to be paid or dead-lettered
REPLAY_TIMEOUT = 30.0
PAYOUT_TIMEOUT = 30.0  #: for the run's payouts to be final and the scheduler to finish it
CLI_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0  #: per process group, between SIGTERM and SIGKILL
POLL = 0.1

#: Dramatiq logs this once a worker process has booted.
WORKER_READY = "Worker process is ready for action."
#: The demo's actor in the audit log (``billing dlq replay --actor``).
ACTOR = "demo"


class Story(enum.StrEnum):
    """What a sample subscription is there to show (its ``metadata.story``)."""

    APPROVE = "approve"
    TOP_UP = "top_up"
    REPLAY = "replay"
    HARD_DECLINE = "hard_decline"
    BIZON = "bizon"  #: on the second gateway: a rebill of the checkout order, then a charge
    FAILOVER = "failover"  #: TXPG declines softly; the next attempt goes to Bizon


EXPECTED = {
    Story.APPROVE: "paid at once",
    Story.TOP_UP: "declined, card topped up, paid on the retry",
    Story.REPLAY: "dunning runs out, dead letter, replayed",
    Story.HARD_DECLINE: "dead letter at once, needs a new card",
    Story.BIZON: "rebilled and charged on Bizon",
    Story.FAILOVER: "TXPG declines softly, paid on Bizon",
}


@dataclass(frozen=True)
class BizonSample:
    """A subscription the demo creates on the second gateway, after a checkout payment there
    (the parent order it then rebills).
    """

    id: str
    customer: str
    amount: str
    description: str
    story: Story
    pan: str  #: the checkout card (one of the Bizon sandbox's demo cards)
    stored_id: int | None = None  #: a TXPG card too: the failover one holds both


#: TXPG's side of the failover sample: a card the demo registers in the sandbox with no funds
#: (a soft decline), so the fallback gateway is tried.
FAILOVER_CARD = {
    "storedId": 5170,
    "displayName": "416974******0070",
    "expiry": "1229",
    "brand": "Visa",
    "behaviour": "insufficient_funds",
    "balance": "0.00",
    "currency": "AZN",
}
BIZON_SAMPLES = (
    BizonSample("sub-ilkin", "ilkin", "12.00", "Game Pass", Story.BIZON, "4111111111111111"),
    BizonSample(
        "sub-jala", "jala", "8.00", "E-books", Story.FAILOVER, "5555555555554444", stored_id=5170
    ),
)
#: What each Bizon sample pays at checkout (its card's first, customer-present payment).
CHECKOUT_AMOUNT = "1.00"
#: The immediate payout on Bizon: a cashback to the card of sub-ilkin's checkout order.
BIZON_PAYOUT_ID = "po-cashback-ilkin"
BIZON_PAYOUT_AMOUNT = "3.00"


class PayoutStory(enum.StrEnum):
    """What a sample payout is there to show."""

    PAID = "paid"  #: sent by the run, credited once
    DECLINED = "declined"  #: sent, declined (64 Credit amount limit): failed, a dead letter
    HELD = "held"  #: over the run's limit: left pending for the next run, never sent


#: The story of each row of the sample payouts (in file order, the order a run sends them).
PAYOUT_STORIES = {
    "po-aylin": PayoutStory.PAID,
    "po-babek": PayoutStory.DECLINED,
    "po-ceyhun": PayoutStory.PAID,
    "po-deniz": PayoutStory.HELD,
}


class DemoFailed(Exception):
    """The story did not happen as expected; the message says what went wrong."""


class Interrupted(BaseException):
    """SIGTERM: stop everything, as for Ctrl-C."""


# --- processes ---------------------------------------------------------------------------------


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Any = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    prctl: Callable[..., int] = fn
    return prctl


def _term_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn``: Linux sends the child SIGTERM (a clean stop) if the demo dies
    without its ``finally`` running (SIGKILL). A backstop, not the way things stop.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group has anyone left
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc").is_dir():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (members := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return members


class Child:
    """A long-running ``billing`` process in a process group (and session) of its own, so
    that all of it (Dramatiq's forked workers too) is signalled and checked at once. Its
    output goes to ``log``.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path):
        self.name = name
        self.log_path = log
        self._log: IO[bytes] = log.open("ab")
        self.popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_term_with_parent(),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 8, width: int = 200) -> str:
        return "\n".join(line[:width] for line in self.text().splitlines()[-lines:])

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[int]:
        """SIGTERM the group and wait; SIGKILL whatever is left. Returns the pids still alive
        after that (there should be none).
        """
        self._signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        left = _wait_group_gone(self.pid, 2.0)
        if left or self.popen.poll() is None:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5.0)
            left = _wait_group_gone(self.pid, 5.0)
        self._log.close()
        return left


def billing_argv() -> list[str]:
    """How to run the ``billing`` command of this installation."""
    script = Path(sys.executable).with_name("billing")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; sys.argv[0] = 'billing'; from worker.cli import main; main()",
    ]


# --- the sample subscriptions -----------------------------------------------------------------


def sample_text(today: dt.date) -> str:
    """The sample file with ``{today}`` replaced by ``today`` (YYYY-MM-DD)."""
    raw = resources.files("worker").joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    return raw.replace(TODAY, today.isoformat())


def payout_sample_text() -> str:
    """The sample payouts file, as shipped."""
    return resources.files("worker").joinpath(PAYOUT_FILE).read_text(encoding="utf-8")


def story_of(sub: Subscription) -> Story:
    try:
        return Story(sub.metadata.get("story", ""))
    except ValueError:
        raise DemoFailed(f"{sub.id} has no known metadata.story") from None


@dataclass
class Sample:
    sub: Subscription
    story: Story
    period: str  #: the key of its first period (today)

    @property
    def id(self) -> str:
        return self.sub.id


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""


@dataclass
class Demo:
    console: Console
    workdir: Path  #: Redis's data and the filled-in sample file; removed after a success
    logdir: Path  #: the logs of the worker, the scheduler and the sandbox
    started: float = field(default_factory=time.monotonic)
    children: list[Child] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    cursor: str = "0-0"
    topped_up: bool = False
    samples: dict[str, Sample] = field(default_factory=dict)
    run_id: str = ""  #: the payout run
    cards: dict[int, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  #: cards by ridByCofp
    env: dict[str, str] = field(default_factory=dict)
    server: EmbeddedRedis | None = None
    sandbox: SandboxProcess | None = None
    bizon: BizonProcess | None = None  #: the second gateway's sandbox
    r: redis.Redis | None = None
    admin: httpx.Client | None = None
    bizon_admin: httpx.Client | None = None

    # -- printing ------------------------------------------------------------------------

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:5.1f}s"

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{self.elapsed()}[/]  {text}", highlight=False)

    def heading(self, text: str) -> None:
        self.console.print()
        self.console.print(f"[bold]{text}[/]")

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(what, ok, detail))
        return ok

    # -- Redis and the sandbox -------------------------------------------------------------

    @property
    def redis(self) -> redis.Redis:
        assert self.r is not None
        return self.r

    @property
    def sandbox_admin(self) -> httpx.Client:
        assert self.admin is not None
        return self.admin

    @property
    def bizon_client_admin(self) -> httpx.Client:
        assert self.bizon_admin is not None
        return self.bizon_admin

    def period(self, sample: Sample) -> dict[str, str]:
        raw: Any = self.redis.hgetall(keys.period(sample.id, sample.period))
        return dict(raw)

    def status(self, sample: Sample) -> str:
        return str(self.redis.hget(keys.period(sample.id, sample.period), "status") or "")

    def settled(self, sample: Sample) -> Callable[[], bool]:
        """A condition: the sample's period is paid or dead-lettered."""
        return lambda: self.status(sample) in (PeriodStatus.PAID, PeriodStatus.DEAD)

    def attempts(self, sample: Sample) -> list[dict[str, str]]:
        """The stored attempts of the sample's period, first to last."""
        n = int(self.period(sample).get("attempt", "0") or 0)
        out = []
        for i in range(1, n + 1):
            raw: Any = self.redis.hgetall(keys.attempt(sample.id, sample.period, i))
            out.append(dict(raw))
        return out

    def gateways_of(self, sample: Sample) -> list[str]:
        """The gateway of each attempt, first to last."""
        return [a.get("gateway", "?") for a in self.attempts(sample)]

    def sub_status(self, sample: Sample) -> str:
        return str(self.redis.hget(keys.sub(sample.id), "status") or "")

    def order_of(self, sample: Sample, period: Mapping[str, str]) -> str:
        if period.get("paid_order"):
            return period["paid_order"]
        n = period.get("attempt", "")
        if not n.isdigit():
            return ""
        return str(
            self.redis.hget(keys.attempt(sample.id, sample.period, int(n)), "order_id") or ""
        )

    def top_up(self, stored_id: int, amount: str, why: str) -> None:
        response = self.sandbox_admin.post(
            f"cards/{stored_id}/top-up", json={"amount": amount, "currency": CURRENCY}
        )
        if response.status_code != 200:
            raise DemoFailed(f"the sandbox refused the top-up of card {stored_id}: {response.text}")
        balance = response.json()["card"].get("balance", "?")
        self.say(
            f"[cyan]demo[/]        card {stored_id} topped up by {amount} {CURRENCY} "
            f"(balance {balance}): {why}"
        )

    def masked(self, stored_id: int) -> str:
        """The card's masked number, as the sandbox shows it."""
        card = self.cards.get(stored_id)
        return str(card["displayName"]) if card is not None else "?"

    def card_behaviour(self, stored_id: int) -> str:
        """How the sandbox's card answers, in two or three words."""
        return card_behaviour(self.cards.get(stored_id))

    def payout(self, payout_id: str) -> Payout | None:
        return payout_store.get(self.redis, payout_id)

    def payout_card(self, payout: Payout) -> dict[str, Any] | None:
        """The sandbox's card behind a payout's token, if it is one of its cards."""
        if not isinstance(payout.destination, TokenDestination):
            return None
        return self.tokens.get(payout.destination.rid.upper())

    # -- processes -------------------------------------------------------------------------

    def start(self, name: str, *args: str) -> Child:
        child = Child(name, [*billing_argv(), *args], self.env, self.logdir / f"{name}.log")
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive:
                raise DemoFailed(
                    f"the {child.name} (pid {child.pid}) exited with code "
                    f"{child.popen.returncode}; the end of its log:\n{child.tail()}"
                )

    def wait(self, what: str, done: Callable[[], T], timeout: float) -> T:
        """Follow the event stream and poll ``done`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            value = done()
            if value:
                self.pump()
                return value
            self.check_alive()
            if time.monotonic() >= deadline:
                raise DemoFailed(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(POLL)

    def cli(self, *args: str, stdin: str | None = None, stdin_shown: str = "") -> None:
        """Run ``billing ARGS`` as an operator would, and show what it printed.

        On a terminal the command writes to it directly (its own colours and width);
        otherwise its output is collected and printed here, indented. ``stdin`` is written
        to its standard input and never printed: the command line shows ``stdin_shown``.
        """
        shown = Text(f"$ billing {' '.join(args)}", style="bold")
        if stdin_shown:
            shown.append(f"  # {stdin_shown}", style="dim")
        self.console.print(shown)
        direct = self.console.is_terminal and self.console.file in (sys.stdout, sys.__stdout__)
        env = dict(self.env) | {"BILLING_LOG_LEVEL": "WARNING"}  # its output, not its logs
        if not direct:
            env["COLUMNS"] = str(max(self.console.width - 2, 60))
        self.console.file.flush()
        try:
            done = subprocess.run(
                [*billing_argv(), *args],
                env=env,
                input=None if stdin is None else stdin.encode(),
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=None if direct else subprocess.PIPE,
                stderr=None if direct else subprocess.STDOUT,
                timeout=CLI_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DemoFailed(
                f"billing {' '.join(args[:2])} did not finish in {CLI_TIMEOUT:g}s"
            ) from None
        output = (done.stdout or b"").decode("utf-8", errors="replace").rstrip()
        if output:
            self.console.print(Padding(Text(output), (0, 0, 0, 2)))
        if done.returncode != 0:
            raise DemoFailed(f"billing {' '.join(args[:2])} exited with code {done.returncode}")

    # -- the event stream ------------------------------------------------------------------

    def pump(self) -> None:
        """Print every new event, and do what the story needs when it happens."""
        while True:
            page = stream.read(self.redis, after=self.cursor, count=200)
            if not page:
                return
            for stream_id, event in page:
                self.cursor = stream_id
                self.on_event(event)

    def on_event(self, event: Mapping[str, Any]) -> None:
        data: dict[str, Any] = dict(event.get("data") or {})
        sub_id = str(
            data.get("subscription_id")
            or data.get("payout_id")
            or data.get("run_id")
            or str(event.get("key", "")).split("|")[0]
        )
        self.say(f"{sub_id:<11} {describe_event(str(event['type']), data)}")
        sample = self.samples.get(sub_id)
        if (
            sample is not None
            and sample.story is Story.TOP_UP
            and event["type"] == "charge.declined"
            and not self.topped_up
        ):
            self.topped_up = True
            self.top_up(
                sample.sub.stored_id,
                FIRST_TOP_UP,
                f"enough for {sample.id}'s {sample.sub.amount}, not for more",
            )


def card_behaviour(card: Mapping[str, Any] | None) -> str:
    """How a sandbox card answers, in two or three words."""
    if card is None:
        return "?"
    expiry = str(card.get("expiry", ""))
    if len(expiry) == 4 and expiry.isdigit():
        month, year = int(expiry[:2]), 2000 + int(expiry[2:])
        today = dt.datetime.now(dt.UTC).date()
        if (today.year, today.month) > (year, month):
            return f"expired {expiry[:2]}/{expiry[2:]}"
    behaviour = card.get("behaviour")
    if behaviour == "decline":
        code = int(card.get("pmoResultCode", 0))
        return pmo_code(code).title.lower()
    if behaviour == "insufficient_funds":
        return "no funds"
    return "approves"


def describe_event(kind: str, data: Mapping[str, Any]) -> str:
    """One event in a few words."""
    n = data.get("attempt")
    on = f" ({data['gateway']})" if data.get("gateway") else ""
    if kind == "charge.succeeded":
        return f"[green]paid[/] on attempt {n}{on}, order {data.get('order_id')}"
    if kind == "charge.declined":
        code = str(data.get("result_code") or "")
        if data.get("gateway") == "bizon":
            title = iso_code(code).title if code else data.get("error_code", "")
        else:
            title = pmo_code(int(code)).title if code.isdigit() else data.get("error_code", "")
        text = (
            f"[yellow]declined[/] on attempt {n}{on}: {code} {title} ({data.get('decline_class')})"
        )
        retry = data.get("next_retry_at")
        if isinstance(retry, int):
            seconds = max(0.0, (retry - time.time() * 1000) / 1000)
            text += f", dunning retry in {seconds:.0f}s"
        return text
    if kind == "charge.failed":
        return f"[red]dead-lettered[/] ({data.get('reason')}) after attempt {n}"
    if kind == "subscription.past_due":
        return "subscription is now [yellow]past_due[/]"
    if kind == "subscription.needs_new_card":
        return "subscription now [red]needs_new_card[/]"
    if kind == "dlq.replayed":
        text = f"dead letter [cyan]replayed[/] by {data.get('actor')}: the period is open again"
        if data.get("reactivated_from"):
            text += f", subscription {data['reactivated_from']} -> active"
        return text
    if kind == "charge.deferred":
        return f"deferred: {data.get('reason')}"
    if kind == "payout.succeeded":
        return f"[green]paid out[/] on attempt {n}{on}, order {data.get('order_id')}"
    if kind == "payout.failed":
        code = data.get("result_code") or ""
        why = (
            f": {code} {data.get('result_title', '')} ({data.get('decline_class')})" if code else ""
        )
        return f"[red]payout failed[/]{on}{why}, dead-lettered ({data.get('reason')})"
    if kind == "payout.deferred":
        return f"payout deferred: {data.get('reason')}"
    if kind == "payout_run.started":
        return f"run [cyan]started[/]: took {data.get('selected')} payout(s)"
    if kind == "payout_run.limit_reached":
        return (
            f"run [yellow]limit reached[/] ({data.get('limit')}): {data.get('held')} payout(s) "
            "held, pending"
        )
    if kind == "payout_run.completed":
        counts = ", ".join(
            f"{data[status]} {status}"
            for status in ("paid", "failed", "cancelled")
            if data.get(status) not in (None, "", 0)
        )
        return f"run [cyan]finished[/], {data.get('status')}: {counts or 'nothing sent'}"
    rest = {k: v for k, v in data.items() if k not in ("subscription_id", "period")}
    return f"{kind} {rest}" if rest else kind


# --- the story --------------------------------------------------------------------------------


def run(console: Console, log_dir: Path | None = None) -> int:
    """Run the demo; the process exit code (0 when everything went as expected).

    The logs of the processes it starts go to ``log_dir`` and are kept there; by default they
    go to a temporary directory, removed after a success and kept after a failure.
    """
    console.print(
        Panel.fit(
            "billing-worker demo: recurring billing and payouts end to end, on a private Redis "
            "and the sandbox gateway",
            style="bold",
        )
    )
    workdir = Path(tempfile.mkdtemp(prefix="billing-demo-"))
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    demo = Demo(console, workdir, log_dir or workdir)
    previous = _on_sigterm()
    failure: str | None = None
    interrupted = False
    try:
        _story(demo)
    except DemoFailed as exc:
        failure = str(exc)
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
    except (BillingError, RuntimeError, redis.RedisError, httpx.HTTPError, OSError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        with _signals_ignored():  # a second Ctrl-C must not cut the clean-up short
            left = _stop_all(demo)
        _restore_sigterm(previous)
    if interrupted:
        shutil.rmtree(workdir, ignore_errors=True)
        if left:
            console.print(f"[red]Interrupted, and still running: {', '.join(left)}[/]")
            return 1
        console.print("Interrupted: everything the demo started is stopped.")
        return 130
    demo.check("nothing the demo started is still running", not left, ", ".join(left))
    return _verdict(demo, failure)


def _on_sigterm() -> Any:
    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    try:
        return signal.signal(signal.SIGTERM, interrupted)
    except ValueError:  # not the main thread: leave signals alone
        return None


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored for a while (the bounded clean-up), if this is the main
    thread.
    """
    saved: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


def _story(demo: Demo) -> None:
    console = demo.console
    demo.heading("1. Start: Redis, the sandbox gateway, a worker and the scheduler")
    server = demo.server = EmbeddedRedis(demo.workdir / "redis")
    server.start()
    demo.say(f"Redis {server.version} on {server.url} (pid {server.pid}, AOF on)")
    sandbox = demo.sandbox = SandboxProcess().start()  # stops itself if it cannot start
    demo.say(f"sandbox gateway on {sandbox.base_url} (pid {sandbox.pid})")
    bizon = demo.bizon = BizonProcess().start()
    demo.say(f"second gateway's sandbox (Bizon) on {bizon.base_url} (pid {bizon.pid})")
    demo.r = connect(server.url)
    demo.admin = httpx.Client(base_url=f"{sandbox.admin_url}/", timeout=10)
    demo.bizon_admin = httpx.Client(base_url=f"{bizon.admin_url}/", timeout=10)
    demo.sandbox_admin.post("cards", json={"cards": [FAILOVER_CARD]}).raise_for_status()
    cards = demo.sandbox_admin.get("cards").json()["cards"]
    demo.cards = {int(c["storedId"]): c for c in cards if c.get("storedId")}
    demo.tokens = {str(c["ridByCofp"]).upper(): c for c in cards if c.get("ridByCofp")}
    demo.env = _child_env(server.url, sandbox, bizon)
    worker = demo.start("worker", "worker", "--processes", "1", "--threads", "4")
    scheduler = demo.start("scheduler", "scheduler")
    demo.wait("the worker to boot", lambda: WORKER_READY in worker.text(), BOOT_TIMEOUT)
    demo.say(f"worker ready: billing worker --processes 1 --threads 4 (pid {worker.pid})")
    demo.wait(
        "the scheduler to take the leader lease",
        lambda: demo.redis.exists(keys.LEADER),
        BOOT_TIMEOUT,
    )
    demo.say(
        f"scheduler ready: billing scheduler, sweeping every "
        f"{int(demo.env['BILLING_SWEEP_INTERVAL_MS']) / 1000:g}s (pid {scheduler.pid})"
    )
    demo.say(f"dunning schedule: BILLING_DUNNING={DUNNING} (seconds here, days in production)")
    demo.say(
        "fallback: BILLING_FALLBACK_GATEWAY=bizon (after a soft decline on TXPG, for a "
        "subscription that also holds a Bizon card)"
    )

    demo.heading("2. The subscriptions: a sample file on TXPG, two checkouts on Bizon")
    today = dt.datetime.now(dt.UTC).date()
    sample = demo.workdir / SAMPLE_FILE
    sample.write_text(sample_text(today), encoding="utf-8")
    console.print(
        f"  worker/{SAMPLE_FILE} with start={today.isoformat()}: monthly at 00:00 UTC, so "
        "each first period is due now",
        highlight=False,
    )
    demo.cli("subscriptions", "import", str(sample))
    demo.console.print()
    _bizon_subscriptions(demo, today)
    now_ms = int(time.time() * 1000)
    for sub in subs.list_subscriptions(demo.redis, limit=100):
        period = period_at(parse_cadence(sub.cadence), now_ms)
        if period is None:
            raise DemoFailed(f"{sub.id} has no period due now")
        demo.samples[sub.id] = Sample(sub, story_of(sub), period.key)
    demo.samples = dict(sorted(demo.samples.items()))
    _print_samples(demo)

    demo.heading("3. The scheduler finds them due; the worker charges them")
    samples = list(demo.samples.values())
    try:
        demo.wait(
            "every first period to be paid or dead-lettered",
            lambda: all(demo.settled(s)() for s in samples),
            CHARGE_TIMEOUT,
        )
    except DemoFailed:
        _outcomes(demo)  # where each one got stuck
        raise

    demo.heading("4. Outcomes")
    _outcomes(demo)
    _check_first_round(demo)

    demo.heading("5. Dead letters: list, replay one, and the event stream")
    demo.cli("dlq", "list")
    for replayed in [s for s in samples if s.story is Story.REPLAY]:
        dlq_id = demo.period(replayed).get("dlq_id", "")
        if demo.status(replayed) != PeriodStatus.DEAD or not dlq_id:
            raise DemoFailed(f"{replayed.id} was not dead-lettered: nothing to replay")
        demo.top_up(
            replayed.sub.stored_id,
            SECOND_TOP_UP,
            f"now {replayed.id}'s {replayed.sub.amount} is covered",
        )
        demo.cli("dlq", "replay", dlq_id, "--yes", "--actor", ACTOR)
        demo.wait(
            f"{replayed.id} to be paid after the replay", demo.settled(replayed), REPLAY_TIMEOUT
        )
        _check_replay(demo, replayed, dlq_id)
    console.print()
    demo.cli("events", "tail", "-n", "15", "--no-follow")

    demo.heading("6. Payouts: a run with a limit, a declined card, an immediate payout")
    _payouts(demo, today)

    demo.heading("7. The sandbox's ledger")
    _check_ledger(demo)


def _payouts(demo: Demo, today: dt.date) -> None:
    """A short payout run through the product, then an immediate payout to a card number."""
    sample = demo.workdir / PAYOUT_FILE
    sample.write_text(payout_sample_text(), encoding="utf-8")
    demo.console.print(
        f"  worker/{PAYOUT_FILE}: scheduled payouts to sellers' cards (TWO tokens), sent by a "
        f"run, oldest first, within its limit of {PAYOUT_MAX_TOTAL} {CURRENCY}",
        highlight=False,
    )
    demo.cli("payouts", "import", str(sample))
    _print_payout_samples(demo)
    demo.console.print()
    demo.run_id = f"sellers-{today.isoformat()}"
    limit = ("--max-total", PAYOUT_MAX_TOTAL, CURRENCY)
    demo.cli("payouts", "run", "--run-id", demo.run_id, *limit, "--no-wait")

    def finished() -> bool:
        run = payout_store.get_run(demo.redis, demo.run_id)
        return run is not None and run.final

    demo.wait(
        f"the worker to send run {demo.run_id} and the scheduler to finish it",
        finished,
        PAYOUT_TIMEOUT,
    )
    demo.console.print()
    demo.cli("payouts", "report", demo.run_id)
    demo.console.print()
    demo.cli("dlq", "list")
    demo.console.print()
    demo.cli(
        "payouts",
        "add",
        "--id",
        NOW_PAYOUT_ID,
        "--amount",
        NOW_PAYOUT_AMOUNT,
        "--currency",
        CURRENCY,
        "--description",
        "Prize",
        "--now",
        "--pan-stdin",
        stdin=PAYOUT_PAN + "\n",
        stdin_shown=f"stdin: the card number ({mask_pan(PAYOUT_PAN)})",
    )
    demo.pump()
    ilkin = next(b for b in BIZON_SAMPLES if b.story is Story.BIZON)
    parent = demo.samples[ilkin.id].sub.parent_order
    demo.console.print()
    demo.cli(
        *("payouts", "add", "--id", BIZON_PAYOUT_ID, "--amount", BIZON_PAYOUT_AMOUNT),
        *("--currency", CURRENCY, "--description", "Cashback", "--now"),
        *("--gateway", "bizon", "--order", parent),
    )
    demo.pump()
    _check_payouts(demo)


def _print_payout_samples(demo: Demo) -> None:
    table = Table(box=None, padding=(0, 2, 0, 0))
    for column in ("payout", "amount", "destination", "card", "the card", "the story"):
        table.add_column(column, no_wrap=column != "the story")
    stories = {
        PayoutStory.PAID: "sent, paid",
        PayoutStory.DECLINED: "sent, declined: a dead letter",
        PayoutStory.HELD: "over the limit: held for the next run",
    }
    for payout_id, story in PAYOUT_STORIES.items():
        payout = demo.payout(payout_id)
        if payout is None:
            raise DemoFailed(f"the import did not store {payout_id}")
        card = demo.payout_card(payout)
        table.add_row(
            payout.id,
            str(payout.amount),
            payout.destination.masked(),
            str(card["displayName"]) if card else "?",
            card_behaviour(card),
            stories[story],
        )
    demo.console.print(Padding(table, (0, 0, 0, 2)))


def _check_payouts(demo: Demo) -> None:
    for payout_id, story in PAYOUT_STORIES.items():
        p = demo.payout(payout_id)
        if p is None:
            demo.check(f"{payout_id} is stored", False, "missing")
            continue
        got = (
            f"{p.status.value}, run {p.run_id or '-'}, order {p.order_id or '-'}, "
            f"failure {p.failure_code or '-'} {p.failure_title}".rstrip()
        )
        if story is PayoutStory.PAID:
            ok = p.status is PayoutStatus.PAID and p.run_id == demo.run_id and bool(p.order_id)
            demo.check(f"{payout_id} paid by run {demo.run_id}", ok, got)
        elif story is PayoutStory.DECLINED:
            dlq_id = str(demo.redis.hget(keys.payout_job(payout_id), "dlq_id") or "")
            entry = dlq.get(demo.redis, dlq_id) if dlq_id else None
            in_dlq = entry is not None and entry.status is DeadLetterStatus.OPEN
            ok = p.status is PayoutStatus.FAILED and p.failure_code == "64" and in_dlq
            demo.check(
                f"{payout_id} declined (64 Credit amount limit): failed, in the dead letters",
                ok,
                f"{got}, dead letter {dlq_id or '-'}",
            )
        else:
            ok = p.status is PayoutStatus.PENDING and not p.run_id and not p.order_id
            demo.check(
                f"{payout_id} held back by the run's limit: still pending, never sent", ok, got
            )
    run = payout_store.get_run(demo.redis, demo.run_id)
    demo.check(
        f"run {demo.run_id} stopped at its limit: 3 taken, 1 held",
        run is not None
        and run.status is RunStatus.LIMIT_REACHED
        and run.selected == 3
        and run.held == 1,
        "missing" if run is None else f"{run.status.value}, {run.selected} taken, {run.held} held",
    )
    cashback = demo.payout(BIZON_PAYOUT_ID)
    demo.check(
        f"{BIZON_PAYOUT_ID} paid at once on Bizon, to the card of a checkout order",
        cashback is not None
        and cashback.status is PayoutStatus.PAID
        and cashback.gateway == "bizon",
        "missing" if cashback is None else f"{cashback.status.value} on {cashback.gateway}",
    )
    now = demo.payout(NOW_PAYOUT_ID)
    demo.check(
        f"{NOW_PAYOUT_ID} paid at once to {mask_pan(PAYOUT_PAN)}, the card number stored masked",
        now is not None
        and now.status is PayoutStatus.PAID
        and now.mode is PayoutMode.IMMEDIATE
        and now.destination.masked() == mask_pan(PAYOUT_PAN)
        and PAYOUT_PAN not in str(demo.redis.hgetall(keys.payout(NOW_PAYOUT_ID))),
        "missing" if now is None else f"{now.status.value}, {now.destination.masked()}",
    )


def _child_env(redis_url: str, txpg: SandboxProcess, bizon: BizonProcess) -> dict[str, str]:
    """What the worker, the scheduler and the CLI run with: none of the caller's
    ``BILLING_*`` settings (a real gateway's login must not meet the sandbox), both
    sandboxes, Bizon as the fallback, and everything in seconds.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.pop("FORCE_COLOR", None)
    return env | {
        "PYTHONUNBUFFERED": "1",
        "BILLING_REDIS_URL": redis_url,
        "BILLING_TXPG_BASE_URL": txpg.base_url,
        "BILLING_BIZON_BASE_URL": bizon.base_url,
        "BILLING_BIZON_USERNAME": bizon.username,
        "BILLING_BIZON_PASSWORD": bizon.password,
        "BILLING_FALLBACK_GATEWAY": "bizon",
        "BILLING_DUNNING": DUNNING,
        "BILLING_LOG_LEVEL": "INFO",
        "BILLING_METRICS_PORT": "0",  # no fixed ports: another program may hold them
        "BILLING_SCHEDULER_METRICS_PORT": "0",
        "BILLING_SWEEP_INTERVAL_MS": "500",
        "BILLING_JANITOR_INTERVAL_MS": "250",
    }


def _bizon_subscriptions(demo: Demo, today: dt.date) -> None:
    """Each Bizon sample: a customer-present payment on Bizon (the checkout, which the demo
    plays here), then ``billing subscriptions create`` naming that order as the card.
    """
    assert demo.bizon is not None
    settings = BizonSettings(
        base_url=demo.bizon.base_url,
        username=demo.bizon.username,
        password=Secret(demo.bizon.password),
        deadline=10.0,
    )
    with BizonClient(settings) as client:
        for b in BIZON_SAMPLES:
            checkout = client.authorize(
                Authorize(
                    parse_amount(CHECKOUT_AMOUNT, CURRENCY),
                    Pan.parse(b.pan),
                    CardDetails(expiration_month=12, expiration_year=2030),
                    description=f"{b.description}: sign-up",
                )
            )
            client.charge(checkout.id)
            demo.say(
                f"checkout     {b.customer} pays the {CHECKOUT_AMOUNT} {CURRENCY} sign-up fee on "
                f"Bizon with {mask_pan(b.pan)}: order {checkout.id}"
            )
            args = [
                *("subscriptions", "create", "--id", b.id, "--customer", b.customer),
                *("--amount", b.amount, "--currency", CURRENCY, "--description", b.description),
                *("--every", "monthly", "--charge-time", "00:00", "--zone", "UTC"),
                *("--start", today.isoformat(), "--metadata", f"story={b.story.value}"),
            ]
            if b.stored_id is None:
                args += ["--gateway", "bizon", "--parent-order", checkout.id]
            else:  # charged on TXPG, with a card on Bizon for the fallback
                args += ["--stored-id", str(b.stored_id), "--parent-order", checkout.id]
            demo.cli(*args)


def _cards_of(demo: Demo, sub: Subscription) -> tuple[str, str]:
    """A subscription's card references (storedId, Bizon order) and how its card answers."""
    refs, behaviour = [], ""
    if sub.stored_id:
        refs.append(f"{sub.stored_id} {demo.masked(sub.stored_id)}")
        behaviour = demo.card_behaviour(sub.stored_id)
    if sub.parent_order:
        refs.append(f"Bizon order {sub.parent_order}")
        behaviour = f"{behaviour}; Bizon approves" if behaviour else "approves"
    return " + ".join(refs), behaviour


def _print_samples(demo: Demo) -> None:
    table = Table(box=None, padding=(0, 2, 0, 0))
    for column in ("subscription", "gateway", "amount", "card", "the card", "the story"):
        table.add_column(column)
    for s in demo.samples.values():
        refs, behaviour = _cards_of(demo, s.sub)
        table.add_row(s.id, s.sub.gateway, str(s.sub.amount), refs, behaviour, EXPECTED[s.story])
    demo.console.print(Padding(table, (0, 0, 0, 2)))


def _outcomes(demo: Demo) -> None:
    table = Table(box=SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    for column in ("subscription", "period", "period status", "attempts", "gateways", "order"):
        table.add_column(column, no_wrap=column != "period status")
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("subscription")
    for s in demo.samples.values():
        p = demo.period(s)
        status = p.get("status", "?")
        style = {"paid": "green", "dead": "red"}.get(status, "yellow")
        if status == "dead":
            status = f"dead: {p.get('reason', '?')}"
        amount = Money(int(p["amount_minor"]), p["currency"]) if "amount_minor" in p else "?"
        table.add_row(
            s.id,
            s.period,
            Text(status, style=style),
            p.get("attempt", "?"),
            " > ".join(demo.gateways_of(s)),
            demo.order_of(s, p),
            str(amount),
            demo.sub_status(s),
        )
    demo.console.print(Padding(table, (0, 0, 0, 2)))


def _check_first_round(demo: Demo) -> None:
    for s in demo.samples.values():
        p = demo.period(s)
        got = (
            f"period {p.get('status')} ({p.get('reason', '')}) after {p.get('attempt')} "
            f"attempt(s), subscription {demo.sub_status(s)}"
        )
        attempts = int(p.get("attempt", "0") or 0)
        if s.story is Story.APPROVE:
            ok = p.get("status") == "paid" and attempts == 1 and demo.sub_status(s) == "active"
            demo.check(f"{s.id} paid on the first attempt", ok, got)
        elif s.story is Story.BIZON:
            ok = (
                p.get("status") == "paid"
                and demo.gateways_of(s) == ["bizon"]
                and demo.sub_status(s) == "active"
            )
            demo.check(f"{s.id} paid on Bizon (a rebill, then a charge) at once", ok, got)
        elif s.story is Story.FAILOVER:
            tried = demo.attempts(s)
            ok = (
                p.get("status") == "paid"
                and [a.get("gateway") for a in tried] == ["txpg", "bizon"]
                and tried[0].get("state") == "declined"
                and tried[0].get("decline_class") == "soft"
                and demo.sub_status(s) == "active"
            )
            got += ", attempts " + ", ".join(
                f"{a.get('gateway')} {a.get('state')} {a.get('decline_class', '')}".rstrip()
                for a in tried
            )
            demo.check(f"{s.id} declined softly on TXPG, then paid on the fallback, Bizon", ok, got)
        elif s.story is Story.TOP_UP:
            ok = p.get("status") == "paid" and attempts >= 2 and demo.sub_status(s) == "active"
            demo.check(f"{s.id} declined, then paid by dunning after the top-up", ok, got)
        elif s.story is Story.REPLAY:
            ok = (
                p.get("status") == "dead"
                and p.get("reason") == "dunning_exhausted"
                and attempts == DUNNING_ATTEMPTS
                and demo.sub_status(s) == "past_due"
            )
            demo.check(
                f"{s.id} dead-lettered after {DUNNING_ATTEMPTS} attempts, subscription past_due",
                ok,
                got,
            )
        else:
            ok = (
                p.get("status") == "dead"
                and p.get("reason") == "hard_decline"
                and attempts == 1
                and demo.sub_status(s) == "needs_new_card"
            )
            demo.check(f"{s.id} dead-lettered at once, subscription needs_new_card", ok, got)


def _check_replay(demo: Demo, s: Sample, dlq_id: str) -> None:
    p = demo.period(s)
    entry = dlq.get(demo.redis, dlq_id)
    entry_status = entry.status.value if entry is not None else "missing"
    demo.say(
        f"{s.id:<11} period {s.period} is {p.get('status')} after {p.get('attempt')} attempts, "
        f"order {demo.order_of(s, p)}; subscription {demo.sub_status(s)}; "
        f"dead letter {entry_status}"
    )
    ok = p.get("status") == "paid" and demo.sub_status(s) == "active" and entry_status == "replayed"
    demo.check(
        f"{s.id} replayed from the dead letters and paid, subscription active again",
        ok,
        f"period {p.get('status')}, subscription {demo.sub_status(s)}, dead letter {entry_status}",
    )


def _check_ledger(demo: Demo) -> None:
    entries: list[dict[str, Any]] = demo.sandbox_admin.get("ledger").json()["entries"]
    debits = Counter(
        e["description"].rsplit(" #", 1)[0] for e in entries if e["direction"] == "debit"
    )
    credits = [e for e in entries if e["direction"] == "credit"]
    bizon_entries: list[dict[str, Any]] = demo.bizon_client_admin.get("ledger").json()["entries"]
    # Bizon: a subscription's charges are the debits of rebills of its checkout order
    rebilled = Counter(
        str(e["parent_order_id"])
        for e in bizon_entries
        if e["direction"] == "debit" and e["order_type"] == "rebill"
    )
    wrong = []
    paid = 0
    for s in demo.samples.values():
        paid_on = demo.gateways_of(s)[-1] if demo.status(s) == "paid" else ""
        paid += bool(paid_on)
        got = debits.pop(f"{s.id} {s.period}", 0)
        if got != (paid_on == "txpg"):
            wrong.append(f"{s.id}: {got} TXPG debit(s), paid on {paid_on or 'none'}")
        if s.sub.parent_order:
            got = rebilled.pop(s.sub.parent_order, 0)
            if got != (paid_on == "bizon"):
                wrong.append(f"{s.id}: {got} Bizon debit(s), paid on {paid_on or 'none'}")
    wrong += [f"unexpected TXPG debit: {what} x{n}" for what, n in debits.items()]
    wrong += [f"unexpected Bizon debit: rebill of {what} x{n}" for what, n in rebilled.items()]
    demo.check(
        "every paid period was charged exactly once, the others never", not wrong, "; ".join(wrong)
    )
    # credits: one per paid payout (by its order), none for the declined or the held one.
    # A Bizon credit is named by its merchant_order_id, the payout attempt's key.
    bizon_credits = [e for e in bizon_entries if e["direction"] == "credit"]
    by_order = Counter(f"txpg:{e['order_id']}" for e in credits)
    by_order.update(f"bizon:{e['merchant_order_id']}" for e in bizon_credits)
    wrong = []
    paid_payouts = 0
    for payout_id in [*PAYOUT_STORIES, NOW_PAYOUT_ID, BIZON_PAYOUT_ID]:
        p = demo.payout(payout_id)
        if p is None:
            wrong.append(f"{payout_id}: missing")
            continue
        orders = {a.get("order_id", "") for a in payout_service.attempts(demo.redis, p.id)}
        orders = {f"{p.gateway}:{o}" for o in orders | {p.order_id} if o}
        expected = 1 if p.status is PayoutStatus.PAID else 0
        paid_payouts += expected
        got = sum(by_order.pop(o, 0) for o in orders)
        if got != expected:
            wrong.append(f"{payout_id} ({p.status.value}): {got} credit(s), expected {expected}")
    wrong += [f"unexpected credit: order {order} x{n}" for order, n in by_order.items()]
    charged = [e for e in entries if e["direction"] == "debit"]
    charged += [
        e for e in bizon_entries if e["direction"] == "debit" and e["order_type"] == "rebill"
    ]
    paid_out_entries = credits + bizon_credits
    total = sum((parse_amount(e["amount"], e["currency"]) for e in charged), Money(0, CURRENCY))
    paid_out = sum(
        (parse_amount(e["amount"], e["currency"]) for e in paid_out_entries), Money(0, CURRENCY)
    )
    demo.say(
        f"ledgers (TXPG and Bizon): {len(charged)} debits ({total}) for {paid} paid periods, "
        f"{len(paid_out_entries)} credits ({paid_out}) for {paid_payouts} paid payouts; "
        f"declines and held payouts move no money (and the {len(BIZON_SAMPLES)} checkouts on "
        "Bizon were the customers' own payments)"
    )
    demo.check(
        "every paid payout was credited exactly once, the declined and the held one never",
        not wrong,
        "; ".join(wrong),
    )


def _stop_all(demo: Demo) -> list[str]:
    """Stop everything started, newest first; returns what is still running."""
    left: list[str] = []
    stopped: list[str] = []
    for client in (demo.admin, demo.bizon_admin):
        if client is not None:
            client.close()
    if demo.r is not None:
        with contextlib.suppress(redis.RedisError):
            demo.r.close()
    for child in reversed(demo.children):
        pids = child.stop()
        stopped.append(f"{child.name} (pid {child.pid})")
        if pids:
            left.append(f"{child.name}: pids {pids}")
    for sandbox, label, log_name in (
        (demo.sandbox, "sandbox", "sandbox.log"),
        (demo.bizon, "Bizon sandbox", "bizon.log"),
    ):
        if sandbox is None:
            continue
        pid = sandbox.pid
        sandbox.stop()
        (demo.logdir / log_name).write_text("\n".join(sandbox.lines) + "\n", encoding="utf-8")
        stopped.append(f"{label} (pid {pid})")
        if pid_alive(pid):
            left.append(f"{label}: pid {pid}")
    server = demo.server
    if server is not None:
        redis_pid = server.pid
        server.close()
        if redis_pid is not None:
            stopped.append(f"Redis (pid {redis_pid})")
            if pid_alive(redis_pid):
                left.append(f"Redis: pid {redis_pid}")
    if stopped:
        demo.console.print()
        demo.say("stopped " + ", ".join(stopped))
    return left


def _verdict(demo: Demo, failure: str | None) -> int:
    console = demo.console
    console.print()
    for c in demo.checks:
        mark = "[green]ok[/]    " if c.ok else "[red]FAILED[/]"
        detail = f" [dim]({c.detail})[/]" if c.detail and not c.ok else ""
        console.print(f"  {mark} {c.what}{detail}", highlight=False)
    failed = [c for c in demo.checks if not c.ok]
    elapsed = time.monotonic() - demo.started
    if failure is None and not failed:
        shutil.rmtree(demo.workdir, ignore_errors=True)
        console.print(
            f"\n[green]Demo complete in {elapsed:.0f}s: every charge and every payout moved "
            "money exactly once, every failure is explained, and nothing is left running.[/]"
        )
        return 0
    if failure is not None:
        console.print(f"\n[red]The demo failed: {failure}[/]", highlight=False)
    else:
        console.print(f"\n[red]The demo failed: {len(failed)} check(s) did not pass.[/]")
    console.print(
        f"The logs of the worker, the scheduler and the sandbox are in {demo.logdir}",
        highlight=False,
    )
    return 1
