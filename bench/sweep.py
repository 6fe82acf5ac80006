"""The scheduler's sweep: dispatch rate, proportional work and memory per subscription.

1. **Dispatch rate.** ``--due`` subscriptions (daily cadence, starting today) are due now.
   A real :class:`schedules.sweep.Sweeper` sweeps them with the real
   ``worker.actors.send_charges`` (pipelined enqueue onto a Dramatiq ``RedisBroker`` set up
   by ``worker.broker.setup``). The figure is periods opened and enqueued per wall second of
   ``sweep()``, target >= 10,000/s. Checked after each sweep: the Dramatiq queue holds
   exactly N messages and N periods are open. Baselines from the same run, on the same
   periods: ``charge.send`` one message at a time (what the scheduler did before
   ``send_many``), Dramatiq's ``dispatch`` script once per message through one pipeline per
   1,000 (what ``send_many`` did before its bulk script) and ``dispatch.send_many`` alone (the
   enqueue without the sweep). The breakdown times each step on the sweeping thread; the
   enqueue of every batch but the last runs on the sweep's helper thread, overlapped, and is
   shown apart (with the time the sweeping thread waited for it).
2. **Proportional work.** The same sweep (``--small-due`` due subscriptions, real enqueue)
   among ``--small-due`` subscriptions, and among ``--total`` subscriptions of which the rest
   come due within the next month. The cases alternate, the due ones are reset between
   repetitions (their period, periods and work entries deleted, cursor and due score
   restored); the figure is the median of the per-repetition ratios, target <= 1.5.
3. **Memory per subscription.** ``used_memory`` delta over the ``--total`` subscriptions
   loaded for (2), divided by their number: the hash (description "Pro plan", a monthly
   cadence with start and anchor_day, a cursor) and its ``bw:due`` entry. Target <= 512 bytes.

    .venv/bin/python bench/sweep.py [--due 20000] [--dispatch-reps 3]
                                    [--total 1000000] [--small-due 1000] [--reps 15]
                                    [--json PATH|-]

Set-up bypasses ``worker.store.subscriptions.create`` only for speed (a million one-by-one
scripts, each fsync'd, would take minutes): subscriptions are written with pipelined
``HSET bw:sub:{id} <Subscription(...).to_hash()>`` and ``ZADD bw:due <score> {id}``, the
layout ``create`` writes, with the score the scheduler itself would have set (now for the due
ones, the next due instant for the others).

Persistence. Each Redis is the embedded one (``worker.embedded_redis``: AOF on, RDB off).
Every timed sweep and enqueue runs with its default ``appendfsync always``, what production
is told to run, so the figures include the fsync each write script pays. Loading the
million subscriptions runs with ``appendfsync no`` (the data is the same; the load is not
what is measured), and automatic AOF rewrites are off so a background fork does not land in
a timed sweep. ``used_memory`` does not depend on the fsync policy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import date, datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import dramatiq
import redis
import redis.utils
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from schedules.sweep import Sweeper, SweepResult
from worker import broker, keys, logs
from worker.clock import SYSTEM
from worker.embedded_redis import EmbeddedRedis
from worker.money import Money
from worker.periods import DEFAULT_TIMEZONE, next_due, parse_cadence, period_at
from worker.store import connect
from worker.store.schedule import Decision, DueIndex
from worker.subscriptions import Subscription

QUEUE = "dramatiq:charges"
QUEUE_MSGS = f"{QUEUE}.msgs"
STORED_BASE = 4_000_000
LOAD_CHUNK = 5_000  #: subscriptions per pipeline while loading
ZONE = ZoneInfo(DEFAULT_TIMEZONE)

out: TextIO = sys.stdout


def say(text: str) -> None:
    print(text, file=out, flush=True)


def line(label: str, value: str) -> None:
    say(f"  {label:<58}{value}")


def command(args: argparse.Namespace, *names: str) -> str:
    opts = " ".join(f"--{n.replace('_', '-')} {getattr(args, n)}" for n in names)
    return f".venv/bin/python bench/sweep.py {opts}"


# --- set-up -----------------------------------------------------------------------------------


def sub_id(i: int) -> str:
    return f"sub_{i:07d}"


def subscription(i: int, cadence: dict[str, str], now: int, cursor: str = "") -> Subscription:
    return Subscription(
        id=sub_id(i),
        customer=f"cus_{i:07d}",
        stored_id=STORED_BASE + i,
        amount=Money(2_999, "AZN"),
        description="Pro plan",
        cadence=cadence,
        created_at=now,
        updated_at=now,
        cursor=cursor,
    )


def load(r: redis.Redis, subs: Iterable[tuple[Subscription, float]]) -> int:
    """``HSET`` each hash and ``ZADD`` its score, pipelined: the layout ``store.create`` writes."""
    n = 0
    pipe = r.pipeline(transaction=False)
    scores: dict[str, float] = {}
    for sub, score in subs:
        pipe.hset(keys.sub(sub.id), mapping=sub.to_hash())  # type: ignore[arg-type]
        scores[sub.id] = score
        n += 1
        if len(scores) == LOAD_CHUNK:
            pipe.zadd(keys.DUE, scores)
            pipe.execute()
            scores = {}
    if scores:
        pipe.zadd(keys.DUE, scores)
    pipe.execute()
    return n


def start_redis(fsync: str) -> tuple[EmbeddedRedis, redis.Redis]:
    server = EmbeddedRedis().start()
    r = connect(server.url)
    r.config_set("auto-aof-rewrite-percentage", 0)  # no background rewrite mid-measurement
    r.config_set("appendfsync", fsync)
    return server, r


def clear_queue(r: redis.Redis) -> None:
    r.delete(QUEUE, QUEUE_MSGS)


class TimedIndex(DueIndex):
    """The real due index, timing its round trips (for the breakdown of a sweep)."""

    def __init__(self, r: redis.Redis, spent: dict[str, float]) -> None:
        super().__init__(r)
        self.spent = spent

    def lead(self, token: str, ttl_ms: int) -> bool:
        t0 = time.perf_counter()
        try:
            return super().lead(token, ttl_ms)
        finally:
            self.spent["lease"] += time.perf_counter() - t0

    def claim(
        self, token: str, now_ms: int, claim_ms: int, limit: int
    ) -> list[tuple[str, dict[str, str]]]:
        t0 = time.perf_counter()
        try:
            return super().claim(token, now_ms, claim_ms, limit)
        finally:
            self.spent["claim"] += time.perf_counter() - t0

    def record(
        self, token: str, now_ms: int, work_at_ms: int, decisions: Sequence[Decision]
    ) -> list[tuple[str, str]]:
        t0 = time.perf_counter()
        try:
            return super().record(token, now_ms, work_at_ms, decisions)
        finally:
            self.spent["record"] += time.perf_counter() - t0


class TimedSweeper(Sweeper):
    """The real sweeper, timing how long the sweeping thread waits for its helper's ring."""

    def __init__(
        self,
        index: DueIndex,
        send: Callable[[list[tuple[str, str]]], None],
        spent: dict[str, float],
    ) -> None:
        super().__init__(index, send, SYSTEM)
        self.spent = spent

    def _wait(self, in_flight: Future[None] | None) -> None:  # type: ignore[override]
        t0 = time.perf_counter()
        try:
            Sweeper._wait(in_flight)
        finally:
            self.spent["waiting for the helper's enqueue"] += time.perf_counter() - t0


