"""Scheduled OCT payouts: money going out to cards, exactly once.

* :mod:`worker.payouts.model`: a payout, its gateway (TXPG or Bizon), its destination (a TWO
  token on TXPG, an earlier order on Bizon, or a PAN for an immediate payout, never stored),
  its statuses, and files of payouts;
* :mod:`worker.payouts.runs`: which pending payouts a run takes, within its limits, and the
  run's own state;
* :mod:`worker.payouts.report`: what a run did, as a table, CSV or JSON;
* :mod:`worker.payouts.config`: the schedules (``BILLING_PAYOUT_SCHEDULES``, TOML).

These four are pure: no Redis, no HTTP, no clock (time comes in as ms arguments).
"""
