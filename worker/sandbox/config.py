"""How one sandbox app is set up: its state, the merchant login it accepts, its options."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from worker.sandbox.engine import SandboxState

#: The Postman collection's public test login; the sandbox accepts it unless told otherwise.
DEFAULT_USERNAME = "TerminalSys/kapital"
DEFAULT_PASSWORD = "kapital123"  # noqa: S105 - public test value, sandbox only


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    state: SandboxState
    credentials: bytes  #: ``username:password``, compared in constant time
    latency_ms: int = 0  #: added to every gateway call, for benchmarks
    allow_remote_admin: bool = False
    log_requests: bool = False

    def __repr__(self) -> str:  # the credentials stay out of any repr
        return f"SandboxConfig(latency_ms={self.latency_ms})"


CONFIG = web.AppKey("sandbox_config", SandboxConfig)