ON_THE_SIDE = "enqueue on the helper thread"  #: overlapped: not a part of the wall time


def timed_sweep(
    r: redis.Redis, send: Callable[[list[tuple[str, str]]], None]
) -> tuple[SweepResult, float, dict[str, float], list[tuple[str, str]]]:
    """One real sweep of everything due; returns the result, wall seconds, the breakdown
    and the (subscription, period) pairs it rang for."""
    parts = ("lease", "claim", "record", "enqueue (last batch)", "waiting for the helper's enqueue")
    spent = dict.fromkeys(parts, 0.0)
    helper = 0.0
    rung: list[tuple[str, str]] = []
    sweeping = threading.current_thread()

    def timed_send(pairs: list[tuple[str, str]]) -> None:
        nonlocal helper
        t0 = time.perf_counter()
        send(pairs)
        took = time.perf_counter() - t0
        if threading.current_thread() is sweeping:
            spent["enqueue (last batch)"] += took
        else:
            helper += took
        rung.extend(pairs)

    sweeper = TimedSweeper(TimedIndex(r, spent), timed_send, spent)
    redis0, cpu0 = redis_cpu(r), time.process_time()
    t0 = time.perf_counter()
    result = sweeper.sweep()
    wall = time.perf_counter() - t0
    cpu = {"python CPU": time.process_time() - cpu0, "redis-server CPU": redis_cpu(r) - redis0}
    sweeper.resign()
    spent["decide and the rest"] = wall - sum(spent.values())
    return result, wall, {**spent, ON_THE_SIDE: helper, **cpu}, rung


