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
    # Sub-command modules register themselves on import.
    from worker.cli import demo, sandbox  # noqa: F401

    app()
