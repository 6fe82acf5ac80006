"""``billing sandbox``: serve the local TXPG sandbox gateway (see :mod:`worker.sandbox`), or
with ``--gateway bizon`` the Bizon one (:mod:`worker.sandbox.bizon`)."""

from __future__ import annotations

from worker.cli import app
from worker.sandbox.command import sandbox

app.command("sandbox")(sandbox)
