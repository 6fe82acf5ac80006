"""Settings that would break exactly-once are refused when a process starts."""

from __future__ import annotations

import pytest

from worker.charges.policy import DAY_MS
from worker.errors import ConfigurationError, InvalidInput
from worker.runtime import build, charge_settings


def test_a_lease_that_could_end_mid_call_is_refused() -> None:
    env = {"BILLING_REDIS_URL": "redis://127.0.0.1:1/0", "BILLING_LEASE_MS": "30000"}
    with pytest.raises(ConfigurationError, match=r"BILLING_LEASE_MS \(30000\) must be longer"):
        build(env)


def test_settings_are_read_strictly() -> None:
    assert charge_settings({"BILLING_DUNNING": "1d,2d"}).dunning_ms == (DAY_MS, 2 * DAY_MS)
    with pytest.raises(ConfigurationError, match="BILLING_LEASE_MS must be a whole number"):
        charge_settings({"BILLING_LEASE_MS": "90s"})
    with pytest.raises(InvalidInput, match="dunning delay"):
        charge_settings({"BILLING_DUNNING": "tomorrow"})
