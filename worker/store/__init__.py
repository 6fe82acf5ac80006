"""Redis adapters. Each module owns the keys of one noun (see ``worker.keys``) and makes its
multi-key changes atomic with Lua scripts. Clients are created with ``decode_responses=True``.
"""

from __future__ import annotations

import redis


def connect(url: str) -> redis.Redis:
    """A client for ``url`` whose replies are ``str``. Timeouts keep a dead Redis from hanging
    a worker thread forever; the retry covers one dropped connection.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=False,
    )
