"""``billing sandbox`` (also ``python -m worker.sandbox``): serve the sandbox over HTTP.

The command is defined here, apart from the ``billing`` app, so ``python -m worker.sandbox``
runs it without importing every other command; ``worker.cli.sandbox`` registers it.

``--gateway txpg`` (the default) serves the TXPG sandbox, ``--gateway bizon`` the Bizon one
(:mod:`worker.sandbox.bizon`); the options are the same, their defaults per gateway (port
8080 or 8090, the reference's public test login of each).
"""

from __future__ import annotations

import asyncio
import enum
from pathlib import Path
from typing import Annotated

import typer
from aiohttp import web

from worker import logs
from worker.errors import InvalidInput
from worker.sandbox.app import create_app
from worker.sandbox.bizon import config as bizon_config
from worker.sandbox.bizon.app import BizonEndpoint, create_bizon_app
from worker.sandbox.bizon.state import BizonState, bizon_demo_cards
from worker.sandbox.cards import BIZON_CARDS, demo_cards, load_cards
from worker.sandbox.config import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.sandbox.core import SandboxCore
from worker.sandbox.engine import SandboxState
from worker.sandbox.faults import load_faults
from worker.sandbox.server import serve_forever

HELP = (
    "Serve a local TXPG sandbox gateway: TXPG's paths and JSON under /api (Basic auth), with "
    "stored demo cards, declines by rule, fault injection and an audit ledger of the money "
    "moved. With --gateway bizon, serve the Bizon sandbox instead: the orders API of "
    "docs/reference/orders-gateway-api.txt at the root (port 8090), the same faults, ledger "
    "and admin API.\n\n"
    "The admin API under /_admin (ledger, cards, top-ups, faults, reset) answers loopback "
    "clients only. Prints its URL; stop it with Ctrl-C or SIGTERM."
)


class Gateway(enum.StrEnum):
    TXPG = "txpg"
    BIZON = "bizon"


#: Port and login of each gateway's sandbox when the command names none.
_DEFAULTS = {
    Gateway.TXPG: (8080, DEFAULT_USERNAME, DEFAULT_PASSWORD),
    Gateway.BIZON: (bizon_config.DEFAULT_PORT, bizon_config.USERNAME, bizon_config.PASSWORD),
}


def sandbox(
    gateway: Annotated[
        Gateway,
        typer.Option(
            case_sensitive=False,
            help="Which gateway to play: txpg (Kapital Bank) or bizon (the orders API).",
        ),
    ] = Gateway.TXPG,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Keep loopback unless a container needs it.")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            show_default=False,
            help="Port to listen on; 0 picks a free one. Default: 8080 (txpg), 8090 (bizon).",
        ),
    ] = None,
    cards: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help='Stored cards as JSON ({"cards": [...]}), replacing the demo cards. '
            "Format: worker/sandbox/cards.json (bizon: worker/sandbox/bizon/cards.json).",
        ),
    ] = None,
    faults: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help='Fault rules to start with, as JSON ({"seed": 7, "faults": [...]}). '
            "Kinds: worker/sandbox/faults.py; bizon's endpoint names: "
            "worker/sandbox/bizon/app.py.",
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
        str | None,
        typer.Option(
            envvar="BILLING_SANDBOX_USERNAME",
            show_default=False,
            help="Merchant login the sandbox accepts (Basic auth). Default: the reference's "
            "test login (txpg: TerminalSys/kapital; bizon: project).",
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="BILLING_SANDBOX_PASSWORD",
            show_default=False,
            help="Merchant password the sandbox accepts (default: the reference's test "
            "password). Prefer the environment variable to the command line.",
        ),
    ] = None,
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
    auto_charge: Annotated[
        bool,
        typer.Option(
            "--auto-charge",
            help="bizon only: the project setting that charges every authorisation at once "
            "(authorize, rebill, 3-D Secure completion): one-stage payments.",
        ),
    ] = False,
    rebill_merchant_fields: Annotated[
        bool,
        typer.Option(
            "--rebill-merchant-fields",
            help="bizon only: let rebill set merchant_order_id and description. The reference "
            "does not list them for rebill, so by default they are ignored, as a gateway that "
            "ignores unknown fields would.",
        ),
    ] = False,
) -> None:
    bizon = gateway is Gateway.BIZON
    if not bizon and (auto_charge or rebill_merchant_fields):
        raise typer.BadParameter("--auto-charge and --rebill-merchant-fields are bizon options")
    logs.configure("INFO")  # structlog with redaction; JSON unless stderr is a terminal
    default_port, default_username, default_password = _DEFAULTS[gateway]
    port = default_port if port is None else port
    username = default_username if username is None else username
    password = default_password if password is None else password
    seed_given = seed
    try:
        if bizon:
            card_list = load_cards(cards, BIZON_CARDS) if cards else bizon_demo_cards()
            rules, file_seed = (
                load_faults(faults, BizonEndpoint, by_card=False) if faults else ([], None)
            )
        else:
            card_list = load_cards(cards) if cards is not None else demo_cards()
            rules, file_seed = load_faults(faults) if faults is not None else ([], None)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    seed = seed_given if seed_given is not None else file_seed
    state: SandboxCore
    app: web.Application
    if bizon:
        bizon_state = BizonState(
            card_list,
            rules,
            seed=seed,
            ledger_file=ledger_file,
            settings=bizon_config.BizonSettings(
                auto_charge=auto_charge, rebill_merchant_fields=rebill_merchant_fields
            ),
        )
        state = bizon_state
        app = create_bizon_app(
            bizon_state,
            username=username,
            password=password,
            latency_ms=latency_ms,
            allow_remote_admin=admin_remote,
            log_requests=log_requests,
        )
    else:
        txpg_state = SandboxState(card_list, rules, seed=seed, ledger_file=ledger_file)
        state = txpg_state
        app = create_app(
            txpg_state,
            username=username,
            password=password,
            latency_ms=latency_ms,
            allow_remote_admin=admin_remote,
            log_requests=log_requests,
        )
    name = "Bizon" if bizon else "TXPG"
    api_path = "" if bizon else "/api"

    def ready(url: str) -> None:
        typer.echo(f"{name} sandbox listening on {url}")
        typer.echo(f"  admin API: {url.removesuffix(api_path)}/_admin (loopback only)")
        typer.echo(f"  merchant login: {username} (the password is not shown)")
        typer.echo("  stop with Ctrl-C or SIGTERM")

    try:
        asyncio.run(serve_forever(app, host, port, ready, api_path=api_path))
    finally:
        state.close()
    typer.echo(f"{name} sandbox stopped")


sandbox.__doc__ = HELP  # one paragraph per line, as the --help screen shows it
