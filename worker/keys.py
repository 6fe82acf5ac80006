"""Every Redis key of billing-worker, in one place. Prefix ``bw:``; Dramatiq keeps its own
keys under ``dramatiq:``.

The whole data layout, one screen:

======================================  ======  =================================================
key                                     type    what it holds
======================================  ======  =================================================
``bw:sub:{sub_id}``                     hash    a subscription (see ``worker.subscriptions``)
``bw:due``                              zset    every subscription id, scored by when the
                                                scheduler must look at it next (ms): its next
                                                due instant, *now* after any change, a claim's
                                                expiry while a sweep holds it, ``+inf`` when
                                                nothing will come due (cancelled, ended, no
                                                cadence, waiting for a new card)
``bw:scheduler:leader``                 string  the token of the scheduler that may sweep
                                                (a lease with a TTL, renewed while it lives)
``bw:period:{sub_id}:{period}``         hash    one billing period's charge: ``status`` (open,
                                                paid, dead, skipped), ``attempt`` (current
                                                attempt number), ``fence`` (incremented by every
                                                lease), ``lease_until`` (ms), ``lease_owner``,
                                                ``next_at`` (ms, the next dunning attempt),
                                                ``amount_minor``/``currency``/``card``/``gateway``
                                                (frozen when the period opens), ``paid_order``,
                                                ``opened_at``, ``closed_at``, ``reason``
``bw:attempt:{sub_id}:{period}:{n}``    hash    attempt ``n`` of a period: ``state`` (see
                                                ``worker.charges.states``), ``order_id``,
                                                ``order_pw`` (the order password; deleted when
                                                the attempt is final), outcome fields
``bw:work``                             zset    member ``{sub_id}|{period}``, score = ms when the
                                                period next needs a look (a dunning retry, a
                                                reconcile backoff, a lease that may have died).
                                                The janitor enqueues what is due: the queue is
                                                only a doorbell, this is the source of truth
``bw:periods:{sub_id}``                 zset    the periods of a subscription, scored by open time
``bw:dlq``                              zset    dead-letter ids, scored by time (ms)
``bw:dlq:{id}``                         hash    a dead letter (see ``worker.deadletters``)
``bw:events``                           stream  typed outcome events (see ``worker.events``)
``bw:audit``                            stream  operator actions: replays, discards, who and when
``bw:card:{gateway}:{card}``            zset    attempt timestamps per card, for network caps
``bw:breaker:{gateway}``                hash    circuit breaker: ``state``, ``failures``,
                                                ``until``, ``probe_until``
``bw:slots:{gateway}``                  zset    concurrency slots, scored by their expiry (ms)
``bw:halt:{gateway}``                   hash    set when the gateway rejected the credentials:
                                                charging there stops until an operator clears it
``bw:janitor``                          string  the janitor's leader lock (short TTL)
``bw:payout:{payout_id}``               hash    a payout (see ``worker.payouts.model``); never a PAN
``bw:payouts``                          zset    every payout id, scored by creation time (ms)
``bw:payouts:pending``                  zset    payouts waiting for a run, by creation time
``bw:pjob:{payout_id}``                 hash    the payout's sending state: the same fields as a
                                                period (status, attempt, fence, lease...)
``bw:pattempt:{payout_id}:{n}``         hash    attempt ``n`` of a payout, as for a charge
``bw:pwork``                            zset    ``{payout_id}|credit``: as ``bw:work``, for payouts
``bw:run:{run_id}``                     hash    a payout run (see ``worker.payouts.runs``)
``bw:run:{run_id}:payouts``             zset    the payouts a run took, in sending order
``bw:runs``                             zset    run ids by start time
``bw:runs:open``                        set     runs not finished yet (sending, or awaiting
                                                approval)
``bw:payout_schedule:{name}``           string  the last fire time (ms) a schedule was run for
``bw:janitor:payouts``                  string  the payout janitor's lock
======================================  ======  =================================================

Member and key parts are validated ids (``worker.subscriptions.validate_id``) and period
keys (``YYYY-MM-DD``), so ``|`` and ``:`` never occur inside them.
"""

from __future__ import annotations

PREFIX = "bw:"

DUE = f"{PREFIX}due"
LEADER = f"{PREFIX}scheduler:leader"
WORK = f"{PREFIX}work"
DLQ = f"{PREFIX}dlq"
EVENTS = f"{PREFIX}events"
AUDIT = f"{PREFIX}audit"


def halt(gateway: str) -> str:
    """A gateway's stop switch: set when it rejected the merchant's credentials."""
    return f"{PREFIX}halt:{gateway}"


JANITOR_LOCK = f"{PREFIX}janitor"
PAYOUTS = f"{PREFIX}payouts"
PAYOUTS_PENDING = f"{PREFIX}payouts:pending"
PAYOUT_WORK = f"{PREFIX}pwork"
RUNS = f"{PREFIX}runs"
RUNS_OPEN = f"{PREFIX}runs:open"
PAYOUT_JANITOR_LOCK = f"{PREFIX}janitor:payouts"
#: The item part of a payout's job key: a payout has one job, its credit.
PAYOUT_ITEM = "credit"


def sub(sub_id: str) -> str:
    return f"{PREFIX}sub:{sub_id}"


def period(sub_id: str, period_key: str) -> str:
    return f"{PREFIX}period:{sub_id}:{period_key}"


def periods(sub_id: str) -> str:
    return f"{PREFIX}periods:{sub_id}"


def attempt(sub_id: str, period_key: str, n: int) -> str:
    return f"{PREFIX}attempt:{sub_id}:{period_key}:{n}"


def work_member(sub_id: str, period_key: str) -> str:
    return f"{sub_id}|{period_key}"


def parse_work_member(member: str) -> tuple[str, str]:
    sub_id, _, period_key = member.partition("|")
    return sub_id, period_key


def dead_letter(dlq_id: str) -> str:
    return f"{PREFIX}dlq:{dlq_id}"


def card(gateway: str, card_ref: str) -> str:
    return f"{PREFIX}card:{gateway}:{card_ref}"


def breaker(gateway: str) -> str:
    return f"{PREFIX}breaker:{gateway}"


def slots(gateway: str) -> str:
    return f"{PREFIX}slots:{gateway}"


def payout(payout_id: str) -> str:
    return f"{PREFIX}payout:{payout_id}"


def payout_job(payout_id: str, item: str = PAYOUT_ITEM) -> str:
    return f"{PREFIX}pjob:{payout_id}"


def payout_attempt(payout_id: str, item: str, n: int) -> str:
    return f"{PREFIX}pattempt:{payout_id}:{n}"


def run(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}"


def run_payouts(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}:payouts"


def payout_schedule(name: str) -> str:
    return f"{PREFIX}payout_schedule:{name}"