def dispatch_per_message(actor: dramatiq.Actor[Any, Any], pairs: list[tuple[str, str]]) -> None:
    """The baseline: ``send_many`` as it was before its bulk script, Dramatiq's ``dispatch``
    script once per message (each message built as ``broker.enqueue`` builds it), through one
    pipeline per 1,000, with the enqueue hooks."""
    broker = actor.broker
    assert isinstance(broker, RedisBroker)
    dispatch_script = broker.scripts["dispatch"]
    for start in range(0, len(pairs), 1000):
        pipe = broker.client.pipeline(transaction=False)
        messages = []
        for args in pairs[start : start + 1000]:
            message = actor.message(*args).copy(options={"redis_message_id": str(uuid.uuid4())})
            broker.emit_before("enqueue", message, None)
            dispatch_script(
                keys=[broker.namespace],
                args=[
                    "enqueue",
                    current_millis(),
                    message.queue_name,
                    broker.broker_id,
                    broker.heartbeat_timeout,
                    broker.dead_message_ttl,
                    0,
                    broker._max_unpack_size(),  # type: ignore[no-untyped-call]
                    message.options["redis_message_id"],
                    message.encode(),
                ],
                client=pipe,
            )
            messages.append(message)
        pipe.execute()
        for message in messages:
            broker.emit_after("enqueue", message, None)


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def today() -> date:
    return datetime.fromtimestamp(SYSTEM.now_ms() / 1000, ZONE).date()


# --- 1. dispatch rate -------------------------------------------------------------------------


