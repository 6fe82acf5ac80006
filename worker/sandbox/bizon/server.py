"""Running the Bizon sandbox: in a background thread, or as a child process. The runners
are the TXPG sandbox's (:mod:`worker.sandbox.server`, :mod:`worker.sandbox.process`);
only the app, the login and the URL layout (calls at the root, not under ``/api``) differ.

::

    with BizonServer() as bizon:                     # a free loopback port, demo cards
        httpx.post(f"{bizon.base_url}/orders/authorize", auth=bizon.auth, json=...)
        bizon.state.ledger.entries()                 # money moved, read in-process

    with BizonProcess() as bizon:                    # python -m worker.sandbox --gateway bizon
        bizon.base_url, bizon.admin_url
"""

from __future__ import annotations

from pathlib import Path

from worker.sandbox.bizon.app import create_bizon_app
from worker.sandbox.bizon.config import PASSWORD, USERNAME
from worker.sandbox.bizon.state import BizonState
from worker.sandbox.process import SandboxProcess
from worker.sandbox.server import ThreadedServer


class BizonServer(ThreadedServer[BizonState]):
    """The Bizon sandbox on a loopback port in a background thread; a context manager.

    ``base_url`` is the origin (``http://127.0.0.1:PORT``): the reference's paths are at the
    root. ``state`` is the :class:`~worker.sandbox.bizon.state.BizonState`.
    """

    api_path = ""
    thread_name = "bizon-sandbox"

    def __init__(
        self,
        state: BizonState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = USERNAME,
        password: str = PASSWORD,
        latency_ms: int = 0,
        log_requests: bool = False,
    ) -> None:
        state = state if state is not None else BizonState()
        app = create_bizon_app(
            state,
            username=username,
            password=password,
            latency_ms=latency_ms,
            log_requests=log_requests,
        )
        super().__init__(app, state, host=host, port=port, username=username, password=password)


class BizonProcess(SandboxProcess):
    """``python -m worker.sandbox --gateway bizon`` as a child process."""

    gateway = "bizon"
    api_path = ""

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        cards: Path | None = None,
        faults: Path | None = None,
        ledger_file: Path | None = None,
        username: str = USERNAME,
        password: str = PASSWORD,
        auto_charge: bool = False,
        rebill_merchant_fields: bool = False,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 15.0,
    ) -> None:
        flags: tuple[str, ...] = ("--auto-charge",) if auto_charge else ()
        flags += ("--rebill-merchant-fields",) if rebill_merchant_fields else ()
        super().__init__(
            latency_ms=latency_ms,
            cards=cards,
            faults=faults,
            ledger_file=ledger_file,
            username=username,
            password=password,
            extra_args=(*flags, *extra_args),
            start_timeout=start_timeout,
        )
