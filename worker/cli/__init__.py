"""The ``billing`` command. Each sub-command lives in a module of its own in this package."""

from __future__ import annotations

import typer

from worker import __version__

app = typer.Typer(
    name="billing",
    help="billing-worker: exactly-once recurring charges and payouts through Kapital TXPG.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"billing-worker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """billing-worker: exactly-once recurring charges and payouts through Kapital TXPG."""


def main() -> None:
    app()


def registered_commands() -> list[str]:
    """Names of every top-level ``billing`` command and command group."""
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    return sorted(n.replace("_", "-") for n in names if n)


# Sub-command modules register themselves on the app when imported; keep this list sorted.
import worker.cli.charge  # noqa: E402
import worker.cli.demo  # noqa: E402
import worker.cli.dlq  # noqa: E402
import worker.cli.events  # noqa: E402
import worker.cli.forecast  # noqa: E402
import worker.cli.payouts  # noqa: E402
import worker.cli.sandbox  # noqa: E402
import worker.cli.simulate  # noqa: E402
import worker.cli.subscriptions  # noqa: E402
import worker.cli.worker_cmd  # noqa: E402, F401