def dispatch_rate(args: argparse.Namespace) -> dict[str, Any]:
    n, reps = args.due, args.dispatch_reps
    say(f"1. dispatch rate: {n:,} daily subscriptions due now, {reps} repetitions")
    server, r = start_redis("always")
    try:
        broker.setup(server.url)
        from worker import actors, dispatch

        cadence = {"cadence": "daily", "start": today().isoformat()}

        def fresh(count: int) -> None:
            r.flushdb()
            now = SYSTEM.now_ms()
            load(r, ((subscription(i, cadence, now), now) for i in range(count)))

        fresh(min(n, 1000))  # warm-up: scripts loaded, zones parsed, connections open
        timed_sweep(r, actors.send_charges)

        sweeps: list[float] = []
        pipelined: list[float] = []
        per_message: list[float] = []
        single: list[float] = []
        breakdowns: list[dict[str, float]] = []
        for rep in range(reps):
            fresh(n)
            result, wall, spent, rung = timed_sweep(r, actors.send_charges)
            check_dispatch(r, n, result, rung)
            sweeps.append(n / wall)
            breakdowns.append(spent)

            clear_queue(r)
            t0 = time.perf_counter()
            dispatch.send_many(actors.charge, rung)
            pipelined.append(n / (time.perf_counter() - t0))
            check_queue(r, n)

            clear_queue(r)
            t0 = time.perf_counter()
            dispatch_per_message(actors.charge, rung)
            per_message.append(n / (time.perf_counter() - t0))
            check_queue(r, n)

            clear_queue(r)
            t0 = time.perf_counter()
            for pair in rung:
                actors.charge.send(*pair)
            single.append(n / (time.perf_counter() - t0))
            check_queue(r, n)
            say(
                f"  rep {rep + 1}: sweep {sweeps[-1]:,.0f}/s, send_many alone "
                f"{pipelined[-1]:,.0f}/s, dispatch per message {per_message[-1]:,.0f}/s, "
                f"charge.send one by one {single[-1]:,.0f}/s"
            )
    finally:
        r.close()
        server.stop()
    rate, base_many, base_per_message, base_single = (
        statistics.median(x) for x in (sweeps, pipelined, per_message, single)
    )
    best = breakdowns[sweeps.index(statistics.median_low(sweeps))]
    cpu = {k: best.pop(k) for k in ("python CPU", "redis-server CPU")}
    on_the_side = best.pop(ON_THE_SIDE)
    total = sum(best.values())
    line("sweep(), periods opened and enqueued (median):", f"{rate:10,.0f} /s")
    line("baseline: charge.send one by one (before):", f"{base_single:10,.0f} /s")
    line("baseline: dispatch script per message, pipelined:", f"{base_per_message:10,.0f} /s")
    line("baseline: dispatch.send_many alone (enqueue only):", f"{base_many:10,.0f} /s")
    line("sweep / one-by-one send:", f"{rate / base_single:10.2f} x")
    line("sweep / send_many alone:", f"{rate / base_many:10.2f} x")
    say("  where a sweep's wall time goes, on the sweeping thread (median repetition):")
    for part, seconds in best.items():
        share_row(part, seconds, total, n)
    say("  overlapped with the above, on the sweep's helper thread:")
    share_row(ON_THE_SIDE, on_the_side, total, n)
    say("  CPU over the same sweep (python: both threads; redis-server: on the other core):")
    for part, seconds in cpu.items():
        share_row(part, seconds, total, n)
    verdict = "met" if rate >= 10_000 else "NOT met"
    say(f"  target >= 10,000/s: {verdict}; checked: queue holds {n:,} messages, {n:,} periods open")
    repro = command(args, "due", "dispatch_reps")
    say(f"  reproduce: {repro}")
    return {
        "due": n,
        "sweep_per_s": sweeps,
        "send_many_per_s": pipelined,
        "send_one_by_one_per_s": single,
        "median_sweep_per_s": rate,
        "median_send_many_per_s": base_many,
        "median_send_one_by_one_per_s": base_single,
        "dispatch_per_message_per_s": per_message,
        "median_dispatch_per_message_per_s": base_per_message,
        "breakdown_s": best,
        "enqueue_on_helper_thread_s": on_the_side,
        "cpu_s": cpu,
        "target_met": rate >= 10_000,
        "command": repro,
    }


def share_row(part: str, seconds: float, total: float, n: int) -> None:
    share = seconds / total * 100
    say(f"    {part:<34}{seconds * 1000:8.0f} ms {share:5.1f} %  {seconds / n * 1e6:6.1f} µs/sub")


def check_queue(r: redis.Redis, n: int) -> None:
    held = (int(r.hlen(QUEUE_MSGS)), int(r.llen(QUEUE)))
    if held != (n, n):
        raise SystemExit(f"the Dramatiq queue holds {held} messages (hash, list), not {n}")


def check_dispatch(
    r: redis.Redis, n: int, result: SweepResult, rung: list[tuple[str, str]]
) -> None:
    if (result.subscriptions, result.opened, len(set(rung))) != (n, n, n):
        raise SystemExit(f"the sweep did {result} and rang for {len(set(rung))}, not {n}")
    check_queue(r, n)
    pipe = r.pipeline(transaction=False)
    for sub, period in rung:
        pipe.hget(keys.period(sub, period), "status")
    open_ = sum(1 for status in pipe.execute() if status == "open")
    if open_ != n or r.zcard(keys.WORK) != n:
        raise SystemExit(f"{open_} periods open and {r.zcard(keys.WORK)} in bw:work, not {n}")


# --- 2. proportional work and 3. memory -------------------------------------------------------


def monthly(anchor_day: int, start: date) -> dict[str, str]:
    return {"cadence": "monthly", "start": start.isoformat(), "anchor_day": str(anchor_day)}


