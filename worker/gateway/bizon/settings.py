"""How to reach the Bizon orders gateway, built once from the environment.

==================================  ==========================================================
``BILLING_BIZON_BASE_URL``          the gateway's URL (default: the local sandbox,
                                    ``http://127.0.0.1:8090``)
``BILLING_BIZON_USERNAME``          project login for Basic auth (sandbox default ``project``)
``BILLING_BIZON_PASSWORD``          project password (sandbox default ``password``)
``BILLING_BIZON_CLIENT_CERT``       a PEM client certificate, when the gateway wants mutual TLS
``BILLING_BIZON_CLIENT_KEY``        its private key (omit if the certificate file holds it)
``BILLING_BIZON_CA_BUNDLE``         a CA bundle for TLS verification (default: httpx's, certifi)
``BILLING_BIZON_CONNECT_TIMEOUT``   seconds to open a connection (default 5)
``BILLING_BIZON_READ_TIMEOUT``      seconds to wait for each read (default 30)
``BILLING_BIZON_DEADLINE``          seconds for a whole request, overall (default 40)
``BILLING_BIZON_ALLOW_HTTP``        ``1`` allows plain http to a non-loopback sandbox
==================================  ==========================================================

The sandbox defaults (``project``/``password``, the reference's own example login) apply only
to a loopback URL: a real gateway with no credentials configured is a configuration error,
not a silent attempt with test credentials.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from worker.errors import ConfigurationError
from worker.sensitive import Secret
from worker.settings import _is_loopback, _seconds

SANDBOX_URL = "http://127.0.0.1:8090"
#: The reference's example login (``Basic cHJvamVjdDpwYXNzd29yZA==``); sandbox only.
SANDBOX_USERNAME = "project"
SANDBOX_PASSWORD = "password"  # noqa: S105 - public example value, loopback sandbox only


@dataclass(frozen=True, slots=True)
class BizonSettings:
    """Connection settings. Timeouts are seconds (time, not money: floats are fine here)."""

    base_url: str = SANDBOX_URL
    username: str = field(default=SANDBOX_USERNAME, repr=False)
    password: Secret[str] = field(default_factory=lambda: Secret(SANDBOX_PASSWORD))
    client_cert: str | None = None
    client_key: str | None = None
    ca_bundle: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    deadline: float = 40.0
    max_body_bytes: int = 8 << 20  #: a page holds up to 2,000 orders
    max_pages: int = 10_000  #: a stop for a listing whose ``next`` links never end
    max_connections: int = 100
    #: plain http to a non-loopback host (a compose sandbox); never for the real gateway
    allow_http: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.base_url.startswith(("https://", "http://")):
            raise ConfigurationError(f"Bizon base URL must be http(s): {self.base_url!r}")
        if self.base_url.startswith("http://") and not (
            self.allow_http or _is_loopback(self.base_url)
        ):
            raise ConfigurationError(
                "plain http is only allowed to a loopback sandbox (or with "
                "BILLING_BIZON_ALLOW_HTTP=1 for a sandbox on a private network); Bizon needs https"
            )
        if self.client_key and not self.client_cert:
            raise ConfigurationError("BILLING_BIZON_CLIENT_KEY is set without a client cert")
        if not 0 < self.connect_timeout <= self.deadline:
            raise ConfigurationError("connect timeout must be positive and within the deadline")
        if self.read_timeout <= 0:
            raise ConfigurationError("read timeout must be positive")
        if self.max_pages < 1 or self.max_body_bytes < 1:
            raise ConfigurationError("max_pages and max_body_bytes must be positive")

    @property
    def is_sandbox(self) -> bool:
        return _is_loopback(self.base_url)

    def ssl_context(self) -> ssl.SSLContext:
        """TLS verified against the CA bundle (certifi by default), with the client
        certificate loaded when mutual TLS is configured.
        """
        try:
            if self.ca_bundle:
                context = ssl.create_default_context(cafile=self.ca_bundle)
            else:
                context = httpx.create_ssl_context(trust_env=False)  # certifi, as httpx
            if self.client_cert:
                context.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as exc:
            # The message names the file problem, never key material.
            raise ConfigurationError(f"Bizon TLS setup failed: {type(exc).__name__}") from None
        return context

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BizonSettings:
        env = os.environ if env is None else env
        base_url = env.get("BILLING_BIZON_BASE_URL", "") or SANDBOX_URL
        username = env.get("BILLING_BIZON_USERNAME", "")
        password = env.get("BILLING_BIZON_PASSWORD", "")
        if not (username and password):
            if not _is_loopback(base_url.rstrip("/")):
                raise ConfigurationError(
                    "BILLING_BIZON_USERNAME and BILLING_BIZON_PASSWORD are required for a "
                    "non-loopback Bizon URL"
                )
            username = username or SANDBOX_USERNAME
            password = password or SANDBOX_PASSWORD
        return cls(
            base_url=base_url,
            username=username,
            password=Secret(password),
            client_cert=env.get("BILLING_BIZON_CLIENT_CERT") or None,
            client_key=env.get("BILLING_BIZON_CLIENT_KEY") or None,
            ca_bundle=env.get("BILLING_BIZON_CA_BUNDLE") or None,
            connect_timeout=_seconds(env, "BILLING_BIZON_CONNECT_TIMEOUT", 5.0),
            read_timeout=_seconds(env, "BILLING_BIZON_READ_TIMEOUT", 30.0),
            deadline=_seconds(env, "BILLING_BIZON_DEADLINE", 40.0),
            allow_http=env.get("BILLING_BIZON_ALLOW_HTTP", "") in {"1", "true", "yes"},
        )
