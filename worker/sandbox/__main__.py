"""``python -m worker.sandbox``: the same as ``billing sandbox``."""

from __future__ import annotations

import typer

from worker.sandbox.command import sandbox


def main() -> None:
    typer.run(sandbox)


if __name__ == "__main__":
    main()
