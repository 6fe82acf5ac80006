"""Logging: structlog, JSON when not on a terminal, and a redaction processor.

Redaction is one processor placed before the renderer. It drops values under secret-looking
keys and scrubs every string value (PANs masked, ``password=…`` removed), so even a message
built carelessly from gateway text cannot print a secret. The httpx and httpcore loggers are
silenced: TXPG puts the order password in the query string, and they log URLs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from worker.sensitive import Secret, scrub

#: Keys whose values are never logged, whatever they hold.
SECRET_KEYS = frozenset(
    {"password", "secret", "pan", "card_number", "authorization", "auth", "credentials", "cvv"}
)
_REDACTED = "***"
#: Keys whose values are gateway ids: a bare number under one of them is kept as it is. A
#: Bizon order id has 17 digits, and about one in ten passes the Luhn check that would
#: otherwise mask it as a card number, making that charge impossible to trace in the logs.
ID_KEYS = frozenset({"order_id", "paid_order", "parent_order", "reference"})


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Secret):
        return _REDACTED
    if isinstance(value, Mapping):
        return {
            k: (_REDACTED if str(k).lower() in SECRET_KEYS else _clean(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(str(value))


def redact(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: remove secrets from every key and value of the event."""
    for key in list(event_dict):
        value = event_dict[key]
        if key.lower() in SECRET_KEYS:
            event_dict[key] = _REDACTED
        elif key in ID_KEYS and isinstance(value, str | int) and str(value).isdigit():
            event_dict[key] = value
        else:
            event_dict[key] = _clean(event_dict[key])
    return event_dict


def _scrub_exception(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if "exception" in event_dict and isinstance(event_dict["exception"], str):
        event_dict["exception"] = scrub(event_dict["exception"])
    return event_dict


def silence_http_loggers() -> None:
    """httpx logs every request URL at INFO, and TXPG URLs carry the order password."""
    for name in ("httpx", "httpcore", "hpack", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def formatter(*, json: bool) -> logging.Formatter:
    """The formatter every handler uses: redaction first, then JSON or console rendering."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _scrub_exception,
            renderer,
        ],
    )


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    redact,
]


def configure(
    level: str = "INFO", *, json: bool | None = None, handlers: list[logging.Handler] | None = None
) -> None:
    """Configure structlog and the stdlib root logger once, at process start.

    Events go through stdlib logging so that every library's records share one stream and
    one redaction; ``json=None`` picks JSON unless stderr is a terminal. ``handlers``
    replaces the default stderr handler (their formatter is set here).
    """
    use_json = (not sys.stderr.isatty()) if json is None else json
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Filtering in the wrapper makes a disabled level (debug in production) cost ~nothing.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    chosen = handlers if handlers is not None else [logging.StreamHandler(sys.stderr)]
    for handler in chosen:
        handler.setFormatter(formatter(json=use_json))
    root = logging.getLogger()
    root.handlers[:] = chosen
    root.setLevel(level.upper())
    silence_http_loggers()
