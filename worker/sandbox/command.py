"""``billing sandbox`` (also ``python -m worker.sandbox``): serve the sandbox over HTTP.

The command is defined here, apart from the ``billing`` app, so ``python -m worker.sandbox``
runs it without importing every other command; ``worker.cli.sandbox`` registers it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from worker import logs
from worker.errors import InvalidInput
from worker.sandbox.app import create_app
from worker.sandbox.cards import demo_cards, load_cards
from worker.sandbox.config import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.sandbox.engine import SandboxState
from worker.sandbox.faults import load_faults
from worker.sandbox.server import serve_forever

HELP = (
    "Serve a local TXPG sandbox gateway: TXPG's paths and JSON under /api (Basic auth), with "
    "stored demo cards, declines by rule, fault injection and an audit ledger of the money "
    "moved.\n\n"
    "The admin API under /_admin (ledger, cards, top-ups, faults, reset) answers loopback "
    "clients only. Prints its URL; stop it with Ctrl-C or SIGTERM."
)


def sandbox(
    host: Annotated[
        str, typer.Option(help="Address to listen on. Keep loopback unless a container needs it.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = 8080,
    cards: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help='Stored cards as JSON ({"cards": [...]}), replacing the demo cards. '
            "Format: worker/sandbox/cards.json.",
        ),
    ] = None,
    faults: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help='Fault rules to start with, as JSON ({"seed": 7, "faults": [...]}). '
            "Kinds: worker/sandbox/faults.py.",
        ),
    ] = None,
    latency_ms: Annotated[
        int, typer.Option(min=0, help="Delay every gateway call by this many ms (benchmarks).")
    ] = 0,
    ledger_file: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Append every money movement to this file as JSON lines, as it happens.",
        ),
    ] = None,
    username: Annotated[
        str,
        typer.Option(
            envvar="BILLING_SANDBOX_USERNAME",
            help="Merchant login the sandbox accepts (Basic auth).",
        ),
    ] = DEFAULT_USERNAME,
    password: Annotated[
        str,
        typer.Option(
            envvar="BILLING_SANDBOX_PASSWORD",
            show_default=False,
            help="Merchant password the sandbox accepts (default: the Postman collection's "
            "test password). Prefer the environment variable to the command line.",
        ),
    ] = DEFAULT_PASSWORD,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for probabilistic faults (overrides the faults file's seed)."),
    ] = None,
    log_requests: Annotated[
        bool,
        typer.Option(
            "--log-requests",
            help="Log each call's method, path and outcome (never query strings or bodies).",
        ),
    ] = False,
    admin_remote: Annotated[
        bool,
        typer.Option(
            "--admin-remote",
            help="Let non-loopback clients use the unauthenticated /_admin API (containers).",
        ),
    ] = False,
) -> None:
    logs.configure("INFO")  # structlog with redaction; JSON unless stderr is a terminal
    try:
        card_list = load_cards(cards) if cards is not None else demo_cards()
        rules, file_seed = load_faults(faults) if faults is not None else ([], None)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    state = SandboxState(
        card_list, rules, seed=seed if seed is not None else file_seed, ledger_file=ledger_file
    )
    app = create_app(
        state,
        username=username,
        password=password,
        latency_ms=latency_ms,
        allow_remote_admin=admin_remote,
        log_requests=log_requests,
    )

    def ready(url: str) -> None:
        typer.echo(f"TXPG sandbox listening on {url}")
        typer.echo(f"  admin API: {url.removesuffix('/api')}/_admin (loopback only)")
        typer.echo(f"  merchant login: {username} (the password is not shown)")
        typer.echo("  stop with Ctrl-C or SIGTERM")

    try:
        asyncio.run(serve_forever(app, host, port, ready))
    finally:
        state.close()
    typer.echo("TXPG sandbox stopped")


sandbox.__doc__ = HELP  # one paragraph per line, as the --help screen shows it
