"""Settings, built once from the environment and passed explicitly.

Every variable is ``BILLING_*``. Secrets are wrapped in :class:`~worker.sensitive.Secret` at
the moment they are read, so no ``repr`` of a settings object can show them.

==============================  =============================================================
``BILLING_TXPG_BASE_URL``       ``test``, ``prod`` or a URL (default: the local sandbox)
``BILLING_TXPG_USERNAME``       merchant login (default: the sandbox's test login)
``BILLING_TXPG_PASSWORD``       merchant password (default: the sandbox's test password)
``BILLING_TXPG_CA_BUNDLE``      a CA bundle file for TLS verification (default: system/certifi)
``BILLING_TXPG_CONNECT_TIMEOUT`` seconds to open a connection (default 5)
``BILLING_TXPG_READ_TIMEOUT``   seconds to wait for each read (default 30)
``BILLING_TXPG_DEADLINE``       seconds for a whole request, overall (default 40)
``BILLING_TXPG_ALLOW_HTTP``     ``1`` allows plain http to a non-loopback sandbox (compose)
``BILLING_REDIS_URL``           Redis URL; empty starts a private embedded redis-server
==============================  =============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from worker.errors import ConfigurationError
from worker.sensitive import Secret

TXPG_BASE_URLS = {
    "test": "https://txpgtst.kapitalbank.az/api",
    "prod": "https://e-commerce.kapitalbank.az/api",
}
SANDBOX_URL = "http://127.0.0.1:8080/api"
#: The Postman collection's own test credentials; the sandbox accepts them by default.
SANDBOX_USERNAME = "TerminalSys/kapital"
SANDBOX_PASSWORD = "kapital123"  # noqa: S105 - public test value, sandbox only


@dataclass(frozen=True, slots=True)
class TxpgSettings:
    """How to reach TXPG. Timeouts are seconds (time, not money: floats are fine here)."""

    base_url: str = SANDBOX_URL
    username: str = field(default=SANDBOX_USERNAME, repr=False)
    password: Secret[str] = field(default_factory=lambda: Secret(SANDBOX_PASSWORD))
    ca_bundle: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    deadline: float = 40.0
    max_body_bytes: int = 1 << 20
    max_connections: int = 100
    #: plain http to a non-loopback host (the compose sandbox); never for the real gateway
    allow_http: bool = False

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("https://", "http://")):
            raise ConfigurationError(f"TXPG base URL must be http(s): {self.base_url!r}")
        insecure = self.base_url.startswith("http://")
        if insecure and not (self.allow_http or _is_loopback(self.base_url)):
            raise ConfigurationError(
                "plain http is only allowed to a loopback sandbox (or with "
                "BILLING_TXPG_ALLOW_HTTP=1 for a sandbox on a private network); TXPG needs https"
            )
        if not 0 < self.connect_timeout <= self.deadline:
            raise ConfigurationError("connect timeout must be positive and within the deadline")
        if self.read_timeout <= 0:
            raise ConfigurationError("read timeout must be positive")

    def with_base_url(self, base_url: str) -> TxpgSettings:
        return replace(self, base_url=resolve_base_url(base_url))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TxpgSettings:
        env = os.environ if env is None else env
        return cls(
            base_url=resolve_base_url(env.get("BILLING_TXPG_BASE_URL", "") or SANDBOX_URL),
            username=env.get("BILLING_TXPG_USERNAME", "") or SANDBOX_USERNAME,
            password=Secret(env.get("BILLING_TXPG_PASSWORD", "") or SANDBOX_PASSWORD),
            ca_bundle=env.get("BILLING_TXPG_CA_BUNDLE") or None,
            connect_timeout=_seconds(env, "BILLING_TXPG_CONNECT_TIMEOUT", 5.0),
            read_timeout=_seconds(env, "BILLING_TXPG_READ_TIMEOUT", 30.0),
            deadline=_seconds(env, "BILLING_TXPG_DEADLINE", 40.0),
            allow_http=env.get("BILLING_TXPG_ALLOW_HTTP", "") in {"1", "true", "yes"},
        )


def resolve_base_url(value: str) -> str:
    """``test`` and ``prod`` name TXPG's hosts; anything else is taken as a URL."""
    return TXPG_BASE_URLS.get(value, value).rstrip("/")


def _is_loopback(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    return host in {"127.0.0.1", "localhost", "[::1]"} or host.startswith("127.")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive")
    return value
