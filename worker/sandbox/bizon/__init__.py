"""A local Bizon: the sandbox of the second gateway, whose orders API is documented in
docs/reference/orders-gateway-api.txt (its public docs name it Bizon).

It serves the reference's paths and JSON shapes at the root (``/ping``, ``/orders/...``,
``/operations/``, ``/exchange_rates/``) behind Basic auth, keeps each order's status by the
reference's status table (:mod:`.orders`), answers with ISO 8583 response codes
(:mod:`.codes`), and shares with the TXPG sandbox everything that is not the API: the
card behaviours, the fault injection, the audit ledger, the admin API under ``/_admin``
and the thread and process runners (:mod:`worker.sandbox.core` and its neighbours). It
imports nothing from the Bizon client (``worker.gateway.bizon``), so the two cannot share
a bug.

Ways to run it:

* ``billing sandbox --gateway bizon`` / ``python -m worker.sandbox --gateway bizon``
  (port 8090);
* :class:`BizonServer`: in a background thread on a free loopback port (tests);
* :class:`BizonProcess`: as a child process (kill tests);
* :func:`create_bizon_app`: the aiohttp application itself.

Error bodies and their statuses: :mod:`.errors` (the reference shows none; they are the
sandbox's own). Decisions the reference leaves open are listed in docs/sandbox.md.
"""

from __future__ import annotations

from worker.sandbox.bizon.app import BizonEndpoint, create_bizon_app
from worker.sandbox.bizon.config import DEFAULT_PORT, PASSWORD, USERNAME, BizonSettings
from worker.sandbox.bizon.server import BizonProcess, BizonServer
from worker.sandbox.bizon.state import BizonState, Result, bizon_demo_cards

__all__ = [
    "DEFAULT_PORT",
    "PASSWORD",
    "USERNAME",
    "BizonEndpoint",
    "BizonProcess",
    "BizonServer",
    "BizonSettings",
    "BizonState",
    "Result",
    "bizon_demo_cards",
    "create_bizon_app",
]
