"""A local TXPG: the sandbox gateway the demo runs against and the tests read money from.

It serves TXPG's paths and JSON shapes (the Postman collection is the reference), keeps a
state machine per order (:mod:`.orders`), knows stored cards and how each answers
(:mod:`.cards`), misbehaves on request (:mod:`.faults`), and writes every money movement to an
audit ledger (:mod:`.ledger`): "charged exactly once" is read there. It shares no code with
the project's TXPG client, so the two cannot share a bug.

Ways to run it:

* ``billing sandbox`` / ``python -m worker.sandbox``: over HTTP (:mod:`.command`);
* :class:`SandboxServer`: in a background thread on a free loopback port (tests, demo);
* :class:`SandboxProcess`: as a child process (benchmarks, kill tests);
* :func:`create_app`: the aiohttp application itself.

HTTP statuses of error bodies are listed in :mod:`.errors`; the admin API in :mod:`.admin`.

The second gateway's sandbox, :mod:`worker.sandbox.bizon` (``billing sandbox --gateway
bizon``), shares this package's machinery rather than copying it: :mod:`.core` (cards,
ledger, faults, clock), :mod:`.cards`, :mod:`.faults`, :mod:`.ledger`, :mod:`.pipeline`,
:mod:`.transport`, :mod:`.admin`, :mod:`.server` and :mod:`.process`. The other modules
here (:mod:`.app`, :mod:`.engine`, :mod:`.orders`, :mod:`.processor`, :mod:`.render`,
:mod:`.bodies`, :mod:`.errors`, :mod:`.wire`) are TXPG's.
"""

from __future__ import annotations

from worker.sandbox.app import create_app
from worker.sandbox.cards import Behaviour, Card, card_from_json, demo_cards, load_cards
from worker.sandbox.config import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.sandbox.engine import SandboxState
from worker.sandbox.faults import Endpoint, FaultKind, FaultRule, load_faults
from worker.sandbox.ledger import Ledger, LedgerEntry
from worker.sandbox.process import SandboxProcess
from worker.sandbox.server import SandboxServer

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "Behaviour",
    "Card",
    "Endpoint",
    "FaultKind",
    "FaultRule",
    "Ledger",
    "LedgerEntry",
    "SandboxProcess",
    "SandboxServer",
    "SandboxState",
    "card_from_json",
    "create_app",
    "demo_cards",
    "load_cards",
    "load_faults",
]
