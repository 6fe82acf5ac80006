"""``billing charge`` and ``billing gateway``: start a charge by hand; see and resume the
gateway's breaker and stop switch.
"""

from __future__ import annotations

import time

import typer
from rich.table import Table

from worker.charges.entry import Requested, request_charge
from worker.cli import app
from worker.cli.common import (
    RedisUrlOption,
    console,
    die,
    doorbell,
    open_redis,
    print_json,
    resolve_redis_url,
)
from worker.clock import SYSTEM
from worker.errors import InvalidInput
from worker.store import halt as halt_store
from worker.store.breaker import Breaker
from worker.store.charges import ChargeStore
from worker.subscriptions import GATEWAYS


@app.command("charge")
def charge(
    subscription: str = typer.Argument(..., help="The subscription id."),
    period: str = typer.Option(..., "--period", help="The period key: its start date, YYYY-MM-DD."),
    wait: float = typer.Option(
        0.0, "--wait", min=0, help="Seconds to wait for a final state (needs `billing worker`)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the period as JSON."),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Charge one period of a subscription, exactly once.

    Idempotent: asking again for a paid period is a no-op that says so; asking while a charge
    is in flight changes nothing. The charge itself runs in `billing worker`.
    """
    r = open_redis(redis_url)
    ring = doorbell(resolve_redis_url(redis_url))
    try:
        result = request_charge(r, subscription, period, SYSTEM, ring)
    except InvalidInput as exc:
        die(str(exc))
    console.print(result.message, highlight=False)
    store = ChargeStore(r)
    deadline = time.monotonic() + wait
    state = store.period(subscription, period)
    while wait and state.get("status") == "open" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = store.period(subscription, period)
    if as_json:
        print_json({"period": state, "attempts": _attempts(store, subscription, period)})
    elif result.outcome is not Requested.ALREADY_PAID:
        console.print(f"status: [bold]{state.get('status')}[/] (attempt {state.get('attempt')})")


def _attempts(store: ChargeStore, sub: str, period: str) -> list[dict[str, str]]:
    return [{k: v for k, v in a.items() if k != "order_pw"} for a in store.attempts(sub, period)]


gateway_app = typer.Typer(
    help="Each gateway's circuit breaker and credentials stop switch (txpg, bizon)."
)
app.add_typer(gateway_app, name="gateway")


@gateway_app.command("status")
def gateway_status(redis_url: str | None = RedisUrlOption) -> None:
    """Show each gateway's breaker and whether charging on it is stopped."""
    r = open_redis(redis_url)
    table = Table("gateway", "breaker", "failures", "charging")
    for name in GATEWAYS:
        stopped = halt_store.halted(r, name)
        state = Breaker(r, name).state()
        charging = f"[red]stopped[/]: {stopped.get('reason')}" if stopped else "[green]on[/]"
        table.add_row(name, state.get("state", "closed"), state.get("failures", "0"), charging)
    console.print(table)


@gateway_app.command("resume")
def gateway_resume(
    gateway: str | None = typer.Option(
        None,
        "--gateway",
        help="Only this gateway (txpg or bizon); default: every stopped one.",
        show_default=False,
    ),
    redis_url: str | None = RedisUrlOption,
) -> None:
    """Resume charging on a gateway whose rejected credentials were fixed."""
    if gateway is not None and gateway not in GATEWAYS:
        die(f"--gateway must be one of {', '.join(GATEWAYS)}, got {gateway!r}")
    r = open_redis(redis_url)
    resumed = [name for name in ([gateway] if gateway else GATEWAYS) if halt_store.resume(r, name)]
    if resumed:
        console.print(
            f"charging resumed on {', '.join(resumed)}; waiting charges run within the "
            "janitor's next ticks"
        )
    else:
        console.print("charging was not stopped: nothing to do")
