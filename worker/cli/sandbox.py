"""``billing sandbox``: serve the local TXPG sandbox gateway (see :mod:`worker.sandbox`)."""

from __future__ import annotations

from worker.cli import app
from worker.sandbox.command import sandbox

app.command("sandbox")(sandbox)
