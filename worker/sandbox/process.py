"""The sandbox as a child process (``python -m worker.sandbox``), for benchmarks and fault
tests that must kill it, or keep its work off the test's own CPU and event loop.

::

    with SandboxProcess(latency_ms=20) as sandbox:
        sandbox.base_url      # http://127.0.0.1:PORT/api, read from the line it prints
        sandbox.admin_url     # the admin API: ledger, cards, faults (see worker.sandbox.admin)

It listens on a free loopback port. The same runner serves the Bizon sandbox
(``worker.sandbox.bizon.BizonProcess`` sets ``gateway = "bizon"``). The merchant login goes
through the environment, never the command line (which any local user can read). Output
(stdout and stderr) is collected in ``lines``, so a test can check that nothing secret was
printed.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from worker.sandbox.config import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.sandbox.server import Endpoints

#: The origin in the line the sandbox prints first: "... listening on http://HOST:PORT/api".
_URL = re.compile(r"listening on (http://[^\s/]+)")


class SandboxProcess(Endpoints):
    """``python -m worker.sandbox --gateway GATEWAY`` as a child process."""

    gateway: ClassVar[str] = "txpg"

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        cards: Path | None = None,
        faults: Path | None = None,
        ledger_file: Path | None = None,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 15.0,
    ) -> None:
        self.username = username
        self.password = password
        self.start_timeout = start_timeout
        self.args = [sys.executable, "-m", "worker.sandbox", "--gateway", self.gateway]
        self.args += ["--host", "127.0.0.1", "--port", "0"]
        self.args += ["--latency-ms", str(latency_ms)]
        for flag, path in (
            ("--cards", cards),
            ("--faults", faults),
            ("--ledger-file", ledger_file),
        ):
            if path is not None:
                self.args += [flag, str(path)]
        self.args += list(extra_args)
        self.lines: list[str] = []
        self._origin = ""
        self._popen: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._url: queue.Queue[str] = queue.Queue()

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError("not started")
        return self._popen.pid

    def start(self) -> Self:
        env = {
            **os.environ,
            "BILLING_SANDBOX_USERNAME": self.username,
            "BILLING_SANDBOX_PASSWORD": self.password,
            "PYTHONUNBUFFERED": "1",
        }
        self._popen = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name="sandbox-output", daemon=True)
        self._reader.start()
        try:
            self._origin = self._url.get(timeout=self.start_timeout)
        except queue.Empty:
            self.kill()
            output = "\n".join(self.lines[-20:])
            raise RuntimeError(f"the sandbox process did not start:\n{output}") from None
        return self

    def _read(self) -> None:
        assert self._popen is not None
        assert self._popen.stdout is not None
        found = False
        for line in self._popen.stdout:
            self.lines.append(line.rstrip("\n"))
            match = _URL.search(line) if not found else None
            if match is not None:
                found = True
                self._url.put(match.group(1))
        self._popen.stdout.close()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code (SIGKILL if it does not stop in time)."""
        if self._popen is None:
            return 0
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        return self._finish()

    def kill(self) -> int:
        """SIGKILL at once, as a crash would."""
        if self._popen is None:
            return 0
        if self._popen.poll() is None:
            self._popen.kill()
        self._popen.wait()
        return self._finish()

    def _finish(self) -> int:
        assert self._popen is not None
        if self._reader is not None:
            self._reader.join(5)
        return self._popen.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