def population(
    total: int, due: int, now: int
) -> tuple[list[tuple[int, dict[str, str], str, float]], set[int]]:
    """Templates for ``total`` monthly subscriptions started two months ago, each with its
    cursor at the last period recorded: ``due`` of them (spread over the ids) have a period
    due today, the others one due within the next month."""
    start = today() - timedelta(days=62)
    anchor_today = today().day
    templates = []
    for anchor in range(1, 32):
        cadence = monthly(anchor, start)
        parsed = parse_cadence(cadence)
        current = period_at(parsed, now)
        following = next_due(parsed, now)
        assert current is not None
        assert following is not None
        templates.append((cadence, current.key, float(following.due_at_ms)))
    parsed = parse_cadence(monthly(anchor_today, start))
    this = period_at(parsed, now)
    assert this is not None
    assert this.start == today()
    before = period_at(parsed, this.due_at_ms - 1)
    assert before is not None
    due_template = (monthly(anchor_today, start), before.key, float(now))
    step = max(1, total // due)
    due_ids = set(range(0, total, step)[:due])
    rows = []
    for i in range(total):
        cadence, cursor, score = due_template if i in due_ids else templates[i % 31]
        rows.append((i, cadence, cursor, score))
    return rows, due_ids


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def proportional_and_memory(args: argparse.Namespace) -> dict[str, Any]:
    total, due, reps = args.total, args.small_due, args.reps
    say(
        f"2. proportional work: {due:,} due among {due:,} vs among {total:,}; "
        f"3. memory over the {total:,}"
    )
    server, big = start_redis("no")
    small = connect(server.url.removesuffix("/0") + "/1")
    try:
        now = SYSTEM.now_ms()
        rows, due_ids = population(total, due, now)
        this_period = today().isoformat()
        before = used_memory(big)
        t0 = time.perf_counter()
        load(big, ((subscription(i, c, now, cur), score) for i, c, cur, score in rows))
        load_s = time.perf_counter() - t0
        after = used_memory(big)
        per_sub = (after - before) / total
        memory = memory_figures(big, args, total, per_sub, load_s, now)
        due_rows = [row for row in rows if row[0] in due_ids]
        del rows
        load(small, ((subscription(i, c, now, cur), score) for i, c, cur, score in due_rows))
        if int(big.zcount(keys.DUE, "-inf", now)) != due or int(small.zcard(keys.DUE)) != due:
            raise SystemExit("the set-up does not have the due subscriptions it should")
        big.config_set("appendfsync", "always")

        broker.setup(server.url)
        from worker import actors

        def reset(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            for i, _, cursor, score in due_rows:
                sid = sub_id(i)
                pipe.delete(keys.period(sid, this_period), keys.periods(sid))
                pipe.zrem(keys.WORK, keys.work_member(sid, this_period))
                pipe.hset(keys.sub(sid), "cursor", cursor)
                pipe.zadd(keys.DUE, {sid: score})
            pipe.execute()
            clear_queue(big)

        def one(r: redis.Redis) -> float:
            reset(r)
            result, wall, _, _ = timed_sweep(r, actors.send_charges)
            if (result.subscriptions, result.opened) != (due, due) or big.hlen(QUEUE_MSGS) != due:
                raise SystemExit(f"a sweep did {result}, not {due} subscriptions and periods")
            return wall

        one(small)  # warm-up
        one(big)
        small_s: list[float] = []
        big_s: list[float] = []
        for rep in range(reps):
            order = [(small, small_s), (big, big_s)]
            for r, times in order if rep % 2 == 0 else reversed(order):
                times.append(one(r))
        ratios = [b / s for b, s in zip(big_s, small_s, strict=True)]
    finally:
        small.close()
        big.close()
        server.stop()
    ratio = statistics.median(ratios)
    line(f"sweep of {due:,} due among {due:,} (median of {reps}):", f"{ms(small_s)} ms")
    line(f"sweep of {due:,} due among {total:,} (median of {reps}):", f"{ms(big_s)} ms")
    line("ratio, median of the per-repetition ratios:", f"{ratio:10.2f} x")
    say(f"    ratios: {', '.join(f'{x:.2f}' for x in ratios)}")
    verdict = "met" if ratio <= 1.5 else "NOT met"
    say(f"  target <= 1.5x: {verdict}; checked: each sweep claimed and opened exactly {due:,}")
    repro = command(args, "total", "small_due", "reps")
    say(f"  reproduce: {repro}")
    say("3. memory per stored subscription")
    for label, value in memory["lines"]:
        line(label, value)
    say(f"  reproduce: {repro}")
    memory.pop("lines")
    return {
        "proportional": {
            "due": due,
            "total": total,
            "small_s": small_s,
            "big_s": big_s,
            "ratios": ratios,
            "median_ratio": ratio,
            "target_met": ratio <= 1.5,
            "command": repro,
        },
        "memory": {**memory, "command": repro},
    }


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f}"


def memory_figures(
    r: redis.Redis, args: argparse.Namespace, total: int, per_sub: float, load_s: float, now: int
) -> dict[str, Any]:
    key = keys.sub(sub_id(1))
    usage = int(r.memory_usage(key, samples=0) or 0)
    encoding = str(r.object("encoding", key))
    index = int(r.memory_usage(keys.DUE, samples=0) or 0) / total
    fields = r.hgetall(key)
    longest = max(len(str(v)) for v in fields.values())
    # The same subscription with its zone spelled out: the cadence value passes 64 bytes.
    scratch = "bw:sub:bench_zone"
    cadence = {**json.loads(str(fields["cadence"])), "timezone": "Europe/Istanbul"}
    zoned = subscription(1, cadence, now, str(fields["cursor"])).to_hash()
    r.hset(scratch, mapping=zoned)  # type: ignore[arg-type]
    zoned_usage = int(r.memory_usage(scratch, samples=0) or 0)
    zoned_encoding = str(r.object("encoding", scratch))
    r.delete(scratch)
    verdict = "met" if per_sub <= 512 else "NOT met"
    lines = [
        (f"used_memory delta / {total:,} (hash + bw:due entry):", f"{per_sub:8.0f} bytes"),
        ("  target <= 512 bytes:", f"{verdict:>8}"),
        (f"MEMORY USAGE {key}:", f"{usage:8d} bytes, {encoding}"),
        ("bw:due, MEMORY USAGE / entries:", f"{index:8.0f} bytes"),
        ("longest field value (listpack holds values <= 256 bytes):", f"{longest:8d} bytes"),
        ("the same with a timezone in its cadence:", f"{zoned_usage:8d} bytes, {zoned_encoding}"),
        ("loading (pipelined, appendfsync no):", f"{load_s:8.1f} s"),
    ]  # fmt: skip
    return {
        "total": total,
        "bytes_per_subscription": per_sub,
        "target_met": per_sub <= 512,
        "memory_usage_one_key": usage,
        "encoding": encoding,
        "due_index_bytes_per_entry": index,
        "longest_value": longest,
        "with_timezone_memory_usage": zoned_usage,
        "with_timezone_encoding": zoned_encoding,
        "load_s": load_s,
        "stored_hash": fields,
        "lines": lines,
    }


def load_average() -> str:
    """The machine's 1/5/15-minute load: others share its two cores."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    global out
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--due", type=int, default=20_000, help="subscriptions due (figure 1)")
    parser.add_argument("--dispatch-reps", type=int, default=3, help="repetitions of figure 1")
    parser.add_argument("--total", type=int, default=1_000_000, help="stored (figures 2, 3)")
    parser.add_argument("--small-due", type=int, default=1_000, help="due (figure 2)")
    parser.add_argument("--reps", type=int, default=15, help="repetitions of figure 2")
    parser.add_argument(
        "--json", metavar="PATH", help="also write the figures as JSON ('-': stdout)"
    )
    args = parser.parse_args()
    if args.json == "-":
        out = sys.stderr
    logs.configure("WARNING")
    started = time.perf_counter()
    say(
        f"scheduler sweep ({os.cpu_count()} CPUs, load average {load_average()}; "
        "a private redis-server per part, appendfsync always while timed)"
    )
    parser_name = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "redis-py's own (no hiredis)"
    say(
        f"Python {sys.version.split()[0]}, redis-py {redis.__version__}, reply parser {parser_name}"
    )
    figures: dict[str, Any] = {"load_average_start": load_average()}
    figures["dispatch"] = dispatch_rate(args)
    figures.update(proportional_and_memory(args))
    figures["runtime_s"] = time.perf_counter() - started
    figures["load_average_end"] = load_average()
    say(f"total {figures['runtime_s']:.0f} s; load average at the end {load_average()}")
    if args.json:
        text = json.dumps(figures, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")


if __name__ == "__main__":
    main()
