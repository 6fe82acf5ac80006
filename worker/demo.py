"""The end-to-end demo: its own Redis, the sandbox gateway, and real TXPG chains over HTTP.

Today it shows the foundation: a recurring charge with a saved card (Order_REC, then
set-src-token with a storedId, then exec-tran Single/UnspecifiedMit), a soft decline that
succeeds after the card is topped up, an OCT payout to a card, each order read back from the
gateway, and the sandbox's ledger of the money that moved. Everything it starts, it stops.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from worker.embedded_redis import EmbeddedRedis
from worker.errors import Declined, GatewayError
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.models import (
    CardNumber,
    OrderRequest,
    OrderType,
    StoredCard,
    TranRequest,
)
from worker.money import Money, parse_amount
from worker.sandbox import SandboxServer
from worker.settings import TxpgSettings

T = TypeVar("T")

#: The reference's test card as an OCT destination: shown masked, never in clear.
PAYOUT_PAN = "4169741330151778"


@dataclass
class Outcome:
    title: str
    approved: bool
    orders: list[int]


class Story:
    """Prints each gateway step as a table row."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.table = Table(title=title, title_justify="left", show_lines=False)
        for column in ("step", "call", "result"):
            self.table.add_column(column)

    def step(self, name: str, call: str, run: Callable[[], T], show: Callable[[T], str]) -> T:
        try:
            result = run()
        except Declined as exc:
            self.table.add_row(name, call, f"[yellow]declined[/]: {exc} [{exc.decline_class}]")
            raise
        except GatewayError as exc:
            self.table.add_row(name, call, f"[red]{type(exc).__name__}[/]: {exc}")
            raise
        self.table.add_row(name, call, show(result))
        return result

    def print(self) -> None:
        self.console.print(self.table)


def recurring_charge(client: TxpgClient, story: Story, stored_id: int, amount: Money) -> int:
    """One attempt of the recurring chain. Returns the order id; raises on a decline."""
    request = OrderRequest(OrderType.RECURRING, amount, f"demo subscription, card {stored_id}")
    order = story.step(
        "create order",
        f"POST /order/ Order_REC {amount}",
        lambda: client.create_order(request),
        lambda o: f"order {o.id}, {o.status_raw}",
    )
    story.step(
        "set source",
        f"POST /order/{order.id}/set-src-token storedId={stored_id}",
        lambda: client.set_src_token(order.ref, StoredCard(stored_id)),
        lambda t: f"{t.src_token.display_name if t.src_token else '?'}, {t.status_raw}",
    )
    story.step(
        "execute",
        f"POST /order/{order.id}/exec-tran Single UnspecifiedMit",
        lambda: client.exec_tran(order.ref, TranRequest.purchase(amount)),
        lambda r: (
            f"[green]approved[/] code {r.approval_code}, PMO {r.pmo_result_code} {r.pmo_title}"
        ),
    )
    story.step(
        "read back",
        f"GET /order/{order.id} (detailed)",
        lambda: client.get_order(order.id, detailed=True),
        lambda i: f"{i.status_raw}, {len(i.trans)} transaction(s), {i.amount}",
    )
    return order.id


def payout(client: TxpgClient, story: Story, amount: Money) -> int:
    card = CardNumber.parse(PAYOUT_PAN)
    order = story.step(
        "create order",
        f"POST /order/ OCT {amount}",
        lambda: client.create_order(
            OrderRequest(OrderType.CREDIT, amount, "demo payout", title="Seller payout")
        ),
        lambda o: f"order {o.id}, {o.status_raw}",
    )
    story.step(
        "set destination",
        f"POST /order/{order.id}/set-dst-token PAN {card.masked}",
        lambda: client.set_dst_token(order.ref, card),
        lambda t: t.status_raw,
    )
    story.step(
        "execute",
        f"POST /order/{order.id}/exec-tran Single Credit",
        lambda: client.exec_tran(order.ref, TranRequest.credit(amount)),
        lambda r: f"[green]sent[/] code {r.approval_code}, PMO {r.pmo_result_code} {r.pmo_title}",
    )
    story.step(
        "read back",
        f"GET /order/{order.id} (detailed)",
        lambda: client.get_order(order.id, detailed=True),
        lambda i: f"{i.status_raw}, {len(i.trans)} transaction(s), {i.amount}",
    )
    return order.id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run(console: Console) -> int:
    """Run the demo; returns the process exit code (0 when every step went as expected)."""
    console.print(
        Panel.fit("billing-worker demo: TXPG chains against the local sandbox", style="bold")
    )
    with EmbeddedRedis() as redis_server, SandboxServer() as sandbox:
        with redis_server.client() as r:
            r.ping()
        console.print(
            f"Redis {redis_server.version} on {redis_server.url} (pid {redis_server.pid}, AOF on)\n"
            f"Sandbox gateway on {sandbox.base_url}\n"
        )
        settings = TxpgSettings().with_base_url(sandbox.base_url)
        amount = parse_amount("9.99", "AZN")
        with TxpgClient(settings) as client:
            story = Story(console, "1. Recurring charge: saved card 5125, 9.99 AZN")
            recurring_charge(client, story, 5125, amount)
            story.print()

            story = Story(console, "2. Soft decline, then the card is topped up: card 5159")
            try:
                recurring_charge(client, story, 5159, amount)
                raise AssertionError("card 5159 starts with no funds and must decline")
            except Declined as exc:
                soft = exc
            sandbox.state.top_up(5159, parse_amount("50.00", "AZN"))
            story.table.add_row(
                "top up", "POST /_admin/cards/5159/top-up 50.00", "balance 50.00 AZN"
            )
            recurring_charge(client, story, 5159, amount)
            story.print()
            console.print(
                f"   the decline was classified [bold]{soft.decline_class}[/]: a later attempt "
                "with a new order (dunning) may succeed, and here it did.\n"
            )

            story = Story(console, "3. OCT payout to a card: 25.00 AZN")
            payout(client, story, parse_amount("25.00", "AZN"))
            story.print()

        ledger = Table(title="Sandbox ledger: every money movement", title_justify="left")
        for column in ("#", "order", "type", "tran", "amount", "direction", "card"):
            ledger.add_column(column)
        entries = sandbox.state.ledger.entries()
        for e in entries:
            ledger.add_row(
                str(e.seq),
                str(e.order_id),
                e.order_type,
                e.tran_type,
                f"{e.amount} {e.currency}",
                e.direction,
                e.card,
            )
        console.print(ledger)
        redis_pid = redis_server.pid
    expected = [("Purchase", "9.99"), ("Purchase", "9.99"), ("Credit", "25.00")]
    moved = [(e.tran_type, e.amount) for e in entries]
    if redis_pid is not None and _alive(redis_pid):
        console.print(f"[red]Redis (pid {redis_pid}) is still running[/]")
        return 1
    console.print(f"\nStopped the sandbox and Redis (pid {redis_pid}); nothing is left running.")
    if moved != expected:
        console.print(f"[red]unexpected ledger: {moved}[/]")
        return 1
    console.print("[green]Demo complete: 2 charges and 1 payout, each moved exactly once.[/]")
    return 0
